"""Fixtures of the store tests (`tests/unit/stores.py`), shared by every unit test module."""

from tests.unit.stores import make_store, open_store

__all__ = ["make_store", "open_store"]
