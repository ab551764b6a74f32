"""VDI-per-LUN volumes in real Cinder: create, snapshot, clone, import.

A volume type with ``xenapi_resign:sr_type=lvmoiscsi`` makes every LUN one
LVHD SR holding one VHD VDI.  Each test drives the real Cinder API as a
project member (the import as an admin, as ``cinder manage`` needs) and
checks:

* the connection data a non-admin's attach gets, field by field, against
  Nova 21's uuid5 formula and the simulator SAN's SCSI id (written out
  here, not asked of the code under test);
* the LUN images with lvm2 (``pvs``, ``vgs``, ``lvs``, ``vgck`` with
  activation off, on read-only loop devices), ``vhdiinfo`` and
  ``qemu-img`` on the VDI's VHD, and the project's inspect;
* that every refusal leaves the LUN byte-identical (sha256).
"""

from __future__ import annotations

import json
import os
from unittest import mock
import uuid

from cinder_backend import cinder_api
from cinder_tests import harness
from cinder_tests import local_driver
from cinder_tests import test_real_cinder
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.simulator import san as san_mod
from tests.functional import base

MIB = 1024 * 1024
GIB = 1024 * MIB
#: Nova 21 nova/virt/xenapi/volume_utils.py ``parse_sr_info``: the SR uuid
#: is uuid5(this namespace, "host/port/iqn").
NOVA_SR_NAMESPACE = uuid.UUID("3cca4135-a809-5bb3-af62-275fbfe87178")
#: doc/source/admin/vdi-per-lun.rst: a volume's VDI uuid is uuid5(this
#: namespace, volume id).
VDI_NAMESPACE = uuid.UUID("0d7c3b52-9e41-5f6a-8b2d-4c1e7a90f3b6")
IMPORTED_SR = "5a0f7c2e-3b1d-4e6f-9a8b-7c6d5e4f3a2b"
VHD_FOOTER = b"conectix"


def nova_sr_uuid(iqn: str) -> str:
    host, port = local_driver.PORTAL.split(":")
    return str(uuid.uuid5(NOVA_SR_NAMESPACE, "%s/%s/%s" % (host, port, iqn)))


def iqn(vol) -> str:
    return local_driver.IQN_PREFIX + vol.name


