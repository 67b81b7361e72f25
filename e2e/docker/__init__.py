"""Guide section 5 (provision/docker.py): Docker with etcd as its cluster store."""
