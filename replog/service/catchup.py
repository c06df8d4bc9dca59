"""A master that restarted behind its secondaries learns what it lost from them (issue 11 C8).

With `--fsync never|interval` a machine crash can cost the master the tail of its log while a
secondary still holds it (replicated, maybe acknowledged to clients). The link that sees it (the
secondary verifiably holds our whole log and more: `core.replication`) tells `CatchUp.behind`; the
gate keeps the master read-only meanwhile (reason `behind: ...` in /health, 503 to writers). Here
one worker thread fetches the missing entries page by page (`GET /entries`, with the cluster
secret) and appends them as they are (seq, epoch, stored_at, kind, key) with `Store.learn`,
fsynced. Each appended page wakes the links (the store's listener), which then see the master level
again and the gate lets writes in (if it has a quorum).

Limits: entries that only an unreachable secondary holds cannot be learned; if the master takes
writes before that secondary answers, their seqs differ from its entries and it shows a conflict
when it comes back (the README says so).

Threads: `behind` runs on a link actor's thread and never blocks; `_run` on the worker thread,
the only place this blocks on the network; `describe` on request threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from replog.actors.threads import Worker
from replog.core.entry import Entry
from replog.core.errors import ReplogError
from replog.logs import node_logger
from replog.net.transport import TransportError
from replog.storage.store import Store

PAGE_ENTRIES = 1000  # entries asked for per request (the peer's /entries caps pages too)


class EntrySource(Protocol):
    """A peer's `GET /entries`."""

    def fetch_entries(self, from_seq: int, limit: int) -> list[Entry]: ...

    def close(self) -> None: ...


class CatchUp:
    def __init__(
        self,
        node: str,
        store: Store,
        sources: Callable[[str], EntrySource],
        *,
        retry_s: float = 1.0,
        page_entries: int = PAGE_ENTRIES,
        on_disproved: Callable[[str, int, str], None] | None = None,
    ) -> None:
        """`on_disproved(url, claim, reason)` (worker thread, must not block): `url` claims to hold
        entries up to `claim` but serves none past ours; it must not be learned from (a conflict)."""
        self._log = node_logger(__name__, node)
        self._on_disproved = on_disproved
        self._store, self._make_source = store, sources
        self._retry_s, self._page_entries = retry_s, page_entries
        self._lock = threading.Lock()  # guards the fields below; never held during I/O
        self._targets: dict[str, int] = {}  # secondary -> the seq it holds past our log
        self._running = False
        self._learned = 0
        self._last_error: str | None = None
        self._stopping = threading.Event()
        self._worker: Worker | None = None
        self._sources: dict[str, EntrySource] = {}  # used on the worker thread only

    def behind(self, url: str, seq: int) -> None:
        """A link saw `url` hold our whole log and more, up to seq: learn it. Never blocks."""
        with self._lock:
            self._targets[url] = max(seq, self._targets.get(url, 0))
            if self._running or self._stopping.is_set():
                return
            self._running = True
            if self._worker is None:
                self._worker = Worker("catch-up")
            worker = self._worker
        self._log.warning(
            "master is behind a secondary; read-only until it learned the missing entries "
            "secondary=%s holds=%d stored_seq=%d",
            url, seq, self._store.stored_seq,
        )  # fmt: skip
        worker.submit(self._run)

    def describe(self) -> dict[str, Any] | None:
        """For /health: what is being learned, or None when nothing is."""
        with self._lock:
            if not self._targets:
                return None
            url, seq = max(self._targets.items(), key=lambda item: item[1])
            return {
                "from": url,
                "target_seq": seq,
                "learned_entries": self._learned,
                "last_error": self._last_error,
            }

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def _run(self) -> None:
        """Worker thread: learn until every target is reached, or the node stops. Each round either
        appends at least one entry or waits retry_s, so the loop is bounded by progress and stop."""
        try:
            while not self._stopping.is_set():
                with self._lock:
                    stored = self._store.stored_seq
                    self._targets = {url: seq for url, seq in self._targets.items() if seq > stored}
                    if not self._targets:
                        self._running = False
                        break
                    url, target = max(self._targets.items(), key=lambda item: item[1])
                if not self._learn_page(url, stored, target):
                    self._stopping.wait(self._retry_s)
        finally:
            with self._lock:
                self._running = False
            for source in self._sources.values():
                source.close()
            self._sources.clear()

    def _disprove(self, url: str, claim: int, reason: str) -> None:
        """Worker thread: stop learning from `url` and have its link call it a conflict."""
        with self._lock:
            if self._targets.get(url) == claim:
                del self._targets[url]
        self._log.error(
            "cannot learn from a secondary; treating it as a conflict secondary=%s reason=%s", url, reason
        )
        if self._on_disproved is not None:
            self._on_disproved(url, claim, reason)

    def _learn_page(self, url: str, stored: int, target: int) -> bool:
        """One page from `url`, appended; False (and the error kept for /health) if that failed."""
        try:
            source = self._sources.get(url) or self._sources.setdefault(url, self._make_source(url))
            page = source.fetch_entries(stored + 1, min(self._page_entries, target - stored))
            page = [e for e in page if e.seq <= target]
            if not page:
                self._disprove(
                    url, target, f"it says it holds seq {target} but serves nothing past seq {stored}"
                )
                return True  # not a failure to retry: that target is gone
            self._store.learn(page)
        except (TransportError, ReplogError, ValueError) as exc:
            error = f"learning seqs {stored + 1}..{target} from {url} failed: {exc}"
            self._log.warning("catch-up failed; retrying error=%s retry_s=%.1f", error, self._retry_s)
            with self._lock:
                self._last_error = error
            return False
        with self._lock:
            self._learned += len(page)
            self._last_error = None
        done = page[-1].seq >= target
        log = self._log.info if done else self._log.debug
        log("learned entries secondary=%s seqs=%d..%d target=%d", url, page[0].seq, page[-1].seq, target)
        return True
