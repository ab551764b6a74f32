"""The MGT LV: SM's SR metadata ("XSSM" v1.2), parsed and rendered.

Pure code: bytes in, frozen dataclasses out, bytes out.  The layout is the one
``LVMMetadataHandler`` (xapi-project/sm ``srmetadata.py``) writes:

* sector 0: ``XSSM:<length, left-justified in 10>:1:2``, space padded;
* sector 1: ``<?xml version="1.0" ?>`` then
  ``<uuid>..</uuid><allocation>..</allocation>``;
* sector 2: ``<name_label>..</name_label>``; sector 3:
  ``<name_description>..</name_description>`` (each cut to fit its sector);
* from byte 2048, one 1024-byte record per VDI slot: sector A
  ``<vdi><name_label>..</name_label><name_description>..</name_description>``,
  sector B ``<key>value</key>``... ``</vdi>``;
* every sector is padded with spaces; ``length`` in the header counts the
  bytes in use (``2048 + 1024 * slots``), deleted slots included.

Only labels and descriptions are XML-escaped (``&``, ``<``, ``>``), as SM does;
other values are written raw, so values that would break the XML are refused.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, Mapping, Union

from nova_xenapi_resign import exception

SECTOR_SIZE = 512
HDR_STRING = "XSSM"
MD_MAJOR = 1
MD_MINOR = 2
MAX_METADATA_LENGTH_SIZE = 10
XML_HEADER = b'<?xml version="1.0" ?>'
SR_INFO_SIZE = 4 * SECTOR_SIZE          # header + 3 SR info sectors
VDI_RECORD_SIZE = 2 * SECTOR_SIZE       # LVMMetadataHandler
#: Largest ``len(label) + len(description)`` (escaped, UTF-8) in sector A.
MAX_VDI_NAME_LABEL_DESC_LENGTH = (SECTOR_SIZE - 2 * len("name_label")
                                  - 2 * len("name_description")
                                  - len("vdi") - 12)
assert MAX_VDI_NAME_LABEL_DESC_LENGTH == 445

NAME_LABEL = "name_label"
NAME_DESCRIPTION = "name_description"
UUID = "uuid"
ALLOCATION = "allocation"
DELETED = "deleted"
IS_A_SNAPSHOT = "is_a_snapshot"
SNAPSHOT_OF = "snapshot_of"
SNAPSHOT_TIME = "snapshot_time"
TYPE = "type"
VDI_TYPE = "vdi_type"
READ_ONLY = "read_only"
MANAGED = "managed"
METADATA_OF_POOL = "metadata_of_pool"
OFFSET = "offset"       # synthetic key added by SM's reader; never written

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
# Characters XML 1.0 forbids in text: the complement of its Char production
# (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF])
# within Python's code points.  Spelled as the few forbidden ranges, not as a
# negated class of the allowed ones, whose compile took ~5 ms of every start.
_XML_BAD_RE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _error(device, structure, offset, expected, found):
    return exception.SrMetadataError(device=device, structure=structure,
                                     offset=offset, expected=expected,
                                     found=found)


# --- models ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SrInfo:
    """SR information in sectors 1-3."""

    uuid: str
    allocation: str | None = "thick"
    name_label: str = ""
    name_description: str = ""


@dataclasses.dataclass(frozen=True)
class VdiRecord:
    """One 1024-byte VDI slot.

    ``fields`` keeps every key in order.  It is normalised on construction:
    ``name_label`` and ``name_description`` first (they live in sector A),
    ``deleted`` present (SM adds ``0`` when missing), no synthetic ``offset``.
    """

    slot: int
    fields: tuple

    def __post_init__(self):
        items = [(str(k), str(v)) for k, v in
                 (self.fields.items() if isinstance(self.fields, Mapping)
                  else self.fields)]
        seen = set()
        for key, _ in items:
            if key in seen:
                raise exception.InvalidInput(
                    reason="VDI record slot %s has key %r twice"
                           % (self.slot, key))
            seen.add(key)
        values = dict(items)
        head = [(NAME_LABEL, values.get(NAME_LABEL, "")),
                (NAME_DESCRIPTION, values.get(NAME_DESCRIPTION, ""))]
        rest = [(k, v) for k, v in items
                if k not in (NAME_LABEL, NAME_DESCRIPTION, OFFSET)]
        if DELETED not in values:
            rest.append((DELETED, "0"))
        object.__setattr__(self, "fields", tuple(head + rest))

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.fields:
            if k == key:
                return v
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def replace(self, **values: str) -> "VdiRecord":
        """A copy with some values changed (new keys are appended)."""
        fields = [(k, values.pop(k, v)) for k, v in self.fields]
        fields.extend(values.items())
        return VdiRecord(self.slot, tuple(fields))

    @property
    def offset(self) -> int:
        return SR_INFO_SIZE + VDI_RECORD_SIZE * self.slot

    @property
    def uuid(self) -> str | None:
        return self.get(UUID)

    @property
    def name_label(self) -> str:
        return self.get(NAME_LABEL, "")

    @property
    def name_description(self) -> str:
        return self.get(NAME_DESCRIPTION, "")

    @property
    def is_a_snapshot(self) -> bool:
        return _flag(self.get(IS_A_SNAPSHOT))

    @property
    def snapshot_of(self) -> str:
        return self.get(SNAPSHOT_OF, "")

    @property
    def snapshot_time(self) -> str:
        return self.get(SNAPSHOT_TIME, "")

    @property
    def type(self) -> str | None:
        return self.get(TYPE)

    @property
    def vdi_type(self) -> str | None:
        return self.get(VDI_TYPE)

    @property
    def read_only(self) -> bool:
        return _flag(self.get(READ_ONLY))

    @property
    def managed(self) -> bool:
        return _flag(self.get(MANAGED))

    @property
    def metadata_of_pool(self) -> str:
        return self.get(METADATA_OF_POOL, "")

    @property
    def deleted(self) -> bool:
        return self.get(DELETED) == "1"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true")


@dataclasses.dataclass(frozen=True)
class SrMetadata:
    """A parsed MGT volume.

    ``length`` is the header's count of bytes in use; it defaults to (and
    must equal) ``2048 + 1024 * len(records)``.  ``records`` are every slot,
    deleted ones included, in slot order ``0..n-1``.
    """

    header_version: tuple = (MD_MAJOR, MD_MINOR)
    length: int | None = None
    sr_info: SrInfo = SrInfo(uuid="")
    records: tuple = ()

    def __post_init__(self):
        records = tuple(sorted(self.records, key=lambda r: r.slot))
        object.__setattr__(self, "records", records)
        for i, record in enumerate(records):
            if record.slot != i:
                raise exception.InvalidInput(
                    reason="VDI slots must be 0..%d without gaps, got %s"
                           % (len(records) - 1, [r.slot for r in records]))
        expected = SR_INFO_SIZE + VDI_RECORD_SIZE * len(records)
        if self.length is None:
            object.__setattr__(self, "length", expected)
        elif self.length != expected:
            raise exception.InvalidInput(
                reason="length %r does not match %d slots (%d)"
                       % (self.length, len(records), expected))
        object.__setattr__(self, "header_version",
                           tuple(self.header_version))

    @property
    def live_records(self) -> tuple:
        """Records SM reports: the ones not marked deleted."""
        return tuple(r for r in self.records if not r.deleted)

    def record(self, vdi_uuid: str) -> VdiRecord | None:
        for r in self.live_records:
            if r.uuid == vdi_uuid:
                return r
        return None


def vdi_record(slot: int, uuid: str, *, name_label: str = "",
               name_description: str = "", is_a_snapshot: bool = False,
               snapshot_of: str = "", snapshot_time: str = "",
               type: str = "user", vdi_type: str = "vhd",
               read_only: bool = False, managed: bool = True,
               metadata_of_pool: str = "", deleted: bool = False,
               **extra: str) -> VdiRecord:
    """A record with the keys LVHDSR writes, in its order."""
    fields = [(NAME_LABEL, name_label), (NAME_DESCRIPTION, name_description),
              (UUID, uuid), (IS_A_SNAPSHOT, "1" if is_a_snapshot else "0"),
              (SNAPSHOT_OF, snapshot_of), (SNAPSHOT_TIME, snapshot_time),
              (TYPE, type), (VDI_TYPE, vdi_type),
              (READ_ONLY, "1" if read_only else "0"),
              (MANAGED, "1" if managed else "0"),
              (METADATA_OF_POOL, metadata_of_pool)]
    fields.extend(extra.items())
    fields.append((DELETED, "1" if deleted else "0"))
    return VdiRecord(slot, tuple(fields))


# --- XML fragments -----------------------------------------------------------

def escape(text: str) -> str:
    """``xml.sax.saxutils.escape`` without entities: ``&``, ``<``, ``>``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9A-Fa-f]+|[A-Za-z]+);")


