"""The master's kept-alive connection to a secondary, closed by the secondary while idle, is
replaced at once on its next use instead of failing the batch (and costing a backoff)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from replog.config import SecondaryConfig, ServerConfig
from replog.core.batches import encode_batch
from replog.core.matching import BatchHead, crc_of
from replog.core.wire import Entry
from replog.net.transport import HttpPeer, TransportError
from replog.node import SecondaryNode
from tests.conftest import WaitFor


@pytest.fixture
def secondary() -> Iterator[SecondaryNode]:
    node = SecondaryNode(SecondaryConfig(server=ServerConfig(port=0, threads=2, idle_timeout_s=0.3))).start()
    yield node
    node.stop()


FIRST = encode_batch("L", BatchHead(1, 0, 0, 0), [Entry(1, "a")])
SECOND = encode_batch("L", BatchHead(1, 1, 1, crc_of("a")), [Entry(2, "b")])


def open_channels(node: SecondaryNode) -> int:
    return len(node.server._server._server.active_channels)


def test_a_connection_closed_while_idle_is_replaced_on_its_next_use(
    secondary: SecondaryNode, wait_for: WaitFor
) -> None:
    peer = HttpPeer(secondary.url, secret=None, connect_timeout_s=1, replicate_timeout_s=5, probe_timeout_s=1)
    try:
        assert peer.replicate(FIRST) == 1
        wait_for(lambda: open_channels(secondary) == 0, 10, "the secondary closed the idle connection")
        assert peer.replicate(SECOND) == 2, "no TransportError"
        assert peer.probe().acked_seq == 2
    finally:
        peer.close()


def test_a_node_that_is_gone_still_fails_at_once() -> None:
    secondary = SecondaryNode(SecondaryConfig(server=ServerConfig(port=0, threads=2))).start()
    peer = HttpPeer(secondary.url, secret=None, connect_timeout_s=1, replicate_timeout_s=5, probe_timeout_s=1)
    try:
        assert peer.replicate(FIRST) == 1
        secondary.stop()
        with pytest.raises(TransportError):
            peer.replicate(SECOND)
    finally:
        peer.close()
