"""The calico-node double: startup, runit-shaped supervision, felix, confd + BIRD, the Docker plugins."""

CALICO_VERSION = "v2.6.1"
CALICOCTL_VERSION = "v1.6.1"
