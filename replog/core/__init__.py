"""The pure core: log, write concern, health, backoff, quorum, replication, wire, records, errors.

No threads, sockets, HTTP, actors or clock reads: time is a `now` argument. `tests/unit/test_purity.py`
holds every module here to that.
"""
