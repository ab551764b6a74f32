"""VHD footer, dynamic-disk header and parent locators, as blktap writes them.

Pure code: bytes in, frozen dataclasses out, bytes out again.  Nothing here
opens a file or a device; callers hand in buffers (or a ``read(offset,
length)`` callable for locator payloads) and get back ``(offset, bytes)``
writes to perform.

Layout and rules follow blktap (``include/vhd.h``, ``vhd/lib/libvhd.c``):

* every multi-byte field is big-endian;
* the footer (512 bytes) is at the end of the VHD data, with a backup copy at
  byte 0 for dynamic and differencing disks; in LVHD the LV may be larger
  than the VHD, so the copy at 0 is the reliable one;
* the dynamic header (1024 bytes) is at ``footer.data_offset`` (512);
* a differencing disk names its parent in ``parent_name`` (UTF-16BE basename)
  and in parent locators: ``MacX`` (``file://<relpath>``, UTF-8), ``W2ku`` and
  ``W2ru`` (``.\\<relpath>`` with backslashes, UTF-16LE);
* ``data_space`` of a locator is in bytes when >= 512 (what blktap writes)
  and in sectors when < 512 (what the specification says).
"""

from __future__ import annotations

import dataclasses
import struct
import uuid as uuid_mod
from typing import Callable, Union

from nova_xenapi_resign import exception

SECTOR_SIZE = 512
FOOTER_SIZE = 512
HEADER_SIZE = 1024
BATMAP_HEADER_SIZE = 512

FOOTER_COOKIE = b"conectix"
POISON_COOKIE = b"v_poison"
HEADER_COOKIE = b"cxsparse"
BATMAP_COOKIE = b"tdbatmap"

FEATURES_RESERVED = 0x00000002
FILE_FORMAT_VERSION = 0x00010000
HEADER_VERSION = 0x00010000
NO_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
BAT_UNUSED = 0xFFFFFFFF

DISK_FIXED = 2
DISK_DYNAMIC = 3
DISK_DIFFERENCING = 4
DISK_TYPES = {DISK_FIXED: "fixed", DISK_DYNAMIC: "dynamic",
              DISK_DIFFERENCING: "differencing"}

DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
TAP_CREATOR = b"tap\x00"
TAP_VERSION = 0x00010003          # VHD_CURRENT_VERSION, blktap 1.3
BATMAP_VERSION = 0x00010002       # VHD_BATMAP_CURRENT_VERSION


def _code(text: str) -> int:
    return struct.unpack(">I", text.encode("ascii"))[0]


PLAT_CODE_NONE = 0
PLAT_CODE_WI2R = _code("Wi2r")
PLAT_CODE_WI2K = _code("Wi2k")
PLAT_CODE_W2RU = _code("W2ru")
PLAT_CODE_W2KU = _code("W2ku")
PLAT_CODE_MAC = _code("Mac ")
PLAT_CODE_MACX = _code("MacX")

PLATFORM_NAMES = {
    PLAT_CODE_NONE: "none", PLAT_CODE_WI2R: "Wi2r", PLAT_CODE_WI2K: "Wi2k",
    PLAT_CODE_W2RU: "W2ru", PLAT_CODE_W2KU: "W2ku", PLAT_CODE_MAC: "Mac ",
    PLAT_CODE_MACX: "MacX",
}
#: Locator codes whose payload blktap reads and writes.
PATH_LOCATOR_CODES = (PLAT_CODE_MACX, PLAT_CODE_W2KU, PLAT_CODE_W2RU)
#: What ``vhd_write_parent_locators`` puts in slots 0, 1, 2.
BLKTAP_LOCATOR_CODES = (PLAT_CODE_MACX, PLAT_CODE_W2KU, PLAT_CODE_W2RU)

NUM_LOCATORS = 8

_FOOTER = struct.Struct(">8sIIQI4sII QQ III 16s BB 426s".replace(" ", ""))
_HEADER = struct.Struct(">8sQQIII I 16s I I 512s 192s 256s".replace(" ", ""))
_LOCATOR = struct.Struct(">IIIIQ")
_BATMAP_HEADER = struct.Struct(">8sQIII B 483s".replace(" ", ""))

