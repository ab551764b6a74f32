"""Resignature a cloned LVHD SR: inspect -> plan (pure) -> apply -> verify.

A SAN clone of a LUN holding an LVHD SR carries every identifier of its
original.  This module gives the clone a new identity derived from one
target SR UUID, so original and clone can be attached side by side.

Three properties matter more than speed:

* **Deterministic.** Every new identifier is a function of the target SR
  UUID and the old identifier (:func:`new_vdi_uuid`, :func:`new_lvm_id`), and
  everything written (including the LVM text's description and times) is a
  function of the original bytes.  A second run with the same target finds
  the device already resigned and does nothing.
* **Crash-safe.** Writes go in the order of DESIGN.md section 4 with an
  fsync between phases: VHD parent links and MGT first (only LV contents),
  then the new LVM text into free space of the circular buffer, the
  precommit slot, the label (new PV id), and last the commit.  Before the
  first write every range to be touched is backed up (:mod:`backup`).  A run
  interrupted anywhere - even by a torn sector - is resumed by planning
  again from the original bytes, read through the backup, and repeating
  every write: the result is byte-identical to an uninterrupted run.
* **Safe.** Only the clone is opened for writing (block devices ``O_EXCL``);
  anything the engine cannot map consistently is refused before the first
  write (:class:`~nova_xenapi_resign.exception.UnsafeOperation`).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import stat
import tempfile
import time
import uuid

from nova_xenapi_resign import backup as backup_mod
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import srmetadata
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign.lvhd import vhd

LOG = logging.getLogger(__name__)

#: Namespace of derived VDI uuids: uuid5(NAMESPACE_URL, project URL).
RESIGN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL,
                              "https://opendev.org/x/nova-xenapi-resign")
MARKER = "xenapi-resign:"

STATE_ORIGINAL = "original"
STATE_RESIGNING = "resigning"
STATE_RESIGNED = "resigned"

JOURNALS_REFUSE = "refuse"
JOURNALS_RENAME = "rename"

# Problems that mean the SR cannot be mapped consistently.
_FATAL_PROBLEMS = frozenset((
    "not-lvhd", "multiple-pvs", "bad-mgt", "bad-vhd", "unsupported-segment",
    "locator-mismatch", "foreign-parent", "missing-parent", "mgt-sr-uuid",
    "pv-id-mismatch", "no-mgt"))
# Problems a half-finished resignature leaves behind.
_PARTIAL_PROBLEMS = frozenset(("pv-id-mismatch", "mgt-sr-uuid",
                               "foreign-parent", "locator-mismatch"))

PHASE_CONTENT = "vhd+mgt"
PHASE_TEXT = "lvm-text"
PHASE_PRECOMMIT = "precommit"
PHASE_LABEL = "label"
PHASE_COMMIT = "commit"
#: Write groups in order, with an fsync after each.  Nothing LVM reads
#: changes before the label: LV contents, uncommitted text and the
#: precommit slot share one barrier; the label and the commit each get one.
PHASES = ((PHASE_CONTENT, PHASE_TEXT, PHASE_PRECOMMIT), (PHASE_LABEL,),
          (PHASE_COMMIT,))


# --- identities ---

def target_vg_name(target_sr_uuid: str) -> str:
    return naming.sr_vg_name(target_sr_uuid)


def new_vdi_uuid(target_sr_uuid: str, old_vdi_uuid: str) -> str:
    """The clone's uuid for a VDI: a pure function of target and old uuid."""
    return str(uuid.uuid5(RESIGN_NAMESPACE,
                          "%s/%s" % (target_sr_uuid, old_vdi_uuid)))


def new_lvm_id(target_sr_uuid: str, role: str, old_id: str) -> str:
    """A new LVM id (dashed) for a PV, VG or LV: pure, in LVM's alphabet."""
    return lvm_id.derive_lvm_id("resign", target_sr_uuid, role,
                                lvm_id.parse_lvm_id(old_id)
                                if lvm_id.is_lvm_id(old_id) else old_id)


def _check_target(target_sr_uuid: str) -> None:
    name = target_vg_name(target_sr_uuid) if isinstance(
        target_sr_uuid, str) else None
    if not target_sr_uuid or not lvm_id.is_valid_lvm_name(name):
        raise exception.InvalidInput(
            reason="target SR uuid %r cannot name a VG (%s<uuid> must be a "
            "valid LVM name)" % (target_sr_uuid, naming.VG_PREFIX))


