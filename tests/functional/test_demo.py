"""The README's main command: ``xenapi-resign demo`` end to end."""

import json
import os
import subprocess
import sys

from nova_xenapi_resign import demo
from tests import base


class TestDemo(base.TestCase):

    def test_demo_json(self):
        proc = subprocess.run(
            [sys.executable, "-m", "nova_xenapi_resign.cmd.main", "demo",
             "--json"], capture_output=True, text=True, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr)
        out = json.loads(proc.stdout)
        self.assertTrue(out["ok"])
        self.assertEqual([], out["hazards"])
        self.assertEqual(list(demo.STEPS), [s["name"] for s in out["steps"]])
        for step in out["steps"]:
            self.assertTrue(step["ok"], step)
            self.assertIsInstance(step["xapi_calls"], int)
            self.assertEqual(step["xapi_calls"],
                             sum(step["xapi_methods"].values()), step)
        by_name = {s["name"]: s for s in out["steps"]}
        self.assertIn("VM.migrate_send",
                      by_name["live-migrate-mixed-volumes"]["xapi_methods"])
        self.assertEqual(2, by_name["live-migrate-mixed-volumes"]
                         ["xapi_methods"]["SR.forget"])

    def test_demo_leaves_nothing_behind(self):
        before = set(os.listdir(self.tmpdir))
        self.useFixture(__import__("fixtures").EnvironmentVariable(
            "TMPDIR", self.tmpdir))
        import tempfile
        self.addCleanup(setattr, tempfile, "tempdir", tempfile.tempdir)
        tempfile.tempdir = self.tmpdir
        steps, hazards = demo.run(lambda step: None)
        self.assertTrue(all(s.ok for s in steps))
        self.assertEqual(before, set(os.listdir(self.tmpdir)))
