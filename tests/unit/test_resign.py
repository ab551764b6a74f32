"""The resign engine on image files: plan, refusals, idempotence, crashes."""

import gc
import os
import shutil
import uuid

import fixtures

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import record
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign import resign
from tests import base
from tests.crash import Crash, CrashingDevice

MiB = 1024 * 1024
SR = "3f1c4a52-0d2e-4c51-9b8e-7f3d2a1b0c9d"
TARGET = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
BASE, LEAF, SNAP, RAW = ("10000000-0000-4000-8000-00000000000%d" % i
                         for i in range(1, 5))


def snapshot_tree():
    return (create.VdiSpec(BASE, "vhd", 2 * MiB, name_label="base",
                           hidden=True, read_only=True, managed=False),
            create.VdiSpec(LEAF, "vhd", 2 * MiB, name_label="disk",
                           parent=BASE),
            create.VdiSpec(SNAP, "vhd", 2 * MiB, name_label="snap",
                           parent=BASE, is_a_snapshot=True,
                           snapshot_of=LEAF),
            create.VdiSpec(RAW, "raw", 1 * MiB, name_label="raw",
                           hidden=True))


def make_sr(path, vdis=None, size=16 * MiB, sr_uuid=SR):
    with open(path, "wb") as f:
        f.truncate(size)
    with device.open_device(path, writable=True) as dev:
        create.format_sr(dev, sr_uuid, snapshot_tree() if vdis is None
                         else vdis, metadata_size=1 * MiB,
                         extent_size=1 * MiB)
    return path


def rewrite_vg(dev, lvs=None):
    """Commit new LVM metadata (seqno + 1, LVs renamed by ``lvs``)."""
    pv = lvm.read_pv(dev)
    vg = vg_metadata.parse_vg(pv.committed_text)
    new = vg_metadata.reidentify(vg, name=vg.name, vg_id=vg.id, pv_ids={},
                                 lvs=lvs or {}, seqno=vg.seqno + 1)
    text = vg_metadata.render_vg(new).encode()
    for mda in pv.mdas:
        tw = lvm.plan_text_write(mda.header, text)
        for offset, data in tw.writes:
            dev.write(offset, data)
        dev.write(mda.header.start, lvm.render_mda_header(
            lvm.commit_header(mda.header, tw.rlocn)))


def write_mgt(dev, vdis):
    """Replace the MGT contents with records for ``vdis`` only."""
    mgt = sr_mod.inspect(dev).lv("MGT")
    data = create.mgt_contents(SR, vdis)
    dev.write(mgt.extents[0][0], data + bytes(-len(data) % 512))


def read(path):
    with open(path, "rb") as f:
        return f.read()


class RecordingDevice(device.Device):
    """Records the offset of every write."""

    offsets: list = []

    def write(self, offset, data):
        RecordingDevice.offsets.append(offset)
        super().write(offset, data)


class ResignTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = make_sr(os.path.join(self.tmpdir, "clone.img"))
        self.pristine = read(self.image)
        self.backups = os.path.join(self.tmpdir, "backups")
        self.locks = os.path.join(self.tmpdir, "locks")

    def resign(self, path=None, target=TARGET, **kwargs):
        kwargs.setdefault("backup_dir", self.backups)
        return resign.resign_device(path or self.image, target,
                                    lock_path=self.locks, **kwargs)

    def label_write(self, target=TARGET):
        """The number (from 1) of the device write of the new label.

        Counted on a copy resigned through a recording device, because
        apply() merges the plan's writes into runs.
        """
        label = [w.offset for w in self.resign(target=target, dry_run=True)
                 .plan.writes if w.phase == resign.PHASE_LABEL]
        copy = os.path.join(self.tmpdir, "label-copy.img")
        shutil.copyfile(self.image, copy)
        RecordingDevice.offsets = []
        self.resign(copy, target=target, backup_dir=os.path.join(
            self.tmpdir, "label-copy"), opener=RecordingDevice)
        os.unlink(copy)
        return RecordingDevice.offsets.index(label[0]) + 1


