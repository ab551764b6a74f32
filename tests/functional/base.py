"""Functional test support: real tools, loop devices, isolated LVM.

Under ``CI=true`` a missing tool, missing root or missing loop device support
is a *failure*, never a skip: CI must prove the functional tests ran.
Elsewhere (a laptop without lvm2) the same tests skip with the reason.
"""

import os
import shutil
import subprocess

import fixtures

from tests import base

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(test, condition, reason):
    """Skip (or, under CI, fail) ``test`` when ``condition`` is false."""
    if condition:
        return
    if IN_CI:
        test.fail("functional prerequisite missing under CI: %s" % reason)
    test.skipTest(reason)


def require_tools(test, *tools):
    for tool in tools:
        require(test, shutil.which(tool) is not None,
                "%s is not installed (apt-get install %s)"
                % (tool, _PACKAGE_OF.get(tool, tool)))


def require_root(test):
    require(test, os.geteuid() == 0, "needs root (loop devices)")


_PACKAGE_OF = {
    "lvm": "lvm2", "pvcreate": "lvm2", "vgcreate": "lvm2", "lvcreate": "lvm2",
    "vgs": "lvm2", "pvs": "lvm2", "lvs": "lvm2", "vgck": "lvm2",
    "vgimportclone": "lvm2", "vgcfgbackup": "lvm2", "vgcfgrestore": "lvm2",
    "vhdiinfo": "libvhdi-utils", "qemu-img": "qemu-utils",
    "losetup": "mount",
}


def run(cmd, check=True, env=None, input=None):
    """Run a command and return its CompletedProcess (text mode)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          input=input)
    if check and proc.returncode != 0:
        raise AssertionError("command %r failed (%d):\nstdout: %s\nstderr: %s"
                             % (cmd, proc.returncode, proc.stdout,
                                proc.stderr))
    return proc


class LoopDevice(fixtures.Fixture):
    """Attach an image file to a free loop device; always detach it."""

    def __init__(self, image, read_only=False):
        super().__init__()
        self.image = image
        self.read_only = read_only
        self.path = None

    def _setUp(self):
        cmd = ["losetup", "--find", "--show"]
        if self.read_only:
            cmd.append("--read-only")
        self.path = run(cmd + [self.image]).stdout.strip()
        self.addCleanup(run, ["losetup", "--detach", self.path], False)


def make_image(path, size):
    """Create a sparse image file of ``size`` bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def lvm_config(device):
    """An LVM ``--config`` string that sees only ``device``.

    No activation (no device-mapper here), no udev, no devices file, no
    backups or archives: tests never see the host's (or each other's) PVs,
    and nothing is written outside the image.
    """
    return ("devices{filter=[\"a|^%s$|\",\"r|.*|\"] "
            "global_filter=[\"a|^%s$|\",\"r|.*|\"] "
            "obtain_device_list_from_udev=0 use_devicesfile=0 "
            "scan=[\"/dev\"]} "
            "global{activation=0 use_lvmlockd=0} "
            "backup{backup=0 archive=0}" % (device, device))


class Lvm(object):
    """Run real LVM commands against a single loop device."""

    def __init__(self, device):
        self.device = device
        self.env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")

    def __call__(self, command, *args, check=True):
        return run(["lvm", command, "--config", lvm_config(self.device)]
                   + list(args), check=check, env=self.env)

    def report(self, command, fields, *args):
        """Return a report (``pvs``/``vgs``/``lvs``) as a list of dicts."""
        out = self(command, "--noheadings", "--nosuffix", "--units", "b",
                   "--separator", "|", "-o", fields, *args).stdout
        names = [f.strip() for f in fields.split(",")]
        rows = []
        for line in out.splitlines():
            if line.strip():
                rows.append(dict(zip(names,
                                     [v.strip() for v in line.split("|")])))
        return rows


class FunctionalTestCase(base.TestCase):
    """A test that needs root, loop devices and the given tools."""

    TOOLS = ("losetup", "lvm")

    def setUp(self):
        super().setUp()
        require_root(self)
        require_tools(self, *self.TOOLS)

    def attach(self, image, read_only=False):
        return self.useFixture(LoopDevice(image, read_only)).path

    def new_pv(self, name="lun.img", size=64 * 1024 * 1024):
        """A fresh sparse image attached to a loop device, with an Lvm."""
        image = make_image(os.path.join(self.tmpdir, name), size)
        device = self.attach(image)
        return image, device, Lvm(device)
