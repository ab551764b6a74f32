#!/usr/bin/env python3
"""Parse a VG's metadata and build the SR model: time and bytes read.

    python benchmarks/bench_formats.py [--quick]

The model is built from metadata-sized reads only, so the bytes read do not
depend on the LUN size: a 2 TiB sparse LUN costs what a small one costs.
Runs on image files (no root needed).

Counters: CPU time of the inspection (``time.process_time``, best of 3;
the machine may be shared), the reads the device object counts, and the
kernel's ``rchar`` of this process (``/proc/self/io``: bytes read by
system calls) around one inspection.  "must parse" is what the structures
found hold: the label scan area, every mda header and committed text, the
MGT's length, and per VHD its header region (footer copy, header, BAT,
batmap, locators), the LV's last sector (an inflated VHD's footer) and, if
that is no footer, the footer after the VHD data (plus BAT and batmap
header where they lie beyond the region).  The limit is 1.25x.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from benchmarks import lun  # noqa: E402
from nova_xenapi_resign.lvhd import device  # noqa: E402
from nova_xenapi_resign.lvhd import lvm  # noqa: E402
from nova_xenapi_resign.lvhd import sr  # noqa: E402
from nova_xenapi_resign.lvhd import vhd  # noqa: E402

LIMIT = 1.25


def rchar():
    """Bytes this process has read through system calls (the kernel's)."""
    with open("/proc/self/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["rchar"])


def inspect(image, repeat=3):
    """(best CPU seconds, device reads, bytes, kernel rchar, model)."""
    best = None
    for _ in range(repeat):
        with device.open_device(image) as dev:
            kernel = rchar()
            start = time.process_time()
            model = sr.inspect(dev)
            seconds = time.process_time() - start
            kernel = rchar() - kernel
            reads, read = dev.reads, dev.bytes_read
        best = seconds if best is None else min(best, seconds)
    return best, reads, read, kernel, model


def _beyond(start, length, region):
    """Bytes of ``[start, start + length)`` past ``[0, region)``."""
    return max(0, start + length - max(start, region))


def must_parse(image, model):
    """The bytes of the structures ``model`` was built from (see above)."""
    total = lvm.LABEL_SCAN_SIZE + sum(
        vhd.SECTOR_SIZE + (m.header.committed.size if m.header.committed
                           else 0) for m in model.pv.mdas)
    total += model.mgt.length if model.mgt else 0
    with device.open_device(image) as dev:
        for v in model.vdis:
            if v.start is None:
                continue
            lv = model.lv(v.lv_name)
            total += v.header_region + vhd.SECTOR_SIZE
            footer = vhd.check_primary_footer(
                v.start.footer, v.start.header,
                lambda o, n: sr.read_lv(dev, lv, o, n), lv.size)
            if footer != lv.size - vhd.SECTOR_SIZE:
                h = v.start.header
                total += vhd.SECTOR_SIZE + _beyond(
                    h.table_offset, h.bat_size, v.header_region) + _beyond(
                    h.table_offset + h.bat_size, vhd.SECTOR_SIZE,
                    v.header_region)
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    counts = (1, 200) if args.quick else (1, 200, 1000)
    rows = []
    workdir = tempfile.mkdtemp(prefix="bench-formats-")
    try:
        for n in counts:
            for size in (lun.lun_size_for(n), 2 * lun.TiB):
                image = lun.make_lun(os.path.join(workdir, "lun.img"), n,
                                     size)
                seconds, reads, read, kernel, model = inspect(image)
                must = must_parse(image, model)
                rows.append((n, "%g GiB" % (size / lun.GiB),
                             len(model.lvs), len(model.problems),
                             "%.1f" % (seconds * 1000), reads, read, kernel,
                             must, "%.2f" % (kernel / must), LIMIT))
                os.unlink(image)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lun.print_table("lvhd.sr.inspect: metadata parse + SR model",
                    ("VDIs", "LUN", "LVs", "problems", "CPU ms (best of 3)",
                     "reads", "bytes read", "kernel rchar B",
                     "must parse B", "rchar/must", "limit"), rows)


if __name__ == "__main__":
    main()