class TestIdentities(base.TestCase):

    def test_deterministic_and_distinct(self):
        a = resign.new_vdi_uuid(TARGET, BASE)
        self.assertEqual(a, resign.new_vdi_uuid(TARGET, BASE))
        self.assertNotEqual(a, resign.new_vdi_uuid(TARGET, LEAF))
        self.assertNotEqual(a, resign.new_vdi_uuid(SR, BASE))
        self.assertEqual(5, uuid.UUID(a).version)
        i = resign.new_lvm_id(TARGET, "pv", "abc")
        self.assertEqual(i, resign.new_lvm_id(TARGET, "pv", "abc"))
        self.assertNotEqual(i, resign.new_lvm_id(TARGET, "vg", "abc"))

    def test_bad_target(self):
        # sm's util.match_uuid: lowercase 8-4-4-4-12 hex, nothing else.
        for bad in ("", "a b", None, 5, TARGET.upper(), TARGET.replace(
                "-", ""), "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
                TARGET + "0", "FA15E-D15C-vol-7"):
            exc = self.assertRaises(exception.InvalidTarget,
                                    resign.check_target, bad)
            self.assertEqual(2, exc.exit_code)
            self.assertIn("SR_BACKEND_FAILURE_47", str(exc))
        exc = self.assertRaises(exception.InvalidTarget, resign.check_target,
                                "FA15E-D15C-vol-7")
        self.assertIn("legacy Nova SR name", str(exc))
        resign.check_target(TARGET)


class TestResign(ResignTestCase):

    def test_plan_changes_everything_consistently(self):
        result = self.resign(dry_run=True)
        self.assertTrue(result.dry_run)
        self.assertEqual(self.pristine, read(self.image))
        kinds = {c.kind for c in result.plan.changes}
        self.assertEqual({"vg-name", "vg-id", "pv-id", "lv", "vdi",
                          "vhd-parent", "mgt-sr-uuid", "snapshot-of"}, kinds)
        self.assertFalse(os.path.exists(self.backups))

    def test_resign_then_noop(self):
        first = self.resign()
        self.assertTrue(first.changed)
        after = read(self.image)
        sr = sr_mod.inspect_path(self.image)
        self.assertEqual(TARGET, sr.sr_uuid)
        self.assertEqual((), sr.problems)
        new = {v.name_label: v for v in sr.vdis}
        self.assertEqual(resign.new_vdi_uuid(TARGET, BASE),
                         new["disk"].parent_uuid)
        self.assertEqual(TARGET, new["disk"].parent_sr_uuid)
        self.assertEqual(new["disk"].uuid, new["snap"].snapshot_of)
        self.assertTrue(new["snap"].is_a_snapshot)
        self.assertTrue(new["base"].hidden and new["base"].read_only)
        self.assertTrue(new["raw"].hidden)
        self.assertEqual(TARGET, sr.mgt.sr_info.uuid)
        second = self.resign()
        self.assertFalse(second.changed)
        self.assertIn("nothing to do", second.message)
        self.assertEqual(after, read(self.image))

    def test_same_bytes_on_two_clones(self):
        other = os.path.join(self.tmpdir, "other.img")
        shutil.copyfile(self.image, other)
        self.resign()
        self.resign(other, backup_dir=os.path.join(self.tmpdir, "b2"))
        self.assertEqual(read(self.image), read(other))

    def test_bytes_written_small(self):
        result = self.resign()
        self.assertLess(result.bytes_written, 2 * MiB + 8 * 1024 * 4)

    def test_restore(self):
        result = self.resign()
        resign.restore_device(self.image, result.backup_path,
                              lock_path=self.locks)
        self.assertEqual(self.pristine, read(self.image))

    def test_resign_again_to_another_target(self):
        self.resign()
        other = "0f0e0d0c-0b0a-4909-8807-060504030201"
        result = self.resign(target=other)
        self.assertTrue(result.changed)
        self.assertEqual(other, sr_mod.inspect_path(self.image).sr_uuid)

    def test_a_volume_clone_gets_a_fresh_unowned_lease(self):
        path = os.path.join(self.tmpdir, "volume.img")
        with open(path, "wb") as f:
            f.truncate(64 * MiB)
        with device.open_device(path, writable=True) as dev:
            create.format_volume(dev, SR, "vol-1", "v")
            where = locator.locate(dev)
            # The original was held by a host when the SAN cloned it.
            held = record.LeaseRecord(
                sr_uuid=SR, state=record.STATE_HELD, generation=7, counter=3,
                duration_ms=120000, written_at_ms=1,
                owner=record.Owner("pool-a", "host-a"))
            dev.write(where.offset + record.SLOT_STRIDE,
                      record.slot_bytes(held))
        result = self.resign(path)
        self.assertIn("lease", {w.what for w in result.plan.writes})
        with device.open_device(path) as dev:
            where = locator.locate(dev)
            raw = locator.DeviceStore(dev, where).read_slots()
        self.assertEqual(TARGET, where.sr_uuid)
        snap = record.snapshot(raw)
        self.assertEqual((TARGET, "free", 0, 0, None, None),
                         (snap.latest.sr_uuid, snap.latest.state_name,
                          snap.latest.generation, snap.latest.counter,
                          snap.latest.owner, snap.latest.next_owner))
        self.assertEqual(b"", raw[1].strip(b"\0"))  # the held copy is gone

    def test_legacy_and_non_uuid_targets_refused(self):
        for bad in ("FA15E-D15C-vol-7", TARGET.replace("-", "")):
            self.assertRaises(exception.InvalidTarget, self.resign,
                              target=bad)
        self.assertEqual(self.pristine, read(self.image))
        self.assertFalse(os.path.exists(self.backups))

    def test_backup_dir_required_to_write(self):
        self.assertRaises(exception.InvalidInput, resign.resign_device,
                          self.image, TARGET, lock_path=self.locks)