def unescape(text: str, device="<buffer>", offset: int | str = "?") -> str:
    def sub(match):
        name = match.group(1)
        if name.startswith("#"):
            try:
                if name[1:2] == "x":
                    code = int(name[2:], 16)
                else:
                    code = int(name[1:])
                return chr(code)
            except (ValueError, OverflowError):
                pass
        elif name in _ENTITIES:
            return _ENTITIES[name]
        raise _error(device, "MGT XML entity", offset, "a known entity",
                     match.group(0))
    out = _ENTITY_RE.sub(sub, text)
    if "&" in _ENTITY_RE.sub("", text):
        raise _error(device, "MGT XML text", offset, "& only in entities",
                     text[:64])
    return out


def _truncate_utf8(text: str, limit: int) -> str:
    """Cut escaped ``text`` to at most ``limit`` UTF-8 bytes.

    The cut falls on a character boundary (``util.unictrunc``) and never
    inside an entity such as ``&amp;``.
    """
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[:limit].decode("utf-8", "ignore")
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut


def _check_name(key: str, structure: str, offset: int, device: str):
    if not _NAME_RE.match(key) or key.lower().startswith("xml"):
        raise _error(device, structure, offset, "an XML element name", key)


def _check_text(value: str, structure: str, offset: int, device: str,
                raw: bool):
    bad = _XML_BAD_RE.search(value)
    if bad:
        raise _error(device, structure, offset,
                     "characters XML can carry", repr(bad.group(0)))
    if raw and ("<" in value or "&" in value):
        raise _error(device, structure, offset,
                     "a value without '<' or '&' (written unescaped)",
                     value[:64])


