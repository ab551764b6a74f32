#!/usr/bin/env python3
"""Resign vs vgimportclone on the same images: time, kernel I/O, limits.

    python benchmarks/bench_resign.py [--quick]

Needs root and lvm2 (loop devices).  Each case's LUN image is copied
(sparse) for every run and tool: ``resign_device`` in-process (fsyncs
included, engine already imported), the whole ``xenapi-resign resign
--yes`` process (start-up included), and ``vgimportclone`` as a process
(which does far less: PV/VG ids and the VG name only).  Times are medians
of several runs (the machine may be shared: the load average is printed),
wall clock and CPU time (``time.process_time`` of this process plus the
user and system time of the tool's child process, ``getrusage``), which a
busy neighbour disturbs far less; byte and flush counts are exact and
come from the kernel's counters of the loop device, /sys/block/loopN/stat
(sectors read, sectors written, flush requests).  The "limit" is what the
plan implies: the bytes of the sectors that change (plus the mda header
written twice, precommit then commit) and one barrier per write group.
Checks, printed: the in-process and the CLI run end byte-identical, a
rerun writes nothing, and at the largest case runs crashed at chosen
writes (clean and torn) resume byte-identical.

The CLI runs as an installed one does: with its bytecode cache
(``PYTHONDONTWRITEBYTECODE`` is dropped for it, which otherwise makes every
start compile the project's modules again).
"""

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from benchmarks import lun  # noqa: E402
from nova_xenapi_resign.lvhd import device  # noqa: E402
from nova_xenapi_resign import resign  # noqa: E402
from tests.crash import Crash, CrashingDevice  # noqa: E402

TARGET = "5b1f0c2e-8d3a-4f6b-9e7c-2a4d6f8b0c1e"
CLI = os.path.join(os.path.dirname(sys.executable), "xenapi-resign")


def copy(src, dst):
    subprocess.run(["cp", "--sparse=always", src, dst], check=True)
    return dst


