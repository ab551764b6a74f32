"""bench_live_migration.py --nova runs at its small size (no timing here)."""

import os
import subprocess
import sys

from tests import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TestBenchLiveMigrationNova(base.TestCase):

    def test_quick_with_novas_driver(self):
        proc = subprocess.run(
            [sys.executable, "-W", "ignore",
             os.path.join(ROOT, "benchmarks", "bench_live_migration.py"),
             "--nova", "--quick"],
            capture_output=True, text=True, timeout=600, cwd=ROOT)
        # Exit 0: the map and the whole migration stay within 2 XAPI calls
        # per volume over stock Nova.
        self.assertEqual(0, proc.returncode, proc.stdout + proc.stderr)
        self.assertIn("Nova 21.2.4's nova.virt.xenapi (real code)",
                      proc.stdout)
        self.assertNotIn("XenAPI.Failure", proc.stderr)