def _element(tag: str, value: str) -> bytes:
    return ("<%s>%s</%s>" % (tag, value, tag)).encode("utf-8")


def _sector(data: bytes, device: str, structure: str, offset: int) -> bytes:
    if len(data) > SECTOR_SIZE:
        raise _error(device, structure, offset, "at most 512 bytes",
                     "%d bytes" % len(data))
    return data + b" " * (SECTOR_SIZE - len(data))


def _label_sector(tag: str, value: str, device: str, offset: int) -> bytes:
    _check_text(value, "SR " + tag, offset, device, raw=False)
    escaped = _truncate_utf8(escape(value), SECTOR_SIZE - 2 * len(tag) - 5)
    return _sector(_element(tag, escaped), device, "SR " + tag, offset)


# --- rendering ---------------------------------------------------------------

def render_header(length: int, version: tuple = (MD_MAJOR, MD_MINOR)) -> bytes:
    """Sector 0: ``XSSM:<length>:<major>:<minor>`` padded with spaces."""
    text = "%s:%-*s:%d:%d" % (HDR_STRING, MAX_METADATA_LENGTH_SIZE, length,
                              version[0], version[1])
    return _sector(text.encode("ascii"), "<buffer>", "MGT header", 0)


def render_sr_info(info: SrInfo, device: str = "<buffer>") -> bytes:
    """Sectors 1-3 (1536 bytes)."""
    s1 = XML_HEADER
    for tag, value in ((UUID, info.uuid), (ALLOCATION, info.allocation)):
        if value is None:
            continue
        _check_text(value, "SR " + tag, SECTOR_SIZE, device, raw=True)
        s1 += _element(tag, value)
    return (_sector(s1, device, "SR info sector 1", SECTOR_SIZE)
            + _label_sector(NAME_LABEL, info.name_label, device,
                            2 * SECTOR_SIZE)
            + _label_sector(NAME_DESCRIPTION, info.name_description, device,
                            3 * SECTOR_SIZE))


def render_record(record: VdiRecord, device: str = "<buffer>") -> bytes:
    """One 1024-byte VDI slot, as ``LVMMetadataHandler.getVdiInfo``."""
    offset = record.offset
    structure = "VDI record %d" % record.slot
    label, desc = record.name_label, record.name_description
    _check_text(label, structure + " name_label", offset, device, raw=False)
    _check_text(desc, structure + " name_description", offset, device,
                raw=False)
    label, desc = escape(label), escape(desc)
    if (len(label.encode("utf-8")) + len(desc.encode("utf-8"))
            > MAX_VDI_NAME_LABEL_DESC_LENGTH):
        limit = MAX_VDI_NAME_LABEL_DESC_LENGTH // 2
        label = _truncate_utf8(label, limit)
        desc = _truncate_utf8(desc, limit)
    sector_a = (b"<vdi>" + _element(NAME_LABEL, label)
                + _element(NAME_DESCRIPTION, desc))
    sector_b = b""
    for key, value in record.fields:
        if key in (NAME_LABEL, NAME_DESCRIPTION, OFFSET):
            continue
        _check_name(key, structure + " key", offset + SECTOR_SIZE, device)
        _check_text(value, "%s %s" % (structure, key), offset + SECTOR_SIZE,
                    device, raw=True)
        sector_b += _element(key, value)
    sector_b += b"</vdi>"
    return (_sector(sector_a, device, structure + " sector A", offset)
            + _sector(sector_b, device, structure + " sector B",
                      offset + SECTOR_SIZE))


