"""What the stack under test looks like from a node: parsers of the outputs the guide shows,
etcd queries and keyspace snapshots, the etcd TLS material, small probes (ports, units,
processes, BIRD), workloads on a Calico network, the disruption probes between them
(disruption), and the pinned upstream downloads. Imports
calicolab.core only."""