class LvhdCinderTestCase(test_real_cinder.RealCinderTestCase):

    TOOLS = ("losetup", "lvm", "vhdiinfo", "qemu-img")

    def setUp(self):
        super().setUp()
        self.vtype = self.volume_type("lvhd", {
            "xenapi_resign:sr_type": "lvmoiscsi"})

    def volume_type(self, kind, specs, backend="loop"):
        from cinder import objects
        from cinder.volume import volume_types
        if backend:
            specs = dict(specs, volume_backend_name=backend)
        made = volume_types.create(self.cloud.admin, "%s-%s" % (
            kind, self.id()[-40:]), specs)
        return objects.VolumeType.get_by_id(self.cloud.admin, made["id"])

    def lvhd_volume(self, name="my data"):
        vol = self.api.create(self.user, 1, name, "", volume_type=self.vtype)
        vol = self.wait_volume(vol)
        self.addCleanup(self.delete, vol)
        self.assertEqual("available", vol.status)
        return vol

    def wait_snapshot(self, snap):
        return self.cloud.wait_for(
            lambda: self.api.get_snapshot(self.user, snap.id),
            lambda s: s.status != "creating", "snapshot")

    def admin_metadata(self, vol):
        from cinder import db
        return db.volume_admin_metadata_get(self.cloud.admin, vol.id)

    # --- what the LUN holds, by lvm2, vhdiinfo, qemu-img, inspect ---

    def lvm_view(self, path):
        """pvs/vgs/lvs of the LUN (activation off), after a clean vgck."""
        lvm_ = base.Lvm(self.attach(path, read_only=True))
        vgs = lvm_.report("vgs", "vg_name,vg_uuid,vg_size")
        self.assertEqual(1, len(vgs))
        lvm_("vgck", vgs[0]["vg_name"])
        return {"pvs": lvm_.report("pvs", "pv_name,vg_name,pv_size"),
                "vg": vgs[0],
                "lvs": {row["lv_name"]: int(row["lv_size"]) for row in
                        lvm_.report("lvs", "lv_name,lv_size")}}

    def vhd_of(self, path, lv_name):
        """The VHD at the start of LV ``lv_name``, cut after its footer.

        An LVHD VHD LV holds the VHD from byte 0 and zeros after its
        trailing footer; the last ``conectix`` cookie on a sector boundary
        in the first 8 MiB is that footer.
        """
        model = sr_mod.inspect_path(path)
        with device.open_device(path) as dev:
            lv = model.lv(lv_name)
            head = sr_mod.read_lv(dev, lv, 0, min(8 * MIB, lv.size))
        end = max(i for i in range(0, len(head), 512)
                  if head[i:i + len(VHD_FOOTER)] == VHD_FOOTER)
        out = os.path.join(self.tmpdir, lv_name + ".vhd")
        with open(out, "wb") as f:
            f.write(head[:end + 512])
        return out

    def assert_volume_lun(self, vol, sr_uuid, vdi_uuid, name):
        """The LUN is SR ``sr_uuid`` with one VHD VDI ``vdi_uuid`` filling it.

        Returns the VDI's virtual size.
        """
        path = self.lun(vol)
        lun_size = os.path.getsize(path)
        view = self.lvm_view(path)
        self.assertEqual("VG_XenStorage-" + sr_uuid, view["vg"]["vg_name"])
        self.assertEqual(["VG_XenStorage-" + sr_uuid],
                         [p["vg_name"] for p in view["pvs"]])
        lv_name = "VHD-" + vdi_uuid
        self.assertIn("MGT", view["lvs"])
        self.assertIn(lv_name, view["lvs"])
        self.assertEqual([lv_name], [n for n in view["lvs"]
                                     if n.startswith(("VHD-", "LV-"))])
        self.assertLessEqual(sum(view["lvs"].values()),
                             int(view["vg"]["vg_size"]))
        self.assertLessEqual(int(view["vg"]["vg_size"]), lun_size)
        model = sr_mod.inspect_path(path)
        self.assertEqual((), model.problems)
        self.assertEqual(sr_uuid, model.sr_uuid)
        self.assertEqual([(vdi_uuid, "vhd", name)],
                         [(v.uuid, v.vdi_type, v.name_label)
                          for v in model.vdis])
        virtual_size = model.vdis[0].virtual_size
        # The VDI fills the LUN: less than the LV, more than the LUN less
        # the LVM metadata area, MGT and the VHD metadata (a few percent
        # of 1 GiB, doc/source/admin/vdi-per-lun.rst).
        self.assertLess(virtual_size, view["lvs"][lv_name])
        self.assertGreater(virtual_size, lun_size * 0.9)
        vhd = self.vhd_of(path, lv_name)
        info = test_real_cinder.vhdiinfo(vhd)
        self.assertEqual("Dynamic", info["Disk type"])
        self.assertIn(str(virtual_size), info["Media size"].replace(
            ",", ""))
        qemu = json.loads(base.run(["qemu-img", "info", "-f", "vpc",
                                    "--output", "json", vhd]).stdout)
        self.assertEqual("vpc", qemu["format"])
        self.assertLessEqual(qemu["virtual-size"], virtual_size)
        self.assertGreater(qemu["virtual-size"], lun_size * 0.9)
        return virtual_size

    def assert_connection(self, vol, sr_uuid, vdi_uuid):
        """A non-admin's attach gets the LVHD keys Nova 21 introduces by."""
        data = self.published_to_user(vol)
        expected = {"sr_uuid": sr_uuid, "sr_type": "lvmoiscsi",
                    "vdi_uuid": vdi_uuid,
                    "SCSIid": san_mod.scsi_id(local_driver.PORTAL, iqn(vol),
                                              0),
                    "target": local_driver.PORTAL.split(":")[0],
                    "port": local_driver.PORTAL.split(":")[1],
                    "targetIQN": iqn(vol)}
        self.assertEqual(expected, {k: data.get(k) for k in expected})
        self.assertEqual({"target", "port", "targetIQN", "sr_type",
                          "SCSIid"}, set(data["introduce_sr_keys"]))
        # Nova drops "id" from an SR's device-config; it is not named.
        self.assertNotIn("id", data["introduce_sr_keys"])
        return data

    def assert_published(self, vol, sr_uuid, vdi_uuid):
        meta = self.admin_metadata(vol)
        self.assertEqual(
            {"xenapi_sr_uuid": sr_uuid, "xenapi_sr_type": "lvmoiscsi",
             "xenapi_vdi_uuid": vdi_uuid,
             "xenapi_scsi_id": san_mod.scsi_id(local_driver.PORTAL,
                                               iqn(vol), 0),
             "xenapi_sr_volume_id": vol.id},
            {k: v for k, v in meta.items() if k.startswith("xenapi_")})


