"""Guide section 3 (provision/hosts.py): hostnames, /etc/hosts, firewall, IP forwarding."""
