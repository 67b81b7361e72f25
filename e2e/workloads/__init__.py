"""Guide section 7 (provision/workloads.py): a Calico network, workloads, routes and ttl=62."""
