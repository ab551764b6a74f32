#!/usr/bin/env python3
"""Concurrent Cinder clones of one LVHD source, through the wrapper driver.

    python benchmarks/bench_cinder_concurrent.py [--quick] [--clones N]
                                                 [--vdis N]

Needs root and lvm2 (loop devices).  The backend is the functional tests'
loop driver (``tests/functional/cinder_fakes.py``) behind
``cinder_backend.driver.ResignVolumeDriver`` with real os-brick (LOCAL
connector, privileged calls in-process), set up as
``bench_cinder_hook.py`` does.  One source volume holding an LVHD SR is
snapshotted once; then N threads each call the wrapper's public
``create_volume_from_snapshot`` at the same moment, as N cinder-volume
workers would.

Printed: total wall time of the N clones, per-clone p50/p95, and where a
clone's time goes: the backend's copy, os-brick's connector properties
of this host, its ``connect_volume`` + ``disconnect_volume``,
``resign_device``, and the rest (export,
``initialize_connection`` = ``losetup``, LVHD detection, terminate).  The
parts are timed by wrapping those public calls, not the hook's insides.

Checks, printed: the most ``resign_device`` calls that ran at the same time
(more than one: no lock is held across devices) and the device lock names
(one per clone); then each clone is checked on its own by lvm2 on a loop
device of its LUN - ``vgck``, and ``pvs``' VG name, VG uuid and PV uuid -
against the SR uuid the wrapper published for it: every clone holds the VG
of its own SR uuid, no two clones (nor a clone and the source) share a VG
name, VG uuid or PV uuid, and the snapshot is byte for byte unchanged.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from os_brick.initiator import connector as brick_connector  # noqa: E402
from os_brick.initiator.connectors import local  # noqa: E402

from benchmarks import bench_cinder_hook  # noqa: E402
from benchmarks import bench_resign  # noqa: E402
from benchmarks import lun  # noqa: E402
from cinder_backend import cinder_api  # noqa: E402
from nova_xenapi_resign.lvhd import device as device_mod  # noqa: E402
from nova_xenapi_resign.lvhd import naming  # noqa: E402
from nova_xenapi_resign import resign  # noqa: E402

SOURCE = "22222222-2222-4222-8222-222222222222"
SNAPSHOT = "33333333-3333-4333-8333-333333333333"


class Timings(object):
    """Per-thread durations of the wrapped calls, and resign intervals."""

    def __init__(self):
        self.lock = threading.Lock()
        self.parts = {}                 # (thread, part) -> seconds
        self.resigns = []               # (start, end, lock name)

    def add(self, part, seconds):
        key = (threading.get_ident(), part)
        with self.lock:
            self.parts[key] = self.parts.get(key, 0.0) + seconds

    def take(self, part):
        """This thread's total for ``part`` so far, reset."""
        with self.lock:
            return self.parts.pop((threading.get_ident(), part), 0.0)


def timed(timings, part, func):
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            timings.add(part, time.perf_counter() - start)
    return call


def instrument(wrapper, timings):
    """Wrap the public calls a clone goes through; undo with the result."""
    backend = wrapper.backend
    real_resign = resign.resign_device
    real = (local.LocalConnector.connect_volume,
            local.LocalConnector.disconnect_volume)
    real_props = brick_connector.get_connector_properties

    def resign_device(path, *args, **kwargs):
        name = "xenapi-resign-" + device_mod.storage_identity(path)
        start = time.perf_counter()
        try:
            return real_resign(path, *args, **kwargs)
        finally:
            end = time.perf_counter()
            timings.add("resign", end - start)
            with timings.lock:
                timings.resigns.append((start, end, name))

    backend.create_volume_from_snapshot = timed(
        timings, "copy", backend.create_volume_from_snapshot)
    local.LocalConnector.connect_volume = timed(timings, "brick", real[0])
    local.LocalConnector.disconnect_volume = timed(timings, "brick", real[1])
    brick_connector.get_connector_properties = timed(timings, "props",
                                                     real_props)
    resign.resign_device = resign_device

    def undo():
        del backend.create_volume_from_snapshot
        (local.LocalConnector.connect_volume,
         local.LocalConnector.disconnect_volume) = real
        resign.resign_device = real_resign
        brick_connector.get_connector_properties = real_props
    return undo


