"""Format a LUN as an LVHD SR, in pure Python (no LVM tools).

This is what XenServer's ``SR.create`` for ``lvmoiscsi`` leaves on a LUN
(``pvcreate`` + ``vgcreate VG_XenStorage-<sr>`` + an ``MGT`` LV), plus any
number of VDIs: ``VHD-<uuid>`` LVs holding empty dynamic or differencing
VHDs (children name their parent the way blktap does), and ``LV-<uuid>`` raw
LVs.  The embedded XAPI uses it for ``SR.create`` and the demo uses it to
make LUN images on machines without LVM.

The layout follows lvm2 2.03 (``research/formats.md`` section 1): the label
in sector 1 with one data area (pe_start, size 0) and one metadata area at
4096; the metadata area ends on a 1 MiB boundary, which is pe_start; the
committed text (seqno 1) is the first copy in the circular buffer, in the
on-disk "raw" form lvm2 writes.  LVs are allocated one after another from
extent 0, ``MGT`` first, in the order of the VDI list.

Everything is deterministic: LVM ids come from
:func:`~nova_xenapi_resign.lvhd.lvm_id.derive_lvm_id`, VHD unique ids from
:func:`footer_uuid`, times are parameters; the same call on two blank
devices of the same size gives byte-identical images.

Planning (:func:`plan_format`) is pure and checks everything first;
:func:`format_sr` only performs the planned, sector aligned writes, so a
refusal writes nothing.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid as uuid_mod
from typing import Iterable, Sequence

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import libdm_config
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
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
DEFAULT_CREATION_HOST = "xenapi-resign"
#: 2020-01-01T00:00:00Z.  lvm2 treats an LV creation_time of 0 as unset
#: (and drops creation_time/creation_host when it rewrites the text).
DEFAULT_CREATION_TIME = 1577836800
DEFAULT_DEVICE_HINT = "/dev/sdb"

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

    @property
    def lv_name(self) -> str:
        prefix = (vhd.LV_PREFIX_VHD if self.vdi_type == VDI_TYPE_VHD
                  else vhd.LV_PREFIX_RAW)
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
class FormatPlan:
    """Everything :func:`format_sr` writes, computed without I/O.

    ``writes`` are absolute, sector aligned ``(offset, bytes)`` pairs in
    the order they are performed: LV contents, the metadata text, the
    mda_header, then the label sectors ``[0, 4096)`` last.
    """

    sr_uuid: str
    vg_name: str
    vg_id: str
    pv_id: str                      # dashed
    device_size: int
    mda_start: int
    mda_size: int
    pe_start: int                   # bytes
    extent_size: int                # bytes
    pe_count: int
    lvs: tuple[LvPlan, ...]
    text: bytes = dataclasses.field(repr=False)
    label: lvm.Label = dataclasses.field(repr=False)
    mda_header: lvm.MdaHeader = dataclasses.field(repr=False)
    writes: tuple[tuple[int, bytes], ...] = dataclasses.field(repr=False)

    @property
    def bytes_to_write(self) -> int:
        return sum(len(data) for _, data in self.writes)

    def lv(self, name: str) -> LvPlan:
        for lv in self.lvs:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def lv_offset(self, name: str) -> int:
        """Absolute byte offset of the first byte of LV ``name``."""
        return self.pe_start + self.lv(name).start_extent * self.extent_size


def _invalid(reason: str, *args: object) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason % args if args else reason)


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- ids -------------------------------------------------------------------

def vg_name_for(sr_uuid: str) -> str:
    return vhd.VG_PREFIX + sr_uuid


def pv_id_for(sr_uuid: str) -> str:
    return lvm_id.derive_lvm_id("create", sr_uuid, "pv", "pv0")


def vg_id_for(sr_uuid: str) -> str:
    return lvm_id.derive_lvm_id("create", sr_uuid, "vg", vg_name_for(
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
    if not lvm_id.is_valid_lvm_name(vg_name_for(sr_uuid)):
        raise _invalid("SR uuid %r does not make a valid VG name", sr_uuid)


def check_vdis(vdis: Iterable[VdiSpec], existing: dict | None = None
               ) -> tuple[VdiSpec, ...]:
    """Validate a VDI list; returns it as a tuple.

    Refuses (``InvalidInput``) repeated or malformed uuids, unknown types,
    bad sizes, a parent that is not a vhd VDI of the list, a parent listed
    after its child, and parent cycles.  ``existing`` maps the uuids of
    VDIs already in the SR to their vdi_type: they may be parents, and new
    VDIs may not reuse their uuids.
    """
    vdis = tuple(vdis)
    existing = dict(existing or {})
    position = {}
    for i, spec in enumerate(vdis):
        if not isinstance(spec, VdiSpec):
            raise _invalid("VDI #%d is not a VdiSpec: %r", i, spec)
        if not isinstance(spec.uuid, str) or not _UUID_RE.match(spec.uuid):
            raise _invalid("VDI #%d: uuid %r is not a lower-case UUID", i,
                           spec.uuid)
        if spec.uuid in position:
            raise _invalid("VDI uuid %s is listed twice", spec.uuid)
        if spec.uuid in existing:
            raise _invalid("VDI uuid %s is already in the SR", spec.uuid)
        position[spec.uuid] = i
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
    by_uuid = {spec.uuid: spec for spec in vdis}
    for i, spec in enumerate(vdis):
        if spec.parent is None:
            continue
        parent = by_uuid.get(spec.parent)
        if parent is None and spec.parent in existing:
            if existing[spec.parent] != VDI_TYPE_VHD:
                raise _invalid("VDI %s: parent %s is not a vhd VDI",
                               spec.uuid, spec.parent)
            continue
        if parent is None:
            raise _invalid("VDI %s: parent %r is not in the VDI list",
                           spec.uuid, spec.parent)
        if parent.vdi_type != VDI_TYPE_VHD:
            raise _invalid("VDI %s: parent %s is not a vhd VDI", spec.uuid,
                           parent.uuid)
        if position[parent.uuid] >= i:
            seen = set()
            cur = spec
            while cur is not None and cur.uuid not in seen:
                seen.add(cur.uuid)
                cur = by_uuid.get(cur.parent) if cur.parent else None
            if cur is not None:
                raise _invalid("VDI %s: parents form a cycle through %s",
                               spec.uuid, cur.uuid)
            raise _invalid("VDI %s: parent %s must be listed before its "
                           "child", spec.uuid, parent.uuid)
    return vdis


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


def vhd_contents(sr_uuid: str, spec: VdiSpec,
                 parent_uid: uuid_mod.UUID | None = None) -> bytes:
    """The VHD image of a vhd VDI: footer copy, header, BAT, ..., footer.

    A child names its parent ``lvhd_parent_name(sr_uuid, parent)`` in
    ``prt_name`` and in MacX/W2ku/W2ru locators, with the parent's
    :func:`footer_uuid` as ``prt_uuid`` (or ``parent_uid`` when given:
    the footer unique id of a parent already on the SR).
    """
    parent = None
    if spec.parent is not None:
        parent = (vhd.lvhd_parent_name(sr_uuid, spec.parent),
                  parent_uid or footer_uuid(sr_uuid, spec.parent))
    return vhd.build_dynamic_vhd(spec.virtual_size,
                                 uuid=footer_uuid(sr_uuid, spec.uuid),
                                 parent=parent, hidden=spec.hidden)


# --- the metadata text -----------------------------------------------------

def _quote(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _strings(values: Iterable[str]) -> str:
    return "[%s]" % ", ".join(_quote(v) for v in values)


def _ctime(seconds: int) -> str:
    return time.asctime(time.gmtime(seconds))


def render_lv_text(lv: LvPlan, *, creation_host: str,
                   creation_time: int) -> str:
    """One LV section, as lvm2 2.03 writes it in the raw form.

    Like lvm2, ``creation_time``/``creation_host`` are left out when the
    time is 0 (unset).
    """
    status = ["READ", "VISIBLE"] if lv.read_only else [
        "READ", "WRITE", "VISIBLE"]
    lines = ["%s {" % lv.name,
             "id = %s" % _quote(lv.id),
             "status = %s" % _strings(status),
             "flags = []"]
    if lv.tags:
        lines.append("tags = %s" % _strings(lv.tags))
    if creation_time:
        lines += ["creation_time = %d" % creation_time,
                  "creation_host = %s" % _quote(creation_host)]
    lines += ["segment_count = 1",
              "",
              "segment1 {",
              "start_extent = 0",
              "extent_count = %d" % lv.extent_count,
              "",
              'type = "striped"',
              "stripe_count = 1",
              "",
              "stripes = [",
              '"pv0", %d' % lv.start_extent,
              "]",
              "}",
              "}"]
    return "\n".join(lines) + "\n"


def render_vg_text(*, vg_name: str, vg_id: str, seqno: int,
                   extent_size: int, pv_id: str, device_hint: str,
                   dev_size: int, pe_start: int, pe_count: int,
                   lvs: Sequence[LvPlan], creation_host: str,
                   creation_time: int, description: str) -> str:
    """The whole VG metadata text in lvm2's on-disk (raw) form.

    Sizes in bytes (``extent_size``, ``dev_size``, ``pe_start``); the text
    holds them in sectors.  No NUL terminator.
    """
    out = ["%s {" % vg_name,
           "id = %s" % _quote(vg_id),
           "seqno = %d" % seqno,
           'format = "lvm2"',
           'status = ["RESIZEABLE", "READ", "WRITE"]',
           "flags = []",
           "extent_size = %d" % (extent_size // SECTOR),
           "max_lv = 0",
           "max_pv = 0",
           "metadata_copies = 0",
           "",
           "physical_volumes {",
           "",
           "pv0 {",
           "id = %s" % _quote(pv_id),
           "device = %s" % _quote(device_hint),
           "",
           'status = ["ALLOCATABLE"]',
           "flags = []",
           "dev_size = %d" % (dev_size // SECTOR),
           "pe_start = %d" % (pe_start // SECTOR),
           "pe_count = %d" % pe_count,
           "}",
           "}",
           ""]
    text = "\n".join(out) + "\n"
    if lvs:
        text += "logical_volumes {\n"
        for lv in lvs:
            text += "\n" + render_lv_text(lv, creation_host=creation_host,
                                          creation_time=creation_time)
        text += "}\n"
    text += "\n}\n"
    text += ("# Generated by nova-xenapi-resign (LVM2 text format): %s\n\n"
             % _ctime(creation_time))
    text += ('contents = "Text Format Volume Group"\n'
             "version = 1\n"
             "\n"
             "description = %s\n"
             "\n"
             "creation_host = %s\n"
             "creation_time = %d\t# %s\n"
             "\n" % (_quote(description), _quote(creation_host),
                     creation_time, _ctime(creation_time)))
    return text


# --- planning --------------------------------------------------------------

def _check_sizes(metadata_size, extent_size, device_size):
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


def plan_format(sr_uuid: str, vdis: Iterable[VdiSpec] = (), *,
                device_size: int, name_label: str = "",
                name_description: str = "",
                metadata_size: int = DEFAULT_METADATA_SIZE,
                extent_size: int = DEFAULT_EXTENT_SIZE,
                allocation: str = "thick",
                creation_host: str = DEFAULT_CREATION_HOST,
                creation_time: int = DEFAULT_CREATION_TIME,
                device_hint: str = DEFAULT_DEVICE_HINT) -> FormatPlan:
    """Compute every byte :func:`format_sr` writes.

    Pure.  Raises ``InvalidInput`` (or a format error) when anything is
    wrong: repeated uuids, bad parents, a device too small, a text that
    does not fit the metadata area.
    """
    check_sr_uuid(sr_uuid)
    vdis = check_vdis(vdis)
    _check_sizes(metadata_size, extent_size, device_size)
    if allocation not in _ALLOCATIONS:
        raise _invalid("allocation must be 'thick' or 'thin', not %r",
                       allocation)
    if not _is_int(creation_time) or creation_time < 0:
        raise _invalid("creation_time must be a non-negative integer")
    vg_name = vg_name_for(sr_uuid)
    device_size -= device_size % SECTOR
    mda_end = _round_up(MDA_START + metadata_size, DATA_ALIGNMENT)
    mda_size = mda_end - MDA_START
    pe_start = mda_end
    pe_count = max(0, (device_size - pe_start) // extent_size)

    contents = [("MGT", mgt_contents(
        sr_uuid, vdis, name_label=name_label,
        name_description=name_description, allocation=allocation),
        MGT_SIZE, False, ())]
    for spec in vdis:
        if spec.vdi_type == VDI_TYPE_VHD:
            image = vhd_contents(sr_uuid, spec)
            contents.append((spec.lv_name, image, len(image),
                             spec.read_only, ()))
        else:
            contents.append((spec.lv_name, b"", spec.virtual_size,
                             spec.read_only,
                             (sr_mod.HIDDEN_TAG,) if spec.hidden else ()))
    lvs = []
    next_extent = 0
    for name, data, size, read_only, tags in contents:
        count = max(1, _round_up(max(size, len(data)), extent_size)
                    // extent_size)
        lvs.append(LvPlan(name=name, id=lv_id_for(sr_uuid, name),
                          start_extent=next_extent, extent_count=count,
                          read_only=read_only, tags=tags, contents=data))
        next_extent += count
    needed = pe_start + next_extent * extent_size
    if device_size < pe_start + extent_size or next_extent > pe_count:
        raise _invalid("device of %d bytes is too small for SR %s: it needs "
                       "%d bytes (metadata area up to %d, %d extents of %d "
                       "bytes)", device_size, sr_uuid, needed, pe_start,
                       next_extent, extent_size)

    pv_id = pv_id_for(sr_uuid)
    text = render_vg_text(
        vg_name=vg_name, vg_id=vg_id_for(sr_uuid), seqno=1,
        extent_size=extent_size, pv_id=pv_id, device_hint=device_hint,
        dev_size=device_size, pe_start=pe_start, pe_count=pe_count,
        lvs=lvs, creation_host=creation_host, creation_time=creation_time,
        description="Created by nova-xenapi-resign format_sr")
    # The text must be what our own reader accepts, with the same layout.
    vg = vg_metadata.parse_vg(text, "<format_sr %s>" % sr_uuid)
    if vg.name != vg_name or len(vg.lvs) != len(lvs):
        raise _invalid("generated metadata text does not parse back")
    data = text.encode("utf-8")
    empty = lvm.MdaHeader(start=MDA_START, size=mda_size)
    text_write = lvm.plan_text_write(empty, data, "<format_sr %s>" % sr_uuid)
    header = lvm.commit_header(empty, text_write.rlocn)
    label = lvm.Label(sector=1, pv_id=lvm_id.parse_lvm_id(pv_id),
                      device_size=device_size,
                      data_areas=(lvm.DiskLocn(pe_start, 0),),
                      metadata_areas=(lvm.DiskLocn(MDA_START, mda_size),))
    label_area = bytearray(MDA_START)
    label_area[SECTOR:2 * SECTOR] = lvm.render_label(label)

    writes = []
    for lv in lvs:
        if lv.contents:
            writes.append((pe_start + lv.start_extent * extent_size,
                           lv.contents))
    writes.extend(text_write.writes)
    writes.append((MDA_START, lvm.render_mda_header(header)))
    writes.append((0, bytes(label_area)))
    return FormatPlan(sr_uuid=sr_uuid, vg_name=vg_name, vg_id=vg.id,
                      pv_id=pv_id, device_size=device_size,
                      mda_start=MDA_START, mda_size=mda_size,
                      pe_start=pe_start, extent_size=extent_size,
                      pe_count=pe_count, lvs=tuple(lvs), text=data,
                      label=label, mda_header=header, writes=tuple(writes))


def format_sr(dev, sr_uuid: str, vdis: Iterable[VdiSpec] = (), *,
              name_label: str = "", name_description: str = "",
              metadata_size: int = DEFAULT_METADATA_SIZE,
              extent_size: int = DEFAULT_EXTENT_SIZE,
              allocation: str = "thick",
              creation_host: str = DEFAULT_CREATION_HOST,
              creation_time: int = DEFAULT_CREATION_TIME,
              device_hint: str | None = None) -> sr_mod.LvhdSr:
    """Make ``dev`` (an opened, writable ``Device``) an LVHD SR.

    Writes the LV contents, the metadata text, the mda_header and finally
    the label sectors, fsyncs, and returns ``sr.inspect(dev)``.  Every
    check happens before the first write: a refusal (``InvalidInput`` or a
    format error) leaves the device untouched.  ``device_hint`` is the
    PV ``device`` recorded in the text (a hint only): by default the path
    of a block device, else :data:`DEFAULT_DEVICE_HINT`.
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
    """Perform the writes of ``plan``.

    Contents and text, fsync, mda_header, fsync, label sectors, fsync.
    """
    if dev.size - dev.size % SECTOR != plan.device_size:
        raise _invalid("plan is for a device of %d bytes, %s has %d",
                       plan.device_size, dev.path, dev.size)
    *body, header_write, label_write = plan.writes
    for offset, data in body:
        dev.write(offset, data)
    dev.fsync()
    dev.write(*header_write)
    dev.fsync()
    dev.write(*label_write)
    dev.fsync()


