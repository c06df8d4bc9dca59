"""How a cluster-mode node reaches the other members: per epoch for its master role, without one
for votes."""

from __future__ import annotations

from collections.abc import Callable

from replog.config import ClusterConfig
from replog.net.transport import HttpPeer, Transport

# (member URL, epoch) -> the transport a master role of that epoch uses to reach that member.
TermTransports = Callable[[str, int], Transport]


def http_peer(config: ClusterConfig, url: str, epoch: int | None) -> HttpPeer:
    """`epoch` None: a vote peer (the vote body carries the epoch); else a master role's peer,
    whose every call carries (epoch, this node's URL) in headers."""
    link = config.master.link
    return HttpPeer(
        url,
        secret=config.cluster_secret,
        connect_timeout_s=link.connect_timeout_s,
        replicate_timeout_s=link.replicate_timeout_s,
        probe_timeout_s=link.probe_timeout_s,
        term=None if epoch is None else (epoch, config.me),
    )
