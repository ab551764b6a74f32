"""Resign LVM-made LVHD SRs with the CLI; check them with the real tools."""

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys

from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign import resign
from tests.functional import base
from tests.functional import lvhd_images

SOURCE = "5d6c7b8a-9f0e-4d1c-8b2a-3e4f5a6b7c8d"
TARGET = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ResignRealTest(base.FunctionalTestCase):

    TOOLS = ("losetup", "lvm", "vhdiinfo")

    def image(self, vdis=None, **kwargs):
        path = os.path.join(self.tmpdir, "original.img")
        made = lvhd_images.make_lvhd_image(
            self, path, SOURCE,
            lvhd_images.snapshot_tree(SOURCE) if vdis is None else vdis,
            **kwargs)
        clone = os.path.join(self.tmpdir, "clone.img")
        base.run(["cp", "--sparse=always", path, clone])
        return made, path, clone

    def cli(self, *args, expect=0):
        proc = subprocess.run(
            [sys.executable, "-m", "nova_xenapi_resign.cmd.main"]
            + list(args), capture_output=True, text=True)
        self.assertEqual(expect, proc.returncode, proc.stderr)
        return proc

    def resign_cli(self, clone, target=TARGET, expect=0):
        return self.cli("resign", clone, "--sr-uuid", target,
                        "--backup-dir", os.path.join(self.tmpdir, "bk"),
                        "--yes", "--json", expect=expect)

    def check_with_lvm(self, clone, result):
        device = self.attach(clone)
        lvm = base.Lvm(device)
        lvm("vgck")
        [vg] = lvm.report("vgs", "vg_name,vg_uuid")
        self.assertEqual("VG_XenStorage-" + TARGET, vg["vg_name"])
        [pv] = lvm.report("pvs", "pv_uuid")
        changes = {(c["kind"], c["subject"]): c for c in
                   result["plan"]["changes"]}
        self.assertEqual(changes[("vg-id", "VG")]["new"], vg["vg_uuid"])
        self.assertEqual(changes[("pv-id", "pv0")]["new"], pv["pv_uuid"])
        lvs = {r["lv_name"]: r["lv_uuid"]
               for r in lvm.report("lvs", "lv_name,lv_uuid")}
        expected = {c["new"].split()[0]: c["new"].split()[1]
                    for c in result["plan"]["changes"] if c["kind"] == "lv"}
        self.assertEqual(expected, lvs)
        return device

    def test_snapshot_tree_resigned_and_checked_by_real_tools(self):
        made, original, clone = self.image()
        before = sha256(original)
        result = json.loads(self.resign_cli(clone).stdout)
        self.assertTrue(result["changed"])
        self.check_with_lvm(clone, result)
        sr = sr_mod.inspect_path(clone)
        self.assertEqual((), sr.problems)
        # vhdiinfo reads each child's new parent name.
        for vdi in sr.vdis:
            if vdi.parent_uuid is None:
                continue
            lv = sr.lv(vdi.lv_name)
            path = os.path.join(self.tmpdir, vdi.uuid + ".vhd")
            with open(clone, "rb") as f, open(path, "wb") as out:
                f.seek(lv.extents[0][0])
                data = f.read(lv.extents[0][1])
                # The LV is larger than the VHD: end the file at the VHD's
                # trailing footer, where vhdiinfo looks for it.
                out.write(data[:data.rindex(b"conectix") + 512])
            info = base.run(["vhdiinfo", path]).stdout
            self.assertIn("VG_XenStorage--%s-VHD--%s" % (
                TARGET.replace("-", "--"),
                vdi.parent_uuid.replace("-", "--")), info)
        self.assertEqual(before, sha256(original))
        # Original and clone attached together: two VGs, no duplicates.
        d1, d2 = self.attach(original), self.attach(clone)
        both = base.Lvm(d1)
        both.device = d2
        out = base.run(
            ["lvm", "pvs", "--config", base.lvm_config(d1).replace(
                '"a|^%s$|",' % d1, '"a|^%s$|","a|^%s$|",' % (d1, d2)),
             "-o", "pv_name,pv_uuid,vg_name,vg_uuid"], env=both.env)
        self.assertNotIn("uplicate", out.stdout + out.stderr)
        rows = [line.split() for line in out.stdout.splitlines()[1:]]
        self.assertEqual(2, len({r[1] for r in rows}))
        self.assertEqual(2, len({r[3] for r in rows}))
        # Second run: nothing to do, exit 0, bytes unchanged.
        after = sha256(clone)
        again = json.loads(self.resign_cli(clone).stdout)
        self.assertFalse(again["changed"])
        self.assertEqual(after, sha256(clone))

    def test_many_vdis(self):
        made, _, clone = self.image(lvhd_images.many_vdis(SOURCE, 200))
        result = json.loads(self.resign_cli(clone).stdout)
        self.check_with_lvm(clone, result)
        self.assertEqual(201, len(sr_mod.inspect_path(clone).lvs))

    def test_wrapped_metadata(self):
        made, _, clone = self.image(wrap=True)
        self.assertEqual(2, len(lvhd_images.committed_pieces(clone)[0]))
        result = json.loads(self.resign_cli(clone).stdout)
        self.check_with_lvm(clone, result)

    def test_two_metadata_copies(self):
        made, _, clone = self.image(pvmetadatacopies=2)
        result = json.loads(self.resign_cli(clone).stdout)
        device = self.check_with_lvm(clone, result)
        [pv] = base.Lvm(device).report("pvs", "pv_mda_count")
        self.assertEqual("2", pv["pv_mda_count"])

    def test_inspect_json(self):
        _, _, clone = self.image()
        out = json.loads(self.cli("inspect", clone, "--json").stdout)
        self.assertEqual("original", out["state"])
        self.assertEqual(SOURCE, out["sr_uuid"])
        self.assertEqual(4, len(out["vdis"]))

    def test_device_in_use_refused(self):
        _, _, clone = self.image()
        device = self.attach(clone)
        before = sha256(clone)
        fd = os.open(device, os.O_RDONLY | os.O_EXCL)
        self.addCleanup(os.close, fd)
        proc = self.cli("resign", device, "--sr-uuid", TARGET,
                        "--backup-dir", os.path.join(self.tmpdir, "bk"),
                        "--yes", expect=3)
        self.assertIn("in use", proc.stderr)
        self.assertEqual(before, sha256(clone))

    def test_read_only_device_refused_before_the_backup(self):
        _, _, clone = self.image()
        device = self.attach(clone, read_only=True)
        before = sha256(clone)
        proc = self.cli("resign", device, "--sr-uuid", TARGET,
                        "--backup-dir", os.path.join(self.tmpdir, "bk"),
                        "--yes", expect=3)
        self.assertIn("read-only", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmpdir, "bk")))
        self.assertEqual(before, sha256(clone))

    def test_one_lock_for_a_loop_device_and_its_backing_file(self):
        # Two paths to one LUN must take one lock; another LUN another.
        _, original, clone = self.image()
        device = self.attach(clone)
        identity = device_mod.storage_identity
        self.assertEqual(identity(clone), identity(device))
        self.assertNotEqual(identity(original), identity(device))
        link = os.path.join(self.tmpdir, "link")
        os.symlink(device, link)
        self.assertEqual(identity(clone), identity(link))

    def test_concurrent_runs_serialize(self):
        _, _, clone = self.image()
        device = self.attach(clone)
        locks = os.path.join(self.tmpdir, "locks")

        def run(_):
            return resign.resign_device(
                device, TARGET, backup_dir=os.path.join(self.tmpdir, "bk"),
                lock_path=locks).changed
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = sorted(pool.map(run, range(2)))
        self.assertEqual([False, True], results)
        self.assertEqual(TARGET, sr_mod.inspect_path(clone).sr_uuid)
