"""The fault run's private network: a cut isolates one node both ways (from this process and from
the other nodes) while it keeps running, a heal restores it, and teardown leaves nothing behind.

Needs root and iproute2's `ip`: skipped without them, required when CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from replog.client import poll_until
from replog.testing.netns import NetnsSwitch, unavailable

REASON = unavailable()
pytestmark = pytest.mark.skipif(
    REASON is not None and os.environ.get("CI") != "true", reason=f"no network namespaces: {REASON}"
)
PORT = 9000


def _reaches(url: str) -> bool:
    try:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def _reaches_from(switch: NetnsSwitch, name: str, url: str) -> bool:
    """Whether a process inside node `name`'s namespace gets an answer from `url`."""
    code = (
        f"import urllib.request\ntry:\n urllib.request.urlopen({url!r}, timeout=0.5)\n"
        "except OSError:\n raise SystemExit(1)"
    )
    return (
        subprocess.run(
            [*switch.launcher(name), sys.executable, "-c", code], timeout=10, check=False
        ).returncode
        == 0
    )


@pytest.fixture(name="switch")
def switch_fixture() -> Iterator[NetnsSwitch]:
    switch = NetnsSwitch(("a", "b")).setup()
    servers = []
    try:
        for name in ("a", "b"):
            argv = [
                *switch.launcher(name),
                sys.executable,
                "-m",
                "http.server",
                str(PORT),
                "--bind",
                switch.host(name),
            ]
            servers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for name in ("a", "b"):
            poll_until(
                lambda n=name: _reaches(f"http://{switch.host(n)}:{PORT}/"), 10, 0.05, f"{name} serving"
            )
        yield switch
    finally:
        for server in servers:
            server.kill()
            server.wait()
        switch.teardown()


def test_a_cut_isolates_one_node_both_ways_and_a_heal_restores_it(switch: NetnsSwitch) -> None:
    a, b = (f"http://{switch.host(n)}:{PORT}/" for n in ("a", "b"))
    assert _reaches_from(switch, "b", a)
    switch.cut("a")
    assert switch.is_cut("a")
    assert not _reaches(a)
    assert not _reaches_from(switch, "b", a)  # the other node cannot reach it
    assert not _reaches_from(switch, "a", b)  # nor it the other node
    assert _reaches(b)
    switch.heal("a")
    poll_until(lambda: _reaches(a), 10, 0.05, "a reachable again")
    assert _reaches_from(switch, "b", a)


def test_teardown_removes_every_namespace_and_the_host_veth() -> None:
    switch = NetnsSwitch(("x",)).setup()
    switch.teardown()
    switch.teardown()  # twice is fine
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert switch.tag + "-" not in listed

    def host_veth_gone() -> bool:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        return f"{switch.tag}h" not in out

    poll_until(host_veth_gone, 10, 0.05, "host veth removed")  # the kernel removes it asynchronously
