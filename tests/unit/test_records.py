"""The record format and the recovery scan, driven with bytes in memory (no files)."""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core import records
from replog.core.records import CorruptLog, DamagedRecordError, TruncatedRecordError
from replog.core.wire import Entry

texts = st.text(min_size=0, max_size=300)


def log_bytes(messages: list[str]) -> bytes:
    blob, _ = records.encode_batch([Entry(i + 1, m, 1000.0 + i) for i, m in enumerate(messages)])
    return blob


def reader(data: bytes) -> records.ReadAt:
    return lambda offset, size: data[offset : offset + size]


def recover(data: bytes, chunk_bytes: int = records.SCAN_CHUNK_BYTES) -> records.Recovered:
    return records.recover(reader(data), len(data), "entries.dat", chunk_bytes)


@given(seq=st.integers(1, 2**63), stored_at=st.floats(allow_nan=False), message=texts)
def test_encode_decode_round_trip(seq: int, stored_at: float, message: str) -> None:
    data = records.encode(Entry(seq, message, stored_at))
    entry, end = records.decode_at(data, 0)
    assert entry == Entry(seq, message, stored_at)
    assert end == len(data) == records.HEADER_SIZE + records.MIN_PAYLOAD + len(message.encode())


def test_encode_batch_reports_each_record_start() -> None:
    entries = [Entry(1, "a"), Entry(2, "bé"), Entry(3, "ccc")]
    blob, starts = records.encode_batch(entries)
    assert [records.decode_at(blob, s)[0] for s in starts] == entries
    assert records.decode_run(blob, 1, 0, "f") == entries


@given(message=st.text(max_size=40), data=st.data())
def test_any_flipped_byte_is_detected(message: str, data: st.DataObject) -> None:
    record = bytearray(records.encode(Entry(7, message, 1.5)))
    index = data.draw(st.integers(0, len(record) - 1))
    record[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises((DamagedRecordError, TruncatedRecordError)):
        records.decode_at(bytes(record), 0)


def test_checksum_mismatch_is_named() -> None:
    record = bytearray(records.encode(Entry(1, "hello")))
    record[-1] ^= 0x01
    with pytest.raises(DamagedRecordError, match="checksum"):
        records.decode_at(bytes(record), 0)


def test_a_cut_record_asks_for_the_bytes_it_needs() -> None:
    record = records.encode(Entry(1, "hello"))
    with pytest.raises(TruncatedRecordError) as header_cut:
        records.check_at(record[:5], 0)
    assert header_cut.value.need == records.HEADER_SIZE
    with pytest.raises(TruncatedRecordError) as body_cut:
        records.check_at(record[:-1], 0)
    assert body_cut.value.need == len(record)


@given(messages=st.lists(texts, min_size=1, max_size=20), data=st.data())
def test_scan_takes_whole_records_up_to_the_first_it_cannot(messages: list[str], data: st.DataObject) -> None:
    """One scan serves recovery (offsets) and reads (entries): both stop at the same record."""
    whole = log_bytes(messages)
    _, starts = records.encode_batch([Entry(i + 1, m) for i, m in enumerate(messages)])
    damaged = bytearray(whole)
    bad = data.draw(st.integers(0, len(messages) - 1))
    damaged[starts[bad] + records.HEADER_SIZE] ^= 0xFF  # inside the CRC'd seq
    offsets: array[int] = array("Q")
    entries: list[Entry] = []
    stop = records.scan(memoryview(bytes(damaged)), 0, 1, offsets, entries, base=1000)
    assert stop == starts[bad]
    assert list(offsets) == [1000 + s for s in starts[:bad]]
    assert [e.message for e in entries] == messages[:bad]
    assert records.scan(memoryview(whole), 0, 1, None, None) == len(whole)


def test_decode_run_refuses_a_seq_out_of_place() -> None:
    blob = records.encode(Entry(1, "a")) + records.encode(Entry(3, "c"))
    with pytest.raises(CorruptLog, match="seq 3, expected 2") as exc:
        records.decode_run(blob, 1, 100, "entries.dat")
    assert exc.value.offset == 100 + len(records.encode(Entry(1, "a")))


@pytest.mark.parametrize("chunk_bytes", [1, 40, records.SCAN_CHUNK_BYTES])
def test_recover_clean_log(chunk_bytes: int) -> None:
    messages = ["m" * n for n in range(30)]
    data = log_bytes(messages)
    found = recover(data, chunk_bytes)
    assert found.torn_reason is None
    assert found.end == len(data)
    assert len(found.offsets) == 30
    assert records.decode_run(data[found.offsets[10] :], 11, found.offsets[10], "f")[0].message == "m" * 10


@settings(max_examples=50)
@given(messages=st.lists(texts, min_size=1, max_size=8), data=st.data())
def test_recover_drops_only_a_torn_last_record(messages: list[str], data: st.DataObject) -> None:
    whole = log_bytes(messages)
    last_start = len(log_bytes(messages[:-1]))
    cut = data.draw(st.integers(last_start + 1, len(whole) - 1))
    found = recover(whole[:cut], chunk_bytes=data.draw(st.sampled_from([16, 1 << 20])))
    assert len(found.offsets) == len(messages) - 1
    assert found.end == last_start
    assert found.torn_reason is not None


@pytest.mark.parametrize("tail", [b"\x00" * 4096, b"\xa5RLg\x00\x00", b"garbage"])
def test_recover_cuts_garbage_after_the_last_record(tail: bytes) -> None:
    data = log_bytes(["a", "b"])
    found = recover(data + tail)
    assert (len(found.offsets), found.end) == (2, len(data))
    assert found.torn_reason is not None


def test_a_damaged_last_record_is_treated_as_torn() -> None:
    data = bytearray(log_bytes(["a", "b", "c"]))
    data[-1] ^= 0xFF
    found = recover(bytes(data))
    assert len(found.offsets) == 2
    assert found.torn_reason == "checksum mismatch"


@pytest.mark.parametrize("where", ["magic", "length", "payload"])
def test_recover_refuses_damage_before_valid_records(where: str) -> None:
    messages = ["first", "second", "third", "fourth"]
    data = bytearray(log_bytes(messages))
    second = len(log_bytes(messages[:1]))
    field = {"magic": 0, "length": 10, "payload": records.HEADER_SIZE + 20}[where]
    data[second + field] ^= 0x40
    with pytest.raises(CorruptLog) as exc:
        recover(bytes(data), chunk_bytes=32)
    assert exc.value.offset == second
    assert "entries.dat" in str(exc.value)
    assert f"offset {second}" in str(exc.value)


def test_recover_refuses_a_valid_record_with_the_wrong_seq() -> None:
    data = log_bytes(["a", "b"]) + records.encode(Entry(5, "e"))
    with pytest.raises(CorruptLog, match="seq 5, expected 3"):
        recover(data)


def test_find_valid_record_skips_lookalikes() -> None:
    good = records.encode(Entry(9, "x"))
    noise = records.MAGIC + b"\xff" * 20
    data = noise + good
    assert records.find_valid_record(reader(data), len(data), 0) == len(noise)
    assert records.find_valid_record(reader(noise), len(noise), 0) is None