def render(md: SrMetadata, device: str = "<buffer>") -> bytes:
    """The bytes in use (``md.length``): header, SR info, every slot."""
    return (render_header(md.length, md.header_version)
            + render_sr_info(md.sr_info, device)
            + b"".join(render_record(r, device) for r in md.records))


def make_metadata(sr_info: SrInfo, records: Iterable = ()) -> SrMetadata:
    """An :class:`SrMetadata` for ``sr_info`` and ``records``.

    ``records`` are VdiRecords or mappings, numbered into consecutive slots
    in the given order.
    """
    out = []
    for slot, rec in enumerate(records):
        if isinstance(rec, VdiRecord):
            out.append(VdiRecord(slot, rec.fields))
        else:
            out.append(VdiRecord(slot, tuple(dict(rec).items())))
    return SrMetadata(sr_info=sr_info, records=tuple(out))


# --- parsing -----------------------------------------------------------------

_TOKEN_RE = re.compile(
    rb"\s*(?:<([A-Za-z_][A-Za-z0-9_.-]*)>([^<]*)</([A-Za-z_][A-Za-z0-9_.-]*)>"
    rb"|<([A-Za-z_][A-Za-z0-9_.-]*)\s*/>)")
_BLANKS_RE = re.compile(rb"[ \t\r\n]*")


def _elements(data: bytes, device: str, structure: str, base: int) -> list:
    """``[(key, value)]`` from a run of flat ``<k>v</k>`` elements."""
    out = []
    pos = 0
    while True:
        # SM pads every sector with spaces: skip a run in one step.
        pos = _BLANKS_RE.match(data, pos).end()  # type: ignore[union-attr]
        if pos == len(data):
            return out
        match = _TOKEN_RE.match(data, pos)
        if not match:
            raise _error(device, structure, base + pos,
                         "a <key>value</key> element", data[pos:pos + 40])
        if match.group(4) is not None:
            key, raw = match.group(4), b""
        else:
            key, raw = match.group(1), match.group(2)
            if match.group(3) != key:
                raise _error(device, structure, base + pos,
                             "</%s>" % key.decode("ascii"),
                             "</%s>" % match.group(3).decode("ascii"))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error(device, structure, base + pos, "UTF-8 text",
                         str(exc))
        out.append((key.decode("ascii"),
                    unescape(text, device, base + pos)))
        pos = match.end()


def parse_header(buf: bytes, device: str = "<buffer>") -> tuple:
    """``(length, (major, minor))`` from sector 0."""
    sector = bytes(buf[:SECTOR_SIZE])
    if len(sector) < SECTOR_SIZE:
        raise _error(device, "MGT header", 0, "512 bytes",
                     "%d bytes" % len(sector))
    text = sector.replace(b"\x00", b"").strip()
    if not text:
        raise _error(device, "MGT header", 0, "XSSM:<length>:1:2",
                     "an empty header")
    fields = text.split(b":")
    if len(fields) != 4 or fields[0] != HDR_STRING.encode("ascii"):
        raise _error(device, "MGT header", 0, "XSSM:<length>:1:2",
                     text[:40])
    try:
        length, major, minor = (int(f.decode("ascii").strip(), 10)
                                for f in fields[1:])
    except (ValueError, UnicodeDecodeError):
        raise _error(device, "MGT header", 0, "decimal numbers", text[:40])
    return length, (major, minor)


def parse(buf: bytes, device: str = "<buffer>") -> SrMetadata:
    """Parse an MGT volume (or at least its first ``length`` bytes).

    NULs are ignored as SM's reader does; spaces between elements too.
    Unknown SR info keys, missing ``<vdi>`` wrappers, bad XML, and a
    ``length`` that is not ``2048 + 1024 * n`` within ``buf`` raise
    :class:`SrMetadataError`.
    """
    buf = bytes(buf)
    length, version = parse_header(buf, device)
    if (length < SR_INFO_SIZE or (length - SR_INFO_SIZE) % VDI_RECORD_SIZE
            or length > len(buf)):
        raise _error(device, "MGT header length", 0,
                     "2048 + 1024 * n within %d bytes" % len(buf), length)
    sr_info = _parse_sr_info(buf, device)
    records = []
    for slot, offset in enumerate(range(SR_INFO_SIZE, length,
                                        VDI_RECORD_SIZE)):
        records.append(_parse_record(buf[offset:offset + VDI_RECORD_SIZE],
                                     slot, offset, device))
    try:
        return SrMetadata(header_version=version, length=length,
                          sr_info=sr_info, records=tuple(records))
    except exception.InvalidInput as exc:   # pragma: no cover - defensive
        raise _error(device, "MGT", 0, "consistent metadata", exc.msg)


