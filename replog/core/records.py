"""The on-disk record format and the recovery scan: pure logic, no I/O of its own.

A record is a 12-byte header and a payload:

    magic b"\\xa5RLg" | crc32 u32 | length u32 | seq u64 | stored_at f64 | message (UTF-8)
                      \\________ crc32 covers these bytes (length and payload) __________/

The CRC covers the length too, so a damaged length is caught rather than trusted. Recovery reads
through a `read_at(offset, size)` callable, so tests feed it bytes and `disk` feeds it `os.pread`.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from replog.core.errors import ReplogError
from replog.core.wire import Entry

MAGIC = b"\xa5RLg"
HEADER = struct.Struct("<4sII")  # magic, crc32, payload length
HEADER_SIZE = HEADER.size
LENGTH_AND_HEAD = struct.Struct("<IQd")  # payload length, seq, stored_at: the start of the CRC'd bytes
PAYLOAD_HEAD = struct.Struct("<Qd")
RECORD_HEAD = struct.Struct("<4sIIQd")  # header and payload head in one unpack: the fast path
MIN_PAYLOAD = PAYLOAD_HEAD.size
MAX_PAYLOAD = 1 << 30  # a length above this is damage, not a message
SCAN_CHUNK_BYTES = 4 << 20

ReadAt = Callable[[int, int], bytes]


class CorruptLog(ReplogError):
    """The log file is damaged before its tail (or a stored record fails its checksum): refuse it."""

    status = 500
    code = "corrupt_log"

    def __init__(self, detail: str, *, path: Path | str, offset: int) -> None:
        super().__init__(f"{detail} (file {path}, offset {offset})", file=str(path), offset=offset)
        self.path = Path(path)
        self.offset = offset


class TruncatedRecordError(Exception):
    """The buffer ends inside the record: `need` bytes from its start are required."""

    def __init__(self, need: int) -> None:
        super().__init__(f"record needs {need} bytes")
        self.need = need


class DamagedRecordError(Exception):
    """The bytes at this offset are not a valid record."""


def encode(entry: Entry) -> bytes:
    body = entry.message.encode("utf-8")
    if len(body) > MAX_PAYLOAD - MIN_PAYLOAD:
        raise ValueError(f"message of {len(body)} bytes is too large for one record")
    checked = LENGTH_AND_HEAD.pack(MIN_PAYLOAD + len(body), entry.seq, entry.stored_at) + body
    return MAGIC + zlib.crc32(checked).to_bytes(4, "little") + checked


def encode_batch(entries: Sequence[Entry]) -> tuple[bytes, list[int]]:
    """One buffer for one write, and each record's start offset within it."""
    parts = [encode(e) for e in entries]
    starts: list[int] = []
    at = 0
    for part in parts:
        starts.append(at)
        at += len(part)
    return b"".join(parts), starts


