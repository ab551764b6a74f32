"""Format a LUN as an LVHD SR, in pure Python (no LVM tools).

This is what XenServer's ``SR.create`` for ``lvmoiscsi`` leaves on a LUN
(``pvcreate`` + ``vgcreate VG_XenStorage-<sr>`` + an ``MGT`` LV), plus any
number of VDIs: ``VHD-<uuid>`` LVs holding empty dynamic or differencing
VHDs (children name their parent the way blktap does), and ``LV-<uuid>`` raw
LVs.  The embedded XAPI uses it for ``SR.create`` and the demo uses it to
make LUN images on machines without LVM; :func:`format_sr` takes any VDI
list, so a LUN holding a single VHD VDI (the VDI-per-LUN layout) is one
call with one :class:`VdiSpec`.

The layout follows lvm2 2.03: the label in sector 1 with one data area
(pe_start, size 0) and one metadata area at 4096; the metadata area ends on
a 1 MiB boundary, which is pe_start; the committed text (seqno 1) is the
first copy in the circular buffer, in the on-disk "raw" form lvm2 writes,
rendered by :mod:`~nova_xenapi_resign.lvhd.libdm_config`.  LVs are
allocated one after another from extent 0, ``MGT`` first, in the order of
the VDI list.

Everything is deterministic: LVM ids come from
:func:`~nova_xenapi_resign.lvhd.lvm_id.derive_lvm_id`, VHD unique ids from
:func:`footer_uuid`, times are parameters; the same call on two blank
devices of the same size gives byte-identical images.

Planning (:func:`plan_format`) is pure and checks everything first: it
returns every byte to write, already grouped in the order that is safe
(see :class:`FormatPlan`).  :func:`apply_plan` is the one writer: it
performs the groups in that order with an fsync after each, so a refusal
writes nothing and an interruption never leaves a label in front of
metadata that is not on the disk yet.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import uuid as uuid_mod
from typing import Iterable, Sequence

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lvhd import libdm_config
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import srmetadata
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign.lvhd import vhd

SECTOR = 512
KIB = 1024
MIB = 1024 * 1024

MDA_START = 4096                  # lvm2: LABEL_SCAN_SIZE rounded to a page
DATA_ALIGNMENT = MIB              # lvm2's default data alignment
DEFAULT_METADATA_SIZE = 10 * MIB  # what SM passes to pvcreate/vgcreate
DEFAULT_EXTENT_SIZE = 4 * MIB
MGT_SIZE = 4 * MIB                # LVHDSR._introduceMetaDataVolume
#: Extents of a volume's lease LV (``lease.locator.LEASE_LV``).
LEASE_EXTENTS = 1
DEFAULT_CREATION_HOST = "xenapi-resign"
#: 2020-01-01T00:00:00Z.  lvm2 treats an LV creation_time of 0 as unset
#: (and drops creation_time/creation_host when it rewrites the text).
DEFAULT_CREATION_TIME = 1577836800
DEFAULT_DEVICE_HINT = "/dev/sdb"
DESCRIPTION = "Created by nova-xenapi-resign format_sr"

VDI_TYPE_VHD = "vhd"
VDI_TYPE_RAW = "raw"
#: vdi_type as SM records it in MGT (vhdutil.VDI_TYPE_VHD / VDI_TYPE_RAW).
SM_VDI_TYPES = {VDI_TYPE_VHD: "vhd", VDI_TYPE_RAW: "aio"}

#: Namespace of the deterministic VHD footer unique ids.
FOOTER_NAMESPACE = uuid_mod.UUID("6b1d5a3e-0c57-5e2a-9a43-c1f0e8d2b7a4")

_UUID_RE = re.compile(r"\A%s\Z" % sr_mod.UUID_RE)
_ALLOCATIONS = ("thick", "thin")


@dataclasses.dataclass(frozen=True)
class VdiSpec:
    """A VDI to create.

    ``vdi_type`` is ``"vhd"`` (a ``VHD-<uuid>`` LV) or ``"raw"`` (an
    ``LV-<uuid>`` LV).  ``parent`` is the uuid of a vhd VDI listed before
    this one (vhd only).  ``hidden`` goes to the VHD footer (vhd) or the
    ``hidden`` LV tag (raw); ``read_only`` drops ``WRITE`` from the LV
    status and is recorded in MGT, like the other flags.
    """

    uuid: str
    vdi_type: str
    virtual_size: int
    name_label: str = ""
    name_description: str = ""
    parent: str | None = None
    is_a_snapshot: bool = False
    snapshot_of: str = ""
    hidden: bool = False
    read_only: bool = False
    managed: bool = True
    type: str = "user"
    snapshot_time: str = ""
    #: The LV's size; by default what the VHD image (or raw size) needs.
    #: A volume's VDI gets the whole LUN (:func:`plan_volume`).
    lv_size: int | None = None

    @property
    def lv_name(self) -> str:
        prefix = (naming.LV_PREFIX_VHD if self.vdi_type == VDI_TYPE_VHD
                  else naming.LV_PREFIX_RAW)
        return prefix + self.uuid


@dataclasses.dataclass(frozen=True)
class LvPlan:
    """One LV: where it lives and what is written at its start."""

    name: str
    id: str
    start_extent: int
    extent_count: int
    read_only: bool = False
    tags: tuple[str, ...] = ()
    contents: bytes = dataclasses.field(default=b"", repr=False)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where things are on the device, in bytes (``pe_count`` in extents)."""

    device_size: int
    mda_start: int
    mda_size: int
    pe_start: int
    extent_size: int
    pe_count: int


