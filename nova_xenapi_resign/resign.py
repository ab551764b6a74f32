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
* **Crash-safe.** Writes go in the order of
  doc/source/reference/resignature.rst with an fsync between phases: VHD
  parent links and MGT first (only LV contents), then the new LVM text
  into free space of the circular buffer, the precommit slot, the label
  (new PV id), and last the commit.  Before the
  first write every range to be touched is backed up (:mod:`backup`).  A run
  interrupted anywhere - even by a torn sector - is resumed by planning
  again from the original bytes, read through the backup, and repeating
  every write: the result is byte-identical to an uninterrupted run.  A
  backup is used only once :func:`prove_backup` shows it was taken of this
  device and the device holds nothing but its bytes and this run's.  When
  the backup is out of reach, the old ids the crashed run already replaced
  are read back from the new ones (:class:`~.lvhd.sr.Renames`) and the run
  finishes the same way; only torn checksummed sectors and the like are
  refused.
* **Safe.** Only the clone is opened for writing (block devices ``O_EXCL``);
  anything the engine cannot map consistently is refused before the first
  write (:class:`~nova_xenapi_resign.exception.UnsafeOperation`).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import gc
import glob
import os
import re
import tempfile
import time
import uuid

from oslo_log import log as logging

from nova_xenapi_resign import backup as backup_mod
from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import srmetadata
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign.lvhd import vhd
from nova_xenapi_resign import sr_naming

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
    "pv-id-mismatch", "no-mgt", "record-without-lv", "lv-without-record",
    "unmappable-record", "mda-mismatch"))
# Problems a half-finished resignature leaves behind.
_PARTIAL_PROBLEMS = frozenset(("pv-id-mismatch", "mgt-sr-uuid",
                               "foreign-parent", "locator-mismatch",
                               "record-without-lv", "lv-without-record",
                               "unmappable-record", "mda-mismatch"))

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
#: Written ranges this close are read back in one read (a VHD's header
#: and its locators lie within a page or two).
READ_GAP = 4096
#: Unchanged bytes a run may rewrite to join two writes, as a fraction of
#: the bytes that change (issue #16's limit on the kernel's written bytes:
#: at most 1.25 times the changed sectors).
BRIDGE_SHARE = 0.25


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


def renames(target_sr_uuid: str) -> sr_mod.Renames:
    """The identity functions of a resignature to ``target_sr_uuid``."""
    return sr_mod.Renames(
        target=target_sr_uuid,
        vdi=lambda old: new_vdi_uuid(target_sr_uuid, old),
        pv=lambda old: new_lvm_id(target_sr_uuid, "pv", old))


_SR_UUID = re.compile("^%s$" % sr_mod.UUID_RE)
_PRECOMMITTED_VG = re.compile(r"\s*%s(%s)\s*\{"
                              % (naming.VG_PREFIX, sr_mod.UUID_RE))


def check_target(target_sr_uuid: object) -> None:
    """Refuse a target that a host's sm would not attach.

    sm's ``LVHDSR.attach`` requires the SR uuid to be a lowercase
    8-4-4-4-12 hex uuid (``util.match_uuid``) and fails anything else with
    ``SR_BACKEND_FAILURE_47``: a VG renamed to such a name would hold an SR
    no host can attach, so it is refused here, before anything is read.
    """
    if isinstance(target_sr_uuid, str) and _SR_UUID.match(target_sr_uuid):
        return
    reason = ("an LVHD SR uuid must be a lowercase RFC-4122 uuid "
              "(8-4-4-4-12 hex digits); a host's sm refuses to attach any "
              "other SR name (SR_BACKEND_FAILURE_47)")
    if isinstance(target_sr_uuid, str) and target_sr_uuid.startswith(
            sr_naming.LEGACY_PREFIX):
        reason = ("%s is a legacy Nova SR name, not a uuid; %s. Give "
                  "--sr-uuid, or --portal and --iqn for the uuid5 name"
                  % (sr_naming.LEGACY_PREFIX + "...", reason))
    elif isinstance(target_sr_uuid, str) and _SR_UUID.match(
            target_sr_uuid.lower()):
        reason = "upper-case letters: %s" % reason
    raise exception.InvalidTarget(target=target_sr_uuid, reason=reason)


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
    differencing VHD of ``original``, which planning needs: the bytes
    :func:`~.lvhd.sr.inspect` read and parsed, not a second read.
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

