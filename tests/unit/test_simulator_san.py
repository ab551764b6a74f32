"""Unit tests: the SAN of LUN image files."""

import os

from nova_xenapi_resign.simulator import san as sanmod
from tests import base

IQN = "iqn.2010-01.com.example:t"
MiB = 1024 * 1024


class SanTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.san = sanmod.San(os.path.join(self.tmpdir, "san"))

    def test_addressing(self):
        path = self.san.create_lun("10.0.0.1", IQN, 3, MiB)
        self.assertEqual(path, self.san.path("10.0.0.1:3260", IQN, 3))
        self.assertEqual(MiB, os.path.getsize(path))
        self.assertEqual([3], self.san.luns("10.0.0.1", IQN))
        self.assertEqual([IQN], self.san.targets("10.0.0.1:3260"))
        self.assertTrue(self.san.target_exists("10.0.0.1", IQN))
        self.assertFalse(self.san.target_exists("10.0.0.2", IQN))
        self.assertRaises(FileExistsError, self.san.create_lun, "10.0.0.1",
                          IQN, 3, MiB)

    def test_scsi_id_stable(self):
        a = self.san.scsi_id("10.0.0.1", IQN, 0)
        b = sanmod.San(self.tmpdir + "/other").scsi_id("10.0.0.1:3260", IQN,
                                                       0)
        self.assertEqual(a, b)
        self.assertEqual(33, len(a))
        self.assertTrue(a.startswith("36"))
        self.assertNotEqual(a, self.san.scsi_id("10.0.0.1", IQN, 1))
        self.san.create_lun("10.0.0.1", IQN, 1, MiB)
        self.assertEqual(1, self.san.find_scsi_id(
            "10.0.0.1", IQN, self.san.scsi_id("10.0.0.1", IQN, 1)))
        uuid = sanmod.vdi_uuid_for_scsi_id(a)
        self.assertEqual(uuid, sanmod.vdi_uuid_for_scsi_id(a))
        self.assertEqual(36, len(uuid))

    def test_normalize_portal(self):
        self.assertEqual("h:3260", sanmod.normalize_portal("h"))
        self.assertEqual("h:1", sanmod.normalize_portal("h:1"))
        self.assertEqual("h:2", sanmod.normalize_portal("h", "2"))
        self.assertEqual("[::1]:3260", sanmod.normalize_portal("[::1]"))

    def test_clone_is_sparse_copy(self):
        src = self.san.create_lun("10.0.0.1", IQN, 0, 64 * MiB)
        with open(src, "r+b") as f:
            f.seek(10 * MiB)
            f.write(b"payload")
        dst = self.san.clone_lun(("10.0.0.1", IQN, 0), "10.0.0.1",
                                 IQN + "-clone", 0)
        with open(src, "rb") as a, open(dst, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertLess(os.stat(dst).st_blocks * 512, 8 * MiB)

    def test_sparse_copy_overwrites_old_data(self):
        src = self.san.create_lun("h", IQN, 0, 4 * MiB)
        dst = self.san.create_lun("h", IQN, 1, 4 * MiB)
        with open(dst, "r+b") as f:
            f.write(b"old")
        sanmod.sparse_copy(src, dst)
        with open(dst, "rb") as f:
            self.assertEqual(b"\0\0\0", f.read(3))

    def test_chap(self):
        self.assertIsNone(self.san.chap("h", IQN))
        self.san.set_chap("h", IQN, "u", "p")
        self.assertEqual(("u", "p"), self.san.chap("h:3260", IQN))
