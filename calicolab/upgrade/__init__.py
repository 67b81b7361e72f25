"""Rolling, gated upgrades of a running cluster (upgrader) and the rehearsal that watches
workloads and etcd's keyspace around them; the known hazards of a path (hazards); etcd client
histories recorded while an upgrade runs (etcd_client, recording) and checked (history,
linearizability); the etcd leader watcher (leader), the disruption figures per step (steps)
and their budgets (budgets, read from budgets.yaml). Imports core, stack, provision/, diagnose,
report."""
