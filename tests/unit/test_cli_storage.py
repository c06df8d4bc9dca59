"""The storage flags: memory in bytes and how often a failed disk is retried, with their env twins."""

from __future__ import annotations

import pytest

from replog.cli import build_parser, secondary_config
from replog.config import StorageConfig


def test_storage_defaults_are_the_configs() -> None:
    storage = secondary_config(build_parser("secondary").parse_args([])).storage
    assert (storage.cache_bytes, storage.retry_s) == (StorageConfig().cache_bytes, StorageConfig().retry_s)
    assert (storage.cache_bytes, storage.retry_s) == (16 * 1024 * 1024, 1.0)


def test_storage_flags_and_env_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLOG_CACHE_BYTES", "1000000")
    storage = secondary_config(build_parser("secondary").parse_args(["--storage-retry", "0.2"])).storage
    assert (storage.cache_bytes, storage.retry_s) == (1_000_000, 0.2)
