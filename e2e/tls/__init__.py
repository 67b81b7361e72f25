"""etcd over TLS (setting etcd_tls; provision/etcd_tls.py): runs only on such clusters."""
