"""Wiring of cluster mode: a node that elects its master with the others and switches role at run time.

One store, one HTTP server on one port, and:
- the `ElectionActor` (which alone decides role, epoch and vote), told `Tick` by a ticker every
  `election_tick_s`, with a vote worker per other member;
- the secondary's routes (`/replicate`, reads) behind an admission check: every call of a master
  carries its epoch and URL in headers (`X-Replog-Epoch`, `X-Replog-Master`) and the election
  actor says whether to accept it (`MasterCalled`); a stale one gets 409 `stale_epoch` and nothing
  is stored;
- while this node is master, a `MasterRole` for its epoch (gate, links, heartbeat, appender),
  started after the epoch-start record and stopped on stepping down by the `RoleSwitch`
  (`cluster.switch`), whose waiting writers then get 503 `master_changed`.

Safety rests on three fences: the store refuses an append tagged with an epoch the node has left
(`Store.append(epoch=...)`), a role's gate counts only acks its own links gathered in its epoch
(every write it registers lies after its epoch-start record), and a role's quorum view turns
read-only once its lease runs out (no majority answered within the minimum election timeout).

Every (epoch, role) change is appended to DATA_DIR/roles.jsonl (`storage.roles`).
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from replog.actors.election import (
    Describe,
    ElectionActor,
    MasterCalled,
    SawEpoch,
    Start,
    Tick,
    VoteAsked,
    Voter,
)
from replog.actors.threads import Ticker, tell_quietly
from replog.cluster.switch import RoleSwitch
from replog.cluster.transports import TermTransports, http_peer
from replog.config import ClusterConfig, SecondaryConfig, find_member
from replog.core.election import Election, ElectionConfig, VoteAnswer
from replog.core.errors import (
    BadRequest,
    MasterChanged,
    NotMaster,
    Overloaded,
    ReplogError,
    ShuttingDown,
    StaleEpoch,
)
from replog.core.urls import node_key
from replog.core.votes import VoteRequest
from replog.core.wire import AppendRequest
from replog.logs import node_logger
from replog.master_role import MasterRole
from replog.metrics import NodeMetrics
from replog.node import open_store
from replog.storage.store import Store
from replog.web.cluster import add_cluster_routes, term_headers
from replog.web.ops import add_ops_routes, watch_cluster
from replog.web.secondary import FaultSwitch, ReceiveStats, secondary_app
from replog.web.secondary import describe as describe_secondary
from replog.web.server import HttpServer

ASK_TIMEOUT_S = 2.0  # a request thread waits this long for the election actor at most
SWITCH_STOP_S = 10.0  # how long stopping waits for a role change in progress


def cluster_log_id(members: tuple[str, ...]) -> str:
    """The log id a fresh cluster-mode node starts with: the same on every member (derived from
    the member list), so whichever member is elected first, the others accept its batches."""
    return uuid.uuid5(uuid.NAMESPACE_URL, ",".join(sorted(node_key(m) for m in members))).hex


class ClusterNode:
    """A cluster-mode node, built from its config and started and stopped as one thing (as
    `MasterNode` and `SecondaryNode` are). Threads: request threads run `_admit`, `_append` and
    `health` (each asks the election actor, with a deadline); the election actor, its ticker and
    vote workers decide; the switch's thread carries role changes out."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        store: Store | None = None,
        transports: TermTransports | None = None,
        voters: Mapping[str, Voter] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        master = config.master
        self._log = node_logger(__name__, config.name)
        self.metrics = NodeMetrics(config.name, "cluster", enabled=master.metrics)
        self.store = store if store is not None else open_store(
            master.storage, cluster_log_id(config.members), self.metrics
        )  # fmt: skip
        self._clock, self._rng = clock, rng or random.Random()
        self.fatal_reason: str | None = None
        self._lock = threading.Lock()  # guards _stopping and fatal_reason
        # The admission fast path (see `_admit`): the (epoch, master) the election last accepted,
        # and a call admitted since whose news the election has not had yet.
        self._accepted: tuple[int, str] | None = None
        self._unheard: tuple[int, str] | None = None
        self._unheard_lock = threading.Lock()  # held for a swap only, never during I/O
        self._stopping = False
        self._stopped = threading.Event()
        vote = self.store.vote
        self.fresh = self.store.stored_seq == 0 and self.store.epoch == 1 and vote is None
        self.election_config = ElectionConfig(
            config.me, config.members, True, config.election_min_s, config.election_max_s
        )
        election = Election(
            self.election_config,
            self.store.epoch,
            vote.candidate if vote is not None and vote.epoch == self.store.epoch else None,
        )
        self.switch = RoleSwitch(
            config, self.election_config, self.store, self.metrics,
            transports or functools.partial(http_peer, config),
            clock=clock, rng=self._rng, fatal=self._fatal, saw_epoch=self._saw_epoch,
        )  # fmt: skip
        self.roles = self.switch.roles
        self.election = ElectionActor.start(
            election,
            self.store,
            voters if voters is not None else {url: http_peer(config, url, None) for url in config.others},
            self.switch,
            clock,
            random.Random(self._rng.random()),
            config.name,
        )
        self._ticker: Ticker | None = None
        try:
            self._build()
        except BaseException:
            self.election.stop()
            self.switch.close(0)
            self.store.close()
            raise

    def _build(self) -> None:
        config, master = self.config, self.config.master
        self._stopping_event = threading.Event()
        as_secondary = SecondaryConfig(
            name=config.name, server=master.server, storage=master.storage,
            cluster_secret=master.cluster_secret, metrics=master.metrics,
        )  # fmt: skip
        self.faults = FaultSwitch(config.name, as_secondary.faults, random.Random(self._rng.random()))
        stats = ReceiveStats()
        app = secondary_app(
            as_secondary, self.store, self.faults, self._stopping_event, stats, admit=self._admit,
            rollback=True,
        )  # fmt: skip
        self._describe_secondary = functools.partial(
            describe_secondary, as_secondary, self.store, self.faults, stats
        )
        add_cluster_routes(
            app, master, append=self._append, describe=self.health, admit=self._admit, ask_vote=self._ask_vote
        )
        self.live = watch_cluster(
            config.name,
            master.storage.data_dir,
            self.metrics,
            self.store,
            self.health,
            master.heartbeat_interval_s,
        )
        add_ops_routes(
            app, role=self._role_name, metrics=self.metrics, live=self.live, describe=self.health,
            store=self.store,
        )  # fmt: skip
        self.server = HttpServer(app, master.server)
        self._log.info(
            "cluster node ready port=%d me=%s members=%s epoch=%d stored_seq=%d fresh=%s",
            self.server.port, config.me, ",".join(config.members), self.store.epoch,
            self.store.stored_seq, self.fresh,
        )  # fmt: skip

    def _saw_epoch(self, epoch: int) -> None:
        tell_quietly(self.election, SawEpoch(epoch))

    def _fatal(self, reason: str) -> None:
        """A link could not read this node's own log: stop the node (the CLI exits 1)."""
        with self._lock:
            if self.fatal_reason is not None:
                return
            self.fatal_reason = reason
        self._log.error("fatal error; stopping the node reason=%s", reason)
        threading.Thread(target=self.stop, name=f"fatal-stop-{self.config.name}").start()

    # -- request threads -------------------------------------------------------------------------------
    def _ask(self, message: object) -> Any:
        try:
            return self.election.ask(message, timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError:
            raise ShuttingDown("node is shutting down") from None
        except pykka.Timeout:
            raise Overloaded("the election actor did not answer in time", retry_after_s=1) from None

    def view(self) -> dict[str, Any]:
        """The election's view: role, epoch, voted_for, master, master_alive."""
        answer: dict[str, Any] = self._ask(Describe())
        return answer

    def _admit(self) -> None:
        """A master's call (`/replicate`, or a probe of `/health`): accept it only from the master of
        the current (or a newer) epoch; else 409 stale_epoch, with nothing stored."""
        term = term_headers()
        if term is None:
            raise BadRequest(
                "cluster mode: a master's call needs the X-Replog-Epoch and X-Replog-Master headers"
            )
        epoch, caller = term
        try:
            master = find_member(caller, self.config.members)
        except ValueError:
            raise BadRequest(f"{caller[:200]} is not a member of this cluster") from None
        if self._accepted == (epoch, master) and self.store.epoch == epoch:
            # The master this node already follows in its current epoch: admitted without a round
            # trip to the election actor (one thread hand-off less per batch and probe). Safe: an
            # epoch change is saved in the store before any vote or candidacy acts on it, so a
            # node that moved on takes the slow path, and `Store.apply` refuses a batch of an
            # older epoch under the same lock (`check_sender`) even if it was admitted just before.
            # The election hears of the call before its next tick or vote (`_tell_unheard`).
            with self._unheard_lock:
                self._unheard = (epoch, master)
            return
        if not self._ask(MasterCalled(epoch, master)):
            view = self.view()
            raise StaleEpoch(
                f"epoch {epoch} is stale: this node is in epoch {view['epoch']}; nothing was stored",
                epoch=view["epoch"],
                master=view["master"],
            )
        self._accepted = (epoch, master)
        self.switch.learned(epoch, master)

    def _tell_unheard(self) -> None:
        """Tell the election of the newest call the fast path admitted, if any, so it decides
        timeouts and votes knowing that master was heard (no earlier than it really was)."""
        with self._unheard_lock:
            unheard, self._unheard = self._unheard, None
        if unheard is not None:
            tell_quietly(self.election, MasterCalled(*unheard))

    def _tick(self) -> None:
        self._tell_unheard()
        tell_quietly(self.election, Tick())

    def _ask_vote(self, request: VoteRequest) -> VoteAnswer:
        self._tell_unheard()
        answer: VoteAnswer = self._ask(VoteAsked(request))
        return answer

    def _not_master(self) -> NotMaster:
        try:
            view = self.view()
        except ReplogError:
            view = {"master": None, "epoch": self.store.epoch}
        master = view["master"] if view["master"] != self.config.me else None
        where = f"send writes to {master}" if master else "no master is known yet; retry shortly"
        return NotMaster(f"this node is not the master: {where}", master=master, epoch=view["epoch"])

    def _append(self, request: AppendRequest, hung_up: Callable[[], bool]) -> dict[str, Any]:
        role = self.switch.role
        if role is None:
            raise self._not_master()
        try:
            answer = role.appender.append(request, hung_up)
        except NotMaster:  # the store refused: the epoch moved on since the role was read
            raise self._not_master() from None
        except ShuttingDown as exc:
            if not role.deposed:
                raise
            seq = exc.extra.get("seq")
            raise MasterChanged(
                f"this master stepped down while seq {seq} waited for its acks: outcome unknown; "
                "retry with the same idempotency key",
                seq=seq,
            ) from None
        if request.w < self.election_config.majority and not role.lease_valid():
            # Held here only, and the lease ran out while it waited (a pause, a cut): another master
            # may exist by now, whose log will not hold it. Never claim it as acknowledged.
            seq = answer.get("seq", answer.get("last_seq"))
            raise MasterChanged(
                f"this master lost its lease while seq {seq} (w={request.w}) waited: outcome unknown; "
                "retry with the same idempotency key",
                seq=seq,
            )
        return answer

    def health(self) -> dict[str, Any]:
        """/health: the role's (master) or the secondary's fields, then the election's view."""
        view = self.view()
        role = self.switch.role
        master = role is not None and view["role"] == "master"  # each member's status, the quorum
        body: dict[str, Any] = role.health() if master and role is not None else self._describe_secondary()
        body.update(
            role=view["role"],
            epoch=view["epoch"],
            master=view["master"],
            voted_for=view["voted_for"],
            me=self.config.me,
            members=list(self.config.members),
            acked_seq=self.store.stored_seq,
        )
        return body

    # -- lifecycle -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.config.master.server.host}:{self.server.port}"

    @property
    def role(self) -> MasterRole | None:
        return self.switch.role

    def _role_name(self) -> str:
        """What the live page shows this node as: master while its master role runs."""
        return "master" if self.switch.role is not None else "secondary"

    def start(self) -> ClusterNode:
        self.server.start()
        self.live.start()
        stand_now = self.fresh and self.config.first_role == "master"
        self.election.tell(Start(stand_now=stand_now))  # before the first Tick
        self._ticker = Ticker(
            f"election-{self.config.name}",
            self.config.election_tick_s,
            self._tick,
        )
        self.switch.started(self.store.epoch)
        return self

    def stop(self) -> None:
        """Idempotent and safe from any thread; a second caller waits until the first is done."""
        with self._lock:
            first, self._stopping = not self._stopping, True
        if not first:
            self._stopped.wait()
            return
        try:
            self._log.info("cluster node stopping")
            if self._ticker is not None:
                self._ticker.stop()
            self.live.stop()
            self._stopping_event.set()
            self.server.stop(drain=self.switch.stop_gate)
            self.election.stop()  # no role change is decided after this
            if not self.switch.close(SWITCH_STOP_S):
                self._log.error("a role change did not end within %.0fs", SWITCH_STOP_S)
            self.store.close()
            self._log.info("cluster node stopped")
        finally:
            self._stopped.set()