class TestCreate(LvhdCinderTestCase):

    def test_blank_volume_is_one_lvhd_sr_published_to_a_user(self):
        vol = self.lvhd_volume("my data")
        sr_uuid = nova_sr_uuid(iqn(vol))
        vdi_uuid = str(uuid.uuid5(VDI_NAMESPACE, vol.id))
        self.assert_volume_lun(vol, sr_uuid, vdi_uuid, "my data")
        self.assert_published(vol, sr_uuid, vdi_uuid)
        self.assert_connection(vol, sr_uuid, vdi_uuid)
        self.assertEqual("local", self.api.initialize_connection(
            self.user, vol, test_real_cinder.CONNECTOR)[
                "driver_volume_type"])
        self.api.terminate_connection(self.user, vol,
                                      test_real_cinder.CONNECTOR)

    def test_raw_type_stays_raw(self):
        vol = self.create()
        with open(self.lun(vol), "rb") as f:
            self.assertEqual(bytes(MIB), f.read(MIB))
        self.assertNotIn("sr_uuid", self.published_to_user(vol))
        self.assertEqual({}, {k: v for k, v in self.admin_metadata(
            vol).items() if k.startswith("xenapi_")})

    def test_failure_after_the_lun_is_made_is_final_and_visible(self):
        # A backend that reports no SCSI id (and a connector that reads
        # none): refused before anything is written or published; one
        # user message (Cinder's own for a failed create_volume).
        backend = self.backend()
        real = backend.initialize_connection

        def no_scsi_id(volume, connector):
            info = real(volume, connector)
            info["data"].pop("scsi_wwn")
            return info

        calls = local_driver.LocalFileDriver.calls["loop"]
        start = len(calls)
        with mock.patch.object(backend, "initialize_connection", no_scsi_id):
            vol = self.wait_volume(self.api.create(
                self.user, 1, "vol", "", volume_type=self.vtype))
        self.addCleanup(self.delete, vol)
        self.assertEqual("error", vol.status)
        made = [c for c in calls[start:] if c[0] == "create_volume"]
        self.assertEqual([("create_volume", vol.id)], made,
                         "rescheduled: %s" % made)
        with open(self.lun(vol), "rb") as f:
            self.assertEqual(bytes(16 * MIB), f.read(16 * MIB))
        self.assertIsNone(cinder_api.published(vol))
        self.assert_one_create_failed_message(vol)


