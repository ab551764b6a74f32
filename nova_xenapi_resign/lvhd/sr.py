"""A model of a whole LVHD SR on one LUN, built from metadata-sized reads.

``inspect(device)`` reads the LVM label and metadata, the MGT volume, and the
first few KiB of every VHD LV - never data blocks - so its cost depends on
the number of VDIs, not on the size of the LUN.  Structural damage that
makes the VG unreadable raises a :class:`FormatError`; everything else that
is wrong (an MGT record without its LV, a VHD whose parent lives in another
SR, a bad checksum in one VHD) is reported in ``LvhdSr.problems`` so callers
decide what is fatal.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
import dataclasses
import functools
import re

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import srmetadata
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign.lvhd import vhd

SECTOR = 512
MGT_LV = "MGT"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

KIND_MGT = "mgt"
KIND_VHD = "vhd"
KIND_RAW = "raw"
KIND_JVHD = "jvhd"
KIND_CBTLOG = "cbtlog"
KIND_JOURNAL = "journal"
KIND_OTHER = "other"

# (kind, pattern) in match order; group 1 is the VDI uuid where there is one.
_LV_KINDS = (
    (KIND_VHD, re.compile(r"^VHD-(%s)$" % UUID_RE)),
    (KIND_RAW, re.compile(r"^LV-(%s)$" % UUID_RE)),
    (KIND_JVHD, re.compile(r"^jvhd_(%s)$" % UUID_RE)),
    (KIND_CBTLOG, re.compile(r"^(%s)\.cbtlog$" % UUID_RE)),
)
JOURNAL_TAG = "journaler"
_VHD_FIRST_READ = 4096
HIDDEN_TAG = "hidden"


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something inconsistent on the SR, reported rather than raised."""

    code: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return "%s: %s: %s" % (self.code, self.subject, self.detail)


@dataclasses.dataclass(frozen=True)
class Renames:
    """The identities a resignature to ``target`` gives, as functions.

    Passed to :func:`inspect` to read a device an interrupted run left
    half-renamed *as it was before*: every id that already is the new id
    of an old one is read as the old one.  This works because each new id
    is a pure function of the target and the old id, and the old ids
    survive in the committed LVM metadata until the final commit.
    """

    target: str
    vdi: Callable[[str], str]        # old VDI uuid -> new
    pv: Callable[[str], str]         # old PV id (dashed) -> new (dashed)


@dataclasses.dataclass(frozen=True)
class LvInfo:
    """An LV with where its bytes live on the PV."""

    name: str
    id: str
    kind: str
    vdi_uuid: str | None
    size: int
    extents: tuple[tuple[int, int], ...]   # (PV byte offset, length)
    tags: tuple[str, ...]
    read_only: bool

    def device_ranges(self, offset: int, length: int
                      ) -> list[tuple[int, int]]:
        """Map ``[offset, offset+length)`` of the LV onto PV byte ranges."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise exception.InvalidInput(
                reason="LV %s: bytes [%d, %d) are outside its %d bytes"
                % (self.name, offset, offset + length, self.size))
        out = []
        base = 0
        for start, ext_len in self.extents:
            lo = max(offset, base)
            hi = min(offset + length, base + ext_len)
            if lo < hi:
                out.append((start + lo - base, hi - lo))
            base += ext_len
        return out


@dataclasses.dataclass(frozen=True)
class VdiInfo:
    """A VDI as SM would report it: from its LV, VHD header and MGT record."""

    uuid: str
    vdi_type: str                     # "vhd" or "raw"
    lv_name: str
    name_label: str
    name_description: str
    parent_uuid: str | None
    parent_sr_uuid: str | None
    parent_is_raw: bool
    locator_paths: tuple[str, ...]
    is_a_snapshot: bool
    snapshot_of: str | None
    hidden: bool
    read_only: bool
    managed: bool
    virtual_size: int
    header_region: int                # bytes [0, N) holding footer..locators
    #: The VHD found at the start of the LV and the bytes ``[0, N)`` it was
    #: parsed from, for planning (None and empty for raw or bad VHDs).
    start: vhd.LvVhd | None = None
    region_bytes: bytes = b""


@dataclasses.dataclass(frozen=True)
class LvhdSr:
    device: str
    pv: lvm.PvOnDisk
    vg: vg_metadata.VolumeGroup
    sr_uuid: str | None
    mgt: srmetadata.SrMetadata | None
    lvs: tuple[LvInfo, ...]
    vdis: tuple[VdiInfo, ...]
    problems: tuple[Problem, ...]
    #: With ``renames``: what an interrupted run had already renamed
    #: (e.g. ``"MGT"``, ``"label"``, an LV name for its parent link).
    renamed: tuple[str, ...] = ()

    @property
    def vg_name(self) -> str:
        return self.vg.name

    @property
    def pv_id(self) -> str:
        return self.pv.label.pv_id

    def lv(self, name: str) -> LvInfo:
        return self._lvs_by_name[name]

    @functools.cached_property
    def _lvs_by_name(self) -> dict:
        return {lv.name: lv for lv in self.lvs}

    def vdi(self, vdi_uuid: str) -> VdiInfo:
        for v in self.vdis:
            if v.uuid == vdi_uuid:
                return v
        raise KeyError(vdi_uuid)


def classify_lv(lv: vg_metadata.LogicalVolume) -> tuple[str, str | None]:
    """``(kind, vdi uuid or None)`` from an LV's name and tags, as SM does."""
    if lv.name == MGT_LV:
        return KIND_MGT, None
    if JOURNAL_TAG in lv.tags:
        return KIND_JOURNAL, None
    for kind, pattern in _LV_KINDS:
        match = pattern.match(lv.name)
        if match:
            return kind, match.group(1)
    return KIND_OTHER, None


