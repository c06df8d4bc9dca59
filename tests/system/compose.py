"""A compose project for the container tests: compose.cluster.yaml brought up under a unique name.

The project's nodes are `Node`s (harness.py) found by `compose ps -q SERVICE`, with random host ports
on 127.0.0.1. A client container on the project's network runs `replog.client` where a client of a
real deployment would: a 421 names the master by its advertise URL (`http://nodeN:8000`), which
resolves on that network only, so following it from the host would test nothing but the host.

`cleanup` runs `compose down -v` and then removes by label whatever is left (the client container,
a half-created project), so a failed test leaves nothing behind.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .harness import DockerError, Node, docker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.cluster.yaml"
SERVICES = ("node1", "node2", "node3")
PROJECT_LABEL = "com.docker.compose.project"

# Run inside the client container: one append through replog.client; prints {"status", "body"},
# status 0 when no connection was made (nothing stored: safe to send again).
CLIENT_APPEND = """
import json, sys
from replog.client import ReplogClient, ReplogHTTPError
url, message, w = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    client = ReplogClient(url, request_timeout_s=10)
    body = client.append(message, w if w == "majority" else int(w), timeout_s=5)
    print(json.dumps({"status": 201, "body": body}))
except ReplogHTTPError as exc:
    print(json.dumps({"status": exc.status, "body": exc.body}))
except OSError as exc:  # 0: never connected, so nothing was sent; -1: it may have been stored
    unsent = any(kind in repr(exc) for kind in ("NewConnectionError", "NameResolutionError"))
    print(json.dumps({"status": 0 if unsent else -1, "body": {"error": repr(exc)}}))
"""


def compose_command() -> list[str] | None:
    """`docker compose` (v2) if the CLI has it, else `docker-compose` (v1), else None."""
    if docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


class ComposeCluster:
    """One compose project of compose.cluster.yaml, its client container, and their cleanup."""

    def __init__(self, image: str, command: list[str]) -> None:
        self.image = image
        self.project = f"rlc{uuid.uuid4().hex[:10]}"
        self.network = f"{self.project}_default"
        self.secret = secrets.token_urlsafe(32)
        self._command = command
        # As in DockerCluster: the file world-readable for the node user, its directory ours alone.
        self._secret_dir = Path(tempfile.mkdtemp(prefix=f"{self.project}-"))
        secret_file = self._secret_dir / "cluster-secret"
        secret_file.write_text(self.secret + "\n")
        secret_file.chmod(0o644)
        self._env = {
            **os.environ,
            "REPLOG_IMAGE": image,
            "CLUSTER_SECRET_FILE": str(secret_file),
            "REPLOG_BIND": "127.0.0.1",
            **{f"{service.upper()}_PORT": "" for service in SERVICES},  # random host ports
        }
        self.nodes: dict[str, Node] = {}
        self.client_container = f"{self.project}-client"

    def compose(
        self, *args: str, timeout_s: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self._command, "-f", str(COMPOSE_FILE), "-p", self.project, *args],
            cwd=ROOT,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise DockerError(f"compose {' '.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def up(self) -> dict[str, Node]:
        """Start the three nodes (the image exists: no build) and the client container."""
        self.compose("up", "-d", "--no-build")
        for service in SERVICES:
            [container] = self.compose("ps", "-q", service).stdout.split()
            self.nodes[service] = Node(self, service, container, "member")
        docker(
            "run", "--detach", "--name", self.client_container, "--network", self.network,
            "--label", f"{PROJECT_LABEL}={self.project}", "--entrypoint", "/opt/replog/bin/python",
            self.image, "-c", "import signal; signal.pause()",
        )  # fmt: skip
        for node in self.nodes.values():
            node.wait_up()
        return self.nodes

    def advertise_url(self, service: str) -> str:
        return f"http://{service}:8000"

    def client_append(self, service: str, message: str, w: int | str) -> dict[str, Any]:
        """Append through replog.client in the client container, sent to `service` (a 421 is
        followed to the master it names); {"status": 201 or the error's, "body": ...}."""
        return self._append_in(self.client_container, self.advertise_url(service), message, w)

    def append_inside(self, service: str, message: str, w: int | str) -> dict[str, Any]:
        """The same, run in the node's own container against itself: works while it is cut off."""
        return self._append_in(self.nodes[service].container, "http://127.0.0.1:8000", message, w)

    def _append_in(self, container: str, url: str, message: str, w: int | str) -> dict[str, Any]:
        proc = docker(
            "exec", container, "/opt/replog/bin/python", "-c", CLIENT_APPEND, url, message, str(w),
            timeout_s=60,
        )  # fmt: skip
        answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return answer

    def isolate(self, service: str) -> None:
        """Cut a node off the project's network: nothing it sends reaches anyone (a paused peer
        would still read what the kernel buffered for it, once resumed)."""
        docker("network", "disconnect", self.network, self.nodes[service].container)
        self.nodes[service].forget_port()

    def reconnect(self, service: str) -> None:
        """Back on the network under its service name, which the other members call it by."""
        node = self.nodes[service]
        docker("network", "connect", "--alias", service, self.network, node.container)
        node.forget_port()

    def read_file(self, service: str, path: str) -> str:
        """A file in a node's container (running or not: `docker cp` reads a stopped one too)."""
        proc = subprocess.run(
            ["docker", "cp", f"{self.nodes[service].container}:{path}", "-"],
            capture_output=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise DockerError(f"docker cp {service}:{path}: {proc.stderr.decode(errors='replace').strip()}")
        return _untar_single(proc.stdout)

    def dump_logs(self) -> None:
        proc = self.compose("logs", "--no-color", "--tail", "80", check=False, timeout_s=60)
        print(f"----- compose project {self.project} -----\n{proc.stdout}{proc.stderr}")

    def cleanup(self) -> None:
        errors: list[str] = []
        docker("rm", "-f", "-v", self.client_container, check=False)
        down = self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout_s=180)
        if down.returncode != 0:
            errors.append(down.stderr)
        by_label = f"label={PROJECT_LABEL}={self.project}"
        leftovers = docker("ps", "-aq", "--filter", by_label, check=False).stdout.split()
        if leftovers:
            proc = docker("rm", "-f", "-v", *leftovers, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
        for volume in docker("volume", "ls", "-q", "--filter", by_label, check=False).stdout.split():
            proc = docker("volume", "rm", "-f", volume, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
        proc = docker("network", "rm", self.network, check=False)
        if proc.returncode != 0 and "not found" not in proc.stderr:
            errors.append(proc.stderr)
        shutil.rmtree(self._secret_dir, ignore_errors=True)
        assert not errors, f"cleanup of compose project {self.project} failed: {errors}"


def _untar_single(data: bytes) -> str:
    """`docker cp CONTAINER:FILE -` writes a tar stream holding the one file."""
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        member = archive.next()
        if member is None:
            return ""
        extracted = archive.extractfile(member)
        return extracted.read().decode() if extracted is not None else ""