class TestSnapshotAndClone(LvhdCinderTestCase):

    def check_copy(self, new, src, src_vdi):
        self.assertEqual("available", new.status)
        sr_uuid = nova_sr_uuid(iqn(new))
        data = self.published_to_user(new)
        vdi_uuid = data["vdi_uuid"]
        self.assertNotEqual(src_vdi, vdi_uuid)
        # The published VDI is the one lvm2 and inspect find on the LUN.
        self.assert_volume_lun(new, sr_uuid, vdi_uuid, "my data")
        self.assert_published(new, sr_uuid, vdi_uuid)
        self.assert_connection(new, sr_uuid, vdi_uuid)
        return sr_uuid, vdi_uuid

    def test_snapshot_volume_from_snapshot_and_clone(self):
        src = self.lvhd_volume("my data")
        src_sr = nova_sr_uuid(iqn(src))
        src_vdi = self.published_to_user(src)["vdi_uuid"]
        before = test_real_cinder.sha256(self.lun(src))
        snap = self.wait_snapshot(self.api.create_snapshot(
            self.user, src, "snap", ""))
        self.assertEqual("available", snap.status)
        from_snap = self.create(snapshot=snap, volume_type=self.vtype)
        clone = self.create(source_volume=src, volume_type=self.vtype)
        copies = [self.check_copy(v, src, src_vdi)
                  for v in (from_snap, clone)]
        # Three volumes, three SRs, three VDIs: they attach side by side.
        self.assertEqual(3, len({src_sr} | {c[0] for c in copies}))
        self.assertEqual(3, len({src_vdi} | {c[1] for c in copies}))
        # The source and its snapshot were never written.
        self.assertEqual(before, test_real_cinder.sha256(self.lun(src)))
        self.assertEqual(before, test_real_cinder.sha256(
            self.backend().snapshot_path(snap)))
        self.assert_published(src, src_sr, src_vdi)
        self.delete_snapshot(snap)


class TestCloneAcrossLayouts(LvhdCinderTestCase):

    def test_clone_to_the_other_layout_refused_before_the_backend(self):
        raw_type = self.volume_type("raw", {})
        raw = self.create(volume_type=raw_type)
        with open(self.lun(raw), "r+b") as f:
            f.write(os.urandom(MIB))
        lvhd = self.lvhd_volume()
        sources = {v.id: test_real_cinder.sha256(self.lun(v))
                   for v in (raw, lvhd)}
        calls = local_driver.LocalFileDriver.calls["loop"]
        start = len(calls)
        for src, vtype in ((raw, self.vtype), (lvhd, raw_type)):
            new = self.create(source_volume=src, volume_type=vtype)
            self.assertEqual(("error", vtype.id),
                             (new.status, new.volume_type_id))
            self.assertIsNone(cinder_api.published(new))
            self.assertFalse(os.path.exists(self.lun(new)))
        # Never rescheduled, the backend never asked to clone.
        self.assertEqual([], [c for c in calls[start:] if c[0] in (
            "create_cloned_volume", "create_volume")])
        self.assertEqual(sources, {v.id: test_real_cinder.sha256(
            self.lun(v)) for v in (raw, lvhd)})


class TestImport(LvhdCinderTestCase):

    def lun_file(self, name, sr_uuid=IMPORTED_SR):
        """A LUN file holding a volume's LVHD SR, on the backend."""
        path = os.path.join(self.backend().root, name)
        with open(path, "wb") as f:
            f.truncate(GIB)
        with device.open_device(path, writable=True) as dev:
            create.format_volume(dev, sr_uuid, "cloudstack-vol-1", "cs-disk")
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        return path

    def manage(self, name, vtype):
        vol = self.api.manage_existing(
            self.cloud.admin, "%s@loop#loop" % harness.HOST, None,
            {"source-name": name}, name="imported", volume_type=vtype)
        vol = self.cloud.wait_for(
            lambda: self.api.get(self.cloud.admin, vol.id),
            lambda v: v.status != "managing", "manage %s" % name)
        self.addCleanup(self.delete, vol)
        return vol

    def test_import_publishes_then_a_copy_is_refused_then_resigned(self):
        first = self.lun_file("import-1")
        vdi_uuid = sr_mod.inspect_path(first).vdis[0].uuid
        vol = self.manage("import-1", self.vtype)
        self.assertEqual("available", vol.status)
        self.assert_volume_lun(vol, IMPORTED_SR, vdi_uuid, "cs-disk")
        self.assert_published(vol, IMPORTED_SR, vdi_uuid)
        self.assert_connection(vol, IMPORTED_SR, vdi_uuid)

        # A byte copy of the same SR: refused, nothing written or
        # published, the LUN handed back under its unmanaged name.
        copy = self.lun_file("import-2")
        before = test_real_cinder.sha256(copy)
        dup = self.manage("import-2", self.vtype)
        self.assertEqual("error_managing", dup.status)
        back = self.backend().unmanaged_path(dup)
        self.addCleanup(lambda: os.path.exists(back) and os.unlink(back))
        self.assertEqual(before, test_real_cinder.sha256(back))
        self.assertIsNone(cinder_api.published(dup))
        self.assertEqual(["manage_existing", "unmanage"], [
            c[0] for c in local_driver.LocalFileDriver.calls["loop"]
            if c[1:2] == (dup.id,) and c[0] in ("manage_existing",
                                                "unmanage")])

        # The same copy with resign_on_import: its own SR, its own VDI.
        os.rename(back, copy)
        resigning = self.volume_type("lvhd-resign", {
            "xenapi_resign:sr_type": "lvmoiscsi",
            "xenapi_resign:resign_on_import": "<is> True"})
        again = self.manage("import-2", resigning)
        self.assertEqual("available", again.status)
        sr_uuid = nova_sr_uuid(iqn(again))
        new_vdi = self.published_to_user(again)["vdi_uuid"]
        self.assertNotEqual(vdi_uuid, new_vdi)
        self.assert_volume_lun(again, sr_uuid, new_vdi, "cs-disk")
        self.assert_connection(again, sr_uuid, new_vdi)
        self.assert_published(vol, IMPORTED_SR, vdi_uuid)


