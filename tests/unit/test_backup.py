"""Backups: durable copy, checked restore, and the original view."""

import os

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

    def _backup(self, ranges=((0, 1024), (4096, 512), (512, 1024))):
        with device.open_device(self.image) as dev:
            return backup.write_backup(
                dev, backup.backup_path(self.dir, "PVID", "FA15E-D15C-v/1"),
                target_sr_uuid="t", source_vg_name="VG_XenStorage-s",
                source_pv_id="PVID", ranges=ranges)

    def test_merge_ranges(self):
        self.assertEqual([(0, 1536), (4096, 512)],
                         backup.merge_ranges([(4096, 512), (512, 1024),
                                              (0, 1024)]))

    def test_path_is_safe(self):
        path = backup.backup_path("/b", "PVID", "a/b c")
        self.assertEqual("/b/PVID-a_b_c.resign-backup", path)

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
        first = self._backup()
        with device.open_device(self.image, writable=True) as dev:
            dev.write(0, b"\x00" * 512)
        second = self._backup()
        self.assertEqual(first.ranges, second.ranges)

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
