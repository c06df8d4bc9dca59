"""The master's side of the internal HTTP protocol: calls to secondaries.
"""
