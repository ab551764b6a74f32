"""LVM2 on-disk structures, pure: bytes in -> frozen dataclasses -> bytes out.

Covers the text format ("LVM2 001") as written by lvm2: the label sector and
its pv_header, the metadata area header (mda_header) with its raw locations,
the circular text buffer behind it, and the commit protocol used to replace
the text.  The metadata *text* is opaque bytes here (see ``vg_metadata``).

Nothing in this module does I/O except :func:`read_pv`, which takes an
already opened :class:`~nova_xenapi_resign.lvhd.device.Device` and reads
only the label, the mda headers and the text they point to.

Reference: lvm2 ``lib/label/label.{c,h}``, ``lib/format_text/layout.h``,
``format-text.c`` and ``text_label.c``, ``lib/misc/crc.c``, ``lib/id/id.c``;
summarised in ``doc/source/reference/formats.rst`` (LVM2).

Layout reminders (all little-endian):

* label sector (one of sectors 0..3, normally 1)::

    0   8  "LABELONE"
    8   8  sector_xl (the sector the label sits in)
    16  4  crc_xl over bytes 20..511
    20  4  offset_xl (offset of the pv_header from the label start, 32)
    24  8  "LVM2 001"
    32  .. pv_header: pv_uuid[32], device_size u64, data areas
           {offset u64, size u64}... {0,0}, metadata areas ... {0,0},
           extension: version u32, flags u32, bootloader areas ... {0,0}

* mda_header (512 bytes at the start of each metadata area)::

    0   4  checksum over bytes 4..511
    4   16 magic " LVM2 x[5A%r0N*>"
    20  4  version (1)
    24  8  start (absolute byte offset of this header)
    32  8  size (of the whole area, header included)
    40  24 raw_locn[0] committed: offset u64 (relative to start), size u64
           (text bytes, NUL included), checksum u32, flags u32
    64  24 raw_locn[1] precommitted (normally zero) ... zero terminated
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Callable, Optional

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import lvm_id

SECTOR_SIZE = 512
LABEL_SIZE = 512
LABEL_SCAN_SECTORS = 4
LABEL_SCAN_SIZE = LABEL_SCAN_SECTORS * SECTOR_SIZE
LABEL_ID = b"LABELONE"
LVM2_LABEL = b"LVM2 001"
LABEL_HEADER_SIZE = 32
#: Bytes of the label sector covered by its CRC start here (offset_xl).
LABEL_CRC_START = 20

PV_ID_LEN = 32
PV_HEADER_EXTENSION_VSN = 2
PV_EXT_USED = 0x1

MDA_HEADER_SIZE = 512
FMTT_MAGIC = b" LVM2 x[5A%r0N*>"
FMTT_VERSION = 1
RAW_LOCN_IGNORED = 0x1
#: Offset of raw_locns[0] in the mda_header; each raw_locn is 24 bytes.
RAW_LOCN_START = 40
RAW_LOCN_SIZE = 24
MAX_RAW_LOCNS = (MDA_HEADER_SIZE - RAW_LOCN_START) // RAW_LOCN_SIZE

INITIAL_CRC = 0xF597A6CF

_MASK32 = 0xFFFFFFFF
_DISK_LOCN = struct.Struct("<QQ")
_LABEL_HEADER = struct.Struct("<8sQII8s")
_MDA_FIXED = struct.Struct("<I16sIQQ")
_RAW_LOCN = struct.Struct("<QQII")
_EXT = struct.Struct("<II")

# --- CRC ---------------------------------------------------------------------


def lvm_crc(data: bytes, seed: int = INITIAL_CRC) -> int:
    """lvm2's ``calc_crc(seed, data, len)``.

    lvm2 uses the reflected CRC-32 table (polynomial 0xEDB88320) with the
    update ``crc = T[(crc ^ b) & 0xff] ^ (crc >> 8)`` and *no* initial or
    final inversion.  zlib's table driven ``crc32`` is the same register
    update wrapped in an inversion on entry and exit, so inverting around
    it gives lvm2's value at C speed.  CRCs chain: ``lvm_crc(b, lvm_crc(a))
    == lvm_crc(a + b)``, as lvm2 chains across the two parts of a wrapped
    text.
    """
    return (~zlib.crc32(data, ~seed & _MASK32)) & _MASK32


# --- label sector and pv_header ---------------------------------------------

@dataclasses.dataclass(frozen=True)
class DiskLocn:
    """An area of the device: absolute byte ``offset``, ``size`` bytes.

    Size 0 in a data area means "to the end of the device".
    """

    offset: int
    size: int


@dataclasses.dataclass(frozen=True)
class Label:
    """The LVM2 label sector with its pv_header.

    ``pv_id`` is the 32-character undashed PV id.  ``ext_version`` is 0
    when the label has no pv_header extension (lvm2 before 2.02.110);
    ``ext_flags`` and ``bootloader_areas`` are then empty/zero.
    ``header_offset`` is offset_xl (always 32 in practice).
    """

    sector: int
    pv_id: str
    device_size: int
    data_areas: tuple[DiskLocn, ...]
    metadata_areas: tuple[DiskLocn, ...]
    ext_version: int = PV_HEADER_EXTENSION_VSN
    ext_flags: int = PV_EXT_USED
    bootloader_areas: tuple[DiskLocn, ...] = ()
    header_offset: int = LABEL_HEADER_SIZE

    @property
    def offset(self) -> int:
        """Absolute byte offset of the label sector."""
        return self.sector * SECTOR_SIZE

    def with_pv_id(self, new_pv_id: str) -> "Label":
        """A copy with another PV id (dashed or undashed accepted)."""
        return dataclasses.replace(self, pv_id=lvm_id.parse_lvm_id(new_pv_id))


def _label_error(device, offset, structure, expected, found):
    return exception.LvmLabelError(device=device, structure=structure,
                                   offset=offset, expected=expected,
                                   found=found)


def _read_locn_list(buf: bytes, pos: int, *, device: str, base: int,
                    what: str) -> tuple[tuple[DiskLocn, ...], int]:
    """Read {offset,size} pairs from ``pos`` until one with offset 0.

    Returns the entries and the position just after the terminator.
    """
    entries = []
    while True:
        if pos + _DISK_LOCN.size > len(buf):
            raise _label_error(device, base + pos, "pv_header " + what,
                               "a {0,0}-terminated list inside the label "
                               "sector", "the list runs past the sector")
        offset, size = _DISK_LOCN.unpack_from(buf, pos)
        pos += _DISK_LOCN.size
        if offset == 0:
            return tuple(entries), pos
        entries.append(DiskLocn(offset, size))


def _parse_label_sector(sector_buf: bytes, sector: int, device: str) -> Label:
    base = sector * SECTOR_SIZE
    _, sector_xl, crc_xl, offset_xl, type_ = _LABEL_HEADER.unpack_from(
        sector_buf, 0)
    if sector_xl != sector:
        raise _label_error(device, base + 8, "label sector_xl", sector,
                           sector_xl)
    crc = lvm_crc(sector_buf[LABEL_CRC_START:LABEL_SIZE])
    if crc != crc_xl:
        raise _label_error(device, base + 16, "label crc_xl",
                           "0x%08x" % crc, "0x%08x" % crc_xl)
    if type_ != LVM2_LABEL:
        raise _label_error(device, base + 24, "label type", LVM2_LABEL,
                           type_)
    if offset_xl < LABEL_HEADER_SIZE or offset_xl + 40 > LABEL_SIZE:
        raise _label_error(device, base + 20, "label offset_xl",
                           "32..%d" % (LABEL_SIZE - 40), offset_xl)
    pos = offset_xl
    raw_id = sector_buf[pos:pos + PV_ID_LEN]
    if not lvm_id.is_undashed_lvm_id(raw_id):
        raise _label_error(device, base + pos, "pv_header pv_uuid",
                           "32 characters of [0-9a-zA-Z!#]", raw_id)
    (device_size,) = struct.unpack_from("<Q", sector_buf, pos + PV_ID_LEN)
    pos += PV_ID_LEN + 8
    data_areas, pos = _read_locn_list(sector_buf, pos, device=device,
                                      base=base, what="data areas")
    mdas, pos = _read_locn_list(sector_buf, pos, device=device, base=base,
                                what="metadata areas")
    ext_version = ext_flags = 0
    bootloader_areas: tuple[DiskLocn, ...] = ()
    if pos + _EXT.size <= LABEL_SIZE:
        ext_version, ext_flags = _EXT.unpack_from(sector_buf, pos)
        if ext_version:
            bootloader_areas, _ = _read_locn_list(
                sector_buf, pos + _EXT.size, device=device, base=base,
                what="bootloader areas")
        elif ext_flags:
            raise _label_error(device, base + pos + 4,
                               "pv_header extension flags",
                               "0 without an extension", ext_flags)
    return Label(sector=sector, pv_id=raw_id.decode("ascii"),
                 device_size=device_size, data_areas=data_areas,
                 metadata_areas=mdas, ext_version=ext_version,
                 ext_flags=ext_flags, bootloader_areas=bootloader_areas,
                 header_offset=offset_xl)


def parse_label(buf: bytes, device: str = "<buffer>") -> Label:
    """Find and parse the LVM2 label in the first 2048 bytes of a device.

    Like lvm2, the first of sectors 0..3 that starts with ``LABELONE`` and
    whose ``sector_xl`` names that sector is the label; its CRC, type and
    pv_header must then be valid.  ``buf`` must hold all four sectors.
    """
    if len(buf) < LABEL_SCAN_SIZE:
        raise _label_error(device, 0, "label scan area",
                           "%d bytes" % LABEL_SCAN_SIZE, "%d bytes" % len(buf))
    for sector in range(LABEL_SCAN_SECTORS):
        start = sector * SECTOR_SIZE
        sector_buf = bytes(buf[start:start + SECTOR_SIZE])
        if sector_buf[:8] != LABEL_ID:
            continue
        (sector_xl,) = struct.unpack_from("<Q", sector_buf, 8)
        if sector_xl != sector:
            # lvm2 skips such a sector; we report it if nothing else fits.
            continue
        return _parse_label_sector(sector_buf, sector, device)
    for sector in range(LABEL_SCAN_SECTORS):
        start = sector * SECTOR_SIZE
        if buf[start:start + 8] == LABEL_ID:
            (sector_xl,) = struct.unpack_from("<Q", buf, start + 8)
            raise _label_error(device, start + 8, "label sector_xl", sector,
                               sector_xl)
    raise _label_error(device, 0, "label", "LABELONE in sectors 0-3",
                       "no LVM2 label")


def _pack_locns(locns, device: str, what: str) -> bytes:
    out = bytearray()
    for locn in locns:
        if locn.offset <= 0:
            raise _label_error(device, "?", "pv_header " + what,
                               "offsets > 0", locn.offset)
        out += _DISK_LOCN.pack(locn.offset, locn.size)
    out += _DISK_LOCN.pack(0, 0)
    return bytes(out)


def render_label(label: Label) -> bytes:
    """The 512-byte label sector.

    Zero filled, fields, then the CRC last (as lvm2's ``label_write`` and
    ``_text_write``).
    """
    device = "<label>"
    if not lvm_id.is_undashed_lvm_id(label.pv_id):
        raise _label_error(device, "?", "pv_header pv_uuid",
                           "32 characters of [0-9a-zA-Z!#]", label.pv_id)
    if not 0 <= label.sector < LABEL_SCAN_SECTORS:
        raise _label_error(device, "?", "label sector", "0..3", label.sector)
    body = bytearray(label.pv_id.encode("ascii"))
    body += struct.pack("<Q", label.device_size)
    body += _pack_locns(label.data_areas, device, "data areas")
    body += _pack_locns(label.metadata_areas, device, "metadata areas")
    if label.ext_version:
        body += _EXT.pack(label.ext_version, label.ext_flags)
        body += _pack_locns(label.bootloader_areas, device,
                            "bootloader areas")
    if label.header_offset + len(body) > LABEL_SIZE:
        raise _label_error(device, "?", "pv_header", "fits in 512 bytes",
                           "%d bytes" % (label.header_offset + len(body)))
    out = bytearray(LABEL_SIZE)
    out[label.header_offset:label.header_offset + len(body)] = body
    _LABEL_HEADER.pack_into(out, 0, LABEL_ID, label.sector, 0,
                            label.header_offset, LVM2_LABEL)
    struct.pack_into("<I", out, 16, lvm_crc(bytes(out[LABEL_CRC_START:])))
    return bytes(out)


# --- mda_header --------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RawLocn:
    """Where a copy of the text lies.

    ``offset`` relative to the mda start, ``size`` in bytes (NUL
    included), CRC of those bytes, flags.
    """

    offset: int
    size: int
    checksum: int
    flags: int = 0

    @property
    def is_empty(self) -> bool:
        return self.offset == 0 and self.size == 0

    @property
    def ignored(self) -> bool:
        return bool(self.flags & RAW_LOCN_IGNORED)


EMPTY_RAW_LOCN = RawLocn(0, 0, 0, 0)


@dataclasses.dataclass(frozen=True)
class MdaHeader:
    """A metadata area header.

    ``raw_locns`` always holds slot 0 (committed, possibly empty); slot 1
    (precommitted) follows when it is set; further entries are kept as
    found, up to the first one whose offset is 0.
    """

    start: int
    size: int
    raw_locns: tuple[RawLocn, ...] = (EMPTY_RAW_LOCN,)
    version: int = FMTT_VERSION

    @property
    def committed(self) -> Optional[RawLocn]:
        slot0 = self.raw_locns[0] if self.raw_locns else EMPTY_RAW_LOCN
        return None if slot0.is_empty else slot0

    @property
    def precommitted(self) -> Optional[RawLocn]:
        if len(self.raw_locns) < 2 or self.raw_locns[1].is_empty:
            return None
        return self.raw_locns[1]

    @property
    def ignored(self) -> bool:
        """The mda is marked ignored (``pvchange --metadataignore``)."""
        return bool(self.raw_locns and self.raw_locns[0].ignored)

    @property
    def buffer_start(self) -> int:
        """Absolute offset of the circular text buffer."""
        return self.start + MDA_HEADER_SIZE

    @property
    def end(self) -> int:
        """Absolute offset just past the metadata area."""
        return self.start + self.size

    def slot(self, index: int) -> Optional[RawLocn]:
        if index == 0:
            return self.committed
        if index == 1:
            return self.precommitted
        if index < len(self.raw_locns) and not self.raw_locns[index].is_empty:
            return self.raw_locns[index]
        return None


def _mda_error(device, offset, structure, expected, found):
    return exception.LvmMetadataError(device=device, structure=structure,
                                      offset=offset, expected=expected,
                                      found=found)


def _check_rlocn(rl: RawLocn, index: int, area_size: int, start: int,
                 device: str) -> None:
    where = start + RAW_LOCN_START + index * RAW_LOCN_SIZE
    name = "mda_header raw_locn[%d]" % index
    if rl.offset < MDA_HEADER_SIZE or rl.offset >= area_size:
        raise _mda_error(device, where, name + " offset",
                         "%d..%d" % (MDA_HEADER_SIZE, area_size - 1),
                         rl.offset)
    if rl.size < 1 or rl.size > area_size - MDA_HEADER_SIZE:
        raise _mda_error(device, where + 8, name + " size",
                         "1..%d" % (area_size - MDA_HEADER_SIZE), rl.size)
    wrap = rl.offset + rl.size - area_size
    if wrap > 0 and wrap + MDA_HEADER_SIZE > rl.offset:
        raise _mda_error(device, where, name,
                         "a copy that does not overlap itself",
                         "offset %d size %d in a %d-byte area"
                         % (rl.offset, rl.size, area_size))


def _raw_locns(buf: bytes) -> list[RawLocn]:
    """The raw_locn slots in use: slot 0 always, then up to the first 0."""
    locns = []
    for index in range(MAX_RAW_LOCNS):
        rl = RawLocn(*_RAW_LOCN.unpack_from(
            buf, RAW_LOCN_START + index * RAW_LOCN_SIZE))
        if index == 0:
            # Slot 0 is always kept (its flags carry "ignored").
            locns.append(rl)
            continue
        if rl.offset == 0:
            break
        locns.append(rl)
    # An empty slot 0 may still be followed by a precommitted slot 1
    # (lvm2 precommitting the first metadata of a fresh area).
    if locns[0].offset == 0 and len(locns) == 1:
        rl1 = RawLocn(*_RAW_LOCN.unpack_from(
            buf, RAW_LOCN_START + RAW_LOCN_SIZE))
        if rl1.offset:
            locns.append(rl1)
    return locns


def parse_mda_header(buf: bytes, mda_offset: int,
                     device: str = "<buffer>",
                     area_size: Optional[int] = None) -> MdaHeader:
    """Parse the 512-byte mda_header read at absolute ``mda_offset``.

    Checks (as lvm2's ``raw_read_mda_header``) the checksum, magic,
    version and ``start == mda_offset``; also that the size is sane (and
    equals ``area_size`` from the pv_header when given) and that every
    raw location lies inside the circular buffer.
    """
    if len(buf) < MDA_HEADER_SIZE:
        raise _mda_error(device, mda_offset, "mda_header",
                         "%d bytes" % MDA_HEADER_SIZE, "%d bytes" % len(buf))
    buf = bytes(buf[:MDA_HEADER_SIZE])
    checksum, magic, version, start, size = _MDA_FIXED.unpack_from(buf, 0)
    crc = lvm_crc(buf[4:])
    if crc != checksum:
        raise _mda_error(device, mda_offset, "mda_header checksum",
                         "0x%08x" % crc, "0x%08x" % checksum)
    if magic != FMTT_MAGIC:
        raise _mda_error(device, mda_offset + 4, "mda_header magic",
                         FMTT_MAGIC, magic)
    if version != FMTT_VERSION:
        raise _mda_error(device, mda_offset + 20, "mda_header version",
                         FMTT_VERSION, version)
    if start != mda_offset:
        raise _mda_error(device, mda_offset + 24, "mda_header start",
                         mda_offset, start)
    if size < 2 * MDA_HEADER_SIZE or (area_size is not None
                                      and size != area_size):
        raise _mda_error(device, mda_offset + 32, "mda_header size",
                         area_size if area_size is not None
                         else ">= %d" % (2 * MDA_HEADER_SIZE), size)
    locns = _raw_locns(buf)
    for index, rl in enumerate(locns):
        if index == 0 and rl.offset == 0:
            if rl.size or rl.checksum:
                raise _mda_error(device,
                                 mda_offset + RAW_LOCN_START,
                                 "mda_header raw_locn[0]",
                                 "an empty slot (offset 0, size 0)",
                                 "offset 0 size %d" % rl.size)
            continue
        _check_rlocn(rl, index, size, mda_offset, device)
    return MdaHeader(start=start, size=size, raw_locns=tuple(locns),
                     version=version)


def render_mda_header(header: MdaHeader) -> bytes:
    """The 512-byte mda_header, zero filled, checksum last."""
    if len(header.raw_locns) > MAX_RAW_LOCNS - 1:
        raise _mda_error("<mda_header>", header.start, "mda_header raw_locns",
                         "at most %d" % (MAX_RAW_LOCNS - 1),
                         len(header.raw_locns))
    out = bytearray(MDA_HEADER_SIZE)
    _MDA_FIXED.pack_into(out, 0, 0, FMTT_MAGIC, header.version, header.start,
                         header.size)
    pos = RAW_LOCN_START
    for rl in header.raw_locns:
        _RAW_LOCN.pack_into(out, pos, rl.offset, rl.size, rl.checksum,
                            rl.flags)
        pos += RAW_LOCN_SIZE
    struct.pack_into("<I", out, 0, lvm_crc(bytes(out[4:])))
    return bytes(out)


# --- the circular text buffer ------------------------------------------------

def text_extents(header: MdaHeader, rlocn: RawLocn) -> tuple[tuple[int, int],
                                                             ...]:
    """The absolute ``(offset, length)`` pieces holding a text copy.

    One piece, or two when the copy wraps to the start of the buffer.
    """
    wrap = max(0, rlocn.offset + rlocn.size - header.size)
    first = (header.start + rlocn.offset, rlocn.size - wrap)
    if not wrap:
        return (first,)
    return (first, (header.buffer_start, wrap))


def read_text(header: MdaHeader, read_area: Callable[[int, int], bytes],
              slot: int = 0, device: str = "<buffer>") -> bytes:
    """Read and verify the text a raw location points to.

    ``read_area(absolute_offset, length)`` returns device bytes.  Copies
    that wrap are read in two parts and the checksum is chained across
    them, like lvm2.  Returns the text *without* its terminating NUL
    (the NUL is counted in ``rlocn.size`` and covered by the checksum).
    Raises ``LvmMetadataError`` when the slot is empty or the checksum
    does not match.
    """
    rlocn = header.slot(slot)
    if rlocn is None:
        raise _mda_error(device, header.start + RAW_LOCN_START
                         + slot * RAW_LOCN_SIZE,
                         "mda_header raw_locn[%d]" % slot,
                         "a metadata location", "an empty slot")
    _check_rlocn(rlocn, slot, header.size, header.start, device)
    parts = []
    for offset, length in text_extents(header, rlocn):
        data = bytes(read_area(offset, length))
        if len(data) != length:
            raise _mda_error(device, offset, "metadata text",
                             "%d bytes" % length, "%d bytes" % len(data))
        parts.append(data)
    text = b"".join(parts)
    crc = lvm_crc(text)
    if crc != rlocn.checksum:
        raise _mda_error(device, header.start + rlocn.offset,
                         "metadata text checksum", "0x%08x" % rlocn.checksum,
                         "0x%08x" % crc)
    if text.endswith(b"\0"):
        text = text[:-1]
    return text


@dataclasses.dataclass(frozen=True)
class TextWrite:
    """A planned write of a new text copy into one metadata area.

    ``writes`` are absolute, sector aligned ``(offset, data)`` pairs:
    the text plus its NUL, padded with zeros to the next sector boundary
    (exactly what lvm2 writes, so the space after a copy is zeroed); no
    old bytes are needed.  ``rlocn`` is the location to precommit and
    commit.
    """

    mda_start: int
    rlocn: RawLocn
    writes: tuple[tuple[int, bytes], ...]


def max_text_size(header: MdaHeader) -> int:
    """Largest copy (NUL included) lvm2 accepts: two copies must fit."""
    return (header.size - MDA_HEADER_SIZE) // 2 - SECTOR_SIZE


def _copy_last(header: MdaHeader, rl: RawLocn) -> tuple[int, int]:
    """(wrap, last byte) of a copy, relative to the mda start."""
    wrap = max(0, rl.offset + rl.size - header.size)
    if wrap:
        return wrap, MDA_HEADER_SIZE + wrap - 1
    return 0, rl.offset + rl.size - 1


def next_text_offset(header: MdaHeader) -> int:
    """Where lvm2 (2.03 ``_next_rlocn_offset``) starts the next copy.

    Just after the committed copy, rounded up to a sector; back at the
    start of the buffer when that is within a sector of the area end.
    """
    old = header.committed
    if old is None or old.ignored:
        return MDA_HEADER_SIZE
    _, old_last = _copy_last(header, old)
    if header.size - old_last < SECTOR_SIZE:
        return MDA_HEADER_SIZE
    next_start = old_last + 1
    new_start = -(-next_start // SECTOR_SIZE) * SECTOR_SIZE
    if new_start > header.size - SECTOR_SIZE:
        return MDA_HEADER_SIZE
    return new_start


def _ranges(header: MdaHeader, offset: int, size: int, pad: bool):
    """Relative [start, end) byte ranges a copy occupies.

    The end is padded to a sector boundary when ``pad``.
    """
    wrap = max(0, offset + size - header.size)

    def end(x):
        return -(-x // SECTOR_SIZE) * SECTOR_SIZE if pad else x
    if wrap:
        return [(offset, header.size),
                (MDA_HEADER_SIZE, end(MDA_HEADER_SIZE + wrap))]
    return [(offset, end(offset + size))]


def plan_text_write(header: MdaHeader, new_text: bytes,
                    device: str = "<buffer>") -> TextWrite:
    """Plan where and how to write ``new_text`` into the circular buffer.

    Pure: no I/O.  Follows lvm2's ``_vg_write_raw``: the copy (text plus a
    NUL) starts after the committed copy, sector aligned, wraps to the
    buffer start if needed, must not exceed :func:`max_text_size` and
    never overlaps the committed copy (including the zero padding of its
    last sector).  ``LvmMetadataError`` if it does not fit.
    """
    new_text = bytes(new_text)
    if b"\0" in new_text:
        raise _mda_error(device, header.start, "metadata text",
                         "text without NUL bytes", "a NUL byte at %d"
                         % new_text.index(b"\0"))
    if header.start % SECTOR_SIZE or header.size % SECTOR_SIZE:
        raise _mda_error(device, header.start, "metadata area",
                         "sector aligned start and size",
                         "start %d size %d" % (header.start, header.size))
    if header.ignored:
        raise _mda_error(device, header.start, "metadata area",
                         "an area in use", "an ignored area")
    data = new_text + b"\0"
    new_size = len(data)
    limit = max_text_size(header)
    if new_size > limit:
        raise _mda_error(device, header.start, "metadata text size",
                         "<= %d bytes" % limit, "%d bytes" % new_size)
    new_start = next_text_offset(header)
    new_ranges = _ranges(header, new_start, new_size, pad=True)
    old = header.committed
    if old is not None:
        for a0, a1 in new_ranges:
            for b0, b1 in _ranges(header, old.offset, old.size, pad=False):
                if a0 < b1 and b0 < a1:
                    raise _mda_error(
                        device, header.start + new_start,
                        "metadata circular buffer",
                        "room for %d bytes beside the committed copy"
                        % new_size,
                        "overlap with the copy at %d (%d bytes)"
                        % (old.offset, old.size))
    checksum = lvm_crc(data)
    writes = []
    pos = 0
    for r0, r1 in new_ranges:
        chunk = data[pos:pos + (r1 - r0)]
        pos += len(chunk)
        chunk = chunk + bytes(r1 - r0 - len(chunk))
        writes.append((header.start + r0, chunk))
    return TextWrite(mda_start=header.start,
                     rlocn=RawLocn(new_start, new_size, checksum, 0),
                     writes=tuple(writes))


def precommit_header(header: MdaHeader, rlocn: RawLocn) -> MdaHeader:
    """lvm2's vg_precommit: slot 0 keeps the committed copy, slot 1 = new."""
    slot0 = header.raw_locns[0] if header.raw_locns else EMPTY_RAW_LOCN
    new = dataclasses.replace(rlocn, flags=0)
    return dataclasses.replace(header, raw_locns=(slot0, new))