def _regions(sr: sr_mod.LvhdSr) -> dict:
    return {vdi.lv_name: vdi.region_bytes for vdi in sr.vdis
            if vdi.parent_uuid is not None and vdi.header_region}


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
    found = []
    for path in sorted(glob.glob(backup_mod.target_pattern(backup_dir,
                                                           target))):
        try:
            b = backup_mod.read_backup(path)
        except exception.BackupError as exc:
            LOG.warning("Ignoring unreadable backup %s: %s", path, exc)
            continue
        if b.device_size == size:
            found.append(b)
    return found


@dataclasses.dataclass(frozen=True)
class Proof:
    """A backup shown to belong to a device, and how far the run got."""

    backup: backup_mod.Backup
    view: backup_mod.OriginalView
    original: sr_mod.LvhdSr
    #: Sectors that no longer hold the backup's original bytes.
    changed_sectors: int


def _sector_history(p: Plan) -> dict:
    """sector offset -> [(bytes, what)] the plan writes there, in order."""
    history: dict = {}
    for w in p.writes:
        for i in range(0, len(w.data), device_mod.SECTOR_SIZE):
            history.setdefault(w.offset + i, []).append(
                (w.data[i:i + device_mod.SECTOR_SIZE], w.what))
    return history


def _reachable(current: bytes, values: list[bytes]) -> bool:
    """Is ``current`` a state the writes ``values[1:]`` can leave behind?

    Each value in turn, or a torn write: a prefix of one value over the
    rest of the value before it.
    """
    if current in values:
        return True
    for before, after in zip(values, values[1:]):
        k = next(i for i, (a, b) in enumerate(zip(current, after)) if a != b)
        if current[k:] == before[k:]:
            return True
    return False


def _mismatch_reason(dev, b: backup_mod.Backup, p: Plan) -> tuple:
    """(reason or None, number of sectors changed by the run)."""
    history = _sector_history(p)
    changed = 0
    size = device_mod.SECTOR_SIZE
    for r, data in backup_mod.range_data(b):
        current = dev.read(r.offset, r.length)
        for i in range(0, r.length, size):
            now, orig = current[i:i + size], data[i:i + size]
            if now == orig:
                continue
            written = history.get(r.offset + i, [])
            if not _reachable(now, [orig] + [v for v, _ in written]):
                return ("the sector at byte %d (%s) holds neither the "
                        "backup's original bytes nor what resigning to %s "
                        "writes there" % (r.offset + i, written[-1][1]
                                          if written else "not written by "
                                          "a resignature", b.target_sr_uuid),
                        changed)
            changed += 1
    return None, changed


