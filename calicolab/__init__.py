"""calicolab: replay the Docker + Calico + etcd guide on two nodes and check every result."""
