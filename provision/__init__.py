"""The guide's sections as idempotent Fabric steps; one module per section.

    hosts   [3] hostnames, /etc/hosts, firewall off, ip_forward and rp_filter
    etcd    [4] the two-member etcd cluster
    docker  [5] Docker with etcd as its cluster store
    calico  [6] calico-node as a systemd unit, calicoctl (real or the project's double)
    workloads   the busybox image the guide's section 7 runs
"""