class TestRefusedOperations(LvhdCinderTestCase):

    def test_extend_and_retype_refused_lun_unchanged(self):
        vol = self.lvhd_volume()
        path = self.lun(vol)
        before = test_real_cinder.sha256(path)
        size = os.path.getsize(path)
        self.api.extend(self.user, vol, 2)
        vol = self.cloud.wait_for(
            lambda: self.api.get(self.user, vol.id),
            lambda v: v.status != "extending", "extend")
        self.assertEqual("error_extending", vol.status)
        self.assertEqual(1, vol.size)
        self.assertEqual((before, size), (test_real_cinder.sha256(path),
                                          os.path.getsize(path)))
        from cinder import db
        db.volume_update(self.cloud.admin, vol.id, {"status": "available"})
        raw = self.volume_type("raw", {})
        self.api.retype(self.user, self.api.get(self.user, vol.id), raw.id,
                        migration_policy="never")
        vol = self.cloud.wait_for(
            lambda: self.api.get(self.user, vol.id),
            lambda v: v.status != "retyping", "retype")
        self.assertEqual("available", vol.status)
        self.assertEqual(self.vtype.id, vol.volume_type_id)
        self.assertEqual(before, test_real_cinder.sha256(path))
        self.assert_published(vol, nova_sr_uuid(iqn(vol)),
                              self.published_to_user(vol)["vdi_uuid"])


class TestMigration(LvhdCinderTestCase):

    def test_generic_migration_republishes_same_sr_and_vdi(self):
        # A type on either backend: the volume moves to the other one.
        vtype = self.volume_type("lvhd-any", {
            "xenapi_resign:sr_type": "lvmoiscsi"}, backend=None)
        vol = self.create(volume_type=vtype)
        self.assertEqual("available", vol.status)
        sr_uuid = nova_sr_uuid(iqn(vol))
        vdi_uuid = str(uuid.uuid5(VDI_NAMESPACE, vol.id))
        self.assert_published(vol, sr_uuid, vdi_uuid)
        vol = self.migrate_to_other_backend(vol)
        # The bytes moved: same SR and VDI on a new LUN, whose target Nova
        # would name otherwise; the new LUN's SCSI id.
        self.assertNotEqual(sr_uuid, nova_sr_uuid(iqn(vol)))
        self.assert_volume_lun(vol, sr_uuid, vdi_uuid, "vol")
        self.assert_published(vol, sr_uuid, vdi_uuid)
        self.assert_connection(vol, sr_uuid, vdi_uuid)


