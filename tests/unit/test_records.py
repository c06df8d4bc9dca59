"""The record format and the recovery scan, driven with bytes in memory (no files)."""

from __future__ import annotations

import zlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replog.core import records
from replog.core.entry import Kind
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


# --- format v2: epochs, kinds, keys; v1 records still read ---------------------------------------------

keys = st.none() | st.text(min_size=1, max_size=40)


@given(
    seq=st.integers(1, 2**63),
    epoch=st.integers(1, 2**63),
    stored_at=st.floats(allow_nan=False),
    message=texts,
    key=keys,
)
def test_v2_round_trip_with_epoch_and_key(
    seq: int, epoch: int, stored_at: float, message: str, key: str | None
) -> None:
    entry = Entry(seq, message, stored_at, epoch, Kind.MESSAGE, key)
    data = records.encode(entry)
    assert data[:4] == records.MAGIC
    assert records.decode_at(data, 0) == (entry, len(data))
    assert records.check_at(data, 0) == (seq, epoch, len(data))
    found: list[Entry] = []
    assert records.scan(memoryview(data), 0, seq, None, found) == len(data)
    assert found == [entry]


def test_a_control_record_round_trips_and_scans() -> None:
    entries = [
        Entry(1, "a", 1.0, 3),
        Entry(2, "", 2.0, 4, Kind.EPOCH_START),
        Entry(3, "b", 3.0, 4, key="k-1"),
    ]
    blob, _ = records.encode_batch(entries)
    assert records.decode_run(blob, 1, 0, "f") == entries
    assert not entries[1].visible and entries[2].visible
    found = recover(blob)
    assert (len(found.offsets), found.torn_reason) == (3, None)
    assert found.epochs.bounds() == [(3, 1), (4, 2)]


def v1_bytes(messages: list[str], first_seq: int = 1) -> bytes:
    return b"".join(records.encode_v1(Entry(first_seq + i, m, 10.0 + i)) for i, m in enumerate(messages))


def test_a_v1_only_file_reads_as_epoch_1_messages_without_keys() -> None:
    data = v1_bytes(["old-1", "old-2", "old-3"])
    assert data[:4] == records.MAGIC_V1
    found = recover(data, chunk_bytes=30)
    assert (len(found.offsets), found.end, found.torn_reason) == (3, len(data), None)
    assert found.epochs.bounds() == [(1, 1)]
    assert records.decode_run(data, 1, 0, "f") == [Entry(i, f"old-{i}", 9.0 + i) for i in (1, 2, 3)]
    assert records.decode_at(data, 0)[0] == Entry(1, "old-1", 10.0, 1, Kind.MESSAGE, None)


@pytest.mark.parametrize("chunk_bytes", [16, 70, records.SCAN_CHUNK_BYTES])
def test_v1_records_then_v2_records(chunk_bytes: int) -> None:
    """A log written by an older version, then continued by this one (a restart in epoch 2)."""
    old = v1_bytes(["a", "b"])
    new = [Entry(3, "c", 1.0, 1), Entry(4, "d", 2.0, 2, key="id-4"), Entry(5, "", 3.0, 3, Kind.EPOCH_START)]
    data = old + records.encode_batch(new)[0]
    found = recover(data, chunk_bytes)
    assert (len(found.offsets), found.end, found.torn_reason) == (5, len(data), None)
    assert found.offsets[2] == len(old)
    assert found.epochs.bounds() == [(1, 1), (2, 4), (3, 5)]
    decoded = records.decode_run(data, 1, 0, "f")
    assert [(e.seq, e.epoch, e.key) for e in decoded] == [
        (1, 1, None),
        (2, 1, None),
        (3, 1, None),
        (4, 2, "id-4"),
        (5, 3, None),
    ]
    assert decoded[2:] == new


def test_a_torn_v2_tail_after_v1_records_is_cut() -> None:
    old = v1_bytes(["a", "b"])
    whole = old + records.encode(Entry(3, "message three", 1.0, 2, key="k"))
    for cut in range(len(old) + 1, len(whole)):
        found = recover(whole[:cut])
        assert (len(found.offsets), found.end) == (2, len(old))
        assert found.torn_reason is not None
        assert found.epochs.bounds() == [(1, 1)]


