"""The only code that opens, reads, writes or fsyncs a device or image.

A :class:`Device` is a LUN: a block device or an image file.  Writing a
block device opens it ``O_EXCL``, so a device held by device-mapper (an
active LV), mounted, or exclusively opened by anyone else is refused with
:class:`~nova_xenapi_resign.exception.DeviceInUse` before anything is
written.  Writes must be whole 512-byte sectors; they all go through
:meth:`Device.write`, so a fault injecting subclass can fail after the
k-th write by overriding that one method.

A writable block device with 512-byte logical sectors is written
``O_DIRECT``: through the page cache a one-sector write dirties, and the
kernel writes back, a whole 4 KiB page (after reading it), so the disk
would see up to eight times the bytes that change.
"""

from __future__ import annotations

from collections.abc import Iterable
import errno
import fcntl
import mmap
import os
import re
import stat
import struct

from nova_xenapi_resign import exception

SECTOR_SIZE = 512
#: ioctl BLKGETSIZE64 = _IOR(0x12, 114, size_t)
BLKGETSIZE64 = 0x80081272
#: ioctl BLKROGET = _IO(0x12, 94): 1 when the block device is read-only.
BLKROGET = 0x125e
#: ioctl BLKSSZGET = _IO(0x12, 104): the logical block (sector) size.
BLKSSZGET = 0x1268
SYSFS_BLOCK = "/sys/dev/block"