class TestRefusals(ResignTestCase):

    def assertRefused(self, fragment, **kwargs):
        try:
            self.resign(**kwargs)
        except exception.UnsafeOperation as e:
            exc = e
        else:
            self.fail("not refused")
        self.assertEqual(3, exc.exit_code)
        self.assertIn(fragment, str(exc))
        self.assertEqual(self.pristine, read(self.image))
        self.assertFalse(os.path.exists(self.backups))

    def test_target_is_current(self):
        self.assertRefused("already", target=SR)

    def test_target_is_current_in_another_case(self):
        # Not a valid target at all (upper case), whatever the SR holds.
        self.assertRaises(exception.InvalidTarget, self.resign,
                          target=SR.upper())
        self.assertEqual(self.pristine, read(self.image))

    def test_bad_mgt_checksum(self):
        sr = sr_mod.inspect_path(self.image)
        offset = sr.lv("MGT").extents[0][0]
        with open(self.image, "r+b") as f:
            f.seek(offset)
            f.write(b"garbage!")
        self.pristine = read(self.image)
        self.assertRefused("bad-mgt")

    def test_bad_vhd(self):
        sr = sr_mod.inspect_path(self.image)
        offset = sr.lv("VHD-" + LEAF).extents[0][0] + 512 + 36
        with open(self.image, "r+b") as f:
            f.seek(offset)
            f.write(b"\x00\x01")
        self.pristine = read(self.image)
        self.assertRefused("bad-vhd")

    def test_not_lvhd(self):
        with open(self.image, "wb") as f:
            f.truncate(16 * MiB)
        path = os.path.join(self.tmpdir, "plain.img")
        with open(path, "wb") as f:
            f.truncate(16 * MiB)
        with device.open_device(path, writable=True) as dev:
            create.format_sr(dev, SR, metadata_size=MiB, extent_size=MiB)
        self.pristine = read(self.image)
        self.assertRefused("no LVM2 label")

    def test_journal_refused_unless_renamed(self):
        path = make_sr(os.path.join(self.tmpdir, "j.img"))
        with device.open_device(path, writable=True) as dev:
            rewrite_vg(dev, {"LV-" + RAW: (
                "jvhd_" + RAW, sr_mod.inspect(dev).lv("LV-" + RAW).id)})
            # SM keeps no MGT record for a journal LV.
            write_mgt(dev, snapshot_tree()[:3])
        self.image = path
        self.pristine = read(path)
        self.assertRefused("jvhd")
        result = self.resign(options=resign.Options(journals="rename"))
        names = [lv.name for lv in sr_mod.inspect_path(path).lvs]
        self.assertIn("jvhd_" + resign.new_vdi_uuid(TARGET, RAW), names)
        self.assertTrue(result.changed)

    def test_mgt_and_lvm_disagree(self):
        # The raw VDI's LV without its MGT record, then a record (a changed
        # VDI uuid) without an LV: inspect lists them, resign refuses.
        extra = create.VdiSpec("20000000-0000-4000-8000-000000000001",
                               "raw", MiB)
        for vdis, code in ((snapshot_tree()[:3], "lv-without-record"),
                           (snapshot_tree() + (extra,), "record-without-lv")):
            with device.open_device(self.image, writable=True) as dev:
                write_mgt(dev, vdis)
            self.pristine = read(self.image)
            with device.open_device(self.image) as dev:
                insp = resign.inspect(dev, self.backups, TARGET)
            # No trace of a resignature: an original with problems.
            self.assertEqual(resign.STATE_ORIGINAL, insp.state)
            self.assertIn(code, [p.code for p in insp.sr.problems])
            self.assertRefused(code)

    def test_torn_mgt_write_without_backup(self):
        # The MGT write of a crashed run landed except for the SR sector,
        # and the rerun cannot reach the backup.  The record uuids are new
        # uuids of the LVs' (old) uuids: the rerun reads them as the old
        # ones and ends as an uninterrupted run, mapping no record twice.
        reference = os.path.join(self.tmpdir, "reference.img")
        shutil.copyfile(self.image, reference)
        self.resign(reference, backup_dir=os.path.join(self.tmpdir, "ref"))
        [mgt] = [w for w in self.resign(dry_run=True).plan.writes
                 if w.what == "MGT"]
        changed = [i for i in range(0, len(mgt.data), 512)
                   if mgt.data[i:i + 512] != self.pristine[
                       mgt.offset + i:mgt.offset + i + 512]]
        self.assertGreater(len(changed), 2)
        with open(self.image, "r+b") as f:
            for i in changed[1:]:
                f.seek(mgt.offset + i)
                f.write(mgt.data[i:i + 512])
        with device.open_device(self.image) as dev:
            insp = resign.inspect(dev, self.backups, TARGET)
        self.assertEqual(resign.STATE_RESIGNING, insp.state)
        self.assertEqual(("MGT",), insp.original.renamed)
        self.assertEqual((), insp.original.problems)
        self.resign()
        self.assertEqual(read(reference), read(self.image))

    def test_interrupted_to_another_target_without_backup(self):
        other = "0f0e0d0c-0b0a-4909-8807-060504030201"

        label = self.label_write(other)

        def opener(p, writable=False):
            return CrashingDevice(p, writable, label, False)
        self.assertRaises(Crash, self.resign, target=other, opener=opener)
        before = read(self.image)
        exc = self.assertRaises(
            exception.UnsafeOperation, self.resign,
            backup_dir=os.path.join(self.tmpdir, "elsewhere"))
        self.assertIn("interrupted resignature to %s" % other, str(exc))
        self.assertEqual(before, read(self.image))

    def _primary_footer(self, lv_name):
        lv = sr_mod.inspect_path(self.image).lv(lv_name)
        start, length = lv.extents[0]
        return start + self.pristine[start:start + length].rindex(
            b"conectix")

    def test_bad_primary_footer(self):
        # The copy at byte 0 is fine; the footer blktap reads at the end
        # of the VHD data (this LV is deflated) is corrupt, then gone.
        offset = self._primary_footer("VHD-" + LEAF)
        for at, data in ((offset + 100, b"\xff"), (offset, bytes(8))):
            with open(self.image, "r+b") as f:
                f.seek(at)
                f.write(data)
            self.pristine = read(self.image)
            problems = sr_mod.inspect_path(self.image).problems
            self.assertEqual([("bad-vhd", "VHD-" + LEAF)],
                             [(p.code, p.subject) for p in problems])
            self.assertRefused("bad-vhd")
        self.assertIn("primary footer", str(problems[0]))


