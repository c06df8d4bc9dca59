"""The master's metered transports: batches, retries and probes counted; a lost log noticed once."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replog.metrics import NodeMetrics
from replog.net.metered import AckWatch, metered
from replog.net.transport import ProbeResult, TransportError


class Scripted:
    """A transport answering from scripts: an int is an acked seq, an exception is raised."""

    def __init__(self, replies: list[int | Exception], probes: list[int | Exception] | None = None) -> None:
        self.replies, self.probes, self.closed = replies, probes or [], False

    def replicate(self, body: bytes) -> int:
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def probe(self) -> ProbeResult:
        reply = self.probes.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return ProbeResult(reply, "log")

    def close(self) -> None:
        self.closed = True


def value(metrics: NodeMetrics, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_batches_and_retries_are_counted_per_secondary_and_errors_pass_through() -> None:
    metrics, drops = NodeMetrics("m", "master"), []
    inner = Scripted([TransportError("HTTP 503", answered=True), 4], [TransportError("timeout"), 4])
    transport = metered(lambda url: inner, metrics, lambda *a: drops.append(a))("http://s1")
    with pytest.raises(TransportError):
        transport.replicate(b"x" * 10)
    assert transport.replicate(b"y" * 5) == 4
    with pytest.raises(TransportError):
        transport.probe()
    assert transport.probe() == ProbeResult(4, "log")
    transport.close()
    assert inner.closed
    s1 = {"secondary": "http://s1"}
    assert value(metrics, "replog_replication_batches_sent_total", **s1) == 2
    assert value(metrics, "replog_replication_retries_total", **s1) == 1
    assert value(metrics, "replog_replication_sent_bytes_total", **s1) == 15
    assert value(metrics, "replog_probes_total", outcome="ok", **s1) == 1
    assert value(metrics, "replog_probes_total", outcome="failed", **s1) == 1
    assert drops == []


def test_an_acked_seq_going_down_is_reported_once_for_both_channels() -> None:
    drops: list[tuple[str, int, int]] = []
    watch = AckWatch("http://s1", lambda *a: drops.append(a))
    watch.saw("replicate", 10)
    watch.saw("probe", 9)  # another channel, an older read: not a drop
    watch.saw("replicate", 12)
    watch.saw("replicate", 0)  # restarted empty
    watch.saw("probe", 0)  # the same restart, seen by the heartbeat
    watch.saw("replicate", 12)
    assert drops == [("http://s1", 12, 0)]


def test_the_link_and_heartbeat_transports_of_one_secondary_share_its_watch() -> None:
    drops: list[tuple[str, int, int]] = []
    make = metered(lambda url: Scripted([5], [7, 2]), NodeMetrics("m", "master"), lambda *a: drops.append(a))
    link, heartbeat, other = make("http://s1"), make("http://s1"), make("http://s2")
    assert heartbeat.probe().acked_seq == 7 and heartbeat.probe().acked_seq == 2
    assert link.replicate(b"") == 5 and other.replicate(b"") == 5
    assert drops == [("http://s1", 7, 2)]
