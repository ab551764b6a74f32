#!/usr/bin/env python3
"""XAPI calls and wall time of one volume-backed live migration.

Two simulated pools over one SAN, for 1, 8 and 32 volumes:

* ``stock``: Nova's own driver, every SR uuid5-named (the only case in which
  stock Nova migrates volumes at all);
* ``extension``: the same VM with this project's driver (source map,
  destination injection, source check, vdi_map from the check);
* ``ext-legacy``: the extension with every SR legacy-named (stock fails
  with UUID_INVALID there).

With ``--nova`` (run it with the Nova virtualenv's python, see
``tools/nova-venv.sh``) the drivers are Nova 21.2.4's real
``nova.virt.xenapi`` driver and this project's subclass of it, loaded by
``load_compute_driver``.  Without it, the drivers are the harness of
``tests/functional/test_live_migration_sim.py``, which makes the XAPI calls
Nova 21's driver makes, through the PyPI ``XenAPI`` client.

Calls are counted by the simulator (``debug.get_call_count``, both pools,
from ``check_can_live_migrate_destination`` to the end of
``live_migration``).  ``map lookups/vol`` are the ``SR.get_by_uuid`` calls
of ``check_can_live_migrate_source``'s map (at most 2 per volume).  The
exit status is 1 if the map or the whole migration costs more than 2 calls
per volume over stock.  With ``--nova`` a second table migrates VMs with
LVHD (VDI-per-LUN) volumes and shows what the on-LUN lease adds: the XAPI
calls made inside ``xenapi.volume_lease``'s steps (plus the one hold-off
``SR.add_to_other_config`` per SR) and the wall time spent in them.

    python benchmarks/bench_live_migration.py [--quick] [--repeat N] [--nova]
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from nova_xenapi_resign.simulator import fixture as simfixture  # noqa: E402
from tests.functional import test_live_migration_sim as harness  # noqa: E402

MODES = (("stock", False, "uuid5"), ("extension", True, "uuid5"),
         ("ext-legacy", True, "legacy"))


def _counting(method, host_calls, result):
    """``method`` wrapped to store its ``SR.get_by_uuid`` calls."""
    def counted(*args, **kwargs):
        before = host_calls().get("SR.get_by_uuid", 0)
        value = method(*args, **kwargs)
        result["lookups"] = host_calls().get("SR.get_by_uuid", 0) - before
        return value
    return counted


def one_run(volumes, extension, style):
    """Migrate one VM with the harness; return the measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        sim = simfixture.SimulatorFixture(pools=2,
                                          san_dir=os.path.join(tmp, "san"))
        sim.setUp()
        try:
            source = harness.Host(sim, 0, extension=extension)
            dest = harness.Host(sim, 1, extension=extension)
            bdms = [harness.make_bdm(sim.san, harness.volume_id(i),
                                     str(i + 1), size=harness.MiB)
                    for i in range(volumes)]
            name = "instance-00000001"
            source.boot(name, bdms, [style] * volumes)
            migration = harness.Migration(source, dest, name, bdms)
            result = {"lookups": 0}
            source.check_can_live_migrate_source = _counting(
                source.check_can_live_migrate_source,
                lambda: _by_method(source.x), result)
            start = time.perf_counter()
            migration.run()
            result["wall"] = time.perf_counter() - start
            result["phases"] = dict(migration.phase_calls)
            result.update(_outcome([source.x, dest.x]))
            return result
        finally:
            sim.cleanUp()


def one_run_nova(volumes, extension, style):
    """Migrate one VM with Nova's real driver code; the measurements."""
    from nova_tests import harness as nova_harness

    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        with nova_harness.NovaPools(os.path.join(tmp, "san")) as pools:
            name = (nova_harness.OUR_DRIVER if extension
                    else nova_harness.STOCK_DRIVER)
            source, dest = pools.driver(0, name), pools.driver(1, name)
            instance = pools.instance()
            name_of = harness.legacy if style == "legacy" else harness.uuid5
            bdms, attached = [], []
            for i in range(volumes):
                vol = harness.volume_id(i)
                bdms.append(pools.volume(vol, str(i + 1), size=harness.MiB))
                attached.append((bdms[-1], name_of(vol)))
            pools.boot(instance, attached)
            for x in pools.x:
                x.debug.reset()
            result = {"lookups": 0}
            source.check_can_live_migrate_source = _counting(
                source.check_can_live_migrate_source,
                lambda: _by_method(pools.x[0]), result)
            start = time.perf_counter()
            _, error = pools.migrate(source, dest, instance, bdms,
                                     reset_counters=False)
            result["wall"] = time.perf_counter() - start
            if error is not None or pools.calls != ["post"]:
                raise RuntimeError("migration failed: %r" % (error,))
            result["phases"] = dict(pools.phase_calls)
            result.update(_outcome(pools.x))
            return result


