"""The resign engine on image files: plan, refusals, idempotence, crashes."""

import os
import shutil
import uuid

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
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


def read(path):
    with open(path, "rb") as f:
        return f.read()


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
        self.assertRaises(exception.InvalidInput, resign._check_target, "")
        self.assertRaises(exception.InvalidInput, resign._check_target,
                          "a b")


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

    def test_legacy_target(self):
        self.resign(target="FA15E-D15C-vol-7")
        sr = sr_mod.inspect_path(self.image)
        self.assertEqual("FA15E-D15C-vol-7", sr.sr_uuid)
        self.assertEqual((), sr.problems)

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
        self.assertRaises(exception.FormatError, self.resign)

    def test_journal_refused_unless_renamed(self):
        path = make_sr(os.path.join(self.tmpdir, "j.img"))
        from nova_xenapi_resign.lvhd import lvm
        from nova_xenapi_resign.lvhd import vg_metadata
        with device.open_device(path, writable=True) as dev:
            pv = lvm.read_pv(dev)
            vg = vg_metadata.parse_vg(pv.committed_text)
            new = vg_metadata.reidentify(
                vg, name=vg.name, vg_id=vg.id, pv_ids={},
                lvs={"LV-" + RAW: ("jvhd_" + RAW, vg.lv("LV-" + RAW).id)},
                seqno=vg.seqno + 1)
            text = vg_metadata.render_vg(new).encode()
            mda = pv.mdas[0]
            tw = lvm.plan_text_write(mda.header, text)
            for offset, data in tw.writes:
                dev.write(offset, data)
            dev.write(mda.header.start, lvm.render_mda_header(
                lvm.commit_header(mda.header, tw.rlocn)))
        self.image = path
        self.pristine = read(path)
        self.assertRefused("jvhd")
        result = self.resign(options=resign.Options(journals="rename"))
        names = [lv.name for lv in sr_mod.inspect_path(path).lvs]
        self.assertIn("jvhd_" + resign.new_vdi_uuid(TARGET, RAW), names)
        self.assertTrue(result.changed)


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
                self.assertIn(insp.state, (resign.STATE_ORIGINAL,
                                           resign.STATE_RESIGNING,
                                           resign.STATE_RESIGNED))
                if k == 1 and not torn:
                    self.assertEqual(resign.STATE_ORIGINAL, insp.state)
                seen.add(insp.state)
                result = self.resign(path, backup_dir=backups)
                self.assertEqual(expected, read(path),
                                 "k=%d torn=%s" % (k, torn))
                self.assertEqual(resign.STATE_RESIGNED, result.state)
        self.assertIn(resign.STATE_RESIGNING, seen)

    def test_interrupted_without_backup_is_refused(self):
        def opener(p, writable=False):
            return CrashingDevice(p, writable, 3, False)
        self.assertRaises(Crash, self.resign, opener=opener)
        before = read(self.image)
        exc = self.assertRaises(
            exception.UnsafeOperation, self.resign,
            backup_dir=os.path.join(self.tmpdir, "elsewhere"))
        self.assertIn("interrupted", str(exc))
        self.assertEqual(before, read(self.image))
