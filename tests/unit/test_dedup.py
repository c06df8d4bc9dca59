"""The idempotency-key window: count, age, bytes, expiry, forgetting removed entries, rebuild."""

from __future__ import annotations

import pytest

from replog.core.dedup import (
    DedupWindow,
    WindowPolicy,
    check_client_key,
    message_digest,
    rebuild,
)
from replog.core.entry import MAX_KEY_BYTES, Entry
from replog.core.errors import BadRequest, IdempotencyKeyReused


def window(max_keys: int = 10, max_age_s: float = 100.0) -> DedupWindow:
    return DedupWindow(WindowPolicy(max_keys, max_age_s))


def test_a_noted_key_is_found_with_its_seq() -> None:
    w = window()
    w.note([Entry(1, "a", 10.0, key="k1"), Entry(2, "b", 10.0), Entry(3, "c", 11.0, key="k3")])
    held = w.find("k3", 12.0)
    assert held is not None and held.seq == 3 and held.digest == message_digest("c")
    assert w.find("nope", 12.0) is None
    assert len(w) == 2


def test_count_bound_drops_the_oldest_key() -> None:
    w = window(max_keys=3)
    w.note(Entry(i, "m", 10.0, key=f"k{i}") for i in range(1, 6))
    assert len(w) == 3
    assert w.find("k1", 10.0) is None and w.find("k2", 10.0) is None
    assert [w.find(f"k{i}", 10.0) is not None for i in (3, 4, 5)] == [True, True, True]


def test_an_expired_key_is_new() -> None:
    w = window(max_age_s=60.0)
    w.note([Entry(1, "a", 100.0, key="k")])
    assert w.find("k", 159.9) is not None
    assert w.find("k", 160.0) is None  # expired: forgotten, so a repeat is stored again
    assert len(w) == 0
    assert w.plan([("other message", "k")], 161.0) == [None]


def test_expire_forgets_the_old_keys_only() -> None:
    w = window(max_age_s=10.0)
    w.note([Entry(1, "a", 1.0, key="a"), Entry(2, "b", 5.0, key="b"), Entry(3, "c", 9.0, key="c")])
    assert w.expire(15.5) == 2
    assert w.find("c", 15.5) is not None and len(w) == 1


def test_bytes_grow_and_shrink_with_keys_and_stay_under_the_worst_case() -> None:
    w = window(max_keys=100)
    empty = w.memory_bytes
    w.note(Entry(i, "m", 1.0, key="k" * MAX_KEY_BYTES + "") for i in range(1, 2))
    assert w.memory_bytes > empty
    w.note(Entry(i, "m", 1.0, key=f"{i:0{MAX_KEY_BYTES}d}") for i in range(2, 300))
    assert len(w) == 100 and w.memory_bytes <= w.policy.worst_case_bytes
    w.forget_after(0)
    assert w.memory_bytes == 0


def test_forget_after_drops_the_keys_of_removed_entries() -> None:
    w = window()
    w.note([Entry(1, "a", 1.0, key="a"), Entry(2, "b", 1.0, key="b"), Entry(3, "c", 1.0, key="c")])
    w.forget_after(1)
    assert w.find("a", 1.0) is not None and w.find("b", 1.0) is None and w.find("c", 1.0) is None


def test_a_reused_key_moves_to_the_newest_place() -> None:
    w = window(max_keys=2, max_age_s=10.0)
    w.note([Entry(1, "a", 1.0, key="a"), Entry(2, "b", 5.0, key="b")])
    w.note([Entry(3, "a2", 12.0, key="a")])  # "a" expired at 11 and was reused
    w.note([Entry(4, "c", 13.0, key="c")])  # evicts the oldest: "b", not the renewed "a"
    held = w.find("a", 13.0)
    assert held is not None and held.seq == 3 and w.find("b", 13.0) is None


def test_plan_sorts_repeats_from_new_messages_and_refuses_a_reused_key() -> None:
    w = window()
    w.note([Entry(7, "hello", 1.0, key="k")])
    found = w.plan([("hello", "k"), ("new", "n"), ("plain", None)], 2.0)
    assert [h.seq if h else None for h in found] == [7, None, None]
    with pytest.raises(IdempotencyKeyReused) as raised:
        w.plan([("new", "n"), ("changed", "k")], 2.0)
    assert raised.value.extra["seq"] == 7 and raised.value.status == 422
    assert len(w) == 1  # nothing changed


def test_plan_refuses_one_key_twice_in_a_request() -> None:
    with pytest.raises(BadRequest):
        window().plan([("a", "k"), ("a", "k")], 1.0)


def test_a_zero_key_window_remembers_nothing() -> None:
    w = window(max_keys=0)
    w.note([Entry(1, "a", 1.0, key="a")])
    assert len(w) == 0 and w.find("a", 1.0) is None


@pytest.mark.parametrize("bad", ["", "has space", "tab\t", "é", "x" * (MAX_KEY_BYTES + 1), 5, None])
def test_bad_client_keys_are_refused(bad: object) -> None:
    with pytest.raises(BadRequest):
        check_client_key(bad, "id")


def test_good_client_keys_pass() -> None:
    assert check_client_key("a-b_c.1:2/3", "id") == "a-b_c.1:2/3"
    assert check_client_key("x" * MAX_KEY_BYTES, "id")


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        WindowPolicy(max_keys=-1)
    with pytest.raises(ValueError):
        WindowPolicy(max_age_s=0)


def pages_newest_first(entries: list[Entry], size: int) -> list[list[Entry]]:
    pages = [entries[i : i + size] for i in range(0, len(entries), size)]
    return pages[::-1]


def test_rebuild_reads_only_the_tail_within_the_age() -> None:
    log = [Entry(i, f"m{i}", float(i), key=f"k{i}" if i % 2 else None) for i in range(1, 101)]
    w, scanned = rebuild(WindowPolicy(1000, 20.0), pages_newest_first(log, 7), now=100.0)
    assert scanned <= 21  # stops at the first entry older than the window
    assert sorted(int(k[1:]) for k in w._held) == [i for i in range(81, 101) if i % 2]


def test_rebuild_stops_at_the_count_and_keeps_the_newest_of_a_key() -> None:
    log = [Entry(1, "old", 1.0, key="dup"), *(Entry(i, "m", 1.0, key=f"k{i}") for i in range(2, 50)),
           Entry(50, "new", 1.0, key="dup")]
    w, scanned = rebuild(WindowPolicy(5, 1000.0), pages_newest_first(log, 10), now=2.0)
    assert len(w) == 5 and scanned == 5
    held = w.find("dup", 2.0)
    assert held is not None and held.seq == 50
    # the window is in seq order, so the count bound keeps dropping the oldest
    w.note([Entry(51, "x", 2.0, key="x")])
    assert w.find("k46", 2.0) is None and w.find("dup", 2.0) is not None
