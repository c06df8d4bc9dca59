"""Rigs for tests, the benchmark and the fault run: local clusters of real node processes.

Not part of a node, and kept out of the Docker image.
"""
