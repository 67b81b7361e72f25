"""Named diagnoses: the catalogue of causes (diagnoses), the checks by domain (etcd, docker,
calico, host) on a cluster view (engine), their registry (checks) and `invoke doctor`.
Imports calicolab.core and calicolab.stack."""
