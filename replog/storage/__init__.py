"""The durable log: the thread-safe `Store` shells around the pure `OrderedLog`, and the disk files.
"""