class TestBackupBinding(ResignTestCase):
    """A backup is used only on the device and in the state it proves."""

    def later_clone(self, name="later.img"):
        """A clone taken after the original changed (same PV id)."""
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.write(self.pristine)
        with device.open_device(path, writable=True) as dev:
            rewrite_vg(dev)
        return path

    def test_stale_backup_of_another_clone_is_not_used(self):
        later = self.later_clone()
        reference = self.later_clone("reference.img")
        self.resign(reference, backup_dir=os.path.join(self.tmpdir, "ref"))
        self.resign()               # the earlier clone leaves its backup
        for target in (TARGET, None):
            with device.open_device(later) as dev:
                insp = resign.inspect(dev, self.backups, target)
            self.assertEqual(resign.STATE_ORIGINAL, insp.state)
            self.assertIsNone(insp.backup)
        result = self.resign(later)
        self.assertEqual(read(reference), read(later))
        self.assertEqual(2, len(os.listdir(self.backups)))
        self.assertNotEqual(result.backup_path,
                            resign.inspect(device.open_device(self.image),
                                           None).backup)

    def assertNotRestored(self, path, backup_path, fragment):
        before = read(path)
        exc = self.assertRaises(exception.BackupMismatch,
                                resign.restore_device, path, backup_path,
                                lock_path=self.locks)
        self.assertEqual(3, exc.exit_code)
        self.assertIn(fragment, str(exc))
        self.assertEqual(before, read(path))

    def test_restore_only_onto_the_device_it_came_from(self):
        result = self.resign()
        blank = os.path.join(self.tmpdir, "blank.img")
        with open(blank, "wb") as f:
            f.truncate(len(self.pristine))
        other = make_sr(os.path.join(self.tmpdir, "other.img"),
                        sr_uuid="0f0e0d0c-0b0a-4909-8807-060504030201")
        self.assertNotRestored(blank, result.backup_path,
                               "does not match this device")
        self.assertNotRestored(other, result.backup_path, "")
        self.assertNotRestored(self.later_clone(), result.backup_path,
                               "at byte 4096 (mda header at 4096")
        # An untouched copy of the original: nothing to write.
        copy = os.path.join(self.tmpdir, "copy.img")
        with open(copy, "wb") as f:
            f.write(self.pristine)
        self.assertEqual(0, resign.restore_device(copy, result.backup_path,
                                                  lock_path=self.locks))
        self.assertEqual(self.pristine, read(copy))

    def test_restore_refused_after_a_change_since(self):
        result = self.resign()
        with device.open_device(self.image, writable=True) as dev:
            rewrite_vg(dev)         # e.g. SM created an LV on the new SR
        self.assertNotRestored(self.image, result.backup_path,
                               "holds neither the backup's original bytes")