def test_a_damaged_v2_record_followed_by_a_valid_one_is_refused() -> None:
    entries = [Entry(s, f"m{s}", 1.0, 2) for s in range(1, 5)]
    data = bytearray(records.encode_batch(entries)[0])
    second = len(records.encode(entries[0]))
    data[second + records.HEADER_SIZE + records.MIN_PAYLOAD] ^= 0x01  # its message
    with pytest.raises(CorruptLog, match="checksum mismatch, yet a valid record follows") as exc:
        recover(bytes(data))
    assert exc.value.offset == second


def test_damage_in_the_v1_part_of_a_mixed_file_is_refused_too() -> None:
    old = bytearray(v1_bytes(["a", "b", "c"]))
    old[len(v1_bytes(["a"])) + records.HEADER_SIZE + 17] ^= 0x01
    data = bytes(old) + records.encode(Entry(4, "d", 1.0, 2))
    with pytest.raises(CorruptLog, match="yet a valid record follows"):
        recover(data)


@pytest.mark.parametrize(
    "log",
    [
        [Entry(1, "a", 0.0, 3), Entry(2, "b", 0.0, 2)],  # an epoch going down
        [Entry(1, "a", 0.0, 2), Entry(2, "b", 0.0, 1)],
    ],
)
def test_a_valid_record_with_a_lower_epoch_is_refused(log: list[Entry]) -> None:
    data = records.encode_batch(log)[0]
    with pytest.raises(CorruptLog, match="epoch"):
        recover(data)
    with pytest.raises(CorruptLog, match="lower epoch"):
        records.decode_run(data, 1, 0, "f")


def test_a_v1_record_cannot_follow_a_later_epoch() -> None:
    data = records.encode(Entry(1, "a", 0.0, 2)) + records.encode_v1(Entry(2, "b"))
    with pytest.raises(CorruptLog, match="epoch 1, below the log's epoch 2"):
        recover(data)


def test_impossible_v2_fields_are_damage() -> None:
    good = records.encode(Entry(1, "ab", 0.0, 1, key="k"))

    def with_field(offset: int, value: bytes) -> bytes:
        raw = bytearray(good)
        raw[offset : offset + len(value)] = value
        checked = bytes(raw[8:])
        return bytes(raw[:4]) + zlib.crc32(checked).to_bytes(4, "little") + checked

    head = records.HEADER_SIZE
    with pytest.raises(DamagedRecordError, match="unknown entry kind"):
        records.check_at(with_field(head + 24, b"\x07"), 0)
    with pytest.raises(DamagedRecordError, match="key length"):
        records.check_at(with_field(head + 25, b"\xff\x00"), 0)
    with pytest.raises(DamagedRecordError, match="epoch 0"):
        records.check_at(with_field(head + 8, bytes(8)), 0)


def test_find_valid_record_finds_either_format() -> None:
    noise = records.MAGIC_V1 + b"\xff" * 20
    data = noise + records.encode_v1(Entry(5, "x"))
    assert records.find_valid_record(reader(data), len(data), 0) == len(noise)


@settings(max_examples=50)
@given(messages=st.lists(texts, min_size=1, max_size=12), data=st.data())
def test_recovery_walk_and_decoding_stop_at_the_same_record(messages: list[str], data: st.DataObject) -> None:
    """Recovery has its own v2 loop (offsets only); it must take exactly the records decoding takes."""
    epochs = sorted(data.draw(st.lists(st.integers(1, 4), min_size=len(messages), max_size=len(messages))))
    entries = [Entry(i + 1, m, 0.0, e) for i, (m, e) in enumerate(zip(messages, epochs, strict=True))]
    blob = bytearray(records.encode_batch(entries)[0])
    if data.draw(st.booleans()):
        blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    view = memoryview(bytes(blob))
    walked: array[int] = array("Q")
    decoded_at: array[int] = array("Q")
    decoded: list[Entry] = []
    assert records.scan(view, 0, 1, walked, None) == records.scan(view, 0, 1, decoded_at, decoded)
    assert walked == decoded_at and len(decoded) == len(walked)


def test_a_kind_no_version_writes_is_refused_when_the_record_is_read() -> None:
    raw = bytearray(records.encode(Entry(1, "a")))
    raw[records.HEADER_SIZE + 24] = 9  # the kind byte; the CRC made valid again below
    checked = bytes(raw[8:])
    data = bytes(raw[:4]) + zlib.crc32(checked).to_bytes(4, "little") + checked
    assert len(recover(data).offsets) == 1, "recovery walks offsets and epochs only"
    with pytest.raises(CorruptLog, match="unknown entry kind 9"):
        records.decode_run(data, 1, 0, "f")