def prove_backup(dev, b: backup_mod.Backup) -> Proof:
    """Show that ``b`` was taken of ``dev`` and what state ``dev`` is in.

    Read through the backup, the device must be the SR the backup names
    (VG name and id, PV id, seqno), and every sector the backup covers must
    hold its original bytes, the bytes the resignature to the backup's
    target writes there, or a torn write between the two.  Anything else -
    another LUN, another clone of the same LUN, a device changed since - is
    refused with :class:`BackupMismatch` naming what differs.
    """
    def refuse(reason):
        return exception.BackupMismatch(device=dev.path, path=b.path,
                                        reason=reason)
    if dev.size != b.device_size:
        raise refuse("the backup is of a %d-byte device, this one has %d "
                     "bytes" % (b.device_size, dev.size))
    view = backup_mod.OriginalView(dev, b)
    try:
        original = sr_mod.inspect(view, renames(b.target_sr_uuid))
    except exception.FormatError as exc:
        raise refuse("read through the backup it is no LVHD SR (%s)" % exc)
    for field, found, expected in (
            ("VG name", original.vg_name, b.source_vg_name),
            ("PV id", original.pv_id, b.source_pv_id),
            ("VG id", original.vg.id, b.source_vg_id),
            ("VG seqno", original.vg.seqno, b.source_seqno)):
        if found != expected:
            raise refuse("read through the backup its %s is %s, the backup "
                         "recorded %s" % (field, found, expected))
    insp = Inspection(dev.path, dev.size, STATE_ORIGINAL, original, original,
                      _regions(original), b)
    try:
        p = plan(insp, b.target_sr_uuid, Options(journals=b.journals))
    except exception.ResignException as exc:
        raise refuse("its original cannot be planned again (%s)" % exc)
    for w in p.writes:
        if not b.covers(w.offset, len(w.data)):
            raise refuse("the write at byte %d (%s) is outside the backed-up "
                         "ranges" % (w.offset, w.what))
    reason, changed = _mismatch_reason(dev, b, p)
    if reason is not None:
        raise refuse(reason)
    return Proof(b, view, original, changed)


def _find_proof(dev, backup_dir: str | None,
                target: str | None) -> Proof | None:
    """The first backup in ``backup_dir`` proven to be this device's."""
    for b in _candidate_backups(backup_dir, dev.size, target):
        try:
            return prove_backup(dev, b)
        except exception.BackupMismatch as exc:
            LOG.debug("Not using backup %s: %s", b.path, exc)
    return None


def inspect(dev, backup_dir: str | None = None,
            target_sr_uuid: str | None = None) -> Inspection:
    """Inspect ``dev`` and classify it: original, resigning or resigned.

    A device changed by an interrupted resignature is recognised through
    its backup in ``backup_dir`` (for ``target_sr_uuid`` if given), and
    only through a backup :func:`prove_backup` accepts.  Without one, a
    device whose metadata is torn raises the :class:`FormatError` that
    stopped it.
    """
    try:
        current = sr_mod.inspect(dev)
        error = None
    except exception.FormatError as exc:
        current, error = None, exc
    if current is not None and _is_resigned(current):
        return Inspection(dev.path, dev.size, STATE_RESIGNED, current,
                          current, _regions(current), None)
    proof = _find_proof(dev, backup_dir, target_sr_uuid)
    if proof is not None:
        state = STATE_RESIGNING if proof.changed_sectors else STATE_ORIGINAL
        return Inspection(dev.path, dev.size, state, current,
                          proof.original, _regions(proof.original),
                          proof.backup)
    if current is None:
        raise error
    # No backup: read the device as it was before an interrupted run, if
    # its own state tells (see sr.Renames).  What still does not fit is
    # refused by check_safe; an SR that is merely inconsistent (no trace
    # of a run) is an original with problems.
    original, state = current, STATE_ORIGINAL
    if _looks_interrupted(current):
        target = target_sr_uuid or _interrupted_target(current)
        if target is not None and _SR_UUID.match(target):
            original = sr_mod.inspect(dev, renames(target))
        if (original.renamed or _pending(current)
                or _interrupted_target(current) is not None):
            state = STATE_RESIGNING
    return Inspection(dev.path, dev.size, state, current, original,
                      _regions(original), None)


def _pending(sr: sr_mod.LvhdSr) -> bool:
    """Does a metadata area hold a precommitted copy of our text?"""
    return any(m.precommitted_text and MARKER in m.precommitted_text
               .decode("utf-8", "replace") for m in sr.pv.mdas)


def _looks_interrupted(sr: sr_mod.LvhdSr) -> bool:
    """Identifiers of two SRs at once, or our text precommitted."""
    return _pending(sr) or any(p.code in _PARTIAL_PROBLEMS
                               for p in sr.problems)


