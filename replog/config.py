"""Node configuration: one frozen object per role, every field with its unit.

Only `replog.cli` builds these from argv and the environment; tests build them directly with short
timings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from replog.core.backoff import BackoffPolicy
from replog.core.dedup import WindowPolicy
from replog.core.fsync import FsyncPolicy
from replog.core.health import HealthPolicy
from replog.core.urls import duplicate_nodes, node_key


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0 picks a free port
    threads: int = 128  # waitress workers: blocked writers hold one each
    reserved_threads: int = 8  # never given to waiting writers, so reads and /health stay fast
    # Open connections at most; lowered at start to what the open-files limit allows (see
    # `replog.web.server.fd_budget`). At the limit the least recently active idle ones are closed.
    connection_limit: int = 4096
    max_body_bytes: int = 8 * 1024 * 1024  # larger bodies: 413 before they are read
    max_message_bytes: int = 1024 * 1024  # one appended message, UTF-8; 413 message_too_large
    request_timeout_s: float = 10.0  # from a request's first byte (or the accept) to its last: else 408
    idle_timeout_s: float = 30.0  # a kept-alive connection with nothing to do is closed after this

    # Followers (GET /stream, /entries?wait=, reads with min_seq) each hold a thread while they
    # wait: they get `max_followers` threads of their own on top of `threads`, and past that 503.
    max_followers: int = 256
    follow_keepalive_s: float = 15.0  # a stream sends a comment line after this long without entries

    @property
    def max_waiting_writers(self) -> int:
        return max(1, self.threads - self.reserved_threads)

    @property
    def total_threads(self) -> int:
        """waitress workers: writers and reads (`threads`) plus one per follower."""
        return self.threads + self.max_followers


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The durable log. Memory is bounded in bytes, not entries (issue 11 B4): a disk store keeps
    the newest entries in a cache of `cache_bytes` (each counted with its Python overhead, ~140
    bytes plus the message), reads older ones from its file, and holds at most 64 MiB of entries
    past a gap on a secondary. A store whose disk fails (full, or an fsync error) refuses writes
    and checks every `retry_s` whether the disk works again."""

    data_dir: Path | None = None  # None: in memory, forgotten on restart
    fsync: FsyncPolicy = FsyncPolicy.ALWAYS
    fsync_interval_s: float = 0.005
    # 16 MiB holds ~57,000 entries of 100 bytes. A bigger cache costs CPU on every append: the
    # garbage collector scans all the cached entries (64 MiB made 64 clients w=1 ~20% slower).
    cache_bytes: int = 16 * 1024 * 1024  # bytes of recent entries kept in memory
    retry_s: float = 1.0  # seconds between checks of a failed disk
    # Idempotency keys remembered (by count, and seconds of age): `--dedup-window-keys`/`-s`.
    dedup: WindowPolicy = field(default_factory=WindowPolicy)


@dataclass(frozen=True, slots=True)
class LinkConfig:
    connect_timeout_s: float = 1.0
    replicate_timeout_s: float = 10.0  # read timeout of one batch
    probe_timeout_s: float = 1.0
    batch_max_entries: int = 10_000
    batch_max_bytes: int = 4 * 1024 * 1024
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True, slots=True)
class MasterConfig:
    secondaries: tuple[str, ...]
    name: str = "master"
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    health: HealthPolicy = field(default_factory=HealthPolicy)
    heartbeat_interval_s: float = 1.0
    cluster_secret: str | None = None
    metrics: bool = True  # False: no /metrics and no metric hooks (to measure what they cost)

    def __post_init__(self) -> None:
        """A secondary listed twice (however spelled) would count its one ack twice toward w."""
        twice = duplicate_nodes(self.secondaries)
        if twice:
            pairs = "; ".join(f"{b!r} is {a!r}" for a, b in twice)
            raise ValueError(f"a secondary is listed twice in --secondaries: {pairs}")

    @property
    def node_count(self) -> int:
        return len(self.secondaries) + 1


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault injection on a secondary: delay before applying a batch, 500 after applying one."""

    delay_s: float = 0.0
    error_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError("delay must be >= 0 seconds")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error rate must be within 0..1")


@dataclass(frozen=True, slots=True)
class SecondaryConfig:
    name: str = "secondary"
    server: ServerConfig = field(default_factory=lambda: ServerConfig(port=8001))
    storage: StorageConfig = field(default_factory=StorageConfig)
    faults: Faults = field(default_factory=Faults)
    cluster_secret: str | None = None
    metrics: bool = True  # False: no /metrics and no metric hooks (to measure what they cost)


ELECTION_TIMEOUT_FACTORS = (1.5, 3.0)  # x the heartbeat's Unhealthy threshold, when not given


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Cluster mode: a node among `members` that elects its master (FAILOVER.md).

    `master` holds everything this node needs while it is master (its `secondaries` are the other
    members) and its server, storage and secret for every role. `me` is this node's entry of
    `members`, as spelled there. `first_role` only matters on a fresh data directory: the
    `master` one stands for election at once. An election timeout is drawn uniformly from
    [election_min_s, election_max_s]; the minimum is also the lease: a master that heard from no
    majority for that long turns read-only."""

    me: str
    members: tuple[str, ...]
    master: MasterConfig
    first_role: str = "secondary"
    election_min_s: float = 1.5
    election_max_s: float = 3.0
    election_tick_s: float = 0.05  # how often the election timer is checked

    def __post_init__(self) -> None:
        twice = duplicate_nodes(self.members)
        if twice:
            pairs = "; ".join(f"{b!r} is {a!r}" for a, b in twice)
            raise ValueError(f"a member is listed twice in --members: {pairs}")
        if self.me not in self.members:
            raise ValueError(f"this node ({self.me}) is not in --members {list(self.members)}")
        if self.first_role not in ("master", "secondary"):
            raise ValueError(f"the first role is master or secondary, got {self.first_role!r}")
        if not 0 < self.election_min_s <= self.election_max_s:
            raise ValueError("need 0 < minimum election timeout <= maximum")
        if set(self.master.secondaries) != set(self.others):
            raise ValueError("the master config's secondaries must be the other members")

    @property
    def name(self) -> str:
        return self.master.name

    @property
    def server(self) -> ServerConfig:
        return self.master.server

    @property
    def storage(self) -> StorageConfig:
        return self.master.storage

    @property
    def cluster_secret(self) -> str | None:
        return self.master.cluster_secret

    @property
    def others(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m != self.me)


def find_member(advertise_url: str, members: tuple[str, ...]) -> str:
    """The entry of `members` naming the same node as `advertise_url` (compared with
    `core.urls.node_key`, so `http://H:1/` finds `http://h:1`); ValueError if none does."""
    key = node_key(advertise_url)
    for member in members:
        if node_key(member) == key:
            return member
    raise ValueError(f"--advertise-url {advertise_url} is not one of --members {','.join(members)}")