# --- models ---

@dataclasses.dataclass(frozen=True)
class Options:
    """How to resign.

    ``journals``: ``refuse`` (default) or ``rename`` journal, jvhd and
    cbtlog LVs along with the VDIs they name.
    """

    journals: str = JOURNALS_REFUSE


@dataclasses.dataclass(frozen=True)
class Change:
    kind: str
    subject: str
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Write:
    phase: str
    offset: int
    data: bytes
    what: str


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What a device holds, and how far a resignature of it has got.

    ``original`` is the SR as it was before any resignature began: the
    device itself, or - when resuming - the device read through its backup.
    ``regions`` holds the first bytes (footer, header, locators) of every
    differencing VHD of ``original``, which planning needs.
    """

    device: str
    device_size: int
    state: str
    sr: sr_mod.LvhdSr | None
    original: sr_mod.LvhdSr
    regions: dict
    backup: backup_mod.Backup | None


@dataclasses.dataclass(frozen=True)
class Plan:
    device: str
    source_sr_uuid: str
    target_sr_uuid: str
    source_vg_name: str
    source_pv_id: str
    new_pv_id: str
    new_vg_id: str
    vdi_map: dict
    lv_map: dict              # old LV name -> (new name, new id)
    changes: tuple[Change, ...]
    writes: tuple[Write, ...]
    backup_ranges: tuple[tuple[int, int], ...]
    #: The new LVM metadata text, without its NUL.
    new_text: bytes = b""

    @property
    def bytes_to_write(self) -> int:
        return sum(len(w.data) for w in self.writes)


@dataclasses.dataclass(frozen=True)
class ResignResult:
    device: str
    target_sr_uuid: str
    changed: bool
    dry_run: bool
    state: str
    plan: Plan | None
    backup_path: str | None
    bytes_read: int
    bytes_written: int
    writes: int
    seconds: float

    @property
    def message(self) -> str:
        if self.dry_run:
            return "dry run: %d changes planned, nothing written" % (
                len(self.plan.changes) if self.plan else 0)
        if not self.changed:
            return "nothing to do: already resigned to %s" % (
                self.target_sr_uuid)
        return "resigned to %s: %d changes, %d bytes written" % (
            self.target_sr_uuid, len(self.plan.changes), self.bytes_written)


# --- inspection ---

def _regions(dev, sr: sr_mod.LvhdSr) -> dict:
    regions = {}
    for vdi in sr.vdis:
        if vdi.parent_uuid is not None and vdi.header_region:
            regions[vdi.lv_name] = sr_mod.read_lv(
                dev, sr.lv(vdi.lv_name), 0, vdi.header_region)
    return regions


def _is_resigned(sr: sr_mod.LvhdSr) -> bool:
    pending = any(m.precommitted_text is not None or m.precommit_error
                  for m in sr.pv.mdas)
    partial = any(p.code in _PARTIAL_PROBLEMS for p in sr.problems)
    return bool(sr.vg.description and sr.vg.description.startswith(MARKER)
                and not pending and not partial)


def _candidate_backups(backup_dir: str | None, size: int,
                       target: str | None) -> list[backup_mod.Backup]:
    if not backup_dir or not os.path.isdir(backup_dir):
        return []
    pattern = "*%s" % backup_mod.SUFFIX
    if target is not None:
        pattern = "*-%s%s" % (backup_mod._safe(target), backup_mod.SUFFIX)
    found = []
    for path in sorted(glob.glob(os.path.join(backup_dir, pattern))):
        try:
            b = backup_mod.read_backup(path)
        except exception.BackupError as exc:
            LOG.warning("Ignoring unreadable backup %s: %s", path, exc)
            continue
        if b.device_size == size:
            found.append(b)
    return found


def _original_from_backup(dev, backups) -> tuple:
    """The first backup whose view of ``dev`` is the SR it recorded."""
    for b in backups:
        view = backup_mod.OriginalView(dev, b)
        try:
            original = sr_mod.inspect(view)
        except exception.FormatError:
            continue
        if (original.vg_name == b.source_vg_name
                and original.pv_id == b.source_pv_id):
            return b, view, original
    return None, None, None


def _differs(dev, b: backup_mod.Backup) -> bool:
    """True when the device no longer holds the backup's original bytes."""
    return any(data != dev.read(r.offset, r.length)
               for r, data in backup_mod.range_data(b))