assert _FOOTER.size == FOOTER_SIZE
assert _HEADER.size == HEADER_SIZE
assert _LOCATOR.size * NUM_LOCATORS == 192
assert _BATMAP_HEADER.size == BATMAP_HEADER_SIZE

_FOOTER_CHECKSUM_AT = 64
_HEADER_CHECKSUM_AT = 36

UuidLike = Union[uuid_mod.UUID, bytes, str]
ReadFn = Callable[[int, int], bytes]


# --- helpers -----------------------------------------------------------------

def checksum(data: bytes, checksum_at: int) -> int:
    """VHD checksum: ones' complement of the byte sum, field zeroed."""
    total = sum(data) - sum(data[checksum_at:checksum_at + 4])
    return (~total) & 0xFFFFFFFF


def padded_size(length: int) -> int:
    """Round up to whole sectors, never zero (blktap ``vhd_bytes_padded``)."""
    return max(1, -(-length // SECTOR_SIZE)) * SECTOR_SIZE


def uuid_bytes(value: UuidLike, what: str) -> bytes:
    """``value`` (UUID, 16 bytes or text) as 16 bytes; InvalidInput else."""
    if isinstance(value, uuid_mod.UUID):
        return value.bytes
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 16:
            raise exception.InvalidInput(
                reason="%s must be 16 bytes, got %d" % (what, len(value)))
        return bytes(value)
    if isinstance(value, str):
        try:
            return uuid_mod.UUID(value).bytes
        except ValueError:
            raise exception.InvalidInput(
                reason="%s is not a UUID: %r" % (what, value))
    raise exception.InvalidInput(reason="%s has type %s"
                                 % (what, type(value).__name__))


def _error(device, structure, offset, expected, found):
    return exception.VhdFormatError(device=device, structure=structure,
                                    offset=offset, expected=expected,
                                    found=found)


def _at(offset, delta):
    """``offset + delta`` for a numeric offset, a label otherwise."""
    if isinstance(offset, int):
        return offset + delta
    return "%s+%d" % (offset, delta)


def _short(buf, need, device, structure, offset):
    if len(buf) < need:
        raise _error(device, structure, offset, "%d bytes" % need,
                     "%d bytes" % len(buf))


def chs_geometry(size: int) -> int:
    """CHS geometry word for ``size`` bytes (blktap ``vhd_chs``)."""
    secs = max(1, -(-size // SECTOR_SIZE))
    secs = min(secs, 65535 * 16 * 255)
    if secs >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = secs // spt
    else:
        spt = 17
        cth = secs // spt
        heads = max(4, (cth + 1023) // 1024)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = secs // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = secs // spt
    cylinders = cth // heads
    return (cylinders << 16) | (heads << 8) | spt


# --- footer ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Footer:
    """The 512-byte VHD footer (``struct hd_ftr``)."""

    data_offset: int
    current_size: int
    disk_type: int
    unique_id: bytes
    original_size: int = 0
    geometry: int = 0
    timestamp: int = 0
    creator_app: bytes = TAP_CREATOR
    creator_version: int = TAP_VERSION
    creator_os: int = 0
    features: int = FEATURES_RESERVED
    version: int = FILE_FORMAT_VERSION
    checksum: int = 0
    saved_state: int = 0
    hidden: int = 0
    reserved: bytes = bytes(426)
    cookie: bytes = FOOTER_COOKIE

    @property
    def uuid(self) -> uuid_mod.UUID:
        return uuid_mod.UUID(bytes=self.unique_id)

    @property
    def is_hidden(self) -> bool:
        return self.hidden != 0

    @property
    def is_dynamic(self) -> bool:
        """Dynamic or differencing: has a header and a copy at byte 0."""
        return self.disk_type in (DISK_DYNAMIC, DISK_DIFFERENCING)

    @property
    def is_differencing(self) -> bool:
        return self.disk_type == DISK_DIFFERENCING


def parse_footer(buf: bytes, device: str = "<buffer>",
                 offset: int = 0) -> Footer:
    """Parse and validate a footer from the first 512 bytes of ``buf``.

    ``device`` and ``offset`` (where ``buf`` was read) only label errors.
    """
    structure = "VHD footer"
    _short(buf, FOOTER_SIZE, device, structure, offset)
    raw = bytes(buf[:FOOTER_SIZE])
    (cookie, features, version, data_offset, timestamp, creator_app,
     creator_version, creator_os, original_size, current_size, geometry,
     disk_type, stored, unique_id, saved_state, hidden,
     reserved) = _FOOTER.unpack(raw)
    if cookie not in (FOOTER_COOKIE, POISON_COOKIE):
        raise _error(device, structure + " cookie", offset,
                     FOOTER_COOKIE, cookie)
    computed = checksum(raw, _FOOTER_CHECKSUM_AT)
    if computed != stored:
        # Old tapdisk (creator "tap" 0.1/1.1) set the hidden byte without
        # updating the checksum: blktap accepts the checksum of hidden=0.
        legacy = (hidden and creator_app[:3] == b"tap"
                  and creator_version in (0x00000001, 0x00010001)
                  and (computed + hidden) & 0xFFFFFFFF == stored)
        if not legacy:
            raise _error(device, structure + " checksum", _at(offset, 64),
                         "0x%08x" % computed, "0x%08x" % stored)
    if disk_type not in DISK_TYPES:
        raise _error(device, structure + " disk type", _at(offset, 60),
                     "2, 3 or 4", disk_type)
    if disk_type != DISK_FIXED and data_offset % SECTOR_SIZE:
        raise _error(device, structure + " data offset", _at(offset, 16),
                     "a sector-aligned header offset", data_offset)
    return Footer(cookie=cookie, features=features, version=version,
                  data_offset=data_offset, timestamp=timestamp,
                  creator_app=creator_app, creator_version=creator_version,
                  creator_os=creator_os, original_size=original_size,
                  current_size=current_size, geometry=geometry,
                  disk_type=disk_type, checksum=stored, unique_id=unique_id,
                  saved_state=saved_state, hidden=hidden, reserved=reserved)


def render_footer(footer: Footer) -> bytes:
    """Serialize ``footer`` (512 bytes), recomputing its checksum."""
    raw = _FOOTER.pack(
        footer.cookie, footer.features, footer.version, footer.data_offset,
        footer.timestamp, footer.creator_app, footer.creator_version,
        footer.creator_os, footer.original_size, footer.current_size,
        footer.geometry, footer.disk_type, 0, footer.unique_id,
        footer.saved_state, footer.hidden, footer.reserved)
    value = checksum(raw, _FOOTER_CHECKSUM_AT)
    return raw[:64] + struct.pack(">I", value) + raw[68:]


# --- dynamic header ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ParentLocator:
    """One of the 8 parent locator entries of the dynamic header."""

    code: int = PLAT_CODE_NONE
    data_space: int = 0
    data_length: int = 0
    data_offset: int = 0
    reserved: int = 0

    @property
    def platform(self) -> str:
        return PLATFORM_NAMES.get(self.code, "0x%08x" % self.code)

    @property
    def in_use(self) -> bool:
        return self.code != PLAT_CODE_NONE

    @property
    def is_path(self) -> bool:
        """A locator blktap reads and rewrites (MacX, W2ku, W2ru)."""
        return self.code in PATH_LOCATOR_CODES

    @property
    def space(self) -> int:
        """Bytes reserved for the payload (``vhd_parent_locator_size``).

        ``data_space`` below 512 counts sectors, otherwise bytes, which must
        then be a whole number of sectors; 0 means invalid.
        """
        if self.data_space < SECTOR_SIZE:
            return self.data_space * SECTOR_SIZE
        if self.data_space % SECTOR_SIZE == 0:
            return self.data_space
        return 0


@dataclasses.dataclass(frozen=True)
class DynamicHeader:
    """The 1024-byte dynamic/differencing disk header (``struct dd_hdr``)."""

    table_offset: int
    max_table_entries: int
    block_size: int = DEFAULT_BLOCK_SIZE
    parent_unique_id: bytes = bytes(16)
    parent_timestamp: int = 0
    parent_name_raw: bytes = bytes(512)
    locators: tuple = (ParentLocator(),) * NUM_LOCATORS
    checksum: int = 0
    data_offset: int = NO_DATA_OFFSET
    version: int = HEADER_VERSION
    reserved1: int = 0
    reserved2: bytes = bytes(256)
    cookie: bytes = HEADER_COOKIE

    @property
    def parent_uuid(self) -> uuid_mod.UUID:
        return uuid_mod.UUID(bytes=self.parent_unique_id)

    @property
    def parent_is_raw(self) -> bool:
        """blktap's ``vhd_parent_raw``: a nil parent uuid."""
        return self.parent_unique_id == bytes(16)

    @property
    def parent_name(self) -> str:
        """The parent's basename, decoded from UTF-16BE up to the first NUL."""
        return decode_parent_name(self.parent_name_raw)

    @property
    def bat_size(self) -> int:
        """Bytes of the BAT, padded to whole sectors."""
        return padded_size(self.max_table_entries * 4)

    def locator_slots(self) -> tuple:
        """``(index, locator)`` for every locator in use."""
        return tuple((i, loc) for i, loc in enumerate(self.locators)
                     if loc.in_use)


def decode_parent_name(raw: bytes, device: str = "<buffer>",
                       offset: int | str = "?") -> str:
    units = bytes(raw)
    end = len(units) - len(units) % 2
    # The first NUL code unit: a 00 00 pair at an even offset.
    nul = units.find(b"\x00\x00")
    while nul > 0 and nul % 2:
        nul = units.find(b"\x00\x00", nul + 1)
    if 0 <= nul < end:
        end = nul
    try:
        return units[:end].decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise _error(device, "VHD header parent name", offset,
                     "UTF-16BE text", str(exc))


def encode_parent_name(name: str) -> bytes:
    """UTF-16BE ``name`` zero-filled to the 512-byte header field."""
    try:
        data = name.encode("utf-16-be")
    except UnicodeEncodeError:
        raise exception.InvalidInput(
            reason="parent name %r cannot be encoded as UTF-16" % (name,))
    if len(data) > 512:
        raise exception.InvalidInput(
            reason="parent name %r is %d bytes in UTF-16BE; the header holds "
                   "512" % (name, len(data)))
    return data + bytes(512 - len(data))


def parse_header(buf: bytes, device: str = "<buffer>",
                 offset: int = 0) -> DynamicHeader:
    """Parse and validate a dynamic header from the first 1024 bytes.

    ``offset`` is where the header lives (``footer.data_offset``); it labels
    errors.
    """
    structure = "VHD header"
    _short(buf, HEADER_SIZE, device, structure, offset)
    raw = bytes(buf[:HEADER_SIZE])
    (cookie, data_offset, table_offset, version, max_entries, block_size,
     stored, parent_uid, parent_ts, reserved1, parent_name, locs,
     reserved2) = _HEADER.unpack(raw)
    if cookie != HEADER_COOKIE:
        raise _error(device, structure + " cookie", offset, HEADER_COOKIE,
                     cookie)
    if version != HEADER_VERSION:
        raise _error(device, structure + " version", _at(offset, 24),
                     "0x%08x" % HEADER_VERSION, "0x%08x" % version)
    if data_offset != NO_DATA_OFFSET:
        raise _error(device, structure + " data offset", _at(offset, 8),
                     "0x%016x" % NO_DATA_OFFSET, "0x%016x" % data_offset)
    locators = []
    for i in range(NUM_LOCATORS):
        code, space, length, res, loc_off = _LOCATOR.unpack_from(
            locs, i * _LOCATOR.size)
        if code not in PLATFORM_NAMES:
            raise _error(device, "%s parent locator %d code" % (structure, i),
                         _at(offset, 576 + i * 24), "a platform code",
                         "0x%08x" % code)
        locators.append(ParentLocator(code=code, data_space=space,
                                      data_length=length, data_offset=loc_off,
                                      reserved=res))
    computed = checksum(raw, _HEADER_CHECKSUM_AT)
    if computed != stored:
        raise _error(device, structure + " checksum", _at(offset, 36),
                     "0x%08x" % computed, "0x%08x" % stored)
    if block_size < SECTOR_SIZE or block_size & (block_size - 1):
        raise _error(device, structure + " block size", _at(offset, 32),
                     "a power of two >= 512", block_size)
    if table_offset % SECTOR_SIZE:
        raise _error(device, structure + " table offset", _at(offset, 16),
                     "a sector-aligned offset", table_offset)
    return DynamicHeader(cookie=cookie, data_offset=data_offset,
                         table_offset=table_offset, version=version,
                         max_table_entries=max_entries, block_size=block_size,
                         checksum=stored, parent_unique_id=parent_uid,
                         parent_timestamp=parent_ts, reserved1=reserved1,
                         parent_name_raw=parent_name,
                         locators=tuple(locators), reserved2=reserved2)


def render_header(header: DynamicHeader) -> bytes:
    """Serialize ``header`` (1024 bytes), recomputing its checksum."""
    if len(header.locators) != NUM_LOCATORS:
        raise exception.InvalidInput(reason="a VHD header has exactly 8 "
                                     "parent locators, got %d"
                                     % len(header.locators))
    locs = b"".join(_LOCATOR.pack(loc.code, loc.data_space, loc.data_length,
                                  loc.reserved, loc.data_offset)
                    for loc in header.locators)
    raw = _HEADER.pack(header.cookie, header.data_offset, header.table_offset,
                       header.version, header.max_table_entries,
                       header.block_size, 0, header.parent_unique_id,
                       header.parent_timestamp, header.reserved1,
                       header.parent_name_raw, locs, header.reserved2)
    value = checksum(raw, _HEADER_CHECKSUM_AT)
    return (raw[:_HEADER_CHECKSUM_AT] + struct.pack(">I", value)
            + raw[_HEADER_CHECKSUM_AT + 4:])


# --- parent locators ---------------------------------------------------------

def encode_locator(code: int, path: str) -> bytes:
    """The payload blktap writes for ``path`` (a relative or absolute path).

    MacX: ``file://`` + path, UTF-8.  W2ku/W2ru: a relative path loses a
    leading ``./`` and gets ``.\\`` instead, every ``/`` becomes ``\\``,
    UTF-16LE.  blktap converts from ASCII, so only ASCII paths are accepted.
    """
    if not path or "\x00" in path or not path.isascii():
        raise exception.InvalidInput(
            reason="parent path %r must be non-empty ASCII without NUL"
                   % (path,))
    if code == PLAT_CODE_MACX:
        return ("file://" + path).encode("utf-8")
    if code in (PLAT_CODE_W2KU, PLAT_CODE_W2RU):
        if not path.startswith("/"):
            rest = path[2:] if path.startswith("./") else path
            path = ".\\" + rest
        return path.replace("/", "\\").encode("utf-16-le")
    raise exception.InvalidInput(
        reason="blktap writes no payload for locator code %s"
               % PLATFORM_NAMES.get(code, "0x%08x" % code))


def decode_locator(locator: ParentLocator, payload: bytes,
                   device: str = "<buffer>", index: int | str = "?") -> str:
    """The parent path stored in ``payload`` (the bytes at data_offset).

    ``payload`` must hold at least ``data_length`` bytes.  MacX must start
    with ``file://``; W2* have ``\\`` turned into ``/`` and a ``C:`` prefix
    removed, as blktap's reader does.
    """
    structure = "VHD parent locator %s" % index
    if not locator.is_path:
        raise _error(device, structure + " code", locator.data_offset,
                     "MacX, W2ku or W2ru", locator.platform)
    space = locator.space
    if space <= 0:
        raise _error(device, structure + " data space", locator.data_offset,
                     "sectors (< 512) or a multiple of 512 bytes",
                     locator.data_space)
    if locator.data_length == 0 or locator.data_length > space:
        raise _error(device, structure + " data length", locator.data_offset,
                     "1..%d bytes" % space, locator.data_length)
    if len(payload) < locator.data_length:
        raise _error(device, structure + " payload", locator.data_offset,
                     "%d bytes" % locator.data_length,
                     "%d bytes" % len(payload))
    data = bytes(payload[:locator.data_length])
    try:
        if locator.code == PLAT_CODE_MACX:
            text = data.decode("utf-8")
            if not text.startswith("file://"):
                raise _error(device, structure + " payload",
                             locator.data_offset, "a file:// URL", text[:64])
            return text[len("file://"):]
        if len(data) % 2:
            raise _error(device, structure + " payload", locator.data_offset,
                         "an even number of UTF-16LE bytes", len(data))
        text = data.decode("utf-16-le").replace("\\", "/")
    except UnicodeDecodeError as exc:
        raise _error(device, structure + " payload", locator.data_offset,
                     "UTF-8 (MacX) or UTF-16LE (W2*) text", str(exc))
    if text[:2] in ("C:", "c:"):
        text = text[2:]
    return text


@dataclasses.dataclass(frozen=True)
class LocatorPath:
    """A decoded parent locator: its slot, entry and parent path."""

    index: int
    locator: ParentLocator
    path: str


def _reader(source, device) -> ReadFn:
    if callable(source):
        return source
    data = bytes(source)

    def read(offset, length):
        if offset < 0 or offset + length > len(data):
            raise _error(device, "VHD metadata region", offset,
                         "%d bytes within the %d bytes read"
                         % (length, len(data)), "a read past the end")
        return data[offset:offset + length]
    return read


def read_parent_locators(header: DynamicHeader, read,
                         device: str = "<buffer>") -> tuple:
    """Decode every MacX/W2ku/W2ru locator of ``header``.

    ``read`` is a ``read(offset, length) -> bytes`` callable over the LV (or
    the bytes of the LV from offset 0, e.g. the :func:`header_region`).
    Returns a tuple of :class:`LocatorPath`; other codes are skipped.
    """
    read = _reader(read, device)
    result = []
    for index, loc in header.locator_slots():
        if not loc.is_path:
            continue
        if loc.space <= 0:
            raise _error(device, "VHD parent locator %d data space" % index,
                         loc.data_offset, "sectors or whole-sector bytes",
                         loc.data_space)
        payload = read(loc.data_offset, loc.space)
        result.append(LocatorPath(index, loc,
                                  decode_locator(loc, payload, device, index)))
    return tuple(result)


# --- finding a VHD inside an LV ----------------------------------------------

#: Read this many bytes from the start of an LV to see footer copy + header.
INITIAL_READ = FOOTER_SIZE + HEADER_SIZE


@dataclasses.dataclass(frozen=True)
class LvVhd:
    """A VHD found at the start of an LVHD LV."""

    footer: Footer
    header: DynamicHeader
    #: True when a trailing footer was given and matched the copy at 0;
    #: False when it was given but is not a footer (a deflated LV);
    #: None when none was given.
    trailing_footer_ok: bool | None = None

    @property
    def region_end(self) -> int:
        return header_region(self.footer, self.header)


def header_region(footer: Footer, header: DynamicHeader,
                  device: str = "<buffer>") -> int:
    """``N`` such that ``[0, N)`` of the LV holds footer, header, locators.

    ``N`` is a whole number of sectors.  The BAT and batmap are not needed to
    rewrite parent links and are not included unless they lie in between.
    """
    end = max(FOOTER_SIZE, footer.data_offset + HEADER_SIZE)
    for index, loc in header.locator_slots():
        space = loc.space
        if space <= 0:
            raise _error(device, "VHD parent locator %d data space" % index,
                         loc.data_offset, "sectors or whole-sector bytes",
                         loc.data_space)
        end = max(end, loc.data_offset + space)
    return padded_size(end)


def parse_lv_start(buf: bytes, device: str = "<buffer>", *,
                   trailing: bytes | None = None,
                   trailing_offset: int | str = "end") -> LvVhd:
    """Find the VHD at the start of an LV from its first bytes.

    ``buf`` holds the LV from byte 0 and must cover the footer copy and the
    header (:data:`INITIAL_READ` bytes for blktap's layout).  When
    ``trailing`` (the last 512 bytes of the LV, or of the VHD data) is given,
    it is checked: a valid footer must describe the same disk as the copy at
    0; bytes that are not a footer at all (a deflated LV) are accepted and
    reported as ``trailing_footer_ok=False``.
    """
    footer = parse_footer(buf, device, 0)
    if not footer.is_dynamic:
        raise _error(device, "VHD footer disk type", 60,
                     "dynamic or differencing (a copy at byte 0)",
                     DISK_TYPES.get(footer.disk_type, footer.disk_type))
    _short(buf, footer.data_offset + HEADER_SIZE, device,
           "VHD header", footer.data_offset)
    header = parse_header(buf[footer.data_offset:], device,
                          footer.data_offset)
    ok = None
    if trailing is not None:
        ok = verify_trailing_footer(footer, trailing, device, trailing_offset)
    return LvVhd(footer, header, ok)


def verify_trailing_footer(copy: Footer, trailing: bytes,
                           device: str = "<buffer>",
                           offset: int | str = "end") -> bool:
    """Check the primary footer against the copy at byte 0.

    Returns False when ``trailing`` is not a footer (no cookie), True when it
    matches; raises :class:`VhdFormatError` when it is a footer of another
    disk or a corrupt one.
    """
    if bytes(trailing[:8]) not in (FOOTER_COOKIE, POISON_COOKIE):
        return False
    primary = parse_footer(trailing, device, offset)
    for field in ("unique_id", "disk_type", "current_size", "data_offset"):
        if getattr(primary, field) != getattr(copy, field):
            raise _error(device, "VHD trailing footer " + field, offset,
                         getattr(copy, field), getattr(primary, field))
    return True


def data_end(footer: Footer, header: DynamicHeader, read,
             device: str = "<buffer>") -> int:
    """Where the primary footer of a deflated VHD starts.

    blktap puts the footer right after the last byte of VHD data: the end
    of the BAT, of the batmap that follows it, of every parent locator and
    of every allocated block (bitmap + data), whichever lies furthest.
    """
    read = _reader(read, device)
    bat_end = header.table_offset + header.bat_size
    end = max(header_region(footer, header, device), bat_end)
    bat = read(header.table_offset, header.bat_size)
    bitmap = padded_size(-(-(header.block_size // SECTOR_SIZE) // 8))
    for (entry,) in struct.iter_unpack(
            ">I", bat[:header.max_table_entries * 4]):
        if entry != BAT_UNUSED:
            end = max(end, entry * SECTOR_SIZE + bitmap + header.block_size)
    batmap = read(bat_end, BATMAP_HEADER_SIZE)
    if batmap[:8] == BATMAP_COOKIE:
        _, offset, secs, _, _, _, _ = _BATMAP_HEADER.unpack(batmap)
        end = max(end, offset + secs * SECTOR_SIZE)
    return end


def check_primary_footer(copy: Footer, header: DynamicHeader, read,
                         size: int, device: str = "<buffer>") -> int:
    """Find and check the primary footer of the VHD in a ``size``-byte LV.

    An inflated LV ends with the footer; a deflated one has it at
    :func:`data_end`.  Returns the footer's offset; raises
    :class:`VhdFormatError` when neither place holds a footer matching the
    copy at byte 0 (blktap would refuse to open the VHD).
    """
    read = _reader(read, device)
    last = size - FOOTER_SIZE
    if verify_trailing_footer(copy, read(last, FOOTER_SIZE), device, last):
        return last
    end = data_end(copy, header, read, device)
    if end + FOOTER_SIZE <= size and verify_trailing_footer(
            copy, read(end, FOOTER_SIZE), device, end):
        return end
    raise _error(device, "VHD primary footer", end,
                 "a footer at the end of the VHD data (%d) or of the LV "
                 "(%d)" % (end, last), "no footer")


# --- rewriting a parent link -------------------------------------------------

def locator_path(new_parent: str) -> str:
    """The relative path blktap puts in locators for a parent name."""
    if new_parent.startswith(("./", "../", "/")):
        return new_parent
    return "./" + new_parent


def parent_basename(path: str) -> str:
    """The basename a header records for a locator path."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise exception.InvalidInput(reason="parent path %r has no basename"
                                     % (path,))
    return name


def _locator_rewrites(header: DynamicHeader, path: str, spans: list,
                      device: str) -> tuple[list, list]:
    """``(changes, locators)``: every path locator rewritten to ``path``.

    ``changes`` are ``(offset, payload)`` pairs, each payload zero-filled to
    its locator's whole data space; ``locators`` the header's locators with
    the new lengths.  Refuses a locator whose space is empty, overlaps one
    of ``spans`` (``(start, end, what)``, extended as locators are placed)
    or cannot hold the new payload.
    """
    changes = []
    locators = list(header.locators)
    for index, loc in header.locator_slots():
        if not loc.is_path:
            continue
        space = loc.space
        structure = "VHD parent locator %d" % index
        if space <= 0:
            raise _error(device, structure + " data space", loc.data_offset,
                         "sectors or whole-sector bytes", loc.data_space)
        start, end = loc.data_offset, loc.data_offset + space
        for other_start, other_end, what in spans:
            if start < other_end and other_start < end:
                raise _error(device, structure + " data offset",
                             loc.data_offset, "space clear of the " + what,
                             "[%d, %d) overlapping [%d, %d)"
                             % (start, end, other_start, other_end))
        spans.append((start, end, "locator %d" % index))
        payload = encode_locator(loc.code, path)
        if len(payload) > space:
            raise _error(device, structure + " data space", loc.data_offset,
                         "a payload of at most %d bytes" % space,
                         "%d bytes for %r" % (len(payload), path))
        changes.append((start, payload + bytes(space - len(payload))))
        locators[index] = dataclasses.replace(loc, data_length=len(payload))
    return changes, locators


def plan_parent_change(footer: Footer, header: DynamicHeader,
                       locator_payloads, new_parent_name: str,
                       new_parent_uuid: UuidLike | None = None,
                       device: str = "<buffer>") -> list:
    """Plan the writes that point a differencing VHD at a new parent.

    ``locator_payloads`` gives the current bytes of the LV: either the bytes
    from offset 0 covering :func:`header_region`, or a ``read(offset,
    length)`` callable.  ``new_parent_name`` is the parent's basename as blktap
    stores it (e.g. :func:`~nova_xenapi_resign.lvhd.naming.lvhd_parent_name`);
    the locators get the relative path ``./<name>`` (a name already starting
    with ``./``, ``../`` or ``/`` is used as is, its basename going to the
    header).

    Returns ``[(offset, bytes), ...]``: whole sectors, locator payloads first
    and the header (the commit) last.  Each locator keeps its offset and
    ``data_space``; its payload is zero-filled to the whole space.  Footer
    unique ids are not touched; the parent uuid changes only when
    ``new_parent_uuid`` is given.
    """
    if footer.disk_type != DISK_DIFFERENCING:
        raise _error(device, "VHD footer disk type", 60,
                     "differencing (4)", footer.disk_type)
    read = _reader(locator_payloads, device)
    path = locator_path(new_parent_name)
    name_raw = encode_parent_name(parent_basename(path))
    for code in PATH_LOCATOR_CODES:
        encode_locator(code, path)      # refuse a bad name before anything
    header_start = footer.data_offset
    changes, locators = _locator_rewrites(
        header, path, [(0, FOOTER_SIZE, "footer copy"),
                       (header_start, header_start + HEADER_SIZE, "header")],
        device)

    new_header = dataclasses.replace(
        header, parent_name_raw=name_raw,
        locators=tuple(locators))
    if new_parent_uuid is not None:
        new_header = dataclasses.replace(
            new_header, parent_unique_id=uuid_bytes(new_parent_uuid,
                                                    "new parent uuid"))
    changes.append((header_start, render_header(new_header)))
    return [_sector_write(read, offset, data) for offset, data in changes]


def _sector_write(read: ReadFn, offset: int, data: bytes):
    """Widen a write to whole sectors, filling the edges from ``read``."""
    start = offset - offset % SECTOR_SIZE
    end = (padded_size(offset + len(data)) if offset + len(data)
           else SECTOR_SIZE)
    if start == offset and end == offset + len(data):
        return (offset, bytes(data))
    current = bytearray(read(start, end - start))
    if len(current) != end - start:
        raise _error("<buffer>", "VHD metadata region", start,
                     "%d bytes" % (end - start), "%d bytes" % len(current))
    current[offset - start:offset - start + len(data)] = data
    return (start, bytes(current))


# --- bitmap (batmap) --------------------------------------------------------

def batmap_checksum(data: bytes) -> int:
    return (~sum(data)) & 0xFFFFFFFF


def render_batmap_header(batmap_offset: int, batmap_sectors: int,
                         batmap: bytes) -> bytes:
    """The 512-byte batmap header blktap writes before the batmap."""
    return _BATMAP_HEADER.pack(BATMAP_COOKIE, batmap_offset, batmap_sectors,
                               BATMAP_VERSION, batmap_checksum(batmap), 0,
                               bytes(483))
