"""Guide section 6 (provision/calico.py): calico-node, the BGP mesh, calicoctl."""