class TestRetype(LvhdCinderTestCase):
    """Retype across the layout: refused whatever the migration policy."""

    def retype(self, vol, vtype, policy):
        self.api.retype(self.user, self.api.get(self.user, vol.id), vtype.id,
                        migration_policy=policy)
        return self.cloud.wait_for(
            lambda: self.api.get(self.cloud.admin, vol.id),
            lambda v: v.status != "retyping" and v.migration_status not in (
                "starting", "migrating", "completing"), "retype")

    def luns(self):
        return {name: sorted(os.listdir(self.backend(name).root))
                for name in harness.BACKENDS}

    def assert_refused(self, vol, vtype, policy):
        """Back to available with its type, LUN, record; nothing made."""
        path = self.lun(vol)
        before = (test_real_cinder.sha256(path), self.admin_metadata(vol),
                  self.luns())
        calls = {n: len(local_driver.LocalFileDriver.calls[n])
                 for n in harness.BACKENDS}
        after = self.retype(vol, vtype, policy)
        self.assertEqual(("available", vol.volume_type_id, vol.host),
                         (after.status, after.volume_type_id, after.host))
        self.assertEqual(before, (test_real_cinder.sha256(path),
                                  self.admin_metadata(vol), self.luns()))
        made = [c for n in harness.BACKENDS
                for c in local_driver.LocalFileDriver.calls[n][calls[n]:]
                if c[0] == "create_volume"]
        self.assertEqual([], made)
        return after

    def test_lvhd_to_raw_refused_for_never_and_on_demand(self):
        vol = self.lvhd_volume()
        raw = self.volume_type("raw", {})
        self.assertIsNone(self.assert_refused(vol, raw,
                                              "never").migration_status)
        # on-demand: the driver's refusal makes Cinder try a generic
        # migration, whose new LUN (raw type) the wrapper refuses to make.
        self.assertEqual("error", self.assert_refused(
            vol, raw, "on-demand").migration_status)
        self.assert_published(vol, nova_sr_uuid(iqn(vol)),
                              str(uuid.uuid5(VDI_NAMESPACE, vol.id)))

    def test_raw_to_lvhd_on_demand_refused_no_copy_over_the_layout(self):
        vol = self.create()
        with open(self.lun(vol), "r+b") as f:
            f.write(os.urandom(MIB))
        self.assertIsNone(self.assert_refused(vol, self.vtype,
                                              "never").migration_status)
        self.assertEqual("error", self.assert_refused(
            vol, self.vtype, "on-demand").migration_status)
        self.assertNotIn("sr_uuid", self.published_to_user(vol))

    def test_lvhd_to_lvhd_on_demand_migrates_and_republishes(self):
        vol = self.lvhd_volume("my data")
        sr_uuid = nova_sr_uuid(iqn(vol))
        vdi_uuid = str(uuid.uuid5(VDI_NAMESPACE, vol.id))
        gold = self.volume_type("lvhd-gold", {
            "xenapi_resign:sr_type": "lvmoiscsi", "qos:tier": "gold"})
        old_lun = self.lun(vol)
        self.assertIsNone(self.assert_refused(vol, gold,
                                              "never").migration_status)
        after = self.retype(vol, gold, "on-demand")
        self.assertEqual(("available", gold.id),
                         (after.status, after.volume_type_id))
        # A new LUN (a new target), the same SR and VDI, republished.
        self.assertNotEqual(old_lun, self.lun(after))
        self.assertNotEqual(sr_uuid, nova_sr_uuid(iqn(after)))
        self.assert_volume_lun(after, sr_uuid, vdi_uuid, "my data")
        self.assert_published(after, sr_uuid, vdi_uuid)
        self.assert_connection(after, sr_uuid, vdi_uuid)


