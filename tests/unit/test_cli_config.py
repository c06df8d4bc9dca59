"""Flags and their env twins become config; the secondary URLs stay exactly as configured."""

from __future__ import annotations

import pytest

from replog.cli import build_parser, main, master_config, secondary_config
from replog.core.fsync import FsyncPolicy


def test_secondary_urls_are_kept_exactly_as_given() -> None:
    args = build_parser("master").parse_args(
        ["--secondaries", "http://a:8001/, http://b:8002", "--in-memory"]
    )
    assert master_config(args).secondaries == ("http://a:8001/", "http://b:8002")


def test_env_twin_is_the_default_and_a_flag_beats_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLOG_HEARTBEAT_INTERVAL", "0.25")
    monkeypatch.setenv("REPLOG_SECONDARIES", "http://s1:8000")
    config = master_config(build_parser("master").parse_args([]))
    assert config.heartbeat_interval_s == 0.25 and config.secondaries == ("http://s1:8000",)
    config = master_config(build_parser("master").parse_args(["--heartbeat-interval", "2"]))
    assert config.heartbeat_interval_s == 2.0


def test_durable_by_default_with_a_directory_per_node_name() -> None:
    config = secondary_config(build_parser("secondary").parse_args(["--name", "s7"]))
    assert config.storage.data_dir is not None and config.storage.data_dir.name == "s7"
    assert config.storage.fsync is FsyncPolicy.ALWAYS
    memory = secondary_config(build_parser("secondary").parse_args(["--in-memory"]))
    assert memory.storage.data_dir is None


def test_fault_flags_are_validated() -> None:
    with pytest.raises(ValueError, match="error rate"):
        secondary_config(build_parser("secondary").parse_args(["--error-rate", "1.5"]))


@pytest.mark.parametrize("raw", ["interval", "INTERVAL", " interval "])
def test_fsync_is_parsed_into_its_enum_at_the_cli(raw: str) -> None:
    config = secondary_config(build_parser("secondary").parse_args(["--fsync", raw]))
    assert config.storage.fsync is FsyncPolicy.INTERVAL


def test_fsync_env_twin_is_parsed_into_its_enum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLOG_FSYNC", "never")
    assert secondary_config(build_parser("secondary").parse_args([])).storage.fsync is FsyncPolicy.NEVER


def test_a_bad_fsync_flag_exits_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["secondary", "--in-memory", "--fsync", "sometimes"])
    assert stopped.value.code == 2
    assert "--fsync: fsync policy must be one of always, interval, never, got 'sometimes'" in (
        capsys.readouterr().err
    )


def test_a_bad_fsync_env_value_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLOG_FSYNC", "sometimes")
    assert main(["secondary", "--in-memory"]) == 2
    assert "REPLOG_FSYNC: fsync policy must be one of always, interval, never" in capsys.readouterr().err