# --- adding VDIs to an existing SR ------------------------------------------

def _refuse(dev, reason: str, *args: object) -> exception.UnsafeOperation:
    return exception.UnsafeOperation(device=getattr(dev, "path", "?"),
                                     reason=reason % args if args else reason)


def plan_add_vdis(dev, vdis: Iterable[VdiSpec], *,
                  creation_host: str = DEFAULT_CREATION_HOST,
                  creation_time: int = DEFAULT_CREATION_TIME) -> tuple:
    """The writes that append ``vdis`` to the SR on ``dev`` (reads only).

    Returns ``(body, commits)``, two tuples of ``(offset, bytes)`` writes:
    the body is VHD images, the new MGT records, the MGT header (new
    length) and the new metadata text of every metadata area; the commits
    are their mda_headers.  New LVs take the
    extents after the last used one, get ids from :func:`lv_id_for` and
    may have parents among the SR's existing vhd VDIs.  Refuses
    (``UnsafeOperation``) an SR with problems, without MGT or with an
    interrupted metadata write; ``InvalidInput`` for bad specs or no room.
    """
    model = sr_mod.inspect(dev)
    if model.problems:
        raise _refuse(dev, "the SR has problems: %s",
                      "; ".join(str(p) for p in model.problems))
    if model.sr_uuid is None or model.mgt is None:
        raise _refuse(dev, "not an LVHD SR with an MGT volume")
    if any(m.precommitted_text is not None or m.precommit_error
           for m in model.pv.mdas):
        raise _refuse(dev, "a metadata write was interrupted (slot 1 set)")
    sr_uuid, vg = model.sr_uuid, model.vg
    existing = {v.uuid: v.vdi_type for v in model.vdis}
    vdis = check_vdis(vdis, existing)
    if not vdis:
        return (), ()
    extent_size = vg.extent_size * SECTOR
    pv = vg.pvs[0]
    next_extent = max([pe + seg.extent_count for lv in vg.lvs
                       for seg in lv.segments for _, pe in seg.stripes]
                      or [0])
    parent_uids = {}
    for spec in vdis:
        if spec.parent in existing and spec.parent not in parent_uids:
            lv = model.lv(vhd.LV_PREFIX_VHD + spec.parent)
            parent_uids[spec.parent] = vhd.parse_footer(
                sr_mod.read_lv(dev, lv, 0, vhd.FOOTER_SIZE), dev.path).uuid
    lvs, writes = [], []
    for spec in vdis:
        data, size, tags = b"", spec.virtual_size, ()
        if spec.vdi_type == VDI_TYPE_VHD:
            data = vhd_contents(sr_uuid, spec, parent_uids.get(spec.parent))
            size = len(data)
        elif spec.hidden:
            tags = (sr_mod.HIDDEN_TAG,)
        count = _round_up(size, extent_size) // extent_size
        lv = LvPlan(name=spec.lv_name, id=lv_id_for(sr_uuid, spec.lv_name),
                    start_extent=next_extent, extent_count=count,
                    read_only=spec.read_only, tags=tags, contents=data)
        next_extent += count
        lvs.append(lv)
        if data:
            writes.append((pv.pe_start * SECTOR
                           + lv.start_extent * extent_size, data))
    if next_extent > pv.pe_count:
        raise _invalid("SR %s has no room for %d more extents (%d of %d "
                       "used)", sr_uuid, sum(lv.extent_count for lv in lvs),
                       next_extent - sum(lv.extent_count for lv in lvs),
                       pv.pe_count)

    # MGT: new records after the last slot, then the header's length.
    mgt = model.mgt
    mgt_lv = model.lv(sr_mod.MGT_LV)
    first = len(mgt.records)
    records = b"".join(srmetadata.render_record(srmetadata.vdi_record(
        first + i, spec.uuid, name_label=spec.name_label,
        name_description=spec.name_description,
        is_a_snapshot=spec.is_a_snapshot, snapshot_of=spec.snapshot_of,
        snapshot_time=spec.snapshot_time, type=spec.type,
        vdi_type=SM_VDI_TYPES[spec.vdi_type], read_only=spec.read_only,
        managed=spec.managed)) for i, spec in enumerate(vdis))
    offset = srmetadata.SR_INFO_SIZE + srmetadata.VDI_RECORD_SIZE * first
    length = offset + len(records)
    if length > mgt_lv.size:
        raise _invalid("MGT of SR %s cannot hold %d bytes", sr_uuid, length)
    for lv_offset, data in ((offset, records), (0, srmetadata.render_header(
            length, mgt.header_version))):
        pos = 0
        for dev_offset, n in mgt_lv.device_ranges(lv_offset, len(data)):
            writes.append((dev_offset, data[pos:pos + n]))
            pos += n

    # LVM: the new LV sections, seqno + 1, into every metadata area.
    snippet = "".join("\n" + render_lv_text(
        lv, creation_host=creation_host, creation_time=creation_time)
        for lv in lvs)
    added = libdm_config.parse("logical_volumes {\n%s}\n" % snippet)
    tree = vg.tree
    path = (vg.name, "logical_volumes")
    old = tree.section(path) if tree.has(path) else libdm_config.Section()
    new_items = added.section(("logical_volumes",))
    entries = old.layout.entries[:len(old.items)]
    entries += (libdm_config.EntryLayout(),) * (len(old.items) - len(entries))
    new_entries = new_items.layout.entries[:len(new_items.items)]
    new_entries += (libdm_config.EntryLayout(),) * (len(new_items.items)
                                                - len(new_entries))
    tree = tree.with_section(path, libdm_config.Section(
        old.items + new_items.items, dataclasses.replace(
            old.layout, entries=entries + new_entries)))
    tree = tree.with_value((vg.name, "seqno"), vg.seqno + 1)
    if tree.has("description"):
        tree = tree.with_value("description",
                               "Write from nova-xenapi-resign add_vdis")
    new_vg = vg_metadata.VolumeGroup.from_tree(tree, dev.path)
    text = vg_metadata.render_vg(new_vg, form="raw").encode("utf-8")
    commits = []
    for mda in model.pv.mdas:
        if mda.header.ignored:
            continue
        planned = lvm.plan_text_write(mda.header, text, dev.path)
        writes.extend(planned.writes)
        commits.append((mda.header.start, lvm.render_mda_header(
            lvm.commit_header(mda.header, planned.rlocn))))
    return tuple(writes), tuple(commits)


def add_vdis(dev, vdis: Iterable[VdiSpec], *,
             creation_host: str = DEFAULT_CREATION_HOST,
             creation_time: int = DEFAULT_CREATION_TIME) -> sr_mod.LvhdSr:
    """Append ``vdis`` to the LVHD SR on ``dev``; return the new model.

    Everything is planned first (:func:`plan_add_vdis`); then contents,
    MGT and the new text are written and fsynced, and the mda_header
    commits come last, so an interruption leaves the old VG in force.
    """
    body, commits = plan_add_vdis(dev, vdis, creation_host=creation_host,
                                  creation_time=creation_time)
    if not commits:
        return sr_mod.inspect(dev)
    for offset, data in body:
        dev.write(offset, data)
    dev.fsync()
    for offset, data in commits:
        dev.write(offset, data)
    dev.fsync()
    return sr_mod.inspect(dev)