def inspect(dev, backup_dir: str | None = None,
            target_sr_uuid: str | None = None) -> Inspection:
    """Inspect ``dev`` and classify it: original, resigning or resigned.

    A device whose metadata is torn by an interrupted resignature cannot be
    parsed on its own; it is recognised through its backup in
    ``backup_dir`` (for ``target_sr_uuid`` if given).  Without a matching
    backup such a device raises the :class:`FormatError` that stopped it.
    """
    try:
        current = sr_mod.inspect(dev)
        error = None
    except exception.FormatError as exc:
        current, error = None, exc
    if current is not None and _is_resigned(current):
        return Inspection(dev.path, dev.size, STATE_RESIGNED, current,
                          current, _regions(dev, current), None)
    backups = _candidate_backups(backup_dir, dev.size, target_sr_uuid)
    b, view, original = _original_from_backup(dev, backups)
    if b is not None and _differs(dev, b):
        return Inspection(dev.path, dev.size, STATE_RESIGNING, current,
                          original, _regions(view, original), b)
    if current is None:
        raise error
    # Without its backup, an interrupted run still shows: identifiers of
    # two SRs at once, or a precommitted copy of our text.
    partial = any(p.code in _PARTIAL_PROBLEMS for p in current.problems)
    pending = any(m.precommitted_text and MARKER in m.precommitted_text
                  .decode("utf-8", "replace") for m in current.pv.mdas)
    state = STATE_RESIGNING if (partial or pending) else STATE_ORIGINAL
    return Inspection(dev.path, dev.size, state, current, current,
                      _regions(dev, current), b)


# --- refusals and planning ---

def _refuse(device: str, reason: str) -> exception.UnsafeOperation:
    return exception.UnsafeOperation(device=device, reason=reason)


def check_safe(insp: Inspection, target_sr_uuid: str,
               options: Options = Options()) -> None:
    """Refuse what cannot be resigned consistently; nothing is written."""
    sr = insp.original
    if insp.state == STATE_RESIGNING and insp.backup is None:
        raise _refuse(insp.device, "this looks like an interrupted "
                      "resignature (%s), but its backup is not in the backup "
                      "directory; pass the --backup-dir it used, or restore "
                      "the device" % ("; ".join(
                          p.code for p in sr.problems) or "precommitted"))
    fatal = [p for p in sr.problems if p.code in _FATAL_PROBLEMS]
    if fatal:
        raise _refuse(insp.device, "; ".join(str(p) for p in fatal))
    if sr.sr_uuid == target_sr_uuid:
        raise _refuse(insp.device, "the SR uuid is already %s: resigning a "
                      "SR to its own uuid would keep it a duplicate"
                      % target_sr_uuid)
    for lv in sr.lvs:
        if lv.kind in (sr_mod.KIND_JVHD, sr_mod.KIND_CBTLOG,
                       sr_mod.KIND_JOURNAL):
            if options.journals != JOURNALS_RENAME:
                raise _refuse(insp.device, "LV %s is a %s volume (an SM "
                              "operation did not finish on the original); "
                              "use --journals rename to carry it over"
                              % (lv.name, lv.kind))
            if lv.kind == sr_mod.KIND_JOURNAL and lv.name.endswith("_1"):
                raise _refuse(insp.device, "journal LV %s keeps its VDI "
                              "uuids in its data; cannot rename it" % lv.name)


def _lv_renames(sr: sr_mod.LvhdSr, target: str, vdi_map: dict) -> dict:
    """old LV name -> (new name, new id) for every LV of the VG."""
    out = {}
    for lv in sr.lvs:
        name = lv.name
        if lv.vdi_uuid is not None:
            name = name.replace(lv.vdi_uuid, vdi_map[lv.vdi_uuid])
        elif lv.kind == sr_mod.KIND_JOURNAL:
            for old, new in vdi_map.items():
                name = name.replace(old, new)
        out[lv.name] = (name, new_lvm_id(target, "lv", lv.id))
    return out


