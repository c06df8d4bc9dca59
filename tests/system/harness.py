"""Docker CLI helpers for the container tests: one `DockerCluster` per test, one `Node` per container.

Everything a cluster creates (network, containers, volumes) carries a unique name and the label
`replog.test=<id>`, and `cleanup` removes it all. The host talks to the nodes only through ports
published on 127.0.0.1 (random host ports, looked up again after every restart or reconnect,
since Docker hands out new ones).

Nodes listen on 0.0.0.0 in the image, so each cluster gets a random secret, in a file mounted
read-only into every container as a Docker secret would be (REPLOG_CLUSTER_SECRET_FILE).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests

LABEL = "replog.test"
SECRET_IN_CONTAINER = "/run/secrets/cluster_secret"

# Fast failure detection and retries, so outages are noticed in about a second.
FAST_MASTER_ENV = {
    "REPLOG_HEARTBEAT_INTERVAL": "0.2",
    "REPLOG_SUSPECT_AFTER": "1.0",
    "REPLOG_UNHEALTHY_AFTER": "2.5",
    "REPLOG_PROBE_TIMEOUT": "0.5",
    "REPLOG_CONNECT_TIMEOUT": "0.5",
    "REPLOG_REPLICATE_TIMEOUT": "5",
    "REPLOG_RETRY_BASE": "0.05",
    "REPLOG_RETRY_MAX": "0.5",
}

T = TypeVar("T")


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout_s: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; raise DockerError with its output when it fails and `check` is set."""
    proc = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise DockerError(
            f"docker {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def poll(condition: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll `condition` until it returns a truthy value (returned); errors count as 'not yet'."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = condition()
        except (requests.RequestException, DockerError, ValueError, KeyError) as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout_s}s: {what} (last: {last!r})")
        time.sleep(interval_s)


class OnNetwork(Protocol):
    """What a node needs of its cluster (a DockerCluster, or a compose project): its network."""

    network: str


@dataclass
class Node:
    """One container running one replog node; `url` is its port published on 127.0.0.1."""

    cluster: OnNetwork
    name: str  # short name (master, s1, s2)
    container: str
    role: str
    _url: str | None = field(default=None, repr=False)

    @property
    def internal_url(self) -> str:
        return f"http://{self.container}:8000"

    @property
    def url(self) -> str:
        if self._url is None:
            out = docker("port", self.container, "8000/tcp").stdout.split()
            if not out:
                raise DockerError(f"{self.container} publishes no port (stopped or disconnected?)")
            self._url = f"http://{out[0].replace('0.0.0.0', '127.0.0.1')}"
        return self._url

    def forget_port(self) -> None:
        self._url = None

    def get(self, path: str, timeout_s: float = 5) -> requests.Response:
        return requests.get(self.url + path, timeout=timeout_s)

    def logs(self) -> str:
        proc = docker("logs", self.container, check=False)
        return proc.stdout + proc.stderr

    def health(self) -> dict[str, Any]:
        response = self.get("/health")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def messages(self) -> list[str]:
        response = self.get("/messages")
        response.raise_for_status()
        messages: list[str] = response.json()["messages"]
        return messages

    def post(self, message: str, w: int, timeout_s: float = 60) -> requests.Response:
        return requests.post(self.url + "/messages", json={"message": message, "w": w}, timeout=timeout_s)

    def write(self, message: str, w: int, timeout_s: float = 60) -> dict[str, Any]:
        """POST and expect 201; a 503 read_only (nothing stored, safe to repeat) is retried."""

        def attempt() -> dict[str, Any] | None:
            response = self.post(message, w, timeout_s)
            if response.status_code == 503 and response.json().get("error") == "read_only":
                return None
            assert response.status_code == 201, f"{message} w={w}: {response.status_code} {response.text}"
            body: dict[str, Any] = response.json()
            return body

        return poll(attempt, timeout_s, f"{message} w={w} accepted", interval_s=0.2)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(docker("inspect", "-f", "{{json .State}}", self.container).stdout)
        return state

    def wait_exited(self, timeout_s: float = 30) -> dict[str, Any]:
        """Poll until the container is no longer running; return its state (ExitCode, ...)."""

        def exited() -> dict[str, Any] | None:
            state = self.state()
            return None if state["Running"] else state

        return poll(exited, timeout_s, f"{self.name} exited")

    def wait_up(self, timeout_s: float = 90) -> None:
        self.forget_port()
        poll(
            lambda: self.get("/health", timeout_s=2).status_code == 200,
            timeout_s,
            f"{self.name} answers /health",
        )

    def start(self) -> None:
        docker("start", self.container)
        self.wait_up()

    def stop(self, timeout_s: int = 10) -> float:
        """`docker stop`; returns the seconds it took."""
        started = time.monotonic()
        docker("stop", "-t", str(timeout_s), self.container, timeout_s=timeout_s + 60)
        self.forget_port()
        return time.monotonic() - started

    def kill(self) -> None:
        docker("kill", self.container)
        self.forget_port()

    def disconnect(self) -> None:
        docker("network", "disconnect", self.cluster.network, self.container)
        self.forget_port()

    def connect(self) -> None:
        docker("network", "connect", self.cluster.network, self.container)
        self.forget_port()


