"""Shared helpers for the benchmarks: LVHD LUN images and loop devices.

Images are made with the project's pure-Python formatter (fast and the same
on every machine); loop devices let the real LVM tools and our engine be
measured on identical block devices, I/O counted by the kernel.
"""

import collections
import contextlib
import os
import subprocess
import time
import uuid

from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
SECTOR = 512


def vdi_specs(n):
    """``n`` VDIs: a base, then alternating leaves and snapshots on it."""
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(n)]
    specs = [create.VdiSpec(ids[0], "vhd", 8 * MiB, name_label="base",
                            hidden=n > 1, read_only=n > 1)]
    for i, vdi in enumerate(ids[1:], 1):
        specs.append(create.VdiSpec(vdi, "vhd", 8 * MiB, parent=ids[0],
                                    name_label="vdi-%d" % i,
                                    is_a_snapshot=i % 2 == 0,
                                    snapshot_of=ids[i - 1] if i % 2 == 0
                                    else ""))
    return specs


def make_lun(path, n_vdis, size):
    """A sparse LUN image of ``size`` bytes holding an LVHD SR."""
    with open(path, "wb") as f:
        f.truncate(size)
    with device.open_device(path, writable=True) as dev:
        create.format_sr(dev, str(uuid.UUID(int=7, version=4)),
                         vdi_specs(n_vdis))
    return path


def lun_size_for(n_vdis):
    return max(64 * MiB, (n_vdis + 8) * 4 * MiB + 16 * MiB)


@contextlib.contextmanager
def loop_device(image):
    dev = subprocess.run(["losetup", "--find", "--show", image], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)


class Io(collections.namedtuple("Io", "read written flushes")):
    """Bytes read, bytes written and flush requests, as the kernel counts."""


def io_counters(dev):
    """A block device's :class:`Io` so far, from /sys/block/<dev>/stat.

    Fields 3 and 7 are sectors read and written (512 bytes each, whatever
    the device's sector size), field 16 the flush requests (barriers).
    """
    with open("/sys/block/%s/stat" % os.path.basename(dev)) as f:
        fields = [int(x) for x in f.read().split()]
    return Io(fields[2] * SECTOR, fields[6] * SECTOR, fields[15])


def measured(dev, func):
    """Run ``func()``; return (result, seconds, :class:`Io` of the run).

    Dirty pages of earlier image copies are flushed first, so neither tool
    pays for the other's writeback.
    """
    os.sync()
    before = io_counters(dev)
    start = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - start
    after = io_counters(dev)
    return result, seconds, Io(*(b - a for a, b in zip(before, after)))


def lvm(dev, command, *args):
    config = ("devices{filter=[\"a|^%s$|\",\"r|.*|\"] "
              "global_filter=[\"a|^%s$|\",\"r|.*|\"] "
              "obtain_device_list_from_udev=0 use_devicesfile=0} "
              "global{activation=0} backup{backup=0 archive=0}"
              % (dev, dev))
    return subprocess.run(["lvm", command, "--config", config] + list(args),
                          check=True, capture_output=True, text=True,
                          env=dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1"))


def print_table(title, header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("%%-%ds" % w for w in widths)
    print("\n" + title)
    print(line % tuple(header))
    print(line % tuple("-" * w for w in widths))
    for row in rows:
        print(line % tuple(row))


class RecordingDevice(device.Device):
    """Records the offset of every write (in ``offsets``)."""

    offsets: list = []

    def write(self, offset, data):
        RecordingDevice.offsets.append(offset)
        super().write(offset, data)