class TestCrashSafety(ResignTestCase):
    """Stop the writes at every k, cleanly and with a torn last sector."""

    def test_every_crash_point_resumes_to_identical_bytes(self):
        reference = os.path.join(self.tmpdir, "reference.img")
        shutil.copyfile(self.image, reference)
        ref = self.resign(reference, backup_dir=os.path.join(self.tmpdir,
                                                             "ref"))
        expected = read(reference)
        total = ref.writes
        self.assertGreater(total, 5)
        seen = set()
        for k in range(1, total + 1):
            for torn in (False, True):
                path = os.path.join(self.tmpdir, "crash.img")
                with open(path, "wb") as f:
                    f.write(self.pristine)
                backups = os.path.join(self.tmpdir, "b-%d-%s" % (k, torn))

                def opener(p, writable=False):
                    return CrashingDevice(p, writable, k, torn)
                self.assertRaises(Crash, self.resign, path,
                                  backup_dir=backups, opener=opener)
                with device.open_device(path) as dev:
                    insp = resign.inspect(dev, backups, TARGET)
                # Nothing landed only when the very first write stopped
                # cleanly; after any landed byte, and before the commit
                # finished, the device is an interrupted run.
                self.assertEqual(
                    resign.STATE_ORIGINAL if (k == 1 and not torn)
                    else resign.STATE_RESIGNING, insp.state,
                    "k=%d torn=%s" % (k, torn))
                seen.add(insp.state)
                result = self.resign(path, backup_dir=backups)
                self.assertEqual(expected, read(path),
                                 "k=%d torn=%s" % (k, torn))
                self.assertEqual(resign.STATE_RESIGNED, result.state)
        self.assertIn(resign.STATE_RESIGNING, seen)

    def test_every_crash_point_without_the_backup(self):
        # The rerun cannot reach the backup (another host, another
        # --backup-dir, a lost directory entry): it must end byte-identical
        # to an uninterrupted run, or refuse with nothing written.
        reference = os.path.join(self.tmpdir, "reference.img")
        shutil.copyfile(self.image, reference)
        ref = self.resign(reference, backup_dir=os.path.join(self.tmpdir,
                                                             "ref"))
        expected = read(reference)
        outcomes = {}
        for k in range(1, ref.writes + 1):
            for torn in (False, True):
                path = os.path.join(self.tmpdir, "crash.img")
                with open(path, "wb") as f:
                    f.write(self.pristine)

                def opener(p, writable=False):
                    return CrashingDevice(p, writable, k, torn)
                self.assertRaises(Crash, self.resign, path, opener=opener)
                crashed = read(path)
                elsewhere = os.path.join(self.tmpdir, "e-%d-%s" % (k, torn))
                try:
                    self.resign(path, backup_dir=elsewhere)
                except exception.UnsafeOperation:
                    self.assertEqual(crashed, read(path))
                    outcomes[(k, torn)] = "refused"
                else:
                    self.assertEqual(expected, read(path),
                                     "k=%d torn=%s" % (k, torn))
                    outcomes[(k, torn)] = "finished"
        # Every clean crash point finishes from the device's own state.
        self.assertEqual({"finished"}, {v for (k, torn), v in
                                        outcomes.items() if not torn},
                         outcomes)

    def test_roll_forward_backup_restores_the_interrupted_state(self):
        label = self.label_write()

        def opener(p, writable=False):
            return CrashingDevice(p, writable, label + 1, False)
        self.assertRaises(Crash, self.resign, opener=opener)
        crashed = read(self.image)
        result = self.resign(backup_dir=os.path.join(self.tmpdir, "other"))
        self.assertEqual(TARGET, sr_mod.inspect_path(self.image).sr_uuid)
        self.assertNotEqual(crashed, read(self.image))
        resign.restore_device(self.image, result.backup_path,
                              lock_path=self.locks)
        self.assertEqual(crashed, read(self.image))


