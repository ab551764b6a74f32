"""Unit tests for nova_xenapi_resign.lvhd.device on image files.

The O_EXCL refusal on a real block device is in
tests/functional/test_lvm_real.py (it needs root and a loop device).
"""

import os

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device
from tests import base


class FailAfter(device.Device):
    """Fault injection: the k-th and later writes fail."""

    def __init__(self, path, k):
        super().__init__(path, writable=True)
        self.k = k

    def write(self, offset, data):
        if self.writes + 1 >= self.k:
            raise exception.DeviceError(device=self.path,
                                        reason="injected fault")
        super().write(offset, data)


class TestDevice(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = os.path.join(self.tmpdir, "img")
        with open(self.image, "wb") as f:
            f.write(bytes(range(256)) * 32)  # 8192 bytes

    def test_read_only(self):
        with device.open_device(self.image) as dev:
            self.assertFalse(dev.writable)
            self.assertFalse(dev.is_block)
            self.assertEqual(8192, dev.size)
            self.assertEqual(bytes(range(10, 20)), dev.read(10, 10))
            self.assertEqual(b"", dev.read(8192, 0))
            err = self.assertRaises(exception.DeviceError, dev.write, 0,
                                    bytes(512))
            self.assertIn("read-only", str(err))
            self.assertEqual((0, 0), (dev.writes, dev.bytes_written))
        self.assertTrue(dev.closed)
        self.assertRaises(exception.DeviceError, dev.read, 0, 1)

    def test_counters(self):
        with device.open_device(self.image, writable=True) as dev:
            dev.read(0, 100)
            dev.read(1000, 24)
            self.assertEqual(124, dev.bytes_read)
            dev.write(512, b"\x01" * 512)
            dev.write(4096, b"\x02" * 1024)
            dev.fsync()
            self.assertEqual((2, 1536), (dev.writes, dev.bytes_written))
            self.assertEqual(b"\x01" * 512, dev.read(512, 512))
        with open(self.image, "rb") as f:
            data = f.read()
        self.assertEqual(b"\x02" * 1024, data[4096:5120])
        self.assertEqual(bytes(range(256)) * 2, data[:512])

    def test_alignment_enforced(self):
        with device.open_device(self.image, writable=True) as dev:
            for offset, length in ((1, 512), (512, 511), (0, 1), (100, 0),
                                   (-512, 512)):
                err = self.assertRaises(exception.DeviceError, dev.write,
                                        offset, bytes(length))
                self.assertEqual(self.image, err.kwargs["device"])
            dev.write(0, b"")  # an empty aligned write is fine
            self.assertEqual(0, dev.bytes_written)

    def test_past_end(self):
        with device.open_device(self.image, writable=True) as dev:
            self.assertRaises(exception.DeviceError, dev.read, 8000, 193)
            self.assertRaises(exception.DeviceError, dev.read, -1, 1)
            self.assertRaises(exception.DeviceError, dev.write, 8192,
                              bytes(512))
            self.assertEqual(0, dev.writes)

    def test_identity(self):
        st = os.stat(self.image)
        with device.open_device(self.image) as dev:
            self.assertEqual(("file", st.st_dev, st.st_ino), dev.identity())
            self.assertIn("ro", repr(dev))

    def test_storage_identity(self):
        st = os.stat(self.image)
        link = os.path.join(self.tmpdir, "link")
        os.symlink(self.image, link)
        copy = os.path.join(self.tmpdir, "copy")
        with open(copy, "wb") as f:
            f.write(b"x")
        name = "file-%d-%d" % (st.st_dev, st.st_ino)
        self.assertEqual(name, device.storage_identity(self.image))
        self.assertEqual(name, device.storage_identity(link))
        self.assertNotEqual(name, device.storage_identity(copy))
        err = self.assertRaises(exception.DeviceError,
                                device.storage_identity,
                                os.path.join(self.tmpdir, "nonexistent"))
        self.assertIn("cannot stat", str(err))

    def test_missing_and_special(self):
        self.assertRaises(exception.DeviceError, device.open_device,
                          os.path.join(self.tmpdir, "nope"))
        self.assertRaises(exception.DeviceError, device.open_device,
                          "/dev/null")
        self.assertRaises(exception.DeviceError, device.open_device,
                          self.tmpdir)

    def test_fault_injection_subclass(self):
        dev = FailAfter(self.image, 3)
        self.addCleanup(dev.close)
        dev.write(0, bytes(512))
        dev.write(512, bytes(512))
        self.assertRaises(exception.DeviceError, dev.write, 1024,
                          b"\xff" * 512)
        self.assertEqual(2, dev.writes)
        self.assertEqual(bytes(range(256)) * 2, dev.read(1024, 512))