#: volume_lease's steps the driver calls; the XAPI calls and time spent
#: inside them are what the lease adds to a migration.
LEASE_STEPS = ("take", "hold_off_leaf_coalesce", "destination_offer",
               "report_stale", "check_source", "hand_over_before_forget",
               "acquire_at_destination", "reacquire_at_source")


def _lease_meter(xs, volume_lease):
    """Wrap :data:`LEASE_STEPS`; returns the tally and an undo function.

    Only the outermost step counts (``acquire_at_destination`` calls
    ``take``).  The hold-off of the SR before it is plugged
    (``SR.add_to_other_config``) is one call per SR, counted by method.
    """
    tally = {"calls": 0, "wall": 0.0, "depth": 0}
    originals = {n: getattr(volume_lease, n) for n in LEASE_STEPS}

    def total():
        return sum(int(x.debug.get_call_count()["total"]) for x in xs)

    def wrap(func):
        def measured(*args, **kwargs):
            tally["depth"] += 1
            calls, start = total(), time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                tally["depth"] -= 1
                if not tally["depth"]:
                    tally["calls"] += total() - calls
                    tally["wall"] += time.perf_counter() - start
        return measured
    for name, func in originals.items():
        setattr(volume_lease, name, wrap(func))

    def undo():
        for name, func in originals.items():
            setattr(volume_lease, name, func)
    return tally, undo


def one_run_nova_lvhd(volumes):
    """One migration of a VM with ``volumes`` LVHD volumes; the lease's part.

    Nova's real driver code with the extension.  Each simulated host's
    clock is virtual: while a host waits (a claim waits ``3T``), its
    driver's renewer runs a round, as its thread would.
    """
    from nova_tests import harness as nova_harness
    from nova_xenapi_resign.lvhd import create
    from nova_xenapi_resign.lvhd import device
    from nova_xenapi_resign.simulator import lease as simlease
    from nova_xenapi_resign import sr_naming
    from nova_xenapi_resign.xenapi import volume_lease
    from nova_xenapi_resign.xenapi import volume_utils

    host, port = harness.PORTAL.split(":")
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        with nova_harness.NovaPools(os.path.join(tmp, "san")) as pools:
            source = pools.driver(0, nova_harness.OUR_DRIVER)
            dest = pools.driver(1, nova_harness.OUR_DRIVER)
            instance = pools.instance()
            pools.boot(instance, [])
            for pool, driver in zip(pools.sim.pools, (source, dest)):
                renewer = driver._resign_state.renewer
                simlease.host_state(pool, pool.master).clock.hooks.append(
                    lambda seconds, renewer=renewer: renewer.tick())
            bdms = []
            for i in range(volumes):
                vol = harness.volume_id(i)
                bdm = pools.volume(vol, "/dev/xvd%s" % chr(98 + i),
                                   size=32 * harness.MiB)
                data = bdm["connection_info"]["data"]
                sr_uuid = sr_naming.uuid5_sr_uuid(host, port,
                                                  harness.iqn(vol))
                path = pools.sim.san.path(harness.PORTAL, harness.iqn(vol), 0)
                with device.open_device(path, writable=True) as dev:
                    model = create.format_volume(dev, sr_uuid, vol, "v")
                config = volume_utils.lvmoiscsi_device_config(
                    source._session, volume_utils.iscsi_device_config(data),
                    0)
                bdm["connection_info"]["data"] = (
                    volume_utils.lvhd_connection_data(
                        data, sr_uuid, model.vdis[0].uuid, config["SCSIid"]))
                source.attach_volume(pools.ctx, bdm["connection_info"],
                                     instance, bdm["mount_device"])
                bdms.append(bdm)
            for x in pools.x:
                x.debug.reset()
            tally, undo = _lease_meter(pools.x, volume_lease)
            try:
                start = time.perf_counter()
                _, error = pools.migrate(source, dest, instance, bdms,
                                         reset_counters=False)
                wall = time.perf_counter() - start
            finally:
                undo()
            if error is not None or pools.calls != ["post"]:
                raise RuntimeError("migration failed: %r" % (error,))
            result = _outcome(pools.x)
            held_off = sum(_by_method(x).get("SR.add_to_other_config", 0)
                           for x in pools.x)
            result.update(wall=wall, lease_calls=tally["calls"] + held_off,
                          lease_wall=tally["wall"])
            return result