@dataclasses.dataclass(frozen=True)
class WriteStep:
    """Writes that may land in any order, made durable by one fsync."""

    what: str
    writes: tuple[tuple[int, bytes], ...] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class FormatPlan:
    """Everything :func:`format_sr` writes, computed without I/O.

    ``steps`` are performed in order, each followed by an fsync; every
    write is absolute and sector aligned.  The order makes an interrupted
    format harmless:

    1. ``contents``: the LV contents (MGT, VHD images) and the metadata text
       in the circular buffer.  Nothing on the device points at them yet.
    2. ``mda header``: the mda_header that commits the text.  Without a
       label no LVM tool (and no :func:`~nova_xenapi_resign.lvhd.sr.inspect`)
       reads it.
    3. ``label``: the label sectors ``[0, 4096)``, last.  This is the
       commit point: from here on the device is a PV whose VG, MGT and VHDs
       are all on the disk.

    Interrupted before step 3, a blank device is still not a PV; a device
    that held a PV keeps its old label, so LVM sees the old PV (or, when its
    metadata area was the one at 4096, a PV id that disagrees with the new
    text, which ``inspect`` reports as a problem) -- never the new SR half
    made.  Re-running the same format writes the same bytes and completes it.
    """

    sr_uuid: str
    vg_name: str
    vg_id: str
    pv_id: str                      # dashed
    geometry: Geometry
    lvs: tuple[LvPlan, ...]
    text: bytes = dataclasses.field(repr=False)
    label: lvm.Label = dataclasses.field(repr=False)
    steps: tuple[WriteStep, ...] = dataclasses.field(repr=False)

    @property
    def device_size(self) -> int:
        return self.geometry.device_size

    @property
    def writes(self) -> tuple[tuple[int, bytes], ...]:
        """Every write, in the order :func:`apply_plan` performs them."""
        return tuple(w for step in self.steps for w in step.writes)

    def lv(self, name: str) -> LvPlan:
        for lv in self.lvs:
            if lv.name == name:
                return lv
        raise KeyError(name)


def _invalid(reason: str, *args: object) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason % args if args else reason)


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- ids -------------------------------------------------------------------

def pv_id_for(sr_uuid: str) -> str:
    return lvm_id.derive_lvm_id("create", sr_uuid, "pv", "pv0")


def vg_id_for(sr_uuid: str) -> str:
    return lvm_id.derive_lvm_id("create", sr_uuid, "vg", naming.sr_vg_name(
        sr_uuid))


def lv_id_for(sr_uuid: str, lv_name: str) -> str:
    return lvm_id.derive_lvm_id("create", sr_uuid, "lv", lv_name)


def footer_uuid(sr_uuid: str, vdi_uuid: str) -> uuid_mod.UUID:
    """The (deterministic) VHD footer unique id of a created VDI."""
    return uuid_mod.uuid5(FOOTER_NAMESPACE, "%s/%s" % (sr_uuid, vdi_uuid))


# --- checks ----------------------------------------------------------------

def check_sr_uuid(sr_uuid: str) -> None:
    if not isinstance(sr_uuid, str) or not sr_uuid:
        raise _invalid("SR uuid must be a non-empty string, not %r", sr_uuid)
    if not lvm_id.is_valid_lvm_name(naming.sr_vg_name(sr_uuid)):
        raise _invalid("SR uuid %r does not make a valid VG name", sr_uuid)


def _check_spec(i: int, spec: VdiSpec) -> None:
    if not isinstance(spec, VdiSpec):
        raise _invalid("VDI #%d is not a VdiSpec: %r", i, spec)
    if not isinstance(spec.uuid, str) or not _UUID_RE.match(spec.uuid):
        raise _invalid("VDI #%d: uuid %r is not a lower-case UUID", i,
                       spec.uuid)
    if spec.vdi_type not in (VDI_TYPE_VHD, VDI_TYPE_RAW):
        raise _invalid("VDI %s: vdi_type must be 'vhd' or 'raw', not %r",
                       spec.uuid, spec.vdi_type)
    size = spec.virtual_size
    if not _is_int(size) or size <= 0 or (
            spec.vdi_type == VDI_TYPE_VHD and size % SECTOR):
        raise _invalid("VDI %s: virtual_size must be a positive %s, not "
                       "%r", spec.uuid,
                       "multiple of 512" if spec.vdi_type == VDI_TYPE_VHD
                       else "integer", size)
    if spec.parent is not None and spec.vdi_type != VDI_TYPE_VHD:
        raise _invalid("VDI %s: only vhd VDIs have a parent", spec.uuid)
    if spec.lv_size is not None and (not _is_int(spec.lv_size)
                                     or spec.lv_size <= 0):
        raise _invalid("VDI %s: lv_size must be a positive integer, not %r",
                       spec.uuid, spec.lv_size)