class TestLockPath(base.TestCase):
    """Device locks follow ``[oslo_concurrency] lock_path``."""

    def test_configured_lock_path_is_used(self):
        from oslo_concurrency import lockutils
        path = self.useFixture(fixtures.TempDir()).path
        lockutils.CONF.set_override("lock_path", path, "oslo_concurrency")
        self.addCleanup(lockutils.CONF.clear_override, "lock_path",
                        "oslo_concurrency")
        self.assertEqual(path, resign.default_lock_path())
        image = os.path.join(path, "img")
        open(image, "wb").close()
        with resign.device_lock(image):
            names = os.listdir(path)
        self.assertTrue(any(n.startswith("xenapi-resign-") for n in names),
                        names)

    def test_unset_lock_path_falls_back_to_the_temp_dir(self):
        from oslo_concurrency import lockutils
        lockutils.CONF.set_override("lock_path", None, "oslo_concurrency")
        self.addCleanup(lockutils.CONF.clear_override, "lock_path",
                        "oslo_concurrency")
        self.assertTrue(resign.default_lock_path().endswith(
            os.sep + "xenapi-resign-locks"))


class TestWriteRuns(base.TestCase):

    def test_adjacent_writes_merge_gaps_and_skips_split(self):
        a, b, c, d = (bytes([n]) * 512 for n in (1, 2, 3, 4))
        writes = [resign.Write("p", 512, a + b, "ab"),
                  resign.Write("p", 1536, c, "c"),
                  resign.Write("p", 4096, d, "d")]
        self.assertEqual([(512, a + b + c), (4096, d)],
                         resign.write_runs(writes))
        self.assertEqual([(512, a), (1536, c), (4096, d)],
                         resign.write_runs(writes, skip={1024}))

    def test_gaps_of_known_sectors_are_filled_smallest_first(self):
        a, b, c, k = (bytes([n]) * 512 for n in (1, 2, 3, 9))
        runs = [(0, a), (1024, b), (3072, c)]
        known = {512: k, 1536: k, 2048: k, 2560: k}
        # Budget for one sector: only the one-sector gap is filled.
        self.assertEqual(([(0, a + k + b), (3072, c)], 0),
                         resign.bridge_runs(runs, known, 512))
        self.assertEqual(([(0, a + k + b + k * 3 + c)], 0),
                         resign.bridge_runs(runs, known, 2048))

    def test_a_gap_with_an_unknown_sector_is_not_filled(self):
        a, b, k = b"a" * 512, b"b" * 512, b"k" * 512
        runs = [(0, a), (1536, b)]
        self.assertEqual((runs, 4096),
                         resign.bridge_runs(runs, {512: k}, 4096))
        # Nor a run that comes later in the plan but lies before.
        self.assertEqual(([(1536, b), (0, a)], 4096), resign.bridge_runs(
            [(1536, b), (0, a)], {512: k, 1024: k}, 4096))

    def test_the_plan_order_is_kept(self):
        a, b = b"a" * 512, b"b" * 512
        writes = [resign.Write("p", 512, b, "second sector"),
                  resign.Write("p", 0, a, "first sector")]
        self.assertEqual([(512, b), (0, a)], resign.write_runs(writes))


