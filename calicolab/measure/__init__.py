"""One measured window, shared by the fault pass, the upgrade rehearsals and the drills: the
window itself (window), a fault's window (fault_window), the figures per step (step_figures, with
the Hop a step is cut from), the etcd leader watch (etcd_leader), BGP at debug with its dropped
sessions (bgp_watch) and the budgets the figures are judged by (budgets, read from budgets.yaml).
Imports core, stack and etcd_history; knows nothing of how an upgrade runs."""