def print_lease_table(sizes, repeat):
    """The lease's XAPI calls and wall time per LVHD-volume migration."""
    rows = []
    for volumes in sizes:
        runs = [one_run_nova_lvhd(volumes) for _ in range(repeat)]
        calls, lease = runs[0]["calls"], runs[0]["lease_calls"]
        wall = statistics.median(r["wall"] for r in runs) * 1000
        lease_wall = statistics.median(r["lease_wall"] for r in runs) * 1000
        rows.append((volumes, calls, calls - lease, lease,
                     "%.1f" % (lease / volumes), "%.1f" % (wall - lease_wall),
                     "%.1f" % wall, "%.1f" % lease_wall,
                     sum(r["hazards"] + r["mirrored"] for r in runs)))
    print("\nLVHD volumes, extension with the lease (Nova's real driver); "
          "'without' = the same migration less the lease's calls and time")
    header = ("volumes", "calls with", "calls without", "lease calls",
              "lease calls/vol", "wall ms without", "wall ms with",
              "lease ms", "hazards")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("%%%ds" % w for w in widths)
    print(line % header)
    print(line % tuple("-" * w for w in widths))
    for row in rows:
        print(line % row)
    return rows


def _outcome(sessions):
    """Total calls, hazards and mirrors over both pools."""
    return {
        "calls": sum(int(x.debug.get_call_count()["total"])
                     for x in sessions),
        "hazards": sum(len(x.debug.get_hazards()) for x in sessions),
        "mirrored": sum(len([m for m in x.debug.get_migrations()
                             if m["mirrored"]]) for x in sessions)}


def _by_method(xenapi):
    counts = xenapi.debug.get_call_count()["by_method"]
    return {k: int(v) for k, v in counts.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 8 volumes, one run each")
    parser.add_argument("--nova", action="store_true",
                        help="drive Nova 21.2.4's own driver code (needs "
                        "Nova: the tools/nova-venv.sh virtualenv)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per cell (median wall time; default 3, "
                        "1 with --quick)")
    args = parser.parse_args(argv)
    sizes = (1, 8) if args.quick else (1, 8, 32)
    repeat = args.repeat or (1 if args.quick else 3)
    run = one_run_nova if args.nova else one_run
    if args.nova:
        # Nova logs its warnings (plugins the simulator lacks) to stderr.
        logging.basicConfig(level=logging.ERROR)
    print("drivers: %s" % ("Nova 21.2.4's nova.virt.xenapi (real code)"
                           if args.nova else "the functional harness"))

    header = ("%7s  %-10s  %6s  %9s  %9s  %16s  %8s  %7s"
              % ("volumes", "mode", "calls", "calls/vol", "extra/vol",
                 "map lookups/vol", "wall ms", "hazards"))
    print(header)
    print("-" * len(header))
    worst_extra = None
    worst_lookups = 0.0
    phases_32 = {}
    for volumes in sizes:
        stock_calls = None
        for mode, extension, style in MODES:
            runs = [run(volumes, extension, style) for _ in range(repeat)]
            calls = runs[0]["calls"]
            wall = statistics.median(r["wall"] for r in runs) * 1000
            hazards = sum(r["hazards"] + r["mirrored"] for r in runs)
            lookups = runs[0]["lookups"] / volumes
            if mode == "stock":
                stock_calls = calls
                extra = "-"
            else:
                extra_value = (calls - stock_calls) / volumes
                extra = "%+.2f" % extra_value
                if style == "uuid5":
                    worst_extra = extra_value if worst_extra is None else max(
                        worst_extra, extra_value)
                worst_lookups = max(worst_lookups, lookups)
            phases_32[(volumes, mode)] = runs[0]["phases"]
            print("%7d  %-10s  %6d  %9.1f  %9s  %16s  %8.1f  %7d"
                  % (volumes, mode, calls, calls / volumes, extra,
                     "-" if mode == "stock" else "%.2f" % lookups, wall,
                     hazards))
    print()
    largest = sizes[-1]
    print("XAPI calls per phase, %d volumes:" % largest)
    names = ("check_destination", "check_source", "pre_live_migration",
             "live_migration")
    print("  %-10s  %s" % ("mode", "  ".join("%18s" % n for n in names)))
    for mode, _, _ in MODES:
        phases = phases_32[(largest, mode)]
        print("  %-10s  %s" % (mode, "  ".join(
            "%18d" % phases.get(n, 0) for n in names)))
    print()
    print("Source map (check_can_live_migrate_source): at most %.2f "
          "SR.get_by_uuid per volume (bound: 2)." % worst_lookups)
    print("Whole migration, extension vs stock (uuid5 SRs): %+.2f XAPI "
          "calls per volume." % worst_extra)
    if args.nova:
        # A VM has at most 16 disk slots (xvda-xvdp): one for its root.
        print_lease_table(sorted({min(n, 15) for n in sizes}), repeat)
    return 0 if worst_lookups <= 2 and worst_extra <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