def most_at_once(intervals):
    """The largest number of (start, end) intervals open at one time."""
    events = sorted([(s, 1) for s, _, _ in intervals]
                    + [(e, -1) for _, e, _ in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def lvm_view(path):
    """(vgck ok, VG name, VG uuid, PV uuid) of a LUN, as lvm2 reads it."""
    with lun.loop_device(path) as dev:
        out = lun.lvm(dev, "pvs", "--noheadings", "-o",
                      "vg_name,vg_uuid,pv_uuid", dev).stdout.split()
        vg_name, vg_uuid, pv_uuid = out
        lun.lvm(dev, "vgck", vg_name)
    return vg_name, vg_uuid, pv_uuid


def clone(wrapper, snapshot, timings, barrier, results):
    volume = {"id": str(uuid.uuid4()), "size": 1}
    barrier.wait()
    start = time.perf_counter()
    update = wrapper.create_volume_from_snapshot(volume, snapshot)
    seconds = time.perf_counter() - start
    volume.update(update or {})
    parts = {p: timings.take(p) for p in ("copy", "props", "brick", "resign")}
    results.append((volume, seconds, parts))


def run(wrapper, timings, snapshot, clones):
    barrier = threading.Barrier(clones)
    results = []
    threads = [threading.Thread(target=clone, args=(
        wrapper, snapshot, timings, barrier, results))
        for _ in range(clones)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, results


def check(backend, results, source_view):
    """The clones' lvm2 views, and how many pass every check."""
    views = [lvm_view(backend.lun_path(v)) for v, _, _ in results]
    ok = 0
    for (volume, _, _), view in zip(results, views):
        sr_uuid = cinder_api.published_sr_uuid(volume)
        ok += (sr_uuid is not None
               and view[0] == naming.sr_vg_name(sr_uuid))
    distinct = all(len({v[i] for v in views + [source_view]})
                   == len(views) + 1 for i in range(3))
    return ok, distinct


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4 clones of a 2-VDI SR (CI)")
    parser.add_argument("--clones", type=int, default=None,
                        help="concurrent clones (default 20, quick 4)")
    parser.add_argument("--vdis", type=int, default=None,
                        help="VDIs on the source SR (default 20, quick 2)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loop devices)")
    clones = args.clones or (4 if args.quick else 20)
    n_vdis = args.vdis or (2 if args.quick else 20)
    workdir = tempfile.mkdtemp(prefix="bench-cinder-concurrent-")
    wrapper = None
    undo = None
    try:
        wrapper = bench_cinder_hook.make_driver(workdir)
        backend = wrapper.backend
        src_path = backend.lun_path({"id": SOURCE})
        os.makedirs(os.path.dirname(src_path), exist_ok=True)
        lun.make_lun(src_path, n_vdis, lun.lun_size_for(n_vdis))
        snapshot = {"id": SNAPSHOT, "volume_id": SOURCE}
        backend.create_snapshot(snapshot)
        before = bench_resign.sha256(backend.snapshot_path(snapshot))
        source_view = lvm_view(backend.snapshot_path(snapshot))
        # Warm up (imports, privsep, the first losetup), then measure.
        wrapper.create_volume_from_snapshot({"id": str(uuid.uuid4()),
                                             "size": 1}, snapshot)
        timings = Timings()
        undo = instrument(wrapper, timings)
        load = os.getloadavg()
        wall, results = run(wrapper, timings, snapshot, clones)
        undo()
        undo = None
        ok, distinct = check(backend, results, source_view)
        unchanged = before == bench_resign.sha256(
            backend.snapshot_path(snapshot))
    finally:
        if undo is not None:
            undo()
        if wrapper is not None:
            wrapper.backend.detach_all()
        shutil.rmtree(workdir, ignore_errors=True)
    per_clone = [s for _, s, _ in results]
    parts = {p: statistics.median(r[2][p] for r in results)
             for p in ("copy", "props", "brick", "resign")}
    rest = statistics.median(s - sum(r.values()) for _, s, r in results)
    lun.print_table(
        "%d concurrent create_volume_from_snapshot of one %d-VDI LVHD "
        "source (s, wall; parts are medians per clone)" % (clones, n_vdis),
        ("clones", "total wall", "clone p50", "clone p95", "backend copy",
         "os-brick connector props", "os-brick connect+disconnect",
         "resign_device",
         "export+losetup+detect+terminate"),
        [(clones, "%.3f" % wall, "%.3f" % statistics.median(per_clone),
          "%.3f" % percentile(per_clone, 0.95), "%.3f" % parts["copy"],
          "%.3f" % parts["props"], "%.3f" % parts["brick"],
          "%.3f" % parts["resign"],
          "%.3f" % rest)])
    names = {name for _, _, name in timings.resigns}
    lun.print_table(
        "checks", ("resign_device calls", "most at once",
                   "device lock names", "clones passing lvm2 checks",
                   "VG names/uuids, PV uuids distinct", "snapshot unchanged"),
        [(len(timings.resigns), most_at_once(timings.resigns), len(names),
          "%d/%d" % (ok, clones), "yes" if distinct else "NO",
          "yes" if unchanged else "NO")])
    print("\nload average before: %.2f %.2f %.2f" % load)


if __name__ == "__main__":
    main()