class Device(object):
    """An opened image file or block device.

    ``bytes_read``, ``bytes_written`` and ``writes`` (number of write
    calls) count the I/O done through this object.
    """

    def __init__(self, path: str, writable: bool = False) -> None:
        self.path = str(path)
        self.writable = bool(writable)
        self.bytes_read = 0
        self.bytes_written = 0
        self.writes = 0
        self.reads = 0
        self._fd = None
        self._direct_fd = None
        self._direct_buf: mmap.mmap | None = None
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise exception.DeviceError(device=self.path,
                                        reason="cannot stat: %s"
                                        % exc.strerror)
        if stat.S_ISBLK(st.st_mode):
            self.is_block = True
        elif stat.S_ISREG(st.st_mode):
            self.is_block = False
        else:
            raise exception.DeviceError(
                device=self.path,
                reason="not a block device or regular file")
        flags = os.O_CLOEXEC
        if self.writable:
            flags |= os.O_RDWR
            if self.is_block:
                flags |= os.O_EXCL
        else:
            flags |= os.O_RDONLY
        try:
            self._fd = os.open(self.path, flags)
            # Metadata reads are small and scattered: readahead would read
            # (and count) far more than is parsed.
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        except OSError as exc:
            if self.writable and exc.errno in (errno.EROFS, errno.EACCES,
                                               errno.EPERM):
                raise exception.DeviceReadOnly(
                    device=self.path, reason="open for writing failed: %s"
                    % exc.strerror)
            if exc.errno == errno.EBUSY:
                raise exception.DeviceInUse(
                    device=self.path,
                    reason="exclusive open failed: %s (held by device-"
                    "mapper, mounted or opened exclusively)" % exc.strerror)
            raise exception.DeviceError(device=self.path,
                                        reason="cannot open: %s"
                                        % exc.strerror)
        st = os.fstat(self._fd)
        self._stat = st
        try:
            self.size = self._get_size()
            if self.writable and self.is_block and self._read_only():
                raise exception.DeviceReadOnly(
                    device=self.path, reason="the kernel reports it "
                    "read-only (BLKROGET)")
            if self.writable and self.is_block:
                self._direct_fd = self._open_direct()
        except BaseException:
            self.close()
            raise

    # --- helpers -------------------------------------------------------------

    def _get_size(self) -> int:
        if not self.is_block:
            return self._stat.st_size
        try:
            buf = fcntl.ioctl(self._fd, BLKGETSIZE64, b"\0" * 8)
            return struct.unpack("<Q", buf)[0]
        except OSError:
            return os.lseek(self._fd, 0, os.SEEK_END)

    def _read_only(self) -> bool:
        buf = fcntl.ioctl(self._fd, BLKROGET, b"\0" * 4)
        return struct.unpack("i", buf)[0] != 0

    def _open_direct(self) -> int | None:
        """A second, ``O_DIRECT`` descriptor of the same open device.

        Reopened through ``/proc/self/fd`` so it is the very inode the
        exclusive descriptor holds.  None (buffered writes) when the
        logical sector is not 512 bytes or the kernel refuses.
        """
        try:
            buf = fcntl.ioctl(self._fd, BLKSSZGET, b"\0" * 4)
            if struct.unpack("i", buf)[0] != SECTOR_SIZE:
                return None
            return os.open("/proc/self/fd/%d" % self._fd,
                           os.O_RDWR | os.O_DIRECT | os.O_CLOEXEC)
        except OSError:
            return None

    def _check_open(self) -> int:
        if self._fd is None:
            raise exception.DeviceError(device=self.path,
                                        reason="device is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def identity(self) -> tuple:
        """The opened inode: ("blk", st_rdev) or ("file", st_dev, st_ino).

        Different paths to one LUN (a loop device and its backing file) have
        different inodes; :func:`storage_identity` names the LUN itself.
        """
        if self.is_block:
            return ("blk", self._stat.st_rdev)
        return ("file", self._stat.st_dev, self._stat.st_ino)

    # --- I/O -------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``.

        Reading past the end of the device is a ``DeviceError``.
        """
        fd = self._check_open()
        if offset < 0 or length < 0:
            raise exception.DeviceError(
                device=self.path,
                reason="bad read of %d bytes at %d" % (length, offset))
        if offset + length > self.size:
            raise exception.DeviceError(
                device=self.path,
                reason="read of %d bytes at %d is past the end of the "
                "device (%d bytes)" % (length, offset, self.size))
        chunks = []
        done = 0
        while done < length:
            try:
                chunk = os.pread(fd, length - done, offset + done)
            except OSError as exc:
                raise exception.DeviceError(
                    device=self.path, reason="read at %d failed: %s"
                    % (offset + done, exc.strerror))
            if not chunk:
                raise exception.DeviceError(
                    device=self.path,
                    reason="short read: %d of %d bytes at %d"
                    % (done, length, offset))
            chunks.append(chunk)
            done += len(chunk)
        self.bytes_read += length
        self.reads += 1
        return b"".join(chunks)

    def write(self, offset: int, data: bytes) -> None:
        """Write whole sectors at a sector aligned offset.

        The one write path: override it (and call ``super().write``) to
        inject faults.  Counters change only after a complete write.
        """
        fd = self._check_open()
        if not self.writable:
            raise exception.DeviceError(device=self.path,
                                        reason="device opened read-only")
        data = bytes(data)
        if offset < 0 or offset % SECTOR_SIZE or len(data) % SECTOR_SIZE:
            raise exception.DeviceError(
                device=self.path,
                reason="unaligned write of %d bytes at %d (must be whole "
                "%d-byte sectors)" % (len(data), offset, SECTOR_SIZE))
        if offset + len(data) > self.size:
            raise exception.DeviceError(
                device=self.path,
                reason="write of %d bytes at %d is past the end of the "
                "device (%d bytes)" % (len(data), offset, self.size))
        if self._direct_fd is not None and data:
            fd, view = self._direct_fd, self._aligned(len(data))
            view[:] = data
        else:
            view = memoryview(data)
        try:
            self._pwrite(fd, view, offset)
        finally:
            view.release()          # the buffer can be closed or grown
        self.bytes_written += len(data)
        self.writes += 1

    def _pwrite(self, fd: int, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):
            try:
                n = os.pwrite(fd, view[done:], offset + done)
            except OSError as exc:
                raise exception.DeviceError(
                    device=self.path, reason="write at %d failed: %s"
                    % (offset + done, exc.strerror))
            if n <= 0:
                raise exception.DeviceError(
                    device=self.path, reason="short write at %d"
                    % (offset + done))
            done += n

    def _aligned(self, length: int) -> memoryview:
        """``length`` bytes of a page aligned buffer, as O_DIRECT wants.

        One anonymous mapping, grown when a write needs more: mapping a
        new one per write costs two system calls each time.
        """
        if self._direct_buf is None or len(self._direct_buf) < length:
            if self._direct_buf is not None:
                self._direct_buf.close()
            self._direct_buf = mmap.mmap(-1, length)
        return memoryview(self._direct_buf)[:length]

    def fsync(self) -> None:
        fd = self._check_open()
        try:
            # One flush of the device covers the writes of both descriptors.
            os.fsync(fd)
        except OSError as exc:
            raise exception.DeviceError(device=self.path,
                                        reason="fsync failed: %s"
                                        % exc.strerror)

    def close(self) -> None:
        if self._direct_buf is not None:
            self._direct_buf.close()
            self._direct_buf = None
        for name in ("_direct_fd", "_fd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<Device %s %s%s>" % (self.path,
                                     "rw" if self.writable else "ro",
                                     " closed" if self.closed else "")


def _sysfs(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def storage_identity(path: str) -> str:
    """A name for the storage behind ``path``, the same through any path.

    A loop device is named by its backing file, so ``/dev/loopN`` and the
    image it maps share one name; a SCSI disk by its WWID; any other block
    device by its device number, an image file by its inode.  Used to key
    the lock that serializes runs on one LUN.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise exception.DeviceError(device=str(path), reason="cannot stat: "
                                    "%s" % exc.strerror)
    if stat.S_ISBLK(st.st_mode):
        sysfs = os.path.join(SYSFS_BLOCK, "%d:%d" % (os.major(st.st_rdev),
                                                     os.minor(st.st_rdev)))
        backing = _sysfs(os.path.join(sysfs, "loop", "backing_file"))
        if backing is not None:
            try:
                st = os.stat(backing)
            except OSError:
                backing = None
        if backing is None:
            wwid = _sysfs(os.path.join(sysfs, "device", "wwid"))
            if wwid is not None:
                return "wwid-" + re.sub(r"[^A-Za-z0-9_.-]", "_", wwid)
            return "blk-%d-%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    return "file-%d-%d" % (st.st_dev, st.st_ino)


def merge_ranges(ranges: Iterable[tuple[int, int]], gap: int = 0
                 ) -> list[tuple[int, int]]:
    """Sorted, coalesced (offset, length) ranges.

    Ranges at most ``gap`` bytes apart are joined, with the bytes between.
    """
    merged: list[list[int]] = []
    for offset, length in sorted(ranges):
        if merged and offset <= merged[-1][0] + merged[-1][1] + gap:
            end = max(merged[-1][0] + merged[-1][1], offset + length)
            merged[-1][1] = end - merged[-1][0]
        else:
            merged.append([offset, length])
    return [(o, n) for o, n in merged]


def open_device(path: str, writable: bool = False) -> Device:
    """Open ``path`` (image file or block device).

    Use it as a context manager.  ``writable`` block devices are opened
    ``O_EXCL``.
    """
    return Device(path, writable=writable)
