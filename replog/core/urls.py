"""Node URLs compared as nodes, not as strings: one secondary listed twice must not count twice.

`http://h:1`, `http://h:1/`, `HTTP://H:1` and, for port 80, `http://h` all name the same node; a
master given two of them would count one node's ack twice toward w. URLs are kept as given for
display (/health shows them); only `node_key` is used to compare them. Names are not resolved: the
same node under two different host names (`localhost`, `127.0.0.1`) cannot be told apart here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def node_key(url: str) -> str:
    """The canonical `scheme://host:port/path` of a node URL; ValueError naming what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # e.g. a port out of range or not a number
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url!r} must start with http:// or https://")
    host = parts.hostname  # lowercased, without IPv6 brackets
    if not host:
        raise ValueError(f"{url!r} names no host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError(f"{url!r} must be scheme://host[:port][/path], without user, query or fragment")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        host = host.rstrip(".")  # "h." is the fully qualified "h"
    else:
        host = f"[{address.compressed}]" if address.version == 6 else address.compressed
    path = parts.path.rstrip("/")
    return f"{scheme}://{host}:{port if port is not None else DEFAULT_PORTS[scheme]}{path}"


def duplicate_nodes(urls: Iterable[str]) -> list[tuple[str, str]]:
    """Each URL that names a node already listed, paired with the first URL that named it."""
    first: dict[str, str] = {}
    duplicates = []
    for url in urls:
        key = node_key(url)
        if key in first:
            duplicates.append((first[key], url))
        else:
            first[key] = url
    return duplicates
