"""Jepsen-style fault runs for replog: record a history under faults, then check it.

`history` is the event model, `checker` the pure judge (with `findings`, and `cluster_checks` for
cluster mode's rules), `report` its rendering; `cluster`, `faults`, `workload` and `runner` drive a
static-mode cluster, `cluster_faults`, `cluster_workload` and `cluster_run` a cluster-mode one whose
nodes elect their master (`python -m replog.chaos [--cluster-mode]`).
"""
