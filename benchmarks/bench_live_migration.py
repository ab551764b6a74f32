#!/usr/bin/env python3
"""XAPI calls and wall time of one volume-backed live migration.

Two simulated pools over one SAN, driven through the PyPI ``XenAPI`` client
by the harness of ``tests/functional/test_live_migration_sim.py`` (the XAPI
calls Nova 21's XenAPI driver makes, in the compute manager's order).  For
1, 8 and 32 volumes:

* ``stock``: Nova's algorithm, every SR uuid5-named (the only case in which
  stock Nova migrates volumes at all);
* ``extension``: the same VM with this project's source map, destination
  injection and source check;
* ``ext-legacy``: the extension with every SR legacy-named (stock fails
  with UUID_INVALID there).

Calls are counted by the simulator (``debug.get_call_count``, both pools,
from ``check_can_live_migrate_destination`` to the end of
``live_migration``).  ``map lookups/vol`` are the ``SR.get_by_uuid`` calls
of ``check_can_live_migrate_source``'s map (at most 2 per volume).

    python benchmarks/bench_live_migration.py [--quick] [--repeat N]
"""

import argparse
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


def one_run(volumes, extension, style):
    """Migrate one VM with ``volumes`` volumes; return the measurements."""
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
            lookups = {}
            original = source.check_can_live_migrate_source

            def counted_check(*args):
                before = _by_method(source).get("SR.get_by_uuid", 0)
                result = original(*args)
                lookups["n"] = (_by_method(source).get("SR.get_by_uuid", 0)
                                - before)
                return result

            source.check_can_live_migrate_source = counted_check
            start = time.perf_counter()
            migration.run()
            wall = time.perf_counter() - start
            hazards = (len(source.x.debug.get_hazards())
                       + len(dest.x.debug.get_hazards()))
            mirrored = len([m for m in source.x.debug.get_migrations()
                            if m["mirrored"]])
            total = sum(int(h.x.debug.get_call_count()["total"])
                        for h in (source, dest))
            return {"calls": total, "wall": wall,
                    "phases": dict(migration.phase_calls),
                    "lookups": lookups.get("n", 0), "hazards": hazards,
                    "mirrored": mirrored}
        finally:
            sim.cleanUp()


def _by_method(host):
    counts = host.x.debug.get_call_count()["by_method"]
    return {k: int(v) for k, v in counts.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 and 8 volumes, one run each")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per cell (median wall time; default 3, "
                        "1 with --quick)")
    args = parser.parse_args(argv)
    sizes = (1, 8) if args.quick else (1, 8, 32)
    repeat = args.repeat or (1 if args.quick else 3)

    header = ("%7s  %-10s  %6s  %9s  %9s  %16s  %8s  %7s"
              % ("volumes", "mode", "calls", "calls/vol", "extra/vol",
                 "map lookups/vol", "wall ms", "hazards"))
    print(header)
    print("-" * len(header))
    worst_extra = 0.0
    worst_lookups = 0.0
    phases_32 = {}
    for volumes in sizes:
        stock_calls = None
        for mode, extension, style in MODES:
            runs = [one_run(volumes, extension, style)
                    for _ in range(repeat)]
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
                    worst_extra = max(worst_extra, extra_value)
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
    return 0 if worst_lookups <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
