#!/usr/bin/env python3
"""Lease renewals for many SRs on one host: rate, bytes and I/Os.

    python benchmarks/bench_lease.py [--quick] [--migration]

Every SR's lease area sits in one image file (4 MiB apart, like one extent
per lease LV), each is acquired once, then every SR is renewed in rounds as
the owning host would: through the package's state machine and through the
dom0 plugin's (with its state file, as in dom0).  Each write is fsynced.
The per-hour figures follow from the renewal interval of the default lease
duration (``[xenapi_resign] lease_duration``).

``--migration`` (with the Nova virtualenv's python, ``tools/nova-venv.sh``)
also prints what the lease adds to one live migration of a VM with LVHD
volumes through Nova's real driver: XAPI calls and wall time with and
without the lease's steps (``bench_live_migration.print_lease_table``).
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from benchmarks import lun  # noqa: E402
from nova_xenapi_resign.lease import locator  # noqa: E402
from nova_xenapi_resign.lease import options  # noqa: E402
from nova_xenapi_resign.lease import protocol  # noqa: E402
from nova_xenapi_resign.lease import record as rec  # noqa: E402
from nova_xenapi_resign.lvhd import device  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_PATH = os.path.join(ROOT, "dom0", "etc", "xapi.d", "plugins",
                           "xenapi_resign_lease.py")
STRIDE = 4 * 1024 * 1024
DEFAULTS = {o.name: o.default for o in options.lease_opts}
TIMING = protocol.Timing(DEFAULTS["lease_duration"],
                         DEFAULTS["lease_io_timeout"])


class CountingDevice(object):
    """The plugin's Device, counting its I/O like lvhd.device does."""

    def __init__(self, inner):
        self.inner = inner
        self.path = inner.path
        self.reads = self.writes = self.bytes_read = self.bytes_written = 0

    def read(self, offset, length):
        self.reads += 1
        self.bytes_read += length
        return self.inner.read(offset, length)

    def write(self, offset, data):
        self.writes += 1
        self.bytes_written += len(data)
        self.inner.write(offset, data)


def virtual_clock():
    """A clock and sleeper for one lease, in virtual time.

    Its acquisition waits pass at once, and renewals need no waiting.
    """
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
    return (lambda: now[0]), sleep


def sr_uuid(i):
    return "00000000-0000-4000-8000-%012d" % i


def make_image(path, n):
    with open(path, "wb") as f:
        f.truncate(n * STRIDE)
    with device.Device(path, writable=True) as dev:
        for i in range(n):
            dev.write(i * STRIDE, rec.slot_bytes(
                protocol.initial_record(sr_uuid(i), TIMING)))


def package_leases(dev, n):
    leases = []
    for i in range(n):
        clock, sleep = virtual_clock()
        where = locator.LeaseLocation(dev.path, sr_uuid(i), i * STRIDE,
                                      STRIDE)
        lease = protocol.DeltaLease(
            locator.DeviceStore(dev, where), sr_uuid(i),
            rec.Owner("pool-a", "host-a"), TIMING, clock=clock, sleep=sleep)
        lease.acquire()
        leases.append(lease)
    return leases


def plugin_leases(plugin, dev, n, state_dir):
    leases = []
    for i in range(n):
        clock, sleep = virtual_clock()
        lease = plugin.Lease(
            plugin.Store(dev, i * STRIDE), sr_uuid(i), "pool-a", "host-a",
            TIMING.duration, TIMING.io_timeout,
            plugin.FileState(state_dir, sr_uuid(i)), clock=clock,
            sleep=sleep)
        lease.acquire()
        leases.append(lease)
    return leases


def measure(name, leases, dev, rounds):
    reads, writes = dev.reads, dev.writes
    read_bytes, written = dev.bytes_read, dev.bytes_written
    start = time.perf_counter()
    for _ in range(rounds):
        for lease in leases:
            lease.renew()
    seconds = time.perf_counter() - start
    count = rounds * len(leases)
    per_hour = 3600.0 / TIMING.renew_interval
    ios = ((dev.reads - reads) + (dev.writes - writes)) / count
    return (name, len(leases), count, "%.0f" % (count / seconds),
            "%.0f" % ((dev.bytes_read - read_bytes) / count),
            "%.0f" % ((dev.bytes_written - written) / count),
            "%.1f" % ios, "%.0f" % (per_hour * ios),
            "%.3f" % (per_hour * ios / 3600.0))


def measure_renew_many(plugin, image, n, state_dir, rounds):
    """Time the plugin's ``renew_many`` call as dom0 runs it.

    Minus the process start: the device is opened per SR, the offset
    comes from the state file, the answer is JSON.
    """
    plugin.STATE_DIR = state_dir
    args = {"pool": "pool-a", "host": "host-a",
            "leases": json.dumps([{"device": image, "sr_uuid": sr_uuid(i)}
                                  for i in range(n)])}
    start = time.perf_counter()
    for _ in range(rounds):
        out = json.loads(plugin.renew_many(None, args))
        bad = [k for k, v in out.items() if isinstance(v, list)]
        if bad:
            raise SystemExit("renew_many failed for %s: %s"
                             % (bad[0], out[bad[0]]))
    seconds = time.perf_counter() - start
    count = rounds * n
    return ("plugin renew_many", n, count, "%.0f" % (count / seconds),
            "-", "-", "-", "-", "-")


def load_plugin():
    spec = importlib.util.spec_from_file_location("xenapi_resign_lease",
                                                  PLUGIN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--migration", action="store_true",
                        help="also the lease's cost per live migration "
                        "(needs Nova: the tools/nova-venv.sh virtualenv)")
    args = parser.parse_args()
    n, rounds = (50, 2) if args.quick else (1000, 3)
    plugin = load_plugin()
    workdir = tempfile.mkdtemp(prefix="bench-lease-")
    rows = []
    try:
        image = os.path.join(workdir, "leases.img")
        make_image(image, n)
        with device.Device(image, writable=True) as dev:
            rows.append(measure("package", package_leases(dev, n), dev,
                                rounds))
        dev = CountingDevice(plugin.Device(image))
        try:
            leases = plugin_leases(plugin, dev, n,
                                   os.path.join(workdir, "state"))
            rows.append(measure("dom0 plugin", leases, dev, rounds))
        finally:
            dev.inner.close()
        # Re-home the held state with the offsets renew_many reads.
        state_dir = os.path.join(workdir, "state")
        for i in range(n):
            state = plugin.FileState(state_dir, sr_uuid(i))
            held = state.load()
            state.save(dict(held, since=plugin.monotonic(),
                            offset=i * STRIDE))
        rows.append(measure_renew_many(plugin, image, n, state_dir, rounds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lun.print_table(
        "lease renewals on one host (duration %.0f s, renewed every %.0f s; "
        "each write fsynced)" % (TIMING.duration, TIMING.renew_interval),
        ("code", "SRs", "renewals", "renewals/s", "bytes read/renewal",
         "bytes written/renewal", "I/Os/renewal", "I/Os per SR per hour",
         "IOPS per SR"), rows)
    if args.migration:
        from benchmarks import bench_live_migration
        bench_live_migration.logging.basicConfig(
            level=bench_live_migration.logging.ERROR)
        bench_live_migration.print_lease_table(
            (1, 8) if args.quick else (1, 8, 15), 1 if args.quick else 3)


if __name__ == "__main__":
    main()