def commit_header(header: MdaHeader, rlocn: RawLocn) -> MdaHeader:
    """lvm2's vg_commit: slot 0 = new, slot 1 cleared.

    Slot 0 keeps its "ignored" flag.  Writing this sector is the atomic
    commit point.
    """
    slot0 = header.raw_locns[0] if header.raw_locns else EMPTY_RAW_LOCN
    new = dataclasses.replace(rlocn, flags=slot0.flags & RAW_LOCN_IGNORED)
    return dataclasses.replace(header, raw_locns=(new,))


# --- a whole PV ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MdaState:
    """One metadata area as found: header and the texts it points to.

    Texts are without their NUL.  ``precommitted_text`` is set only when
    slot 1 points somewhere else than slot 0 (lvm2's rule).  A slot 1
    whose text fails its checksum (a writer interrupted after the
    precommit and before the text was rewritten) is not fatal: the text
    is None and ``precommit_error`` says why.  A bad committed copy is
    always an error.
    """

    locn: DiskLocn
    header: MdaHeader
    committed_text: Optional[bytes]
    precommitted_text: Optional[bytes] = None
    precommit_error: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class PvOnDisk:
    """The LVM2 state of one PV: its label and every metadata area."""

    label: Label
    mdas: tuple[MdaState, ...]

    @property
    def committed_text(self) -> Optional[bytes]:
        """The committed text of the first metadata area that has one."""
        for mda in self.mdas:
            if mda.committed_text is not None:
                return mda.committed_text
        return None


