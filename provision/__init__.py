"""The guide's sections as idempotent Fabric steps; one module per section, each with its test
folder under e2e/ (imports calicolab.core and calicolab.stack only):

    hosts       [3] hostnames, /etc/hosts, firewall off, ip_forward and rp_filter  e2e/hosts/
    etcd        [4] the two-member etcd cluster (etcd_tls: its TLS material)        e2e/etcd/, e2e/tls/
    docker      [5] Docker with etcd as its cluster store                           e2e/docker/
    calico      [6] calico-node as a systemd unit, calicoctl (real or the double)   e2e/calico/
    workloads   [7] the busybox image the network test runs                         e2e/workloads/

platform.py hides the OS family (centos.py: CentOS 7 installs); steps.py and context.py are
the building blocks; run.py runs the sections in order on every node.
"""
