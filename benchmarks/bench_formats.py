#!/usr/bin/env python3
"""Parse a VG's metadata and build the SR model: time and bytes read.

    python benchmarks/bench_formats.py [--quick]

The model is built from metadata-sized reads only, so the bytes read do not
depend on the LUN size: a 2 TiB sparse LUN costs what a small one costs.
Runs on image files (no root needed).
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
from nova_xenapi_resign.lvhd import sr  # noqa: E402


def inspect(image, repeat=3):
    best = None
    for _ in range(repeat):
        with device.open_device(image) as dev:
            start = time.perf_counter()
            model = sr.inspect(dev)
            seconds = time.perf_counter() - start
            read = dev.bytes_read
        best = seconds if best is None else min(best, seconds)
    return best, read, model


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
                seconds, read, model = inspect(image)
                rows.append((n, "%g GiB" % (size / lun.GiB),
                             len(model.lvs), len(model.problems),
                             "%.1f" % (seconds * 1000), read))
                os.unlink(image)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lun.print_table("lvhd.sr.inspect: metadata parse + SR model",
                    ("VDIs", "LUN", "LVs", "problems", "ms (best of 3)",
                     "bytes read"), rows)


if __name__ == "__main__":
    main()