def _lv_info(vg: vg_metadata.VolumeGroup, lv: vg_metadata.LogicalVolume,
             problems: list[Problem]) -> LvInfo:
    kind, vdi_uuid = classify_lv(lv)
    extent_bytes = vg.extent_size * SECTOR
    pe_start = {pv.key: pv.pe_start * SECTOR for pv in vg.pvs}
    extents = []
    for seg in sorted(lv.segments, key=lambda s: s.start_extent):
        if seg.type != "striped" or len(seg.stripes) != 1:
            problems.append(Problem(
                "unsupported-segment", lv.name,
                "segment %s is %s with %d stripes; LVHD uses linear LVs"
                % (seg.key, seg.type, len(seg.stripes))))
            extents = []
            break
        pv_key, pe = seg.stripes[0]
        extents.append((pe_start[pv_key] + pe * extent_bytes,
                        seg.extent_count * extent_bytes))
    return LvInfo(name=lv.name, id=lv.id, kind=kind, vdi_uuid=vdi_uuid,
                  size=sum(n for _, n in extents), extents=tuple(extents),
                  tags=lv.tags, read_only=lv.read_only)


def read_lv(dev, lv: LvInfo, offset: int, length: int) -> bytes:
    """Read bytes of an LV through its extents."""
    return b"".join(dev.read(o, n)
                    for o, n in lv.device_ranges(offset, length))


class _Prefetched(object):
    """``dev``, with reads inside ranges read beforehand served from them.

    Before parsing, :func:`inspect` knows which bytes of every VHD LV it
    reads first: the first page and the last sector.  LVs lie end to end
    on the PV, so one LV's last sector and the next one's first page are
    read together, one read instead of two.  Ranges beyond the device are
    left to the reads that need them (and fail there, as they would).
    """

    def __init__(self, dev, ranges) -> None:
        self.path, self.size, self._dev = dev.path, dev.size, dev
        inside = [(o, n) for o, n in ranges if o + n <= dev.size]
        self._starts, self._chunks = [], []
        for offset, length in device_mod.merge_ranges(inside):
            self._starts.append(offset)
            self._chunks.append(dev.read(offset, length))

    def read(self, offset: int, length: int) -> bytes:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0:
            at = offset - self._starts[i]
            if at + length <= len(self._chunks[i]):
                return self._chunks[i][at:at + length]
        return self._dev.read(offset, length)


def _first_reads(lvs) -> list[tuple[int, int]]:
    """Device ranges of each VHD LV's first page and last sector."""
    ranges = []
    for lv in lvs:
        if lv.kind == KIND_VHD and lv.extents and (
                lv.size >= vhd.INITIAL_READ):
            ranges += lv.device_ranges(0, min(_VHD_FIRST_READ, lv.size))
            ranges += lv.device_ranges(lv.size - SECTOR, SECTOR)
    return ranges


