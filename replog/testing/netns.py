"""A private network for a fault run: each node in its own network namespace, so that one node can be
cut from everyone (both directions, clients included) while it keeps running.

Layout: a "switch" namespace holds a bridge; each node's namespace has `eth0`, one end of a veth
pair whose other end (`<tag>p<i>`) is a port of that bridge; this process reaches the bridge through
one more veth (`<tag>h`, the first address of the subnet). A cut is `ip link set <tag>p<i> down` in
the switch namespace, a heal `up`. Everything is named after this process's pid (`tag`), created by
`setup` and removed by `teardown` (also at exit, and on the next setup if a run died before it
could), so a run leaves nothing behind.

Needs root and iproute2's `ip`: `unavailable()` says why not, for a caller to skip.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

__all__ = ["NetnsSwitch", "NetnsUnavailable", "unavailable"]

log = logging.getLogger(__name__)

_TAG = re.compile(r"^rl(\d+)-")
_IP_TIMEOUT_S = 10.0


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no `ip`, or the kernel refused)."""


def unavailable() -> str | None:
    """Why this process cannot build namespaces, or None if it can try."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False)
    if check and result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale() -> None:
    """Namespaces and host veths left by runs whose process is gone (killed before teardown)."""
    listed = _ip("netns", "list", check=False).stdout.split()
    for name in listed:
        match = _TAG.match(name)
        if match and not _pid_alive(int(match.group(1))):
            log.warning("removing a stale namespace of a dead run netns=%s", name)
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        fields = line.split(":")
        if len(fields) > 1:
            dev = fields[1].strip().split("@")[0]
            found = re.match(r"^rl(\d+)h$", dev)
            if found and not _pid_alive(int(found.group(1))):
                _ip("link", "del", dev, check=False)


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route of this host overlaps, chosen from `seed` (bounded scan)."""
    routes = _ip("-4", "route", "show", "table", "all", check=False).stdout
    used = []
    for line in routes.splitlines():
        for word in line.split()[:2]:  # `10.1.2.0/24 dev ...` or `local 10.1.2.3 dev ...`
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    for step in range(500):
        n = (seed + step * 7919) % 60000
        net = ipaddress.IPv4Network(f"10.{100 + n // 250 % 150}.{n % 250}.0/24")
        if not any(net.overlaps(u) for u in used if isinstance(u, ipaddress.IPv4Network) and u.prefixlen):
            return net
    raise NetnsUnavailable("no free 10.x.y.0/24 subnet for the fault run's network")


class NetnsSwitch:
    """The namespaces of one run. Only the thread that built it drives it."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.tag = f"rl{os.getpid()}"
        self.switch_ns = f"{self.tag}-sw"
        self._host_dev = f"{self.tag}h"
        self._net: ipaddress.IPv4Network | None = None
        self._made = False
        self._cut: set[str] = set()

    def _ns(self, name: str) -> str:
        return f"{self.tag}-{self.names.index(name)}"

    def _port(self, name: str) -> str:
        return f"{self.tag}p{self.names.index(name)}"

    def host(self, name: str) -> str:
        """The address node `name` listens on."""
        if self._net is None:
            raise RuntimeError("setup() first")
        return str(self._net.network_address + 10 + self.names.index(name))

    def launcher(self, name: str) -> tuple[str, ...]:
        """Run a command inside node `name`'s namespace (`ip netns exec` execs: same pid)."""
        return ("ip", "netns", "exec", self._ns(name))

    def setup(self) -> NetnsSwitch:
        """Build everything; on any failure remove what was built and raise NetnsUnavailable."""
        reason = unavailable()
        if reason is not None:
            raise NetnsUnavailable(reason)
        _remove_stale()
        self._net = _free_subnet(os.getpid())
        self._made = True
        atexit.register(self.teardown)
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        log.info("netns switch up tag=%s subnet=%s nodes=%s", self.tag, self._net, self.names)
        return self

    def _build(self) -> None:
        assert self._net is not None
        prefix = self._net.prefixlen
        sw = self.switch_ns
        _ip("netns", "add", sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        _ip("link", "add", self._host_dev, "type", "veth", "peer", "name", f"{self.tag}s", "netns", sw)
        _ip("-n", sw, "link", "set", f"{self.tag}s", "master", "br0")
        _ip("-n", sw, "link", "set", f"{self.tag}s", "up")
        _ip("addr", "add", f"{self._net.network_address + 1}/{prefix}", "dev", self._host_dev)
        _ip("link", "set", self._host_dev, "up")
        for name in self.names:
            ns, port = self._ns(name), self._port(name)
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", sw)
            _ip("-n", sw, "link", "set", port, "master", "br0")
            _ip("-n", sw, "link", "set", port, "up")
            _ip("-n", ns, "addr", "add", f"{self.host(name)}/{prefix}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def cut(self, name: str) -> None:
        """Node `name` can no longer reach anyone, nor anyone it (its bridge port is down)."""
        _ip("-n", self.switch_ns, "link", "set", self._port(name), "down")
        self._cut.add(name)
        log.info("netns cut node=%s", name)

    def heal(self, name: str) -> None:
        _ip("-n", self.switch_ns, "link", "set", self._port(name), "up")
        self._cut.discard(name)
        log.info("netns healed node=%s", name)

    def is_cut(self, name: str) -> bool:
        return name in self._cut

    def teardown(self) -> None:
        """Remove every namespace and the host veth; safe to call twice and after a failed setup.
        Stop the nodes first: a namespace with a process in it lingers unnamed until it exits."""
        if not self._made:
            return
        self._made = False
        for name in self.names:
            _ip("netns", "del", self._ns(name), check=False)
        _ip("netns", "del", self.switch_ns, check=False)
        _ip("link", "del", self._host_dev, check=False)
        log.info("netns switch removed tag=%s", self.tag)

    def __enter__(self) -> NetnsSwitch:
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()