def sha256(path):
    """Digest of a sparse image's data extents (offset and bytes).

    Reading the holes of a 2 TiB image would take longer than the runs.
    """
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        end, pos = os.fstat(fd).st_size, 0
        while pos < end:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break                   # no data after pos
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            digest.update(b"%d\n" % pos)
            while pos < hole:
                block = os.pread(fd, min(1 << 20, hole - pos), pos)
                digest.update(block)
                pos += len(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def warm_up(workdir):
    """Import and exercise the engine once: a service has it loaded."""
    image = lun.make_lun(os.path.join(workdir, "warm.img"), 1, 64 * lun.MiB)
    resign.resign_device(image, TARGET, backup_dir=os.path.join(workdir,
                                                                "bk"),
                         lock_path=os.path.join(workdir, "locks"))
    os.unlink(image)
    shutil.rmtree(os.path.join(workdir, "bk"))


def ours(dev, workdir):
    return resign.resign_device(dev, TARGET,
                                backup_dir=os.path.join(workdir, "bk"),
                                lock_path=os.path.join(workdir, "locks"))


#: The CLI's environment: an installed CLI has its bytecode cached.
CLI_ENV = {k: v for k, v in os.environ.items()
           if k != "PYTHONDONTWRITEBYTECODE"}


def cli(dev, workdir):
    subprocess.run([CLI, "resign", dev, "--sr-uuid", TARGET, "--backup-dir",
                    os.path.join(workdir, "bk"), "--yes"], check=True,
                   capture_output=True, env=CLI_ENV)


def vgimportclone(dev, workdir):
    lun.lvm(dev, "vgimportclone", "-n", "VG_XenStorage-clone", dev)


def cpu_seconds():
    """CPU time of this process and of its waited-for children so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def one_run(tool, image, workdir):
    """(seconds, kernel I/O, CPU seconds) of ``tool`` on a fresh copy."""
    path = copy(image, os.path.join(workdir, tool.__name__ + ".img"))
    with lun.loop_device(path) as dev:
        def run():
            start = cpu_seconds()
            tool(dev, workdir)
            return cpu_seconds() - start
        cpu, seconds, io = lun.measured(dev, run)
    shutil.rmtree(os.path.join(workdir, "bk"), ignore_errors=True)
    return seconds, io, cpu


def rerun_writes(path, workdir):
    """Kernel bytes written by a second in-process run (must be none)."""
    with lun.loop_device(path) as dev:
        result, _, io = lun.measured(dev, lambda: ours(dev, workdir))
    shutil.rmtree(os.path.join(workdir, "bk"), ignore_errors=True)
    return io.written if not result.changed else -1


def limit(image):
    """(bytes of the sectors the plan changes, barriers) from the plan."""
    with device.open_device(image) as dev:
        p = resign.plan(resign.inspect(dev), TARGET)
        final, times = {}, {}
        for w in p.writes:
            for i in range(0, len(w.data), lun.SECTOR):
                final[w.offset + i] = w.data[i:i + lun.SECTOR]
                times[w.offset + i] = times.get(w.offset + i, 0) + 1
        sectors = sum(times[o] if dev.read(o, lun.SECTOR) != data else 0
                      for o, data in final.items())
    return sectors * lun.SECTOR, len(resign.PHASES)


def crash_check(image, workdir):
    """"ok/total": crashed runs (clean and torn) that resume identically."""
    ref = copy(image, os.path.join(workdir, "ref.img"))
    lun.RecordingDevice.offsets = []
    ours_result = resign.resign_device(
        ref, TARGET, backup_dir=os.path.join(workdir, "ref-bk"),
        lock_path=os.path.join(workdir, "locks"),
        opener=lun.RecordingDevice)
    offsets, expected = lun.RecordingDevice.offsets, sha256(ref)
    label = [w.offset for w in ours_result.plan.writes
             if w.phase == resign.PHASE_LABEL][0]
    points = sorted({1, len(offsets) // 2, offsets.index(label) + 1,
                     len(offsets)})
    ok = 0
    for k in points:
        for torn in (False, True):
            path = copy(image, os.path.join(workdir, "crash.img"))
            bk = os.path.join(workdir, "crash-bk")
            try:
                resign.resign_device(
                    path, TARGET, backup_dir=bk,
                    lock_path=os.path.join(workdir, "locks"),
                    opener=lambda p, writable=False: CrashingDevice(
                        p, writable, k, torn))
            except Crash:
                pass
            resign.resign_device(path, TARGET, backup_dir=bk,
                                 lock_path=os.path.join(workdir, "locks"))
            ok += sha256(path) == expected
            shutil.rmtree(bk)
    return "%d/%d" % (ok, 2 * len(points))


def startup_ms(runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([CLI, "--help"], check=True, capture_output=True,
                       env=CLI_ENV)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def median_ms(samples, field=0):
    return statistics.median(s[field] for s in samples) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small cases, 3 runs each (CI)")
    args = parser.parse_args()
    cases = [(1, 64 * lun.MiB), (1, 2 * lun.TiB), (200, None)]
    if not args.quick:
        cases += [(1000, None), (1000, 2 * lun.TiB)]
    runs = 3 if args.quick else 5
    load_before = os.getloadavg()
    rows, checks = [], []
    workdir = tempfile.mkdtemp(prefix="bench-resign-")
    try:
        warm_up(workdir)
        startup = startup_ms(runs)
        for index, (n, size) in enumerate(cases):
            size = size or lun.lun_size_for(n)
            image = lun.make_lun(os.path.join(workdir, "lun.img"), n, size)
            samples = {tool: [] for tool in (ours, cli, vgimportclone)}
            for _ in range(runs):
                for tool in samples:
                    samples[tool].append(one_run(tool, image, workdir))
            identical = sha256(path_of(workdir, ours)) == sha256(
                path_of(workdir, cli))
            rerun = rerun_writes(path_of(workdir, ours), workdir)
            crash = (crash_check(image, workdir)
                     if index == len(cases) - 1 else "-")
            changed, barriers = limit(image)
            t_ours, t_cli = median_ms(samples[ours]), median_ms(samples[cli])
            io_ours, io_lvm = samples[ours][-1][1], samples[vgimportclone][
                -1][1]
            rows.append((
                n, "%g GiB" % (size / lun.GiB), "%.1f" % t_ours,
                "%.1f" % median_ms(samples[ours], 2), "%.1f" % t_cli,
                "%.1f" % median_ms(samples[cli], 2),
                "%.1f" % median_ms(samples[vgimportclone]),
                "%s" % (t_cli <= 2 * t_ours + startup),
                io_ours.read, io_ours.written, io_ours.flushes,
                "%d / %d" % (changed, barriers),
                "%.2f" % (io_ours.written / changed),
                io_lvm.read, io_lvm.written, io_lvm.flushes))
            checks.append((n, "%g GiB" % (size / lun.GiB),
                           "yes" if identical else "NO", rerun, crash))
            for name in os.listdir(workdir):
                if name.endswith(".img"):
                    os.unlink(os.path.join(workdir, name))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lun.print_table(
        "resign vs vgimportclone, medians of %d runs (ms); kernel counters "
        "of the loop device (/sys/block/loopN/stat) of the last run" % runs,
        ("VDIs", "LUN", "in-process", "in-process CPU",
         "xenapi-resign process", "process CPU", "vgimportclone process",
         "process <= 2x+start-up", "read B",
         "written B", "flushes", "limit B / barriers", "written/limit",
         "lvm read B", "lvm written B", "lvm flushes"), rows)
    lun.print_table(
        "checks", ("VDIs", "LUN", "in-process == CLI bytes",
                   "rerun written B", "crash points resumed identical"),
        checks)
    print("\nxenapi-resign --help start-up: %.0f ms (median of %d)"
          % (startup, runs))
    print("load average before: %.2f %.2f %.2f, after: %.2f %.2f %.2f"
          % (load_before + os.getloadavg()))


def path_of(workdir, tool):
    return os.path.join(workdir, tool.__name__ + ".img")


if __name__ == "__main__":
    main()
