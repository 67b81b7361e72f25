"""Calico double: a stand-in for calico/node v2.6.1 and calicoctl v1.6.1 (see README.md)."""