def _lv_reader(dev, lv: LvInfo, known: bytes):
    """``read(offset, length)`` of an LV that reuses ``known`` (from 0)."""
    def read(offset: int, length: int) -> bytes:
        if offset + length <= len(known):
            return known[offset:offset + length]
        return read_lv(dev, lv, offset, length)
    return read


def _read_mgt(dev, lv: LvInfo, problems: list[Problem]
              ) -> srmetadata.SrMetadata | None:
    try:
        header = read_lv(dev, lv, 0, SECTOR)
        length, _ = srmetadata.parse_header(header, dev.path)
        if length > lv.size:
            raise exception.SrMetadataError(
                device=dev.path, structure="MGT header length", offset=0,
                expected="at most the LV size %d" % lv.size, found=length)
        # Sector 0 is read once: the rest of the length after it.
        rest = read_lv(dev, lv, SECTOR, max(0, length - SECTOR))
        return srmetadata.parse((header + rest)[:length], dev.path)
    except (exception.FormatError, exception.InvalidInput) as exc:
        problems.append(Problem("bad-mgt", MGT_LV, str(exc)))
        return None


@dataclasses.dataclass(frozen=True)
class _VhdFacts:
    parent_uuid: str | None = None
    parent_sr_uuid: str | None = None
    parent_is_raw: bool = False
    locator_paths: tuple[str, ...] = ()
    hidden: bool = False
    virtual_size: int = 0
    region: int = 0
    start: vhd.LvVhd | None = None
    region_bytes: bytes = b""


def _read_vhd(dev, lv: LvInfo, problems: list[Problem],
              undo: "_Undo | None" = None) -> _VhdFacts:
    """Footer copy, header and parent locators at the start of a VHD LV."""
    try:
        if lv.size < vhd.INITIAL_READ:
            raise exception.VhdFormatError(
                device=dev.path, structure="LV %s" % lv.name, offset=0,
                expected="at least %d bytes" % vhd.INITIAL_READ,
                found=lv.size)
        # blktap keeps footer copy, header, BAT, batmap and locators in
        # the first few KiB, and a deflated VHD without data blocks its
        # footer right after them: read a page, then (if the region goes
        # on) the rest of it and that one sector, so the footer check reads
        # only the last sector of the LV on its own.
        start = read_lv(dev, lv, 0, min(_VHD_FIRST_READ, lv.size))
        found = vhd.parse_lv_start(start, "%s:%s" % (dev.path, lv.name))
        region = min(found.region_end, lv.size)
        if region > len(start):
            start += read_lv(dev, lv, len(start),
                             min(region + SECTOR, lv.size) - len(start))
        vhd.check_primary_footer(
            found.footer, found.header, _lv_reader(dev, lv, start),
            lv.size, "%s:%s" % (dev.path, lv.name))
        facts = _VhdFacts(hidden=found.footer.is_hidden,
                          virtual_size=found.footer.current_size,
                          region=region, start=found,
                          region_bytes=start[:region])
        if not found.footer.is_differencing:
            return facts
        header = found.header
        locators = vhd.read_parent_locators(
            header, start[:region], "%s:%s" % (dev.path, lv.name))
        paths = tuple(loc.path for loc in locators)
        link = _link if undo is None else undo.link
        parent_sr, parent_vdi, raw = naming.parse_lvhd_parent_name(
            header.parent_name)
        parent_sr, parent_vdi = link(lv.name, parent_sr, parent_vdi)
        for path in paths:
            if link(lv.name, *naming.parse_lvhd_parent_name(path)[:2]) != (
                    parent_sr, parent_vdi):
                problems.append(Problem(
                    "locator-mismatch", lv.name,
                    "locator %r disagrees with parent name %r"
                    % (path, header.parent_name)))
        return dataclasses.replace(
            facts, parent_uuid=parent_vdi, parent_sr_uuid=parent_sr,
            parent_is_raw=raw, locator_paths=paths)
    except (exception.FormatError, exception.InvalidInput) as exc:
        problems.append(Problem("bad-vhd", lv.name, str(exc)))
        return _VhdFacts()


def _link(lv_name: str, sr_uuid: str | None,
          vdi_uuid: str | None) -> tuple:
    return sr_uuid, vdi_uuid


