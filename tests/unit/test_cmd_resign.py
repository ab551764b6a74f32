"""``inspect``, ``plan``, ``resign``, ``restore``, ``simulator``: every exit
code the README documents, the prompt, and bad input without tracebacks."""

import io
import json
import os

import fixtures

from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign import resign
from tests import base
from tests.unit import test_cmd_sr_uuid
from tests.unit import test_resign

SR = test_resign.SR
TARGET = test_resign.TARGET
run_cli = test_cmd_sr_uuid.run_cli
read = test_resign.read


class FakeTty(io.StringIO):
    """stdin of an operator at a terminal, typing ``text``."""

    def isatty(self):
        return True


class NoInput(FakeTty):
    """A terminal nobody may be asked anything on."""

    def readline(self, *args):
        raise AssertionError("prompted")


class CliTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = test_resign.make_sr(os.path.join(self.tmpdir, "c.img"))
        self.pristine = read(self.image)
        self.backups = os.path.join(self.tmpdir, "backups")
        self.useFixture(fixtures.MonkeyPatch(
            "nova_xenapi_resign.resign.default_lock_path",
            lambda: os.path.join(self.tmpdir, "locks")))

    def cli(self, expect, *argv, stdin=None):
        if stdin is not None:
            self.useFixture(fixtures.MonkeyPatch("sys.stdin", stdin))
        rc, out, err = run_cli(*argv)
        self.assertEqual(expect, rc, err)
        self.assertNotIn("Traceback", out + err)
        return out, err

    def resign(self, expect, *args, stdin=None):
        return self.cli(expect, "resign", self.image, "--backup-dir",
                        self.backups, *args, stdin=stdin)


