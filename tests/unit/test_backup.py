"""Backups: durable copy, checked restore, and the original view."""

import os

import fixtures

from nova_xenapi_resign import backup
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device
from tests import base


class TestBackup(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = os.path.join(self.tmpdir, "lun.img")
        with open(self.image, "wb") as f:
            f.write(bytes(range(256)) * 64)           # 16 KiB
        self.dir = os.path.join(self.tmpdir, "backups")

    def _backup(self, ranges=((0, 1024), (4096, 512), (512, 1024)),
                directory=None):
        with device.open_device(self.image) as dev:
            return backup.write_backup(
                dev, directory or self.dir, target_sr_uuid="t/1",
                source_vg_name="VG_XenStorage-s", source_pv_id="PVID",
                source_vg_id="VGID", source_seqno=7, journals="refuse",
                ranges=ranges)

    def test_merge_ranges(self):
        self.assertEqual([(0, 1536), (4096, 512)],
                         device.merge_ranges([(4096, 512), (512, 1024),
                                              (0, 1024)]))

    def test_merge_ranges_across_small_gaps(self):
        ranges = [(4096, 512), (512, 1024), (0, 1024), (8192, 512)]
        # 1536 -> 4096 is 2560 bytes apart, 4608 -> 8192 is 3584.
        self.assertEqual([(0, 4608), (8192, 512)],
                         device.merge_ranges(ranges, gap=2560))
        self.assertEqual([(0, 8704)], device.merge_ranges(ranges, gap=3584))

    def test_path_is_safe(self):
        path = backup.backup_path("/b", "PVID", "a/b c", "f00d")
        self.assertEqual("/b/PVID-a_b_c-f00d.resign-backup", path)

    def test_path_names_the_original_bytes(self):
        first = self._backup()
        self.assertEqual(backup.backup_path(self.dir, "PVID", "t/1",
                                            first.fingerprint), first.path)
        self.assertEqual((7, "VGID", "refuse"), (
            first.source_seqno, first.source_vg_id, first.journals))
        # Another clone of the same LUN (same PV id, other bytes) gets its
        # own file: it must never be "resumed" from the first one's backup.
        with open(self.image, "r+b") as f:
            f.write(b"another clone")
        second = self._backup()
        self.assertNotEqual(first.path, second.path)
        self.assertEqual(2, len(os.listdir(self.dir)))

    def test_created_directories_are_durable(self):
        synced = []
        real = backup._fsync_dir
        self.useFixture(fixtures.MonkeyPatch(
            "nova_xenapi_resign.backup._fsync_dir",
            lambda path: synced.append(path) or real(path)))
        nested = os.path.join(self.tmpdir, "a", "b")
        b = self._backup(directory=nested)
        # Each new directory's entry (in its parent), then the file's.
        self.assertEqual([self.tmpdir, os.path.join(self.tmpdir, "a"),
                          nested], synced)
        self.assertEqual(nested, os.path.dirname(b.path))

    def test_private_temporary_file(self):
        # A fixed temporary name would be shared by two runs (and followed
        # if it were a symlink): the old name is left alone.
        name = backup.backup_path(self.dir, "PVID", "t/1", "x")
        os.makedirs(self.dir)
        decoy = os.path.join(self.dir, "decoy")
        b = self._backup()
        os.symlink(decoy, b.path + ".tmp")
        os.unlink(b.path)
        again = self._backup()
        self.assertFalse(os.path.exists(decoy))
        self.assertEqual(b.fingerprint, again.fingerprint)
        self.assertNotEqual(name, again.path)
        self.assertEqual(sorted([os.path.basename(again.path),
                                 os.path.basename(b.path) + ".tmp"]),
                         sorted(os.listdir(self.dir)))

    def test_round_trip_and_restore(self):
        b = self._backup()
        self.assertEqual(((0, 1536), (4096, 512)),
                         tuple((r.offset, r.length) for r in b.ranges))
        with open(self.image, "rb") as f:
            original = f.read()
        with device.open_device(self.image, writable=True) as dev:
            dev.write(0, b"\xff" * 1536)
            dev.write(4096, b"\xee" * 512)
            view = backup.OriginalView(dev, b)
            self.assertEqual(original[100:5000], view.read(100, 4900))
            self.assertEqual(2048, backup.restore(dev, b))
        with open(self.image, "rb") as f:
            self.assertEqual(original[:4608], f.read()[:4608])

    def test_existing_backup_is_kept(self):
        # The same original bytes again (a rerun before the first write):
        # the file is reused, not rewritten.
        first = self._backup()
        second = self._backup()
        self.assertEqual((first.path, first.created),
                         (second.path, second.created))
        self.assertEqual(1, len(os.listdir(self.dir)))

    def test_corrupt_backup_detected(self):
        b = self._backup()
        with open(b.path, "r+b") as f:
            f.seek(b.data_offset + 10)
            f.write(b"X")
        self.assertRaises(exception.BackupError, backup.range_data, b)

    def test_truncated_backup_detected(self):
        b = self._backup()
        with open(b.path, "r+b") as f:
            f.truncate(b.data_offset + 100)
        self.assertRaises(exception.BackupError, backup.read_backup, b.path)

    def test_not_a_backup(self):
        path = os.path.join(self.tmpdir, "x")
        with open(path, "wb") as f:
            f.write(b"hello\n{}\n")
        exc = self.assertRaises(exception.BackupError, backup.read_backup,
                                path)
        self.assertIn("magic", str(exc))

    def test_restore_refuses_other_device_size(self):
        b = self._backup()
        with open(self.image, "ab") as f:
            f.write(b"\0" * 512)
        with device.open_device(self.image, writable=True) as dev:
            self.assertRaises(exception.UnsafeOperation, backup.restore,
                              dev, b)
