"""The calico-node double's agent: registration, IPAM, BIRD, Docker plugins, felix stand-in."""

CALICO_VERSION = "v2.6.1"
CALICOCTL_VERSION = "v1.6.1"
