"""The Cinder hook run by an unprivileged cinder-volume (issue item 6).

The child process (:mod:`tests.functional.unprivileged_hook`) runs as
``nobody``: it cannot open the loop device, yet the hook resigns it,
because the device access goes through the hook's privsep daemon.
"""

import json
import os
import subprocess
import sys

from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign import sr_naming
from tests.functional import base
from tests.functional import lvhd_images

SR_UUID = "7c1a3f0e-1111-4222-8333-444455556666"
VOLUME = "22222222-2222-4222-8222-222222222222"


class TestUnprivilegedHook(base.FunctionalTestCase):

    TOOLS = ("losetup",)

    def test_nobody_resigns_through_privsep(self):
        base.require(self, os.path.isdir("/proc/self"), "no /proc")
        image = base.make_image(os.path.join(self.tmpdir, "lun.img"),
                                64 * 1024 * 1024)
        with device.open_device(image, writable=True) as dev:
            create.format_sr(dev, SR_UUID, lvhd_images.snapshot_tree(SR_UUID))
        loop = self.attach(image)
        os.chmod(self.tmpdir, 0o755)
        backups = os.path.join(self.tmpdir, "backups")
        locks = os.path.join(self.tmpdir, "locks")
        os.makedirs(locks)
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        proc = subprocess.run(
            [sys.executable, "-m", "tests.functional.unprivileged_hook",
             loop, backups, locks, VOLUME], capture_output=True, text=True,
            cwd=root, env=dict(os.environ, PYTHONPATH=root))
        self.assertEqual(0, proc.returncode, proc.stderr[-2000:])
        out = json.loads(proc.stdout.splitlines()[-1])
        self.assertEqual(65534, out["uid"])
        self.assertEqual("EACCES", out["direct"])
        expected = sr_naming.preferred_sr_uuid(
            {"target_portal": "192.0.2.10:3260",
             "target_iqn": "iqn.2010-10.org.openstack:volume-" + VOLUME,
             "volume_id": VOLUME}, "auto")
        self.assertEqual(expected, out["result"]["sr_uuid"])
        self.assertTrue(out["result"]["changed"])
        self.assertEqual(expected, sr_mod.inspect_path(image).sr_uuid)
