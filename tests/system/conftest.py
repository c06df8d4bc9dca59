"""Container system tests: the image, one node per container, partitions, kills and restarts.

The `docker` marker is registered here. A session fixture builds the app image once (from the
local base image made by docker/build-base-image.sh and wheels fetched by docker/fetch-wheels.sh);
`cluster` gives each test its own network, containers and volumes and removes them all in
teardown, even when the test fails (see harness.py); `compose_cluster` does the same for a project
of compose.cluster.yaml (see compose.py).

Docker missing, or the local base image impossible to build: the tests skip with the reason,
except under CI=true, where they fail instead.

Environment (all optional):
  REPLOG_BASE_IMAGE   base image tag (default replog-base:bookworm, built by docker/build-base-image.sh)
  REPLOG_TEST_IMAGE   use this already built app image instead of building one
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from .compose import ComposeCluster, compose_command
from .harness import DockerCluster, docker

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("REPLOG_BASE_IMAGE", "replog-base:bookworm")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: system tests that need a Docker engine (required when CI=true)"
    )


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip (on a developer machine) or fail (under CI=true) for a missing Docker prerequisite."""
    if _in_ci():
        pytest.fail(f"Docker tests are required when CI=true: {reason}", pytrace=False)
    pytest.skip(f"Docker tests skipped: {reason}")


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run_script(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def replog_image() -> Iterator[str]:
    """The app image: built once per session from the local base image (or REPLOG_TEST_IMAGE)."""
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        unavailable(f"the Docker engine is not reachable: {_tail(info.stderr, 3)}")

    given = os.environ.get("REPLOG_TEST_IMAGE")
    if given:
        if docker("image", "inspect", given, check=False).returncode != 0:
            unavailable(f"REPLOG_TEST_IMAGE={given} does not exist")
        yield given
        return

    base = _run_script(["bash", "docker/build-base-image.sh", "--tag", BASE_IMAGE], timeout_s=1800)
    if base.returncode != 0:
        unavailable(f"cannot build the base image {BASE_IMAGE}:\n{_tail(base.stderr + base.stdout)}")
    wheels = _run_script(["bash", "docker/fetch-wheels.sh"], timeout_s=600)
    if wheels.returncode != 0:
        # Not fatal: with docker/wheels empty the Dockerfile installs from PyPI.
        print(f"fetch-wheels failed; the build falls back to PyPI:\n{_tail(wheels.stderr)}")

    tag = f"replog-test:{uuid.uuid4().hex[:10]}"
    build = docker(
        "build",
        "--force-rm",
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
        "-t",
        tag,
        str(ROOT),
        timeout_s=1800,
        check=False,
    )
    if build.returncode != 0:
        pytest.fail(f"docker build failed:\n{_tail(build.stdout + build.stderr, 60)}", pytrace=False)
    try:
        yield tag
    finally:
        # The tag only: the build cache (intermediate layers) stays for the next run.
        docker("rmi", "--no-prune", tag, check=False)


@pytest.fixture
def cluster(replog_image: str) -> Iterator[DockerCluster]:
    """A fresh network for one test; every container/volume/network it made is removed afterwards."""
    made = DockerCluster(replog_image)
    try:
        yield made
    finally:
        try:
            made.dump_logs()  # shown by pytest only when the test failed
        finally:
            made.cleanup()


@pytest.fixture
def compose_cluster(replog_image: str) -> Iterator[ComposeCluster]:
    """compose.cluster.yaml under a unique project name (not started: `up`); always torn down."""
    command = compose_command()
    if command is None:
        unavailable("neither `docker compose` nor `docker-compose` is installed")
    made = ComposeCluster(replog_image, command)
    try:
        yield made
    finally:
        try:
            made.dump_logs()  # shown by pytest only when the test failed
        finally:
            made.cleanup()
