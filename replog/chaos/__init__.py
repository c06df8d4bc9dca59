"""Jepsen-style fault runs for replog: record a history under faults, then check it.

`history` is the event model, `checker` the pure judge, `report` its rendering; `cluster`,
`faults`, `proxy`, `workload` and `runner` drive a local cluster (`python -m replog.chaos`).
"""