def _vdi(lv: LvInfo, record, facts: _VhdFacts | None) -> VdiInfo:
    raw = lv.kind == KIND_RAW
    return VdiInfo(
        uuid=lv.vdi_uuid or "", vdi_type="raw" if raw else "vhd",
        lv_name=lv.name,
        name_label=record.name_label if record else "",
        name_description=record.name_description if record else "",
        parent_uuid=None if raw else facts.parent_uuid,
        parent_sr_uuid=None if raw else facts.parent_sr_uuid,
        parent_is_raw=False if raw else facts.parent_is_raw,
        locator_paths=() if raw else facts.locator_paths,
        is_a_snapshot=bool(record and record.is_a_snapshot),
        snapshot_of=(record.snapshot_of or None) if record else None,
        hidden=(HIDDEN_TAG in lv.tags) if raw else facts.hidden,
        read_only=lv.read_only or bool(record and record.read_only),
        managed=record.managed if record else True,
        virtual_size=lv.size if raw else facts.virtual_size,
        header_region=0 if raw else facts.region,
        start=None if raw else facts.start,
        region_bytes=b"" if raw else facts.region_bytes)


def _check_links(sr_uuid: str | None, vdis: list[VdiInfo],
                 mgt: srmetadata.SrMetadata | None,
                 problems: list[Problem]) -> None:
    """Report what SM would trip over: dangling links, MGT/LV mismatch."""
    present = {v.uuid for v in vdis}
    for v in vdis:
        if v.parent_uuid is None:
            continue
        if v.parent_sr_uuid != sr_uuid:
            problems.append(Problem(
                "foreign-parent", v.lv_name,
                "parent %s is named in SR %s, not this SR %s"
                % (v.parent_uuid, v.parent_sr_uuid, sr_uuid)))
        elif v.parent_uuid not in present:
            problems.append(Problem(
                "missing-parent", v.lv_name,
                "parent VDI %s has no LV here" % v.parent_uuid))
    if mgt is None:
        return
    if mgt.sr_info.uuid != sr_uuid:
        problems.append(Problem(
            "mgt-sr-uuid", MGT_LV, "MGT names SR %s, the VG names SR %s"
            % (mgt.sr_info.uuid, sr_uuid)))
    recorded = {r.uuid for r in mgt.live_records}
    for missing in sorted(recorded - present):
        problems.append(Problem("record-without-lv", missing,
                                "MGT record has no VHD-/LV- volume"))
    for missing in sorted(present - recorded):
        problems.append(Problem("lv-without-record", missing,
                                "volume has no MGT record"))


class _Undo(object):
    """Reads new ids back as the old ids they were derived from."""

    def __init__(self, renames: Renames, sr_uuid: str | None,
                 old_uuids) -> None:
        self.renames = renames
        self.sr_uuid = sr_uuid
        self.old = set(old_uuids)
        self.vdi = {renames.vdi(u): u for u in self.old}
        self.renamed: list[str] = []

    def mgt(self, mgt, problems: list[Problem]):
        """The MGT with new SR/VDI uuids read as the old ones."""
        info_new = mgt.sr_info.uuid == self.renames.target
        uuids = [r.uuid for r in mgt.records if r.uuid] + [
            r.snapshot_of for r in mgt.records if r.snapshot_of]
        if not info_new and not any(u in self.vdi for u in uuids):
            return mgt
        unknown = sorted(u for u in uuids
                         if u not in self.vdi and u not in self.old)
        if unknown:
            # A (deleted) record whose old uuid is not in the LVM
            # metadata: nothing tells whether it is renamed already.
            problems.append(Problem(
                "unmappable-record", MGT_LV, "interrupted resignature: "
                "cannot tell whether %s was renamed" % ", ".join(unknown)))
            return mgt
        self.renamed.append(MGT_LV)
        return srmetadata.reidentify(
            mgt, sr_uuid=self.sr_uuid if info_new else mgt.sr_info.uuid,
            vdi_uuids=lambda u: self.vdi.get(u, u))

    def link(self, lv_name: str, sr_uuid: str | None,
             vdi_uuid: str | None) -> tuple:
        """A parent link (from the header or a locator) read as the old."""
        if sr_uuid != self.renames.target or vdi_uuid not in self.vdi:
            return sr_uuid, vdi_uuid
        if lv_name not in self.renamed:
            self.renamed.append(lv_name)
        return self.sr_uuid, self.vdi[vdi_uuid]

    def label(self, pv: lvm.PvOnDisk, vg_pv_id: str) -> lvm.PvOnDisk:
        """The PV with a label already carrying the new id read as old."""
        if lvm_id.format_lvm_id(pv.label.pv_id) != self.renames.pv(vg_pv_id):
            return pv
        self.renamed.append("label")
        return dataclasses.replace(pv, label=pv.label.with_pv_id(vg_pv_id))