class TestExitCodes(CliTestCase):
    """0 done or nothing to do, 1 error, 2 usage, 3 refused, 130 ^C."""

    def test_0_done_and_nothing_to_do(self):
        out, _ = self.cli(0, "inspect", self.image)
        self.assertIn("state:   original", out)
        self.cli(0, "plan", self.image, "--sr-uuid", TARGET)
        self.assertEqual(self.pristine, read(self.image))
        self.resign(0, "--sr-uuid", TARGET, "--yes")
        done = read(self.image)
        # A rerun is a no-op: 0, without --yes and without a terminal.
        out, _ = self.resign(0, "--sr-uuid", TARGET,
                             stdin=io.StringIO(""))
        self.assertIn("nothing to do", out)
        out, _ = self.cli(0, "plan", self.image, "--sr-uuid", TARGET)
        self.assertIn("nothing to do", out)
        self.assertEqual(done, read(self.image))
        [backup] = os.listdir(self.backups)
        self.cli(0, "restore", self.image, "--backup",
                 os.path.join(self.backups, backup))
        self.assertEqual(self.pristine, read(self.image))

    def test_1_errors(self):
        missing = os.path.join(self.tmpdir, "nonexistent")
        for argv in (("inspect", missing), ("plan", missing, "--sr-uuid",
                                            TARGET),
                     ("resign", missing, "--sr-uuid", TARGET, "--yes",
                      "--backup-dir", self.backups),
                     ("restore", self.image, "--backup", missing)):
            _, err = self.cli(1, *argv)
            self.assertIn("nonexistent", err)
        _, err = self.cli(1, "restore", missing, "--backup", self.image)
        self.assertIn("not a xenapi-resign backup", err)
        # inspect only reads: a device without an SR is an error, not a
        # refusal (resign refuses it with 3, see test_3_refused).
        blank = os.path.join(self.tmpdir, "blank.img")
        with open(blank, "wb") as f:
            f.truncate(1 << 20)
        _, err = self.cli(1, "inspect", blank)
        self.assertIn("no LVM2 label", err)
        self.assertEqual(self.pristine, read(self.image))

    def test_2_usage(self):
        for args, fragment in (
                ((), "give --sr-uuid"),
                (("--volume-id", "v", "--style", "uuid5"),
                 "--style uuid5 needs both --portal and --iqn"),
                (("--sr-uuid", TARGET, "--style", "uuid5"), "excludes"),
                (("--volume-id", "v"), "legacy Nova SR name"),
                (("--volume-id", "v", "--style", "legacy"), "legacy"),
                (("--sr-uuid", "FA15E-D15C-v"), "legacy Nova SR name"),
                (("--sr-uuid", TARGET.replace("-", "")), "lowercase"),
                (("--sr-uuid", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"),
                 "SR_BACKEND_FAILURE_47"),
                (("--sr-uuid", SR.upper()), "upper-case"),
                (("--bogus",), "unrecognized arguments")):
            _, err = self.resign(2, "--yes", *args)
            self.assertIn(fragment, err)
        # Something to do, no terminal, no --yes.
        _, err = self.resign(2, "--sr-uuid", TARGET, stdin=io.StringIO(""))
        self.assertIn("without --yes", err)
        self.assertEqual(self.pristine, read(self.image))
        self.assertFalse(os.path.exists(self.backups))

    def test_3_refused(self):
        self.resign(3, "--sr-uuid", SR, "--yes")
        blank = os.path.join(self.tmpdir, "blank.img")
        with open(blank, "wb") as f:
            f.truncate(len(self.pristine))
        _, err = self.cli(3, "resign", blank, "--sr-uuid", TARGET, "--yes",
                          "--backup-dir", self.backups)
        self.assertIn("no LVM2 label", err)
        self.assertEqual(bytes(len(self.pristine)), read(blank))
        # A bad mda header checksum (the first mda header is at 4096).
        with open(self.image, "r+b") as f:
            f.seek(4096 + 200)
            f.write(b"\xff")
        broken = read(self.image)
        _, err = self.resign(3, "--sr-uuid", TARGET, "--yes")
        self.assertIn("not a readable LVHD SR", err)
        self.assertEqual(broken, read(self.image))
        self.assertFalse(os.path.exists(self.backups))

    def test_3_restore_onto_another_device(self):
        self.resign(0, "--sr-uuid", TARGET, "--yes")
        [backup] = os.listdir(self.backups)
        other = test_resign.make_sr(
            os.path.join(self.tmpdir, "other.img"),
            sr_uuid="0f0e0d0c-0b0a-4909-8807-060504030201")
        before = read(other)
        _, err = self.cli(3, "restore", other, "--backup",
                          os.path.join(self.backups, backup))
        self.assertIn("does not match this device", err)
        self.assertEqual(before, read(other))

    def test_130_interrupted(self):
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt()
        self.useFixture(fixtures.MonkeyPatch(
            "nova_xenapi_resign.simulator.server.run", interrupted))
        _, err = self.cli(130, "simulator", "--san",
                          os.path.join(self.tmpdir, "san"))
        self.assertIn("interrupted", err)


class TestPlanOfAnInterruptedRun(CliTestCase):

    def test_plan_reads_through_the_backup(self):
        # A run torn in its first write: only its backup can finish it,
        # and plan (like resign) finds that backup in --backup-dir.
        def opener(p, writable=False):
            return test_resign.CrashingDevice(p, writable, 1, True)
        self.assertRaises(test_resign.Crash, resign.resign_device,
                          self.image, TARGET, backup_dir=self.backups,
                          opener=opener)
        crashed = read(self.image)
        out, _ = self.cli(0, "plan", self.image, "--sr-uuid", TARGET,
                          "--backup-dir", self.backups)
        self.assertIn("vg-name", out)
        out, _ = self.cli(0, "inspect", self.image, "--json",
                          "--backup-dir", self.backups)
        [name] = os.listdir(self.backups)
        self.assertEqual(("resigning", os.path.join(self.backups, name)),
                         (json.loads(out)["state"], json.loads(out)["backup"]))
        _, err = self.cli(3, "plan", self.image, "--sr-uuid", TARGET,
                          "--backup-dir", os.path.join(self.tmpdir, "none"))
        self.assertIn("locator-mismatch", err)
        self.assertIn("pass the --backup-dir it used", err)
        self.assertEqual(crashed, read(self.image))


class TestPrompt(CliTestCase):

    def test_plan_shown_before_the_question(self):
        out, _ = self.resign(0, "--sr-uuid", TARGET, stdin=FakeTty("y\n"))
        question = out.index("Resignature %s to SR %s? [y/N]"
                             % (self.image, TARGET))
        self.assertLess(out.index("vg-name"), question)
        self.assertEqual(TARGET, sr_mod.inspect_path(self.image).sr_uuid)

    def test_not_confirmed(self):
        for answer in ("n\n", ""):
            _, err = self.resign(3, "--sr-uuid", TARGET,
                                 stdin=FakeTty(answer))
            self.assertIn("not confirmed", err)
        self.assertEqual(self.pristine, read(self.image))
        self.assertFalse(os.path.exists(self.backups))

    def test_nothing_to_do_asks_nothing(self):
        self.resign(0, "--sr-uuid", TARGET, "--yes")
        out, _ = self.resign(0, "--sr-uuid", TARGET, stdin=NoInput())
        self.assertIn("nothing to do", out)
        self.assertNotIn("[y/N]", out)


class TestSimulatorInput(CliTestCase):

    def test_bad_pools(self):
        for n in ("0", "-1", "1000000", "two"):
            _, err = self.cli(2, "simulator", "--san", self.tmpdir,
                              "--pools", n)
            self.assertIn("--pools", err)

    def test_san_is_a_file(self):
        _, err = self.cli(2, "simulator", "--san", self.image)
        self.assertIn("not a directory", err)
        self.assertEqual(self.pristine, read(self.image))