class TestGroupFromSource(LvhdCinderTestCase):

    def lvhd_group(self, backend):
        from cinder import objects
        from cinder.volume import group_types
        gtype = group_types.create(self.cloud.admin, "gt-" + self.id()[-40:],
                                   {})
        vtype = self.volume_type("lvhd-g", {
            "xenapi_resign:sr_type": "lvmoiscsi"}, backend=backend)
        group = self.cloud.group_api.create(
            self.user, "g", "", gtype["id"], [vtype.id])
        group = self.wait_group(group)
        vols = [self.wait_volume(self.api.create(
            self.user, 1, "disk %d" % i, "", volume_type=vtype,
            group=objects.Group.get_by_id(self.cloud.admin, group.id)))
            for i in range(2)]
        self.assertEqual(["available"] * 2, [v.status for v in vols])
        return group, vols

    def wait_group(self, group):
        group = self.cloud.wait_for(
            lambda: self.cloud.group_api.get(self.user, group.id),
            lambda g: g.status != "creating", "group %s" % group.id)
        self.assertEqual("available", group.status)
        return group

    def check(self, backend):
        group, sources = self.lvhd_group(backend)
        before = {v.id: test_real_cinder.sha256(self.lun(v))
                  for v in sources}
        src_vdis = {v.id: self.published_to_user(v)["vdi_uuid"]
                    for v in sources}
        new = self.wait_group(self.cloud.group_api.create_from_src(
            self.user, "g2", "", source_group_id=group.id))
        vols = self.api.get_all(self.cloud.admin,
                                filters={"group_id": new.id})
        self.assertEqual(2, len(vols))
        seen = set()
        for vol in vols:
            self.assertEqual("available", vol.status)
            src = next(s for s in sources if s.id == vol.source_volid)
            sr_uuid = nova_sr_uuid(iqn(vol))
            vdi_uuid = self.published_to_user(vol)["vdi_uuid"]
            # Its own uuid5 SR, its own VDI, labelled as its source's.
            self.assertNotIn(vdi_uuid, src_vdis.values())
            self.assert_volume_lun(vol, sr_uuid, vdi_uuid, src.display_name)
            self.assert_published(vol, sr_uuid, vdi_uuid)
            self.assert_connection(vol, sr_uuid, vdi_uuid)
            seen |= {sr_uuid, vdi_uuid}
        # Four volumes, four SRs and four VDIs.
        self.assertEqual(4, len(seen))
        self.assertEqual(4, len({nova_sr_uuid(iqn(v))
                                 for v in list(vols) + sources}))
        self.assertEqual(before, {v.id: test_real_cinder.sha256(self.lun(v))
                                  for v in sources})
        return vols

    def test_generic_fallback_goes_through_the_hooked_clone(self):
        vols = self.check("loop")
        calls = local_driver.LocalFileDriver.calls["loop"]
        self.assertEqual(sorted(v.id for v in vols), sorted(
            c[1] for c in calls if c[0] == "create_cloned_volume"
            and c[1] in {v.id for v in vols}))

    def test_native_group_copy(self):
        vols = self.check("native")
        calls = local_driver.LocalFileDriver.calls["native"]
        self.assertIn("create_group_from_src", [c[0] for c in calls])
        self.assertEqual([], [c for c in calls if c[0] in (
            "create_cloned_volume", "create_volume")
            and c[1] in {v.id for v in vols}])


class TestUserMetadata(LvhdCinderTestCase):
    """User metadata never feeds initialize_connection."""

    def test_user_keys_cannot_point_a_volume_at_another_tenants_sr(self):
        from cinder import context
        from cinder import exception
        other = context.RequestContext("user-2", "project-2", is_admin=False,
                                       roles=["member", "reader"])
        theirs = self.wait_volume(self.api.create(
            other, 1, "theirs", "", volume_type=self.vtype), other)
        self.addCleanup(self.delete, theirs)
        self.assertEqual("available", theirs.status)
        stolen = {k: v for k, v in self.admin_metadata(theirs).items()
                  if k.startswith("xenapi_")}
        self.assertEqual(nova_sr_uuid(iqn(theirs)), stolen["xenapi_sr_uuid"])
        raw = self.create()
        lvhd = self.lvhd_volume()
        own = self.published_to_user(lvhd)
        for vol in (raw, lvhd):
            keys = dict(stolen, xenapi_sr_volume_id=vol.id)
            self.api.update_volume_metadata(
                self.user, self.api.get(self.user, vol.id), keys)
            self.assertEqual(keys, {
                k: v for k, v in self.api.get_volume_metadata(
                    self.user, self.api.get(self.user, vol.id)).items()
                if k.startswith("xenapi_")})
            # Admin metadata is the admin's: a user cannot write it.
            self.assertRaises(
                exception.PolicyNotAuthorized,
                self.api.update_volume_admin_metadata, self.user,
                self.api.get(self.user, vol.id), keys)
        # The raw volume still publishes nothing, the LVHD one its own.
        data = self.published_to_user(raw)
        self.assertEqual([], [k for k in ("sr_uuid", "sr_type", "vdi_uuid",
                                          "SCSIid", "introduce_sr_keys")
                              if k in data])
        self.assertEqual({}, {k: v for k, v in self.admin_metadata(
            raw).items() if k.startswith("xenapi_")})
        # (device_path is the loop device the local connector happened to
        # pick; everything Nova reads is compared.)
        del own["device_path"]
        again = self.published_to_user(lvhd)
        del again["device_path"]
        self.assertEqual(own, again)
        self.assert_connection(lvhd, nova_sr_uuid(iqn(lvhd)),
                               str(uuid.uuid5(VDI_NAMESPACE, lvhd.id)))
        # Nor does user metadata count as a publication (an import of a
        # copy of their SR would be checked against theirs alone).
        self.assertEqual([theirs.id], cinder_api.volumes_publishing(
            stolen["xenapi_sr_uuid"]))


