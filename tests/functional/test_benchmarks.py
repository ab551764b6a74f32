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

    def test_bench_cinder_hook(self):
        self.run_bench("bench_cinder_hook.py")

    def test_bench_live_migration(self):
        self.run_bench("bench_live_migration.py")

    def test_bench_lease(self):
        out = self.run_bench("bench_lease.py")
        self.assertIn("dom0 plugin", out)