def _interrupted_target(sr: sr_mod.LvhdSr) -> str | None:
    """The one SR uuid an interrupted run was renaming ``sr`` to, if any."""
    found = {v.parent_sr_uuid for v in sr.vdis if v.parent_uuid}
    if sr.mgt is not None:
        found.add(sr.mgt.sr_info.uuid)
    for m in sr.pv.mdas:
        match = _PRECOMMITTED_VG.match((m.precommitted_text or b"").decode(
            "utf-8", "replace"))
        if match:
            found.add(match.group(1))
    found.discard(sr.sr_uuid)
    return found.pop() if len(found) == 1 else None


# --- refusals and planning ---

def _refuse(device: str, reason: str) -> exception.UnsafeOperation:
    return exception.UnsafeOperation(device=device, reason=reason)


def check_safe(insp: Inspection, target_sr_uuid: str,
               options: Options = Options()) -> None:
    """Refuse what cannot be resigned consistently; nothing is written."""
    sr = insp.original
    if insp.state == STATE_RESIGNING and insp.backup is None and any(
            p.code in _PARTIAL_PROBLEMS for p in sr.problems):
        other = _interrupted_target(insp.sr) if insp.sr else None
        raise _refuse(insp.device, "this looks like an interrupted "
                      "resignature%s (%s) that the device's own state "
                      "cannot finish, and its backup is not in the backup "
                      "directory; pass the --backup-dir it used, or restore "
                      "the device" % (
                          " to %s" % other if other and other !=
                          target_sr_uuid else "",
                          "; ".join(p.code for p in sr.problems)))
    fatal = [p for p in sr.problems if p.code in _FATAL_PROBLEMS]
    if fatal:
        hint = ""
        if insp.backup is None and any(p.code in _PARTIAL_PROBLEMS
                                       for p in fatal):
            hint = (" (if a resignature of this device was interrupted, "
                    "pass the --backup-dir it used)")
        raise _refuse(insp.device, "; ".join(str(p) for p in fatal) + hint)
    if (sr.sr_uuid or "").lower() == target_sr_uuid.lower():
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
        found = vdi.start
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
    check_target(target_sr_uuid)
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
    if locator.LEASE_LV in sr.vg.lv_names:  # fresh and unowned, time 0:
        writes += _lv_writes(sr.lv(locator.LEASE_LV), PHASE_CONTENT, 0,
                             protocol.initial_area(target, wall_clock=float),
                             "lease")  # planned bytes stay deterministic
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
                backup_ranges=tuple(device_mod.merge_ranges(ranges)),
                new_text=new_text)


# --- apply and verify ---

def _sectors(writes) -> dict:
    """sector offset -> the bytes the last of ``writes`` puts there."""
    sectors = {}
    for w in writes:
        for i in range(0, len(w.data), device_mod.SECTOR_SIZE):
            sectors[w.offset + i] = w.data[i:i + device_mod.SECTOR_SIZE]
    return sectors


def _in_place(dev, p: Plan, current=None) -> dict:
    """Sectors the plan writes once that already hold those bytes.

    sector offset -> its bytes.  Rewriting them changes nothing on disk
    at any crash point, so they are left out (or rewritten only to join
    two writes, :func:`bridge_runs`); a sector written twice (an mda
    header: precommit, then commit) is always written.  ``current``: see
    :func:`apply`.
    """
    counts: dict = {}
    for w in p.writes:
        for i in range(0, len(w.data), device_mod.SECTOR_SIZE):
            counts[w.offset + i] = counts.get(w.offset + i, 0) + 1
    once = _sectors(p.writes)
    found = {}
    if current is None:
        current = backup_mod.read_ranges(
            dev, [(w.offset, len(w.data)) for w in p.writes], READ_GAP)
    for offset, length, data in current:
        for i in range(0, length, device_mod.SECTOR_SIZE):
            sector = offset + i
            if (counts.get(sector) == 1 and once[sector]
                    == data[i:i + device_mod.SECTOR_SIZE]):
                found[sector] = once[sector]
    return found


