"""Rolling, gated upgrades of a running cluster (upgrader) and the rehearsal that watches
workloads and etcd's keyspace around them; the known hazards of a path (hazards); etcd client
histories recorded while an upgrade runs (etcd_client, recording) and checked (history,
linearizability). Imports core, stack, provision/, diagnose, report."""
