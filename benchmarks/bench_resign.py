#!/usr/bin/env python3
"""Resign vs vgimportclone on the same images: time, bytes read/written.

    python benchmarks/bench_resign.py [--quick]

Needs root and lvm2 (loop devices).  For each case the same LUN image is
copied twice (sparse); one copy is resigned in-process with
``resign_device`` (fsyncs included), the other with ``vgimportclone`` (which
does far less: PV/VG ids and the VG name only).  Device I/O is counted by
the kernel on the loop device for both.  Also: ``xenapi-resign --help``
start-up time, and bytes written against the 2 MiB + 8 KiB/VDI target.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from benchmarks import lun  # noqa: E402
from nova_xenapi_resign import resign  # noqa: E402


def copy(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


def warm_up(workdir):
    """Import and exercise the engine once: a service has it loaded."""
    image = lun.make_lun(os.path.join(workdir, "warm.img"), 1, 64 * lun.MiB)
    resign.resign_device(image, str(uuid.uuid4()),
                         backup_dir=os.path.join(workdir, "bk"),
                         lock_path=os.path.join(workdir, "locks"))
    os.unlink(image)
    shutil.rmtree(os.path.join(workdir, "bk"))


def ours(image, workdir):
    target = str(uuid.uuid4())
    with lun.loop_device(image) as dev:
        result, seconds, rd, wr = lun.measured(dev, lambda: (
            resign.resign_device(dev, target,
                                 backup_dir=os.path.join(workdir, "bk"),
                                 lock_path=os.path.join(workdir, "locks"))))
    return seconds, rd, wr, result


def theirs(image):
    with lun.loop_device(image) as dev:
        _, seconds, rd, wr = lun.measured(dev, lambda: lun.lvm(
            dev, "vgimportclone", "-n", "VG_XenStorage-clone", dev))
    return seconds, rd, wr


def startup_ms(runs=5):
    best = None
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nova_xenapi_resign.cmd.main",
                        "--help"], check=True, capture_output=True)
        ms = (time.perf_counter() - start) * 1000
        best = ms if best is None else min(best, ms)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small cases only (CI)")
    args = parser.parse_args()
    cases = [(1, 64 * lun.MiB), (1, 2 * lun.TiB), (200, None)]
    if not args.quick:
        cases += [(1000, None), (1000, 2 * lun.TiB)]
    rows = []
    workdir = tempfile.mkdtemp(prefix="bench-resign-")
    try:
        warm_up(workdir)
        for n, size in cases:
            size = size or lun.lun_size_for(n)
            image = lun.make_lun(os.path.join(workdir, "lun.img"), n, size)
            a = copy(image, os.path.join(workdir, "a.img"))
            b = copy(image, os.path.join(workdir, "b.img"))
            t_ours, r_ours, w_ours, result = ours(a, workdir)
            t_lvm, r_lvm, w_lvm = theirs(b)
            budget = 2 * lun.MiB + 8 * 1024 * n
            rows.append((n, "%g GiB" % (size / lun.GiB),
                         "%.1f" % (t_ours * 1000), "%.1f" % (t_lvm * 1000),
                         "%.1fx" % (t_lvm / t_ours),
                         r_ours, w_ours, r_lvm, w_lvm,
                         "%d <= %d: %s" % (result.bytes_written, budget,
                                           result.bytes_written <= budget)))
            for path in (image, a, b):
                os.unlink(path)
            shutil.rmtree(os.path.join(workdir, "bk"), ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lun.print_table(
        "resign_device (in-process, fsyncs included) vs vgimportclone",
        ("VDIs", "LUN", "ours ms", "vgimportclone ms", "speed-up",
         "ours read B", "ours written B", "lvm read B", "lvm written B",
         "bytes written vs 2 MiB + 8 KiB/VDI"), rows)
    print("\nxenapi-resign --help start-up: %.0f ms (best of 5)"
          % startup_ms())


if __name__ == "__main__":
    main()