class TestWritesOnlyWhatChanges(ResignTestCase):

    def test_bytes_written_are_the_changed_sectors(self):
        written = []

        class Recording(device.Device):
            def write(self, offset, data):
                written.append((offset, len(data)))
                super().write(offset, data)

        result = self.resign(opener=Recording)
        after = read(self.image)
        changed = {i for i in range(0, len(after), 512)
                   if after[i:i + 512] != self.pristine[i:i + 512]}
        with device.open_device(self.image) as dev:
            mdas = len(lvm.read_pv(dev).mdas)
        sectors = {o + i for o, n in written for i in range(0, n, 512)}
        # Every changed sector is written; each mda header a second time
        # (precommit, then commit); sectors that keep their bytes only to
        # join two writes, and then at most 1.25 times the changed
        # sectors in all (issue #16's limit).
        self.assertLessEqual(changed, sectors)
        self.assertEqual(sum(n for _, n in written), result.bytes_written)
        self.assertGreaterEqual(result.bytes_written,
                                512 * (len(changed) + mdas))
        self.assertLessEqual(result.bytes_written,
                             1.25 * 512 * (len(changed) + mdas))
        self.assertLess(result.bytes_written, result.plan.bytes_to_write)


class TestVerify(ResignTestCase):

    def test_a_sector_not_as_planned_is_found(self):
        # verify_writes reads adjacent writes back together: a wrong byte
        # in the middle of such a run (the second locator of a VHD) must
        # still be found and named.
        with device.open_device(self.image) as dev:
            p = resign.plan(resign.inspect(dev), TARGET)
        self.resign()
        with device.open_device(self.image, writable=True) as dev:
            resign.verify_writes(dev, p)
            locators = [w for w in p.writes
                        if w.what.startswith("parent link")]
            w = locators[1]
            dev.write(w.offset, bytes(len(w.data)))
            exc = self.assertRaises(exception.ResignVerifyError,
                                    resign.verify_writes, dev, p)
        self.assertIn("bytes at %d (%s)" % (w.offset, w.what), str(exc))


class TestCollector(ResignTestCase):

    def test_collector_is_back_on_after_a_run_and_a_refusal(self):
        self.assertTrue(gc.isenabled())
        # Resigning an SR to its own uuid is refused inside the run.
        self.assertRaises(exception.UnsafeOperation, self.resign,
                          target=SR)
        self.assertTrue(gc.isenabled())
        self.resign()
        self.assertTrue(gc.isenabled())

    def test_collector_left_off_when_it_was_off(self):
        gc.disable()
        self.addCleanup(gc.enable)
        self.resign()
        self.assertFalse(gc.isenabled())


class ReadRecordingDevice(device.Device):
    """Records (offset, length) of every read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = []

    def read(self, offset, length):
        self.log.append((offset, length))
        return super().read(offset, length)


class TestInspectReads(ResignTestCase):

    def test_adjacent_vhds_are_read_across_their_boundary(self):
        # LVs lie end to end: one LV's last sector (an inflated VHD's
        # footer) and the next one's first page come in one read.
        with ReadRecordingDevice(self.image) as dev:
            model = sr_mod.inspect(dev)
        spans = sorted(lv.extents[0] for lv in model.lvs
                       if lv.kind == sr_mod.KIND_VHD)
        boundaries = [start for (prev, size), (start, _) in
                      zip(spans, spans[1:]) if prev + size == start]
        self.assertTrue(boundaries)
        for at in boundaries:
            self.assertTrue(any(o <= at - 512 and at + 512 <= o + n
                                for o, n in dev.log), (at, dev.log))
        self.assertEqual(len(dev.log), len(set(dev.log)), dev.log)