def _check_parent(spec: VdiSpec, by_uuid: dict, position: dict) -> None:
    parent = by_uuid.get(spec.parent)
    if parent is None:
        raise _invalid("VDI %s: parent %r is not in the VDI list",
                       spec.uuid, spec.parent)
    if parent.vdi_type != VDI_TYPE_VHD:
        raise _invalid("VDI %s: parent %s is not a vhd VDI", spec.uuid,
                       parent.uuid)
    if position[parent.uuid] < position[spec.uuid]:
        return
    seen = set()
    cur = spec
    while cur is not None and cur.uuid not in seen:
        seen.add(cur.uuid)
        cur = by_uuid.get(cur.parent) if cur.parent else None
    if cur is not None:
        raise _invalid("VDI %s: parents form a cycle through %s",
                       spec.uuid, cur.uuid)
    raise _invalid("VDI %s: parent %s must be listed before its child",
                   spec.uuid, parent.uuid)


def check_vdis(vdis: Iterable[VdiSpec]) -> tuple[VdiSpec, ...]:
    """Validate a VDI list; returns it as a tuple.

    Refuses (``InvalidInput``) repeated or malformed uuids, unknown types,
    bad sizes, a parent that is not a vhd VDI of the list, a parent listed
    after its child, and parent cycles.
    """
    vdis = tuple(vdis)
    position = {}
    for i, spec in enumerate(vdis):
        _check_spec(i, spec)
        if spec.uuid in position:
            raise _invalid("VDI uuid %s is listed twice", spec.uuid)
        position[spec.uuid] = i
    by_uuid = {spec.uuid: spec for spec in vdis}
    for spec in vdis:
        if spec.parent is not None:
            _check_parent(spec, by_uuid, position)
    return vdis


def _check_options(metadata_size: int, extent_size: int, device_size: int,
                   allocation: str, creation_time: int) -> None:
    if not _is_int(metadata_size) or metadata_size < 4 * SECTOR or (
            metadata_size % SECTOR):
        raise _invalid("metadata_size must be a multiple of 512 of at least "
                       "2048 bytes, not %r", metadata_size)
    if not _is_int(extent_size) or extent_size < KIB or (
            extent_size & (extent_size - 1)):
        raise _invalid("extent_size must be a power of two >= 1024 bytes, "
                       "not %r", extent_size)
    if not _is_int(device_size) or device_size < 0:
        raise _invalid("device size must be a non-negative integer, not %r",
                       device_size)
    if allocation not in _ALLOCATIONS:
        raise _invalid("allocation must be 'thick' or 'thin', not %r",
                       allocation)
    if not _is_int(creation_time) or creation_time < 0:
        raise _invalid("creation_time must be a non-negative integer")


# --- contents --------------------------------------------------------------

def mgt_contents(sr_uuid: str, vdis: Sequence[VdiSpec], *,
                 name_label: str = "", name_description: str = "",
                 allocation: str = "thick") -> bytes:
    """The bytes in use of the MGT volume (header, SR info, VDI records)."""
    records = [srmetadata.vdi_record(
        slot, spec.uuid, name_label=spec.name_label,
        name_description=spec.name_description,
        is_a_snapshot=spec.is_a_snapshot, snapshot_of=spec.snapshot_of,
        snapshot_time=spec.snapshot_time, type=spec.type,
        vdi_type=SM_VDI_TYPES[spec.vdi_type], read_only=spec.read_only,
        managed=spec.managed) for slot, spec in enumerate(vdis)]
    info = srmetadata.SrInfo(uuid=sr_uuid, allocation=allocation,
                             name_label=name_label,
                             name_description=name_description)
    return srmetadata.render(srmetadata.make_metadata(info, records),
                             device="<MGT of %s>" % sr_uuid)


def vhd_contents(sr_uuid: str, spec: VdiSpec) -> bytes:
    """The VHD image of a vhd VDI: footer copy, header, BAT, ..., footer.

    A child names its parent ``lvhd_parent_name(sr_uuid, parent)`` in
    ``prt_name`` and in MacX/W2ku/W2ru locators, with the parent's
    :func:`footer_uuid` as ``prt_uuid``.
    """
    parent = None
    if spec.parent is not None:
        parent = (naming.lvhd_parent_name(sr_uuid, spec.parent),
                  footer_uuid(sr_uuid, spec.parent))
    return build_dynamic_vhd(spec.virtual_size,
                             uuid=footer_uuid(sr_uuid, spec.uuid),
                             parent=parent, hidden=spec.hidden)