def inspect(dev, renames: Renames | None = None) -> LvhdSr:
    """Build the :class:`LvhdSr` of an opened device (or any reader).

    ``dev`` needs ``path``, ``size`` and ``read(offset, length)``.  With
    ``renames``, ids an interrupted resignature already changed are read
    as the old ones (see :class:`Renames`) and listed in ``renamed``.
    """
    pv = lvm.read_pv(dev)
    text = pv.committed_text
    if text is None:
        raise exception.LvmMetadataError(
            device=dev.path, structure="metadata areas", offset=4096,
            expected="a committed metadata copy", found="none")
    vg = vg_metadata.parse_vg(text, dev.path)
    problems: list[Problem] = []
    if len({m.committed_text for m in pv.mdas
            if m.committed_text is not None}) > 1:
        # lvm2 commits every area in turn: a crash between two commits.
        problems.append(Problem(
            "mda-mismatch", vg.name, "the metadata areas at %s hold "
            "different committed metadata; the first is used" % ", ".join(
                str(m.header.start) for m in pv.mdas)))
    sr_uuid = None
    if vg.name.startswith(naming.VG_PREFIX):
        sr_uuid = vg.name[len(naming.VG_PREFIX):]
    else:
        problems.append(Problem("not-lvhd", vg.name,
                                "VG name lacks the %s prefix"
                                % naming.VG_PREFIX))
    lvs = tuple(_lv_info(vg, lv, problems) for lv in vg.lvs)
    undo = None
    if renames is not None and sr_uuid != renames.target:
        undo = _Undo(renames, sr_uuid,
                     (lv.vdi_uuid for lv in lvs if lv.vdi_uuid))
    if len(vg.pvs) != 1:
        problems.append(Problem("multiple-pvs", vg.name,
                                "%d PVs; an LVHD SR has one" % len(vg.pvs)))
    else:
        if undo is not None:
            pv = undo.label(pv, vg.pvs[0].id)
        if lvm_id.format_lvm_id(pv.label.pv_id) != vg.pvs[0].id:
            problems.append(Problem(
                "pv-id-mismatch", vg.pvs[0].key,
                "label says %s, metadata says %s"
                % (lvm_id.format_lvm_id(pv.label.pv_id), vg.pvs[0].id)))
    by_kind = {lv.name: lv for lv in lvs if lv.extents}
    mgt = None
    if MGT_LV in by_kind:
        mgt = _read_mgt(dev, by_kind[MGT_LV], problems)
        if mgt is not None and undo is not None:
            mgt = undo.mgt(mgt, problems)
    else:
        problems.append(Problem("no-mgt", vg.name, "no MGT volume"))
    records = {r.uuid: r for r in mgt.live_records} if mgt else {}
    vdis = []
    reader = _Prefetched(dev, _first_reads(lvs))
    for lv in lvs:
        if lv.kind not in (KIND_VHD, KIND_RAW) or not lv.extents:
            continue
        record = records.get(lv.vdi_uuid)
        facts = (_read_vhd(reader, lv, problems, undo)
                 if lv.kind == KIND_VHD else None)
        vdis.append(_vdi(lv, record, facts))
    _check_links(sr_uuid, vdis, mgt, problems)
    return LvhdSr(device=dev.path, pv=pv, vg=vg, sr_uuid=sr_uuid, mgt=mgt,
                  lvs=lvs, vdis=tuple(vdis), problems=tuple(problems),
                  renamed=tuple(undo.renamed) if undo else ())


def inspect_path(path: str) -> LvhdSr:
    """Open ``path`` read-only and inspect it."""
    with device_mod.open_device(path) as dev:
        return inspect(dev)
