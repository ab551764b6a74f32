"""The lease record: one 512-byte sector, two alternating slots.

A lease area holds two 4 KiB slots, each written whole (the record in its
first sector, zeros after it) so that disks with 4 KiB logical sectors and
``O_DIRECT`` work too.  A writer always
writes the slot that does *not* hold the newest valid record, so a write
torn by a crash or a power cut destroys at most the older copy: the newest
valid state survives in the other slot.  Every record carries a CRC-32 over
its first 508 bytes, so a torn sector reads as invalid, never as a valid
foreign owner.  Slots are 4 KiB apart so that, on a disk with 4 KiB physical
sectors, a read-modify-write of one slot cannot tear the other.  One read of
both slots (8 KiB) and one 4 KiB write is all a renewal costs.

Sector layout (little-endian; the dom0 plugin carries its own codec of the
same layout and ``tests/unit/test_lease_plugin.py`` proves them equal)::

    0    8  magic "XRSLEASE"
    8    2  version (1)
    10   1  state: 1 free, 2 held
    11   1  reserved (0)
    12   4  duration in milliseconds the writer promises to renew within
    16   8  generation: +1 each time ownership changes hands
    24   8  counter: +1 on every other write (renewal, release, hand-over)
    32   8  wall clock of the writer in ms (for operators only; never
            used to decide anything)
    40  36  SR uuid (ASCII, NUL padded)
    76  64  owner pool uuid   (UTF-8, NUL padded; empty when free)
    140 64  owner host uuid
    204 64  next owner pool  (empty unless handed over)
    268 64  next owner host
    332 176 zero
    508  4  CRC-32 (zlib) of bytes 0..507
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Optional
import zlib

from nova_xenapi_resign import exception

RECORD_SIZE = 512
SLOT_STRIDE = 4096
SLOT_COUNT = 2
#: Bytes of the lease area (both slots, read in one I/O).
AREA_SIZE = SLOT_STRIDE * SLOT_COUNT
MAGIC = b"XRSLEASE"
VERSION = 1
STATE_FREE = 1
STATE_HELD = 2
NAME_SIZE = 64
SR_UUID_SIZE = 36
CRC_OFFSET = RECORD_SIZE - 4

_FIXED = struct.Struct("<8sHBBIQQQ36s64s64s64s64s")
_CRC = struct.Struct("<I")
_STATES = {STATE_FREE: "free", STATE_HELD: "held"}


@dataclasses.dataclass(frozen=True)
class Owner:
    """A lease holder: a pool and the host in it that does SR changes."""

    pool: str
    host: str

    def __str__(self) -> str:
        return "host %s of pool %s" % (self.host, self.pool)


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """One decoded lease sector."""

    sr_uuid: str
    state: int
    generation: int
    counter: int
    duration_ms: int
    written_at_ms: int
    owner: Optional[Owner] = None
    next_owner: Optional[Owner] = None

    @property
    def key(self) -> tuple[int, int]:
        """Order of writes: a newer record has a larger key."""
        return (self.generation, self.counter)

    @property
    def held(self) -> bool:
        return self.state == STATE_HELD

    @property
    def state_name(self) -> str:
        return _STATES[self.state]


def _name(raw: bytes, device: str, offset: int, what: str) -> str:
    text = raw.rstrip(b"\0")
    if b"\0" in text:
        raise exception.LeaseRecordError(
            device=device, structure="lease " + what, offset=offset,
            expected="NUL padded text", found=raw)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise exception.LeaseRecordError(
            device=device, structure="lease " + what, offset=offset,
            expected="UTF-8 text", found=raw)


def _pack_name(value: str, size: int, what: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) > size or b"\0" in raw:
        raise exception.InvalidInput(
            reason="lease %s %r: at most %d UTF-8 bytes without NUL"
            % (what, value, size))
    return raw


def _owner(pool: str, host: str) -> Optional[Owner]:
    return Owner(pool, host) if (pool or host) else None


def encode(record: LeaseRecord) -> bytes:
    """The 512-byte sector of ``record`` (its CRC included)."""
    if record.state not in _STATES:
        raise exception.InvalidInput(
            reason="lease state %r is not free (1) or held (2)"
            % (record.state,))
    if record.held != (record.owner is not None):
        raise exception.InvalidInput(
            reason="a held lease names an owner and a free one does not "
            "(state %s, owner %s)" % (record.state_name, record.owner))
    owner = record.owner or Owner("", "")
    nxt = record.next_owner or Owner("", "")
    body = _FIXED.pack(
        MAGIC, VERSION, record.state, 0, record.duration_ms,
        record.generation, record.counter, record.written_at_ms,
        _pack_name(record.sr_uuid, SR_UUID_SIZE, "SR uuid"),
        _pack_name(owner.pool, NAME_SIZE, "owner pool"),
        _pack_name(owner.host, NAME_SIZE, "owner host"),
        _pack_name(nxt.pool, NAME_SIZE, "next pool"),
        _pack_name(nxt.host, NAME_SIZE, "next host"))
    body = body.ljust(CRC_OFFSET, b"\0")
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def slot_bytes(record: LeaseRecord) -> bytes:
    """What a write puts in a slot: the sector, zero padded to 4 KiB."""
    return encode(record).ljust(SLOT_STRIDE, b"\0")


def decode(sector: bytes, device: str = "<buffer>",
           offset: int = 0) -> LeaseRecord:
    """Decode one sector; a torn or foreign sector raises, never decodes."""
    def bad(at, structure, expected, found):
        return exception.LeaseRecordError(
            device=device, structure="lease " + structure,
            offset=offset + at, expected=expected, found=found)

    if len(sector) != RECORD_SIZE:
        raise bad(0, "sector", "%d bytes" % RECORD_SIZE, len(sector))
    if sector[:8] != MAGIC:
        raise bad(0, "magic", MAGIC, sector[:8])
    (crc,) = _CRC.unpack_from(sector, CRC_OFFSET)
    actual = zlib.crc32(sector[:CRC_OFFSET]) & 0xFFFFFFFF
    if crc != actual:
        raise bad(CRC_OFFSET, "checksum", "0x%08x" % actual, "0x%08x" % crc)
    (_, version, state, _, duration_ms, generation, counter, written_at_ms,
     sr_raw, pool, host, npool, nhost) = _FIXED.unpack_from(sector, 0)
    if version != VERSION:
        raise bad(8, "version", VERSION, version)
    if state not in _STATES:
        raise bad(10, "state", "1 (free) or 2 (held)", state)
    owner = _owner(_name(pool, device, offset + 76, "owner pool"),
                   _name(host, device, offset + 140, "owner host"))
    if (state == STATE_HELD) != (owner is not None):
        raise bad(10, "state", "an owner exactly when held", state)
    return LeaseRecord(
        sr_uuid=_name(sr_raw, device, offset + 40, "SR uuid"), state=state,
        generation=generation, counter=counter, duration_ms=duration_ms,
        written_at_ms=written_at_ms, owner=owner,
        next_owner=_owner(_name(npool, device, offset + 204, "next pool"),
                          _name(nhost, device, offset + 268, "next host")))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Both slots as read at one moment: raw bytes and what they mean.

    ``raw`` is what delta-lease observers compare: any write by anyone
    changes it, whether or not the sector it wrote is valid.
    """

    raw: tuple[bytes, ...]
    records: tuple[Optional[LeaseRecord], ...]
    errors: tuple[Optional[str], ...]

    @property
    def latest_slot(self) -> Optional[int]:
        """Slot of the newest valid record (ties go to the higher slot)."""
        best = None
        for slot, rec in enumerate(self.records):
            if rec is not None and (best is None or
                                    rec.key >= self.records[best].key):
                best = slot
        return best

    @property
    def latest(self) -> Optional[LeaseRecord]:
        slot = self.latest_slot
        return None if slot is None else self.records[slot]

    @property
    def write_slot(self) -> int:
        """The slot the next write goes to: never the newest valid one."""
        slot = self.latest_slot
        return 0 if slot is None else (slot + 1) % SLOT_COUNT


def snapshot(raw_slots: tuple[bytes, ...], device: str = "<buffer>"
             ) -> Snapshot:
    """Decode the slots of a lease area; invalid slots become ``None``."""
    records: list[Optional[LeaseRecord]] = []
    errors: list[Optional[str]] = []
    for slot, raw in enumerate(raw_slots):
        try:
            records.append(decode(raw, device, slot * SLOT_STRIDE))
            errors.append(None)
        except exception.LeaseRecordError as exc:
            records.append(None)
            errors.append(str(exc))
    return Snapshot(tuple(raw_slots), tuple(records), tuple(errors))