def write_runs(writes, skip=frozenset()) -> list[tuple[int, bytes]]:
    """(offset, bytes) runs of ``writes`` in order, minus ``skip`` sectors.

    A write that starts where the run before it ends joins that run: one
    device write per run instead of one per field, and the order of the
    plan is kept.
    """
    runs: list[tuple[int, list]] = []
    size = device_mod.SECTOR_SIZE
    for w in writes:
        for i in range(0, len(w.data), size):
            offset = w.offset + i
            if offset in skip:
                continue
            if runs and runs[-1][0] + size * len(runs[-1][1]) == offset:
                runs[-1][1].append(w.data[i:i + size])
            else:
                runs.append((offset, [w.data[i:i + size]]))
    return [(offset, b"".join(chunks)) for offset, chunks in runs]


def bridge_runs(runs, known: dict, budget: int
                ) -> tuple[list[tuple[int, bytes]], int]:
    """``runs`` with the smallest gaps of ``known`` sectors filled in.

    Two consecutive runs (plan order) whose gap holds only sectors of
    ``known`` (sector offset -> the bytes it holds now) become one write:
    rewriting a sector's own bytes changes nothing at any crash point,
    and one system call replaces two.  Gaps are filled smallest first
    while their bytes fit in ``budget``; returns the runs and the budget
    left.
    """
    size = device_mod.SECTOR_SIZE
    gaps = []
    for i in range(len(runs) - 1):
        start = runs[i][0] + len(runs[i][1])
        end = runs[i + 1][0]
        if start < end and all(o in known for o in range(start, end, size)):
            gaps.append((end - start, i))
    filled = set()
    for length, i in sorted(gaps):
        if length > budget:
            break
        filled.add(i)
        budget -= length
    joined: list[tuple[int, list]] = []
    for i, (offset, data) in enumerate(runs):
        if i - 1 in filled:
            gap_start = runs[i - 1][0] + len(runs[i - 1][1])
            joined[-1][1].extend(known[o] for o in range(gap_start, offset,
                                                         size))
            joined[-1][1].append(data)
        else:
            joined.append((offset, [data]))
    return [(offset, b"".join(parts)) for offset, parts in joined], budget


def apply(dev, p: Plan, current=None, join: bool = False) -> None:
    """Write the plan phase by phase, with an fsync after each group.

    Within a phase, adjacent writes are merged into runs
    (:func:`write_runs`), and sectors that already hold their bytes are
    not written again.  ``join`` (a first run: the device is the
    original) rewrites such sectors to join two nearby runs into one
    write, the bytes rewritten within :data:`BRIDGE_SHARE` of the bytes
    that change (:func:`bridge_runs`).  A resumed run never joins: each
    of its writes then lies within one write of the first run.
    ``current`` is what the device holds now, as ``(offset, length,
    bytes)`` chunks covering every write (the reads of the backup just
    taken, under the same lock); None reads it.
    """
    skip = _in_place(dev, p, current)
    runs = {phase: write_runs([w for w in p.writes if w.phase == phase],
                              skip)
            for group in PHASES for phase in group}
    budget = int(BRIDGE_SHARE * sum(len(data) for phase_runs in runs.values()
                                    for _, data in phase_runs)) if join else 0
    for group in PHASES:
        for phase in group:
            joined, budget = bridge_runs(runs[phase], skip, budget)
            for offset, data in joined:
                dev.write(offset, data)
            LOG.debug("%s: phase %s written (%d writes)", dev.path, phase,
                      len(joined))
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
    # Nearby writes (a VHD's header and locators) are read back together.
    chunks = backup_mod.read_ranges(dev, [(w.offset, len(w.data))
                                          for w in final.values()], READ_GAP)
    starts = [offset for offset, _, _ in chunks]
    for w in final.values():
        offset, _, data = chunks[bisect.bisect_right(starts, w.offset) - 1]
        at = w.offset - offset
        if data[at:at + len(w.data)] != w.data:
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

