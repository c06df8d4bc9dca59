"""The pure core imports no threads, sockets, HTTP or actor libraries, directly or indirectly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import replog

PACKAGE_DIR = Path(replog.__file__).parent
CORE = sorted(p.stem for p in (PACKAGE_DIR / "core").glob("*.py") if p.stem != "__init__")
# `config` is plain frozen dataclasses that every layer reads: it is held to the same rule.
PURE = [f"core.{m}" for m in CORE] + ["config"]
FORBIDDEN = {
    "threading",
    "_thread",
    "socket",
    "requests",
    "bottle",
    "waitress",
    "pykka",
    "http",
    "urllib3",
    "asyncio",
    "time",
    "queue",
    "os",
    "subprocess",
    "select",
    "selectors",
    "prometheus_client",
}


def module_path(module: str) -> Path:
    return PACKAGE_DIR / (module.replace(".", "/") + ".py")


def imported_roots(module: str) -> set[str]:
    tree = ast.parse(module_path(module).read_text())
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_core_is_found() -> None:
    assert {
        "log",
        "writeconcern",
        "health",
        "backoff",
        "quorum",
        "replication",
        "wire",
        "records",
        "errors",
    } <= set(CORE)


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_nothing_forbidden(module: str) -> None:
    assert imported_roots(module) & FORBIDDEN == set()


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_only_pure_replog_modules(module: str) -> None:
    tree = ast.parse(module_path(module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("replog"):
            assert node.module.removeprefix("replog.") in PURE, node.module


def test_importing_the_pure_core_loads_nothing_forbidden() -> None:
    code = (
        "import json, sys\n"
        + "".join(f"import replog.{m}\n" for m in PURE)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE_DIR.parent,
        timeout=30,
    ).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    # `time`, `os` and `select` are loaded by the interpreter itself and `_thread` comes with the
    # stdlib's reprlib; only direct use of those (checked above) matters.
    assert loaded & (FORBIDDEN - {"time", "_thread", "os", "select"}) == set()