def check_at(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Verify the record at pos without decoding its message; return (seq, end offset)."""
    if len(buf) - pos < HEADER_SIZE:
        raise TruncatedRecordError(HEADER_SIZE)
    magic, crc, length = HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        raise DamagedRecordError("bad magic (not the start of a record)")
    if not MIN_PAYLOAD <= length <= MAX_PAYLOAD:
        raise DamagedRecordError(f"impossible payload length {length}")
    end = pos + HEADER_SIZE + length
    if end > len(buf):
        raise TruncatedRecordError(HEADER_SIZE + length)
    if zlib.crc32(buf[pos + 8 : end]) != crc:
        raise DamagedRecordError("checksum mismatch")
    seq: int = PAYLOAD_HEAD.unpack_from(buf, pos + HEADER_SIZE)[0]
    return seq, end


def decode_at(buf: bytes | memoryview, pos: int) -> tuple[Entry, int]:
    """Verify and decode the record at pos; return (entry, end offset)."""
    _, end = check_at(buf, pos)
    seq, stored_at = PAYLOAD_HEAD.unpack_from(buf, pos + HEADER_SIZE)
    try:
        message = bytes(buf[pos + HEADER_SIZE + MIN_PAYLOAD : end]).decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedRecordError("message is not valid UTF-8") from None
    return Entry(seq, message, stored_at), end


def scan(
    view: memoryview,
    at: int,
    seq: int,
    offsets: array[int] | None,
    entries: list[Entry] | None,
    base: int = 0,
) -> int:
    """The fast record scan, the one loop both `decode_run` and `recover` use.

    Walks whole, checksum-valid records from `at` while each holds the next seq (starting at `seq`),
    appending each record's start (`base + offset`) to `offsets` and, given `entries`, its decoded
    entry. One unpack and one CRC per record; it stops at the first record it cannot take (the end
    of the buffer, a record running past it, damage, a wrong seq, bad UTF-8 when decoding) and
    returns that offset, for the caller to classify with `check_at` or `decode_at`.
    """
    size, unpack, crc32, head = len(view), RECORD_HEAD.unpack_from, zlib.crc32, RECORD_HEAD.size
    while size - at >= head:
        magic, crc, length, got, stored_at = unpack(view, at)
        end = at + HEADER_SIZE + length
        if (
            magic != MAGIC
            or length < MIN_PAYLOAD
            or end > size
            or got != seq
            or crc32(view[at + 8 : end]) != crc
        ):
            break
        if entries is not None:
            try:
                entries.append(Entry(got, str(view[at + head : end], "utf-8"), stored_at))
            except UnicodeDecodeError:
                break
        if offsets is not None:
            offsets.append(base + at)
        seq += 1
        at = end
    return at


def decode_run(buf: bytes, first_seq: int, base_offset: int, path: Path | str) -> list[Entry]:
    """Decode a buffer of whole records that must hold first_seq, first_seq+1, ... in order."""
    view = memoryview(buf)
    entries: list[Entry] = []
    at = scan(view, 0, first_seq, None, entries)
    if at < len(view):
        _raise_unreadable(view, at, first_seq + len(entries), base_offset, path)
    return entries


def _raise_unreadable(
    view: memoryview, pos: int, expected: int, base_offset: int, path: Path | str
) -> NoReturn:
    try:
        entry, _ = decode_at(view, pos)
    except (DamagedRecordError, TruncatedRecordError) as exc:
        raise CorruptLog(f"stored record is unreadable: {exc}", path=path, offset=base_offset + pos) from None
    raise CorruptLog(
        f"record holds seq {entry.seq}, expected {expected}", path=path, offset=base_offset + pos
    )


@dataclass(frozen=True)
class Recovered:
    """What a scan found: record i (seq i+1) starts at offsets[i]; good data ends at `end`."""

    offsets: array[int]
    end: int
    torn_reason: str | None  # why the bytes from `end` on were dropped, or None if the file was clean


def recover(read_at: ReadAt, size: int, path: Path | str, chunk_bytes: int = SCAN_CHUNK_BYTES) -> Recovered:
    """Scan a whole log file: damage followed by a valid record is corruption; at the tail, a torn write.

    A crash mid-write leaves at most an incomplete or garbled last record (or zero-filled blocks):
    those can be cut off. Anything bad *followed by a valid record* means bytes changed under a record
    already written, so recovery refuses rather than silently dropping acknowledged entries.
    """
    offsets: array[int] = array("Q")
    pos = 0
    want = chunk_bytes
    reason: str | None = None
    while pos < size and reason is None:
        buf = memoryview(read_at(pos, min(want, size - pos)))
        want, at = chunk_bytes, 0
        while (at := scan(buf, at, len(offsets) + 1, offsets, None, pos)) < len(buf):
            try:  # the fast scan stopped short: say why
                seq, end = check_at(buf, at)
            except TruncatedRecordError as exc:
                if pos + at + exc.need > size:
                    reason = f"incomplete record ({size - pos - at} of {exc.need} bytes)"
                else:
                    want = max(chunk_bytes, exc.need)
                break
            except DamagedRecordError as exc:
                reason = str(exc)
                break
            if seq != len(offsets) + 1:
                raise CorruptLog(
                    f"record holds seq {seq}, expected {len(offsets) + 1}", path=path, offset=pos + at
                )
            offsets.append(pos + at)
            at = end
        pos += at
    if reason is None:
        return Recovered(offsets, pos, None)
    later = find_valid_record(read_at, size, pos + 1)
    if later is not None:
        raise CorruptLog(
            f"{reason}, yet a valid record follows at offset {later}; refusing to drop acknowledged "
            f"entries (restore this node from a replica, or truncate the file to {pos} bytes to keep "
            f"seqs 1..{len(offsets)})",
            path=path,
            offset=pos,
        )
    return Recovered(offsets, pos, reason)


def find_valid_record(read_at: ReadAt, size: int, start: int) -> int | None:
    """The offset of the first whole, checksum-valid record at or after start, if any."""
    block = 1 << 20
    pos = start
    while pos < size:
        buf = read_at(pos, min(block + len(MAGIC) - 1, size - pos))
        hit = buf.find(MAGIC)
        while 0 <= hit < block:
            if _valid_at(read_at, size, pos + hit):
                return pos + hit
            hit = buf.find(MAGIC, hit + 1)
        pos += block
    return None


def _valid_at(read_at: ReadAt, size: int, offset: int) -> bool:
    header = read_at(offset, HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        return False
    length: int = HEADER.unpack(header)[2]
    if not MIN_PAYLOAD <= length <= MAX_PAYLOAD or offset + HEADER_SIZE + length > size:
        return False
    try:
        check_at(read_at(offset, HEADER_SIZE + length), 0)
    except (DamagedRecordError, TruncatedRecordError):
        return False
    return True
