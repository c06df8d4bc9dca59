"""replog: a replicated log with tunable write concern, retries, heartbeats and a quorum rule."""

__version__ = "0.1.0"
