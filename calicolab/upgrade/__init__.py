"""Rolling, gated upgrades of a running cluster (upgrader) and the rehearsal that watches
workloads and etcd's keyspace around them. Imports core, stack, provision/, diagnose, report."""
