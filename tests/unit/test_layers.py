"""The layers a reader sees in the tree are the layers the code has: each imports only those below.

core (pure) < config, logs, metrics < storage < net < actors < service < web < master_role < node <
cluster < cli; `client` talks HTTP and stands beside the node on `core` and `net` only; the
rigs (`testing`, `bench`, `chaos`) may use anything, and nothing of a node may use them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import replog

PACKAGE_DIR = Path(replog.__file__).parent
LAYERS = [
    "core", "config", "logs", "metrics", "storage", "net", "actors", "service", "web",
    "master_role", "node", "cluster", "cli",
]  # fmt: skip
# `cli_client` (replog send|tail|status) is the client's command line: on `client` alone, reached from `cli`.
BESIDE = {"client": {"core", "net"}, "cli_client": {"client", "core"}, "__main__": {"cli"}, "__init__": set()}
RIGS = {"testing", "bench", "chaos"}


def layer_of(module: str) -> str:
    """`replog.storage.disk` -> `storage`; `replog.node` -> `node`; `replog.__version__` -> the package."""
    first = module.removeprefix("replog.").split(".")[0]
    return "__init__" if first.startswith("__") and first != "__main__" else first


def replog_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "replog":
                found.update(f"replog.{alias.name}" for alias in node.names)
            elif node.module.startswith("replog."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("replog."))
    return found


def allowed(layer: str) -> set[str]:
    """The package root (`__version__`) is below everything."""
    if layer in RIGS:
        return set(LAYERS) | set(BESIDE) | RIGS
    if layer in BESIDE:
        return BESIDE[layer] | {layer, "__init__"}
    index = LAYERS.index(layer)
    return set(LAYERS[: index + 1]) | {"__init__"} | ({"cli_client"} if layer == "cli" else set())


MODULES = sorted(p for p in PACKAGE_DIR.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE_DIR)))
def test_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    relative = path.relative_to(PACKAGE_DIR).with_suffix("")
    layer = relative.parts[0]
    assert layer in LAYERS or layer in BESIDE or layer in RIGS, f"{relative} is in no layer"
    wrong = {m for m in replog_imports(path) if layer_of(m) not in allowed(layer)}
    assert not wrong, f"{relative} ({layer}) imports from above its layer: {sorted(wrong)}"


def test_nothing_of_a_node_imports_the_rigs() -> None:
    for path in MODULES:
        layer = path.relative_to(PACKAGE_DIR).parts[0]
        if layer not in RIGS:
            assert not {m for m in replog_imports(path) if layer_of(m) in RIGS}, path
