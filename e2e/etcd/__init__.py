"""Guide section 4 (provision/etcd.py): the two-member etcd cluster."""