class TestMigrationRefused(LvhdCinderTestCase):

    def test_copy_without_scsi_id_fails_the_migration_volume_kept(self):
        # The new LUN reports its SCSI id when it is made, and none when
        # the wrapper reads the copy after the migration.
        vtype = self.volume_type("lvhd-any", {
            "xenapi_resign:sr_type": "lvmoiscsi"}, backend=None)
        name = "keep " + self.id()[-20:]
        vol = self.wait_volume(self.api.create(self.user, 1, name, "",
                                               volume_type=vtype))
        self.addCleanup(self.delete, vol)
        here = vol.host.split("@")[1].split("#")[0]
        there = next(n for n in harness.BACKENDS if n != here)
        dest = self.backend(there)
        real = dest.initialize_connection
        copied = []

        def no_scsi_id_after_copy(volume, connector):
            info = real(volume, connector)
            if copied:
                info["data"].pop("scsi_wwn")
            return info

        def backend_update(*args):
            copied.append(True)
            raise NotImplementedError()

        sr_uuid = nova_sr_uuid(iqn(vol))
        vdi_uuid = str(uuid.uuid5(VDI_NAMESPACE, vol.id))
        before = (test_real_cinder.sha256(self.lun(vol)),
                  self.admin_metadata(vol))
        with mock.patch.object(dest, "initialize_connection",
                               no_scsi_id_after_copy), \
                mock.patch.object(dest, "update_migrated_volume",
                                  backend_update, create=True):
            self.api.migrate_volume(self.cloud.admin, vol, "%s@%s#%s" % (
                harness.HOST, there, there), None, True, False)
            after = self.cloud.wait_for(
                lambda: self.api.get(self.cloud.admin, vol.id),
                lambda v: v.migration_status in ("success", "error"),
                "the migration")
        self.assertEqual([True], copied)
        # Operator-visible: the migration failed; the volume stayed on its
        # LUN, unchanged, with what was published for it.
        self.assertEqual(("error", "available", vol.host),
                         (after.migration_status, after.status, after.host))
        self.assertEqual(before, (test_real_cinder.sha256(self.lun(vol)),
                                  self.admin_metadata(vol)))
        self.assert_connection(vol, sr_uuid, vdi_uuid)
        # Cinder leaves the copy as a volume of its own: nothing is
        # published for it and its attach is refused, never made raw.
        [copy] = [v for v in self.api.get_all(
            self.cloud.admin, filters={"display_name": name})
            if v.id != vol.id]
        self.addCleanup(self.delete, copy)
        self.assertEqual(there, copy.host.split("@")[1].split("#")[0])
        self.assertEqual({}, {k: v for k, v in self.admin_metadata(
            copy).items() if k.startswith("xenapi_")})
        from cinder import exception
        self.assertRaises(exception.VolumeBackendAPIException,
                          self.api.initialize_connection, self.user,
                          self.api.get(self.user, copy.id),
                          test_real_cinder.CONNECTOR)