def read_mda(device, locn: DiskLocn) -> MdaState:
    """Read one metadata area (header + its texts) from a Device."""
    name = getattr(device, "path", "<device>")
    header = parse_mda_header(device.read(locn.offset, MDA_HEADER_SIZE),
                              locn.offset, device=name, area_size=locn.size)
    committed = precommitted = precommit_error = None
    if header.committed is not None:
        committed = read_text(header, device.read, 0, device=name)
    pre = header.precommitted
    if pre is not None and (header.committed is None
                            or pre.offset != header.committed.offset):
        try:
            precommitted = read_text(header, device.read, 1, device=name)
        except exception.LvmMetadataError as exc:
            precommit_error = str(exc)
    return MdaState(locn=locn, header=header, committed_text=committed,
                    precommitted_text=precommitted,
                    precommit_error=precommit_error)


def read_pv(device) -> PvOnDisk:
    """Read the label, every mda header and their texts from a Device.

    Reads 2048 bytes (label scan area), then for each metadata area 512
    bytes of header plus the text copies: the amount read does not depend
    on the size of the device.
    """
    name = getattr(device, "path", "<device>")
    label = parse_label(device.read(0, LABEL_SCAN_SIZE), device=name)
    size = getattr(device, "size", None)
    for locn in label.metadata_areas:
        if (locn.size < 2 * MDA_HEADER_SIZE
                or (size is not None and locn.offset + locn.size > size)):
            raise _label_error(name, label.offset, "pv_header metadata area",
                               "an area of >= 1024 bytes inside the device"
                               " (%s bytes)" % size,
                               "offset %d size %d" % (locn.offset, locn.size))
    mdas = tuple(read_mda(device, locn) for locn in label.metadata_areas)
    return PvOnDisk(label=label, mdas=mdas)