def _vdi_map(sr: sr_mod.LvhdSr, target: str) -> dict:
    uuids = {v.uuid for v in sr.vdis}
    uuids |= {lv.vdi_uuid for lv in sr.lvs if lv.vdi_uuid}
    if sr.mgt is not None:
        uuids |= {r.uuid for r in sr.mgt.records if r.uuid}
    return {old: new_vdi_uuid(target, old) for old in sorted(uuids)}


def _lv_writes(lv: sr_mod.LvInfo, phase: str, lv_offset: int, data: bytes,
               what: str) -> list[Write]:
    writes = []
    pos = 0
    for dev_offset, length in lv.device_ranges(lv_offset, len(data)):
        writes.append(Write(phase, dev_offset, data[pos:pos + length], what))
        pos += length
    return writes


def _vhd_writes(insp: Inspection, target: str, vdi_map: dict
                ) -> tuple[list[Write], list[Change]]:
    sr = insp.original
    writes, changes = [], []
    for vdi in sr.vdis:
        if vdi.parent_uuid is None:
            continue
        region = insp.regions[vdi.lv_name]
        found = vhd.parse_lv_start(region, "%s:%s" % (sr.device,
                                                      vdi.lv_name))
        old_name = found.header.parent_name
        new_name = naming.lvhd_parent_name(target, vdi_map[vdi.parent_uuid],
                                           raw=vdi.parent_is_raw)
        lv = sr.lv(vdi.lv_name)
        for offset, data in vhd.plan_parent_change(
                found.footer, found.header, region, new_name,
                device="%s:%s" % (sr.device, vdi.lv_name)):
            writes += _lv_writes(lv, PHASE_CONTENT, offset, data,
                                 "parent link of %s" % vdi.lv_name)
        changes.append(Change("vhd-parent", vdi.lv_name, old_name, new_name))
    return writes, changes


def _mgt_writes(sr: sr_mod.LvhdSr, target: str, vdi_map: dict
                ) -> tuple[list[Write], list[Change]]:
    new_md = srmetadata.reidentify(sr.mgt, sr_uuid=target,
                                   vdi_uuids=vdi_map, device=sr.device)
    data = srmetadata.render(new_md, sr.device)
    changes = [Change("mgt-sr-uuid", "MGT", sr.mgt.sr_info.uuid, target)]
    for record in sr.mgt.live_records:
        if record.snapshot_of:
            changes.append(Change("snapshot-of", record.uuid,
                                  record.snapshot_of,
                                  vdi_map[record.snapshot_of]))
    return _lv_writes(sr.lv(sr_mod.MGT_LV), PHASE_CONTENT, 0, data,
                      "MGT"), changes


def _lvm_writes(sr: sr_mod.LvhdSr, target: str, new_pv_id: str,
                new_vg_id: str, lv_map: dict) -> tuple[list[Write], bytes]:
    new_vg = vg_metadata.reidentify(
        sr.vg, name=target_vg_name(target), vg_id=new_vg_id,
        pv_ids={sr.vg.pvs[0].key: new_pv_id}, lvs=lv_map,
        seqno=sr.vg.seqno + 1,
        description="%s %s resignatured as %s" % (
            MARKER, sr.vg_name, target_vg_name(target)))
    text = vg_metadata.render_vg(new_vg, form="raw").encode("utf-8")
    text_writes, precommits, commits = [], [], []
    for mda in sr.pv.mdas:
        tw = lvm.plan_text_write(mda.header, text, device=sr.device)
        text_writes += [Write(PHASE_TEXT, o, d, "LVM text at %d"
                              % mda.header.start) for o, d in tw.writes]
        precommits.append(Write(
            PHASE_PRECOMMIT, mda.header.start,
            lvm.render_mda_header(lvm.precommit_header(mda.header,
                                                       tw.rlocn)),
            "mda header at %d (precommit)" % mda.header.start))
        commits.append(Write(
            PHASE_COMMIT, mda.header.start,
            lvm.render_mda_header(lvm.commit_header(mda.header, tw.rlocn)),
            "mda header at %d (commit)" % mda.header.start))
    label = sr.pv.label
    label_write = Write(PHASE_LABEL, label.offset, lvm.render_label(
        label.with_pv_id(lvm_id.parse_lvm_id(new_pv_id))),
        "label sector %d" % label.sector)
    return text_writes + precommits + [label_write] + commits, text