def _parse_sr_info(buf: bytes, device: str) -> SrInfo:
    s1 = buf[SECTOR_SIZE:2 * SECTOR_SIZE].replace(b"\x00", b"").lstrip()
    if not s1.startswith(XML_HEADER):
        raise _error(device, "SR info sector 1", SECTOR_SIZE,
                     XML_HEADER, s1[:len(XML_HEADER)])
    values = {}
    chunks = ((SECTOR_SIZE, s1[len(XML_HEADER):]),
              (2 * SECTOR_SIZE, buf[2 * SECTOR_SIZE:3 * SECTOR_SIZE]),
              (3 * SECTOR_SIZE, buf[3 * SECTOR_SIZE:SR_INFO_SIZE]))
    for base, chunk in chunks:
        for key, value in _elements(chunk.replace(b"\x00", b""), device,
                                    "SR info", base):
            if key not in (UUID, ALLOCATION, NAME_LABEL, NAME_DESCRIPTION):
                raise _error(device, "SR info", base,
                             "uuid, allocation, name_label, "
                             "name_description", key)
            if key in values:
                raise _error(device, "SR info", base, "one <%s>" % key,
                             "a second one")
            values[key] = value
    if UUID not in values:
        raise _error(device, "SR info", SECTOR_SIZE, "<uuid>", "none")
    return SrInfo(uuid=values[UUID], allocation=values.get(ALLOCATION),
                  name_label=values.get(NAME_LABEL, ""),
                  name_description=values.get(NAME_DESCRIPTION, ""))


def _parse_record(chunk: bytes, slot: int, offset: int,
                  device: str) -> VdiRecord:
    structure = "VDI record %d" % slot
    data = chunk.replace(b"\x00", b"")
    stripped = data.strip()
    if not stripped.startswith(b"<vdi>") or not stripped.endswith(b"</vdi>"):
        raise _error(device, structure, offset, "<vdi>...</vdi>",
                     stripped[:40])
    inner = stripped[len(b"<vdi>"):-len(b"</vdi>")]
    fields = _elements(inner, device, structure, offset)
    keys = [k for k, _ in fields]
    if len(set(keys)) != len(keys):
        raise _error(device, structure, offset, "each key once", keys)
    if UUID not in keys:
        raise _error(device, structure, offset, "a <uuid>", "none")
    return VdiRecord(slot, tuple(fields))


# --- resign ------------------------------------------------------------------

UuidMap = Union[Mapping[str, str], Callable[[str], str]]


def reidentify(md: SrMetadata, *, sr_uuid: str, vdi_uuids: UuidMap,
               device: str = "<buffer>") -> SrMetadata:
    """``md`` with a new SR uuid and every VDI ``uuid``/``snapshot_of`` mapped.

    ``vdi_uuids`` maps old to new uuids (a mapping or a callable).  Every
    uuid of a live record, and every non-empty ``snapshot_of``, must be
    mapped (:class:`SrMetadataError` otherwise).  Deleted slots are mapped
    where the map knows their uuids and left as they are otherwise (SM
    ignores them).  Nothing else changes.
    """
    if callable(vdi_uuids):
        lookup = vdi_uuids
    else:
        mapping = dict(vdi_uuids)

        def lookup(old):
            return mapping[old]

    def mapped(record, key, value):
        if value == "":
            return value
        try:
            new = lookup(value)
        except KeyError:
            new = None
        if new is None:
            if record.deleted:
                return value
            raise _error(device, "VDI record %d %s" % (record.slot, key),
                         record.offset + SECTOR_SIZE,
                         "a uuid known to the resign map", value)
        return str(new)

    records = []
    for record in md.records:
        changes = {}
        if record.uuid is not None:
            changes[UUID] = mapped(record, UUID, record.uuid)
        if record.get(SNAPSHOT_OF) is not None:
            changes[SNAPSHOT_OF] = mapped(record, SNAPSHOT_OF,
                                          record.snapshot_of)
        records.append(record.replace(**changes))
    return dataclasses.replace(
        md, sr_info=dataclasses.replace(md.sr_info, uuid=str(sr_uuid)),
        records=tuple(records))