# --- VHD images --------------------------------------------------------------

def _locator_code(value: int | str) -> int:
    if isinstance(value, int):
        return value
    for code, text in vhd.PLATFORM_NAMES.items():
        if text == value:
            return code
    raise exception.InvalidInput(reason="unknown locator code %r" % (value,))


def _empty_bat_and_batmap(entries: int) -> bytes:
    """An all-unused BAT, then the batmap header and an all-zero batmap."""
    bat = struct.pack(">%dI" % entries, *([vhd.BAT_UNUSED] * entries))
    bat += bytes(vhd.padded_size(len(bat)) - len(bat))
    batmap_offset = (vhd.FOOTER_SIZE + vhd.HEADER_SIZE + len(bat)
                     + vhd.BATMAP_HEADER_SIZE)
    batmap_secs = max(1, -(-((entries + 7) >> 3) // vhd.SECTOR_SIZE))
    batmap = bytes(batmap_secs * vhd.SECTOR_SIZE)
    return (bat + vhd.render_batmap_header(batmap_offset, batmap_secs, batmap)
            + batmap)


def _parent_locators(name: str, codes, start: int
                     ) -> tuple[tuple[vhd.ParentLocator, ...], bytes, bytes]:
    """``(locators, payloads, parent_name_raw)`` of a child naming ``name``.

    The payloads are laid out one after another from byte ``start``, each
    padded to whole sectors, as blktap does.
    """
    path = vhd.locator_path(name)
    locators = [vhd.ParentLocator()] * vhd.NUM_LOCATORS
    payloads = b""
    for i, code in enumerate(codes):
        code = _locator_code(code)
        payload = vhd.encode_locator(code, path)
        space = vhd.padded_size(len(payload))
        locators[i] = vhd.ParentLocator(code=code, data_space=space,
                                        data_length=len(payload),
                                        data_offset=start + len(payloads))
        payloads += payload + bytes(space - len(payload))
    return (tuple(locators), payloads,
            vhd.encode_parent_name(vhd.parent_basename(path)))


def _check_vhd_sizes(size: int, block_size: int) -> None:
    if size <= 0 or size % vhd.SECTOR_SIZE:
        raise exception.InvalidInput(reason="VHD size must be a positive "
                                     "multiple of 512, got %r" % (size,))
    if block_size < vhd.SECTOR_SIZE or block_size & (block_size - 1):
        raise exception.InvalidInput(reason="block size must be a power of "
                                     "two >= 512, got %r" % (block_size,))


def build_dynamic_vhd(size: int, *, uuid: vhd.UuidLike | None = None,
                      parent=None, block_size: int = vhd.DEFAULT_BLOCK_SIZE,
                      hidden: bool = False, timestamp: int = 0,
                      parent_timestamp: int = 0,
                      lv_size: int | None = None) -> bytes:
    """A small valid empty dynamic or differencing VHD, laid out as blktap.

    footer copy @0, header @512, BAT @1536, batmap header and map, then (for
    a child) the MacX/W2ku/W2ru locators one after another, then the footer.

    ``parent`` is ``None`` for a dynamic disk, else ``(name, parent_uuid)``
    or ``(name, parent_uuid, locator_codes)``: ``name`` as for
    :func:`~nova_xenapi_resign.lvhd.vhd.plan_parent_change` (e.g.
    :func:`~nova_xenapi_resign.lvhd.naming.lvhd_parent_name`),
    ``parent_uuid`` the parent's footer unique id (``None`` or nil for a raw
    parent) and ``locator_codes`` codes or names (default MacX, W2ku, W2ru).
    With ``lv_size`` the image is zero-padded to that size and the footer
    written at its end, as blktap does on a block device.
    """
    _check_vhd_sizes(size, block_size)
    unique_id = (uuid_mod.uuid4().bytes if uuid is None
                 else vhd.uuid_bytes(uuid, "uuid"))
    entries = -(-size // block_size)
    tables = _empty_bat_and_batmap(entries)
    locators = (vhd.ParentLocator(),) * vhd.NUM_LOCATORS
    payloads, name_raw, parent_uid = b"", bytes(512), bytes(16)
    disk_type = vhd.DISK_DYNAMIC
    if parent is not None:
        disk_type = vhd.DISK_DIFFERENCING
        codes = parent[2] if len(parent) > 2 else vhd.BLKTAP_LOCATOR_CODES
        if parent[1] is not None:
            parent_uid = vhd.uuid_bytes(parent[1], "parent uuid")
        locators, payloads, name_raw = _parent_locators(
            parent[0], codes, vhd.FOOTER_SIZE + vhd.HEADER_SIZE + len(tables))
    header = vhd.DynamicHeader(
        table_offset=vhd.FOOTER_SIZE + vhd.HEADER_SIZE,
        max_table_entries=entries, block_size=block_size,
        parent_unique_id=parent_uid, parent_timestamp=parent_timestamp,
        parent_name_raw=name_raw, locators=locators)
    foot = vhd.render_footer(vhd.Footer(
        data_offset=vhd.FOOTER_SIZE, current_size=size, original_size=size,
        geometry=vhd.chs_geometry(size), disk_type=disk_type,
        unique_id=unique_id, timestamp=timestamp, hidden=1 if hidden else 0))
    body = foot + vhd.render_header(header) + tables + payloads
    if lv_size is None:
        return body + foot
    if lv_size < len(body) + vhd.FOOTER_SIZE or lv_size % vhd.SECTOR_SIZE:
        raise exception.InvalidInput(reason="lv_size %r cannot hold %d bytes "
                                     "of VHD" % (lv_size,
                                                 len(body) + vhd.FOOTER_SIZE))
    return body + bytes(lv_size - len(body) - vhd.FOOTER_SIZE) + foot


# --- the metadata text -----------------------------------------------------

_PLAIN = libdm_config.EntryLayout()
_AFTER_BLANK = libdm_config.EntryLayout(before=("",))
_STRIPES = libdm_config.EntryLayout(before=("",), list_lines=(2,))


def _section(*entries: tuple, tail: tuple[str, ...] = ()
             ) -> libdm_config.Section:
    """A section from ``(key, node)`` or ``(key, node, layout)`` entries."""
    return libdm_config.Section(
        tuple(entry[:2] for entry in entries),
        libdm_config.SectionLayout(entries=tuple(
            entry[2] if len(entry) > 2 else _PLAIN for entry in entries),
            tail=tail))


def lv_section(lv: LvPlan, *, creation_host: str,
               creation_time: int) -> libdm_config.Section:
    """One LV section, laid out as lvm2 2.03 writes it.

    Like lvm2, ``creation_time``/``creation_host`` are left out when the
    time is 0 (unset).
    """
    status = ("READ", "VISIBLE") if lv.read_only else (
        "READ", "WRITE", "VISIBLE")
    entries: list[tuple] = [("id", lv.id), ("status", status), ("flags", ())]
    if lv.tags:
        entries.append(("tags", lv.tags))
    if creation_time:
        entries += [("creation_time", creation_time),
                    ("creation_host", creation_host)]
    segment = _section(("start_extent", 0), ("extent_count", lv.extent_count),
                       ("type", "striped", _AFTER_BLANK), ("stripe_count", 1),
                       ("stripes", ("pv0", lv.start_extent), _STRIPES))
    entries += [("segment_count", 1), ("segment1", segment, _AFTER_BLANK)]
    return _section(*entries)


def _vg_section(sr_uuid: str, geo: Geometry, lvs: Sequence[LvPlan], *,
                device_hint: str, creation_host: str,
                creation_time: int) -> libdm_config.Section:
    pv0 = _section(
        ("id", pv_id_for(sr_uuid)), ("device", device_hint),
        ("status", ("ALLOCATABLE",), _AFTER_BLANK), ("flags", ()),
        ("dev_size", geo.device_size // SECTOR),
        ("pe_start", geo.pe_start // SECTOR), ("pe_count", geo.pe_count))
    entries = [
        ("id", vg_id_for(sr_uuid)), ("seqno", 1), ("format", "lvm2"),
        ("status", ("RESIZEABLE", "READ", "WRITE")), ("flags", ()),
        ("extent_size", geo.extent_size // SECTOR), ("max_lv", 0),
        ("max_pv", 0), ("metadata_copies", 0),
        ("physical_volumes", _section(("pv0", pv0, _AFTER_BLANK)),
         _AFTER_BLANK)]
    if not lvs:
        return _section(*entries, tail=("", ""))
    entries.append(("logical_volumes", _section(*(
        (lv.name, lv_section(lv, creation_host=creation_host,
                             creation_time=creation_time), _AFTER_BLANK)
        for lv in lvs)), _AFTER_BLANK))
    return _section(*entries, tail=("",))


def metadata_text(sr_uuid: str, geo: Geometry, lvs: Sequence[LvPlan], *,
                  device_hint: str, creation_host: str,
                  creation_time: int) -> bytes:
    """The whole VG metadata text (seqno 1) in lvm2's on-disk (raw) form.

    Validated as :func:`~nova_xenapi_resign.lvhd.vg_metadata.parse_vg`
    validates text read from a disk; no NUL terminator.
    """
    vg = _vg_section(sr_uuid, geo, lvs, device_hint=device_hint,
                     creation_host=creation_host, creation_time=creation_time)
    generated = "# Generated by nova-xenapi-resign (LVM2 text format): %s" % (
        vg_metadata.ctime(creation_time))
    tree = _section(
        (naming.sr_vg_name(sr_uuid), vg),
        ("contents", vg_metadata.CONTENTS,
         libdm_config.EntryLayout(before=(generated, ""))),
        ("version", 1), ("description", DESCRIPTION, _AFTER_BLANK),
        ("creation_host", creation_host, _AFTER_BLANK),
        ("creation_time", creation_time, libdm_config.EntryLayout(
            comment=vg_metadata.ctime_comment(creation_time))),
        tail=("",))
    model = vg_metadata.VolumeGroup.from_tree(tree, "<format_sr %s>"
                                              % sr_uuid)
    return vg_metadata.render_vg(model, form="raw").encode("utf-8")


# --- planning --------------------------------------------------------------

def _geometry(device_size: int, metadata_size: int,
              extent_size: int) -> Geometry:
    device_size -= device_size % SECTOR
    pe_start = _round_up(MDA_START + metadata_size, DATA_ALIGNMENT)
    return Geometry(device_size=device_size, mda_start=MDA_START,
                    mda_size=pe_start - MDA_START, pe_start=pe_start,
                    extent_size=extent_size,
                    pe_count=max(0, (device_size - pe_start) // extent_size))


def _allocate(sr_uuid: str, vdis: Sequence[VdiSpec], mgt: bytes,
              geo: Geometry, plain: Sequence[tuple[str, bytes]] = ()
              ) -> tuple[LvPlan, ...]:
    """``MGT``, the ``plain`` LVs, one LV per VDI; extents in order from 0.

    A plain LV is one extent (or as many as its contents need) that sm
    never sees as a VDI: its name has no ``VHD-``/``LV-`` prefix.
    """
    contents = [(sr_mod.MGT_LV, mgt, MGT_SIZE, False, ())]
    contents += [(name, data, len(data), False, ()) for name, data in plain]
    for spec in vdis:
        if spec.vdi_type == VDI_TYPE_VHD:
            image = vhd_contents(sr_uuid, spec)
            contents.append((spec.lv_name, image,
                             max(len(image), spec.lv_size or 0),
                             spec.read_only, ()))
        else:
            contents.append((spec.lv_name, b"",
                             max(spec.virtual_size, spec.lv_size or 0),
                             spec.read_only,
                             (sr_mod.HIDDEN_TAG,) if spec.hidden else ()))
    lvs = []
    next_extent = 0
    for name, data, size, read_only, tags in contents:
        count = max(1, _round_up(max(size, len(data)), geo.extent_size)
                    // geo.extent_size)
        lvs.append(LvPlan(name=name, id=lv_id_for(sr_uuid, name),
                          start_extent=next_extent, extent_count=count,
                          read_only=read_only, tags=tags, contents=data))
        next_extent += count
    if geo.device_size < geo.pe_start + geo.extent_size or (
            next_extent > geo.pe_count):
        raise _invalid("device of %d bytes is too small for SR %s: it needs "
                       "%d bytes (metadata area up to %d, %d extents of %d "
                       "bytes)", geo.device_size, sr_uuid,
                       geo.pe_start + next_extent * geo.extent_size,
                       geo.pe_start, next_extent, geo.extent_size)
    return tuple(lvs)


def _label_sectors(sr_uuid: str, geo: Geometry) -> tuple[lvm.Label, bytes]:
    """The label and the bytes ``[0, 4096)`` it is written with."""
    label = lvm.Label(sector=1, pv_id=lvm_id.parse_lvm_id(pv_id_for(sr_uuid)),
                      device_size=geo.device_size,
                      data_areas=(lvm.DiskLocn(geo.pe_start, 0),),
                      metadata_areas=(lvm.DiskLocn(geo.mda_start,
                                                   geo.mda_size),))
    area = bytearray(geo.mda_start)
    area[SECTOR:2 * SECTOR] = lvm.render_label(label)
    return label, bytes(area)


def plan_format(sr_uuid: str, vdis: Iterable[VdiSpec] = (), *,
                device_size: int, name_label: str = "",
                name_description: str = "",
                metadata_size: int = DEFAULT_METADATA_SIZE,
                extent_size: int = DEFAULT_EXTENT_SIZE,
                allocation: str = "thick",
                creation_host: str = DEFAULT_CREATION_HOST,
                creation_time: int = DEFAULT_CREATION_TIME,
                device_hint: str = DEFAULT_DEVICE_HINT,
                plain_lvs: Sequence[tuple[str, bytes]] = ()) -> FormatPlan:
    """Compute every byte :func:`format_sr` writes, and in which order.

    ``plain_lvs`` are ``(name, contents)`` of LVs placed right after
    ``MGT`` that are no VDI (a volume's lease LV).  Pure.  Raises
    ``InvalidInput`` (or a format error) when anything is wrong: repeated
    uuids, bad parents, a device too small, a text that does not fit the
    metadata area.
    """
    check_sr_uuid(sr_uuid)
    vdis = check_vdis(vdis)
    _check_options(metadata_size, extent_size, device_size, allocation,
                   creation_time)
    geo = _geometry(device_size, metadata_size, extent_size)
    lvs = _allocate(sr_uuid, vdis, mgt_contents(
        sr_uuid, vdis, name_label=name_label,
        name_description=name_description, allocation=allocation), geo,
        plain_lvs)
    text = metadata_text(sr_uuid, geo, lvs, device_hint=device_hint,
                         creation_host=creation_host,
                         creation_time=creation_time)
    empty = lvm.MdaHeader(start=geo.mda_start, size=geo.mda_size)
    text_write = lvm.plan_text_write(empty, text, "<format_sr %s>" % sr_uuid)
    header = lvm.commit_header(empty, text_write.rlocn)
    label, label_area = _label_sectors(sr_uuid, geo)
    contents = tuple((geo.pe_start + lv.start_extent * geo.extent_size,
                      lv.contents) for lv in lvs if lv.contents)
    steps = (WriteStep("contents", contents + tuple(text_write.writes)),
             WriteStep("mda header", ((geo.mda_start,
                                       lvm.render_mda_header(header)),)),
             WriteStep("label", ((0, label_area),)))
    return FormatPlan(sr_uuid=sr_uuid, vg_name=naming.sr_vg_name(sr_uuid),
                      vg_id=vg_id_for(sr_uuid), pv_id=pv_id_for(sr_uuid),
                      geometry=geo, lvs=lvs, text=text, label=label,
                      steps=steps)


# --- writing ---------------------------------------------------------------

def format_sr(dev, sr_uuid: str, vdis: Iterable[VdiSpec] = (), *,
              name_label: str = "", name_description: str = "",
              metadata_size: int = DEFAULT_METADATA_SIZE,
              extent_size: int = DEFAULT_EXTENT_SIZE,
              allocation: str = "thick",
              creation_host: str = DEFAULT_CREATION_HOST,
              creation_time: int = DEFAULT_CREATION_TIME,
              device_hint: str | None = None) -> sr_mod.LvhdSr:
    """Make ``dev`` (an opened, writable ``Device``) an LVHD SR.

    Plans (:func:`plan_format`), applies the plan (:func:`apply_plan`) and
    returns ``sr.inspect(dev)``.  Every check happens before the first
    write: a refusal (``InvalidInput`` or a format error) leaves the device
    untouched.  ``device_hint`` is the PV ``device`` recorded in the text (a
    hint only): by default the path of a block device, else
    :data:`DEFAULT_DEVICE_HINT`.
    """
    if device_hint is None:
        device_hint = (dev.path if getattr(dev, "is_block", False)
                       else DEFAULT_DEVICE_HINT)
    plan = plan_format(sr_uuid, vdis, device_size=dev.size,
                       name_label=name_label,
                       name_description=name_description,
                       metadata_size=metadata_size, extent_size=extent_size,
                       allocation=allocation, creation_host=creation_host,
                       creation_time=creation_time, device_hint=device_hint)
    apply_plan(dev, plan)
    return sr_mod.inspect(dev)


def apply_plan(dev, plan: FormatPlan) -> None:
    """Perform ``plan.steps`` in order, with an fsync after each step.

    The order (and why it is safe) is the plan's: see :class:`FormatPlan`.
    """
    if dev.size - dev.size % SECTOR != plan.device_size:
        raise _invalid("plan is for a device of %d bytes, %s has %d",
                       plan.device_size, dev.path, dev.size)
    for step in plan.steps:
        for offset, data in step.writes:
            dev.write(offset, data)
        dev.fsync()


# --- VDI-per-LUN volumes ---------------------------------------------------

#: Namespace of a volume's VDI uuid: ``uuid5(namespace, volume id)``.
VOLUME_VDI_NAMESPACE = uuid_mod.UUID("0d7c3b52-9e41-5f6a-8b2d-4c1e7a90f3b6")
#: sm ``vhdutil.MAX_VHD_SIZE`` (2093050 MiB): LVHD reserves the VHD
#: metadata (BAT, batmap) for this size in every VHD LV, so a VDI can grow
#: online without moving it (sm ``lvhdutil.calcSizeVHDLV``).
SM_MAX_VHD_SIZE = 2093050 * MIB
#: What sm counts per 2 MiB data block for its sector bitmap (one sector,
#: kept 4 KiB aligned): sm ``vhdutil.calcOverheadBitmap``.
BITMAP_OVERHEAD = 4096


def vhd_metadata_overhead(virtual_size: int) -> int:
    """sm's ``vhdutil.calcOverheadEmpty``: an empty VHD's bytes.

    Footer, footer copy, header and parent locators (3 KiB), the BAT (4
    bytes per 2 MiB block, sector aligned) and the batmap (a bit per block),
    4 KiB aligned.
    """
    blocks = virtual_size // MIB // 2
    return _round_up(_round_up(3 * KIB + blocks * 4, SECTOR) + blocks // 8,
                     4 * KIB)


def volume_vdi_uuid(volume_id: str) -> str:
    """The uuid of a volume's VDI: derived from the volume id alone."""
    if not isinstance(volume_id, str) or not volume_id:
        raise _invalid("volume id must be a non-empty string, not %r",
                       volume_id)
    return str(uuid_mod.uuid5(VOLUME_VDI_NAMESPACE, volume_id))


def volume_vdi_size(device_size: int, *,
                    metadata_size: int = DEFAULT_METADATA_SIZE,
                    extent_size: int = DEFAULT_EXTENT_SIZE) -> int:
    """The virtual size of the one VDI filling a LUN of ``device_size``.

    The LUN loses the LVM label and metadata area (``pe_start``), the
    ``MGT`` LV and the lease LV (one extent each) and the tail that is not
    a whole extent; the
    VDI's LV gets every other extent.  In that LV, as sm sizes it
    (``lvhdutil.calcSizeVHDLV``), go the VHD metadata for the largest VHD
    (:data:`SM_MAX_VHD_SIZE`) and one :data:`BITMAP_OVERHEAD` per 2 MiB
    block; the rest is whole 2 MiB blocks of data.
    """
    lv_bytes = _volume_lv_size(device_size, metadata_size, extent_size)
    room = lv_bytes - vhd_metadata_overhead(SM_MAX_VHD_SIZE)
    block = vhd.DEFAULT_BLOCK_SIZE
    blocks = room // (block + BITMAP_OVERHEAD) if room > 0 else 0
    if blocks <= 0:
        raise _invalid("device of %d bytes is too small for a volume: it "
                       "needs at least %d bytes", device_size,
                       _geometry(device_size, metadata_size,
                                 extent_size).pe_start
                       + MGT_SIZE + LEASE_EXTENTS * extent_size + _round_up(
                           vhd_metadata_overhead(SM_MAX_VHD_SIZE) + block
                           + BITMAP_OVERHEAD, extent_size))
    return blocks * block


def _volume_lv_size(device_size: int, metadata_size: int,
                    extent_size: int) -> int:
    """Bytes of a volume's VDI LV: every extent but MGT's and the lease's."""
    geo = _geometry(device_size, metadata_size, extent_size)
    return max(0, geo.pe_count - MGT_SIZE // extent_size
               - LEASE_EXTENTS) * extent_size


def check_volume_sr_uuid(sr_uuid: str) -> None:
    """Refuse an SR uuid a host would not attach as ``lvmoiscsi``.

    sm's ``LVHDSR`` requires a lower-case 8-4-4-4-12 uuid: a Nova legacy
    name (``FA15E-D15C-<volume id>``) never plugs.
    """
    check_sr_uuid(sr_uuid)
    if not _UUID_RE.match(sr_uuid):
        raise _invalid("SR uuid %r of a volume must be a lower-case UUID "
                       "(a host refuses anything else for lvmoiscsi, e.g. "
                       "the FA15E-D15C- names)", sr_uuid)


def volume_spec(volume_id: str, name: str, device_size: int, *,
                metadata_size: int = DEFAULT_METADATA_SIZE,
                extent_size: int = DEFAULT_EXTENT_SIZE) -> VdiSpec:
    """The one VHD VDI of a volume: uuid from the id, label the name."""
    if not isinstance(name, str):
        raise _invalid("volume name must be a string, not %r", name)
    return VdiSpec(volume_vdi_uuid(volume_id), VDI_TYPE_VHD,
                   volume_vdi_size(device_size, metadata_size=metadata_size,
                                   extent_size=extent_size),
                   name_label=name,
                   lv_size=_volume_lv_size(device_size, metadata_size,
                                           extent_size))


def plan_volume(sr_uuid: str, volume_id: str, name: str, *,
                device_size: int, **options) -> FormatPlan:
    """:func:`plan_format` of a LUN as one volume (VDI-per-LUN).

    One VHD VDI filling the LUN (:func:`volume_spec`) and the lease LV
    (:data:`~nova_xenapi_resign.lease.locator.LEASE_LV`, one extent) with a
    free lease record, the SR labelled with the volume's name too;
    ``options`` are :func:`plan_format`'s.  The record's operator time is
    the format's ``creation_time``, so the plan stays deterministic.
    """
    check_volume_sr_uuid(sr_uuid)
    sizes = {k: options[k] for k in ("metadata_size", "extent_size")
             if k in options}
    spec = volume_spec(volume_id, name, device_size, **sizes)
    created = options.get("creation_time", DEFAULT_CREATION_TIME)
    lease = protocol.initial_area(sr_uuid, wall_clock=lambda: created)
    return plan_format(sr_uuid, (spec,), device_size=device_size,
                       name_label=options.pop("name_label", name),
                       plain_lvs=((locator.LEASE_LV, lease),), **options)


def format_volume(dev, sr_uuid: str, volume_id: str, name: str,
                  **options) -> sr_mod.LvhdSr:
    """Make ``dev`` a volume's LVHD SR (:func:`plan_volume`); inspect it.

    Every check happens first: a refusal writes nothing.
    """
    plan = plan_volume(sr_uuid, volume_id, name, device_size=dev.size,
                       **options)
    apply_plan(dev, plan)
    return sr_mod.inspect(dev)
