"""Rolling, gated upgrades of a running cluster (upgrader) and the rehearsal that watches
workloads and etcd's keyspace around them (rehearsal); the known hazards of a path (hazards);
the half-upgraded cluster, rollback and restore drills (drills). The measured window and its
budgets are calicolab.measure, the etcd client histories calicolab.etcd_history. Imports core,
stack, provision/, diagnose, report, etcd_history and measure."""
