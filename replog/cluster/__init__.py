"""Cluster mode: nodes that elect their master (FAILOVER.md). `node` wires one; `switch` runs its
role changes."""
