"""Benchmark (not a test): `python -m replog.bench` starts its own cluster and prints numbers."""