class DockerCluster:
    """The containers, volumes and network of one test; `cleanup` removes them all."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.test_id = uuid.uuid4().hex[:10]
        self.prefix = f"rlt-{self.test_id}"
        self.network = f"{self.prefix}-net"
        self.nodes: dict[str, Node] = {}
        self.volumes: list[str] = []
        self.secret = secrets.token_urlsafe(32)
        # The file is world-readable so that the container's user (uid 10001) can read the bind
        # mount; its directory is the host user's alone (mkdtemp: 0700).
        self._secret_dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.secret_file = self._secret_dir / "cluster-secret"
        self.secret_file.write_text(self.secret + "\n")
        self.secret_file.chmod(0o644)
        docker("network", "create", "--label", f"{LABEL}={self.test_id}", self.network)

    def container_name(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def _run(
        self, name: str, role: str, env: dict[str, str], start: bool = True, secret: bool = True
    ) -> Node:
        container = self.container_name(name)
        volume = f"{container}-data"
        docker("volume", "create", "--label", f"{LABEL}={self.test_id}", volume)
        self.volumes.append(volume)
        node = Node(self, name, container, role)
        self.nodes[name] = node
        if secret:
            env = {"REPLOG_CLUSTER_SECRET_FILE": SECRET_IN_CONTAINER, **env}
        env_args = [
            arg for key, value in {"REPLOG_NAME": name, **env}.items() for arg in ("-e", f"{key}={value}")
        ]
        mounts = ["--volume", f"{self.secret_file}:{SECRET_IN_CONTAINER}:ro"] if secret else []
        how = ("run", "--detach") if start else ("create",)
        docker(
            *how, "--name", container, "--label", f"{LABEL}={self.test_id}",
            "--network", self.network, "--publish", "127.0.0.1::8000",
            "--volume", f"{volume}:/data", *mounts, *env_args, self.image, role,
        )  # fmt: skip
        return node

    def secondary(self, name: str, start: bool = True, secret: bool = True, **env: str) -> Node:
        """A secondary container; with start=False only created (`Node.start` runs it later);
        with secret=False it gets no cluster secret (so, unless REPLOG_INSECURE, it must refuse)."""
        return self._run(name, "secondary", env, start, secret)

    def master(self, secondaries: list[str], **env: str) -> Node:
        urls = ",".join(f"http://{self.container_name(s)}:8000" for s in secondaries)
        return self._run("master", "master", {"REPLOG_SECONDARIES": urls, **FAST_MASTER_ENV, **env})

    def wait_converged(
        self, expected: list[str], names: list[str] | None = None, timeout_s: float = 60
    ) -> None:
        """Poll until every named node (all by default) shows exactly `expected`."""
        chosen = [self.nodes[n] for n in (names or list(self.nodes))]

        def converged() -> bool:
            return all(node.messages() == expected for node in chosen)

        try:
            poll(
                converged, timeout_s, f"{[n.name for n in chosen]} show the master's {len(expected)} messages"
            )
        except AssertionError:
            for node in chosen:
                try:
                    got = node.messages()
                except (requests.RequestException, DockerError) as exc:
                    print(f"{node.name}: unreadable: {exc!r}")
                else:
                    print(
                        f"{node.name}: {len(got)} messages, first differences at {_first_diff(got, expected)}"
                    )
            raise

    def dump_logs(self) -> None:
        for node in self.nodes.values():
            proc = docker("logs", "--tail", "60", node.container, check=False)
            print(f"----- {node.container} ({node.role}) -----\n{proc.stdout}{proc.stderr}")

    def cleanup(self) -> None:
        errors: list[str] = []
        by_label = f"label={LABEL}={self.test_id}"
        names = sorted(n.container for n in self.nodes.values())
        proc = docker("rm", "-f", "-v", *names, check=False) if names else None
        if proc is not None and proc.returncode != 0 and "No such container" not in proc.stderr:
            errors.append(proc.stderr)
        leftovers = docker("ps", "-aq", "--filter", by_label, check=False).stdout.split()
        if leftovers:  # e.g. a `docker run` that timed out on our side but created its container
            proc = docker("rm", "-f", "-v", *leftovers, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
        volumes = set(self.volumes) | set(
            docker("volume", "ls", "-q", "--filter", by_label, check=False).stdout.split()
        )
        for volume in sorted(volumes):
            proc = docker("volume", "rm", "-f", volume, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
        proc = docker("network", "rm", self.network, check=False)
        if proc.returncode != 0 and "not found" not in proc.stderr:
            errors.append(proc.stderr)
        shutil.rmtree(self._secret_dir, ignore_errors=True)
        assert not errors, f"cleanup of {self.prefix} failed: {errors}"


def _first_diff(got: list[str], expected: list[str]) -> str:
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"index {index}: {a!r} != {b!r}"
    return f"lengths {len(got)} vs {len(expected)}"