def _sector_span(offset: int, length: int) -> tuple[int, int]:
    start = offset - offset % 512
    end = -(-(offset + length) // 512) * 512
    return start, end - start


def plan(insp: Inspection, target_sr_uuid: str,
         options: Options = Options()) -> Plan:
    """Every change and every write, from the original state; no I/O."""
    _check_target(target_sr_uuid)
    check_safe(insp, target_sr_uuid, options)
    sr = insp.original
    target = target_sr_uuid
    vdi_map = _vdi_map(sr, target)
    lv_map = _lv_renames(sr, target, vdi_map)
    new_names = {new for new, _ in lv_map.values()}
    if len(new_names) != len(lv_map):
        raise _refuse(insp.device, "new LV names would collide")
    new_pv_id = new_lvm_id(target, "pv", sr.pv_id)
    new_vg_id = new_lvm_id(target, "vg", sr.vg.id)
    changes = [Change("vg-name", "VG", sr.vg_name, target_vg_name(target)),
               Change("vg-id", "VG", sr.vg.id, new_vg_id),
               Change("pv-id", sr.vg.pvs[0].key,
                      lvm_id.format_lvm_id(sr.pv_id), new_pv_id)]
    for old_name, (new_name, new_id) in lv_map.items():
        changes.append(Change("lv", old_name, "%s %s" % (
            old_name, sr.lv(old_name).id), "%s %s" % (new_name, new_id)))
    for vdi in sr.vdis:
        changes.append(Change("vdi", vdi.lv_name, vdi.uuid,
                              vdi_map[vdi.uuid]))
    writes, vhd_changes = _vhd_writes(insp, target, vdi_map)
    mgt_writes, mgt_changes = _mgt_writes(sr, target, vdi_map)
    writes += mgt_writes
    lvm_writes, new_text = _lvm_writes(sr, target, new_pv_id, new_vg_id,
                                       lv_map)
    writes += lvm_writes
    changes += vhd_changes + mgt_changes
    # What restore and resume need: the label area, every mda header and
    # committed text (the VG as it was), and every range about to be
    # written.  Restoring these gives back the original bytes exactly; the
    # rest of the metadata area is free space LVM never reads.
    ranges = [(0, 4096)]
    for m in sr.pv.mdas:
        ranges.append((m.header.start, 512))
        if m.header.committed is not None:
            ranges += [_sector_span(o, n) for o, n in lvm.text_extents(
                m.header, m.header.committed)]
    ranges += [(w.offset, len(w.data)) for w in writes]
    return Plan(device=insp.device, source_sr_uuid=sr.sr_uuid or "",
                target_sr_uuid=target, source_vg_name=sr.vg_name,
                source_pv_id=sr.pv_id, new_pv_id=new_pv_id,
                new_vg_id=new_vg_id, vdi_map=vdi_map, lv_map=lv_map,
                changes=tuple(changes), writes=tuple(writes),
                backup_ranges=tuple(backup_mod.merge_ranges(ranges)),
                new_text=new_text)


# --- apply and verify ---

def apply(dev, p: Plan) -> None:
    """Write the plan phase by phase, with an fsync after each phase."""
    for group in PHASES:
        for phase in group:
            writes = [w for w in p.writes if w.phase == phase]
            for w in writes:
                dev.write(w.offset, w.data)
            LOG.debug("%s: phase %s written (%d writes)", dev.path, phase,
                      len(writes))
        dev.fsync()


def _mismatch(dev, what, found, expected):
    return exception.ResignVerifyError(device=dev.path, what=what,
                                       found=found, expected=expected)


def verify_writes(dev, p: Plan) -> None:
    """Re-read the device: every planned byte is there, LVM reads the plan.

    Compares each written range byte for byte, then reads the label, mda
    headers and committed text back through the LVM parser (all CRCs
    checked) and requires the committed text and PV id to be the plan's.
    """
    final = {w.offset: w for w in p.writes}      # commit replaces precommit
    for w in final.values():
        if dev.read(w.offset, len(w.data)) != w.data:
            raise _mismatch(dev, "bytes at %d (%s)" % (w.offset, w.what),
                            "different", "as written")
    pv = lvm.read_pv(dev)
    if lvm_id.format_lvm_id(pv.label.pv_id) != p.new_pv_id:
        raise _mismatch(dev, "PV id", pv.label.pv_id, p.new_pv_id)
    for mda in pv.mdas:
        if mda.committed_text != p.new_text or mda.precommitted_text:
            raise _mismatch(dev, "committed metadata at %d"
                            % mda.header.start, "other text",
                            "the planned text, nothing precommitted")


# --- locking and the public entry point ---

def _lock_name(path: str) -> str:
    st = os.stat(path)
    if stat.S_ISBLK(st.st_mode):
        return "xenapi-resign-blk-%d-%d" % (os.major(st.st_rdev),
                                            os.minor(st.st_rdev))
    return "xenapi-resign-file-%d-%d" % (st.st_dev, st.st_ino)


def default_lock_path() -> str:
    return os.path.join(tempfile.gettempdir(), "xenapi-resign-locks")


def device_lock(path: str, lock_path: str | None = None):
    """An external (inter-process) lock keyed by the device's identity.

    Two runs on one device - by path, loop device or symlink - serialize;
    the second waits for the first and then finds nothing to do.
    """
    from oslo_concurrency import lockutils
    lock_path = lock_path or default_lock_path()
    os.makedirs(lock_path, exist_ok=True)
    return lockutils.lock(_lock_name(path), external=True,
                          lock_path=lock_path)


def resign_device(path: str, target_sr_uuid: str,
                  backup_dir: str | None = None, dry_run: bool = False,
                  options: Options = Options(),
                  lock_path: str | None = None,
                  opener=device_mod.open_device) -> ResignResult:
    """Resignature the LVHD SR on ``path`` to ``target_sr_uuid``.

    The one entry point for services and scripts.  Returns what changed,
    or that nothing had to; raises :class:`UnsafeOperation` (nothing
    written) for anything it will not do, and other
    :class:`ResignException` subclasses for errors.  ``opener`` exists for
    fault-injection tests.
    """
    _check_target(target_sr_uuid)
    if backup_dir is None and not dry_run:
        raise exception.InvalidInput(reason="a backup directory is required "
                                     "to write (pass backup_dir)")
    started = time.monotonic()
    with device_lock(path, lock_path):
        with opener(path, writable=not dry_run) as dev:
            insp = inspect(dev, backup_dir, target_sr_uuid)
            if (insp.state == STATE_RESIGNED
                    and insp.sr.sr_uuid == target_sr_uuid):
                # inspect() found our marker, nothing precommitted and no
                # half-written identity: a finished run to this target.
                return _result(dev, target_sr_uuid, False, False,
                               STATE_RESIGNED, None, None, started)
            p = plan(insp, target_sr_uuid, options)
            if dry_run:
                return _result(dev, target_sr_uuid, False, True, insp.state,
                               p, None, started)
            b = backup_mod.write_backup(
                dev, backup_mod.backup_path(backup_dir, p.source_pv_id,
                                            target_sr_uuid),
                target_sr_uuid=target_sr_uuid,
                source_vg_name=p.source_vg_name,
                source_pv_id=p.source_pv_id, ranges=p.backup_ranges)
            LOG.info("%s: resigning %s as %s (%d writes, backup %s)",
                     path, p.source_vg_name, target_vg_name(target_sr_uuid),
                     len(p.writes), b.path)
            apply(dev, p)
            verify_writes(dev, p)
            return _result(dev, target_sr_uuid, True, False, STATE_RESIGNED,
                           p, b.path, started)


def _result(dev, target, changed, dry_run, state, p, backup_path, started
            ) -> ResignResult:
    return ResignResult(device=dev.path, target_sr_uuid=target,
                        changed=changed, dry_run=dry_run, state=state,
                        plan=p, backup_path=backup_path,
                        bytes_read=dev.bytes_read,
                        bytes_written=getattr(dev, "bytes_written", 0),
                        writes=getattr(dev, "writes", 0),
                        seconds=time.monotonic() - started)


def restore_device(path: str, backup_path: str,
                   lock_path: str | None = None) -> int:
    """Put a device back as its backup recorded it; bytes written."""
    b = backup_mod.read_backup(backup_path)
    with device_lock(path, lock_path):
        with device_mod.open_device(path, writable=True) as dev:
            return backup_mod.restore(dev, b)
