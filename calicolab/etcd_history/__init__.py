"""etcd client histories: the recording client (etcd_client, standard library only, run as a
script), the operations it records and the checks over them (operations), recording them across
an upgrade or a fault (recording) and the linearizability search (linearizability). Imports core
and stack."""