def default_lock_path() -> str:
    """Where device locks live: ``[oslo_concurrency] lock_path`` when set.

    Nova and Cinder configure that option (or ``$OSLO_LOCK_PATH``) for their
    own external locks; sharing it keeps every lock of a host in one place
    an operator knows. A bare CLI run with neither falls back to a directory
    under the system temporary directory.
    """
    from oslo_concurrency import lockutils  # registers [oslo_concurrency]
    configured = lockutils.CONF.oslo_concurrency.lock_path
    return configured or os.path.join(tempfile.gettempdir(),
                                      "xenapi-resign-locks")


def device_lock(path: str, lock_path: str | None = None):
    """An external (inter-process) lock keyed by the device's identity.

    Two runs on one device - by path, loop device, its backing file or a
    symlink - serialize; the second waits for the first and then finds
    nothing to do.
    """
    from oslo_concurrency import lockutils
    lock_path = lock_path or default_lock_path()
    os.makedirs(lock_path, exist_ok=True)
    name = "xenapi-resign-" + device_mod.storage_identity(path)
    return lockutils.lock(name, external=True,
                          lock_path=lock_path)


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection while a run builds its models.

    A 1,000-VDI SR is some 100,000 small objects, none in a reference
    cycle, that live until the run ends: CPython's collector would walk
    the growing heap again and again, a quarter or more of the run's CPU,
    and find nothing.  Reference counting still frees everything; the
    collector is switched back on (if it was on) however the run ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    check_target(target_sr_uuid)
    if backup_dir is None and not dry_run:
        raise exception.InvalidInput(reason="a backup directory is required "
                                     "to write (pass backup_dir)")
    started = time.monotonic()
    with device_lock(path, lock_path), _collector_paused():
        with opener(path, writable=not dry_run) as dev:
            try:
                insp = inspect(dev, backup_dir, target_sr_uuid)
            except exception.FormatError as exc:
                raise _refuse(path, "not a readable LVHD SR: %s" % exc
                              ) from exc
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
            # A first run backs up the ranges it is about to write: what it
            # reads for the backup is what the device holds when applying.
            current = None
            b = insp.backup
            if b is None:
                current = backup_mod.read_ranges(dev, p.backup_ranges)
                b = backup_mod.write_backup(
                    dev, backup_dir, target_sr_uuid=target_sr_uuid,
                    source_vg_name=p.source_vg_name,
                    source_pv_id=p.source_pv_id,
                    source_vg_id=insp.original.vg.id,
                    source_seqno=insp.original.vg.seqno,
                    journals=options.journals, ranges=p.backup_ranges,
                    chunks=current)
            LOG.info("%s: resigning %s as %s (%d writes, backup %s)",
                     path, p.source_vg_name, target_vg_name(target_sr_uuid),
                     len(p.writes), b.path)
            apply(dev, p, current, join=(insp.state == STATE_ORIGINAL
                                         and insp.backup is None))
            verify_writes(dev, p)
            # Free the SR model now, by reference counting, so that the
            # collector, back on, does not walk it once before it goes.
            del insp, current
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
    """Put a device back as its backup recorded it; bytes written.

    Only onto the device the backup was taken of, in a state
    :func:`prove_backup` accepts (original, partly or wholly resigned by
    that run, nothing changed since); a device already holding the
    original bytes is left alone.
    """
    b = backup_mod.read_backup(backup_path)
    with device_lock(path, lock_path):
        with device_mod.open_device(path, writable=True) as dev:
            if not prove_backup(dev, b).changed_sectors:
                return 0
            return backup_mod.restore(dev, b)
