"""Every benchmark runs at its small size (no timing assertions here)."""

import os
import subprocess
import sys

from tests.functional import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TestBenchmarksRun(base.FunctionalTestCase):

    TOOLS = ("losetup", "lvm")

    def run_bench(self, name):
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "benchmarks", name),
             "--quick"], capture_output=True, text=True, timeout=600,
            cwd=ROOT)
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("---", proc.stdout)
        return proc.stdout

    def test_bench_formats(self):
        self.run_bench("bench_formats.py")

    def test_bench_resign(self):
        out = self.run_bench("bench_resign.py")
        self.assertIn("vgimportclone", out)
        tables = out.split("\nchecks\n")
        # Byte counts are exact (kernel counters), unlike times: the disk
        # sees at most 1.25x the sectors that change; in-process and CLI
        # end identical, a rerun writes nothing, crashed runs resume.
        ratios = [float(line.split()[-4]) for line in
                  tables[0].splitlines() if line[:1].isdigit()]
        self.assertEqual(3, len(ratios), out)
        self.assertTrue(all(r <= 1.25 for r in ratios), out)
        checks = [line.split() for line in tables[1].splitlines()
                  if line[:1].isdigit()]
        self.assertEqual([["yes", "0"]] * 3, [c[3:5] for c in checks], out)
        ok, total = checks[-1][5].split("/")
        self.assertEqual(ok, total, out)

    def test_bench_cinder_hook(self):
        self.run_bench("bench_cinder_hook.py")

    def test_bench_cinder_concurrent(self):
        out = self.run_bench("bench_cinder_concurrent.py")
        # Correctness only: 4 clones, each resigned once under its own
        # device lock, each passing lvm2's vgck with the VG of the SR uuid
        # published for it, no id shared, the snapshot untouched.
        checks = out.split("\nchecks\n")[1]
        row = [line.split() for line in checks.splitlines()
               if line[:1].isdigit()]
        self.assertEqual([["4", row[0][1], "4", "4/4", "yes", "yes"]], row,
                         out)

    def test_bench_live_migration(self):
        self.run_bench("bench_live_migration.py")

    def test_bench_lease(self):
        out = self.run_bench("bench_lease.py")
        self.assertIn("dom0 plugin", out)
