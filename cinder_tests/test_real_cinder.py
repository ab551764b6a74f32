"""ResignVolumeDriver inside real Cinder: API -> scheduler -> volume manager.

Each test drives the real ``cinder.volume.api.API`` (and the group API) as
an ordinary project member, as Nova and the REST API do, against the
services of :mod:`cinder_tests.harness`.  The LUNs hold LVHD SRs made with
the real lvm2 tools (:func:`tests.functional.lvhd_images.make_lvhd_image`)
and are checked afterwards with lvm2 (``vgs``/``pvs``/``vgck``) and
``vhdiinfo``.
"""

from __future__ import annotations

import hashlib
import os

from cinder_backend import cinder_api
from cinder_backend import driver as driver_mod
from cinder_tests import harness
from cinder_tests import local_driver
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign import resign
from nova_xenapi_resign.simulator import san as san_mod
from nova_xenapi_resign import sr_naming
from tests.functional import base
from tests.functional import lvhd_images

MIB = 1024 * 1024
SR_UUID = "7c1a3f0e-1111-4222-8333-444455556666"
CONNECTOR = {"host": "compute-1", "ip": "192.0.2.50",
             "initiator": "iqn.2010-10.org.openstack:compute-1"}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MIB), b""):
            h.update(chunk)
    return h.hexdigest()


def vhdiinfo(path):
    info = {}
    for line in base.run(["vhdiinfo", path]).stdout.splitlines():
        if line.startswith("\t") and ":" in line:
            key, _, value = line.strip().partition(":")
            info[key.strip()] = value.strip()
    return info


class RealCinderTestCase(base.FunctionalTestCase):

    TOOLS = ("losetup", "lvm", "vhdiinfo")

    def setUp(self):
        super().setUp()
        self.cloud = harness.cloud()
        self.api = self.cloud.volume_api
        self.user = self.cloud.user
        self.addCleanup(self.assert_no_loop_left)

    # --- helpers ---

    def backend(self, name="loop"):
        return self.cloud.wrapper(name).backend

    def lun(self, volume, backend=None):
        """The LUN file of ``volume``, on the backend that holds it."""
        backend = backend or volume.host.split("@")[1].split("#")[0]
        return self.backend(backend).path(volume)

    def assert_no_loop_left(self):
        for name in harness.BACKENDS:
            self.assertEqual({}, self.backend(name).loops)

    def wait_volume(self, volume, ctxt=None):
        ctxt = ctxt or self.user
        return self.cloud.wait_for(
            lambda: self.api.get(ctxt, volume.id),
            lambda v: v.status not in ("creating", "downloading"),
            "volume %s" % volume.id)

    def create(self, ctxt=None, **kwargs):
        ctxt = ctxt or self.user
        vol = self.api.create(ctxt, 1, "vol", "", **kwargs)
        vol = self.wait_volume(vol, ctxt)
        self.addCleanup(self.delete, vol)
        return vol

    def delete(self, vol):
        vol = self.api.get(self.cloud.admin, vol.id)
        if vol.group_id:
            return      # a group's volume goes with its group
        if vol.status in ("available", "error"):
            self.api.delete(self.cloud.admin, vol, force=True, cascade=True)

    def migrate_to_other_backend(self, vol):
        """A generic (host-copy) migration of ``vol``; the volume after."""
        here = vol.host.split("@")[1].split("#")[0]
        there = next(name for name in harness.BACKENDS if name != here)
        self.api.migrate_volume(self.cloud.admin, vol,
                                "%s@%s#%s" % (harness.HOST, there, there),
                                None, True, False)
        vol = self.cloud.wait_for(
            lambda: self.api.get(self.cloud.admin, vol.id),
            lambda v: v.migration_status in ("success", "error"),
            "the migration")
        self.assertEqual("success", vol.migration_status)
        self.assertEqual(there, vol.host.split("@")[1].split("#")[0])
        return vol

    def delete_snapshot(self, snap):
        """Delete ``snap`` and wait until it is gone.

        The volume's cleanup deletes it with ``cascade``, which Cinder
        refuses while a snapshot is still ``deleting``.
        """
        from cinder import exception
        from cinder import objects
        self.api.delete_snapshot(self.user, snap)

        def gone():
            try:
                objects.Snapshot.get_by_id(self.cloud.admin, snap.id)
            except exception.SnapshotNotFound:
                return True
            return False

        self.cloud.wait_for(gone, True, "snapshot %s deleted" % snap.id)

    def lvhd_source(self, volume_type=None, group=None, sr_uuid=SR_UUID,
                    size=None):
        """A volume whose LUN holds an LVHD SR made by real lvm2."""
        image = os.path.join(self.tmpdir, "sr-%s.img" % sr_uuid[:8])
        made = lvhd_images.make_lvhd_image(
            self, image, sr_uuid, lvhd_images.snapshot_tree(sr_uuid),
            size=size)
        vol = self.create(volume_type=volume_type, group=group)
        self.assertEqual("available", vol.status)
        san_mod.sparse_copy(image, self.lun(vol))
        return vol, made

    def expected_sr_uuid(self, vol, backend="loop"):
        """What Nova computes for ``vol`` (its connection data)."""
        data = {"target_portal": local_driver.PORTAL,
                "target_iqn": local_driver.IQN_PREFIX + vol.name,
                "volume_id": vol.id}
        return sr_naming.preferred_sr_uuid(data, "auto")

    def assert_resigned_by_lvm(self, path, expected, made):
        """lvm2 and vhdiinfo agree the LUN is SR ``expected``."""
        loop = self.attach(path, read_only=True)
        lvm_ = base.Lvm(loop)
        vgs = lvm_.report("vgs", "vg_name,vg_uuid")
        self.assertEqual("VG_XenStorage-" + expected, vgs[0]["vg_name"])
        self.assertNotEqual(made["vg_id"], vgs[0]["vg_uuid"])
        self.assertNotEqual(made["pv_id"],
                            lvm_.report("pvs", "pv_uuid")[0]["pv_uuid"])
        lvm_("vgck", "VG_XenStorage-" + expected)
        model = sr_mod.inspect_path(path)
        self.assertEqual((), model.problems)
        mapping = {v.uuid: resign.new_vdi_uuid(expected, v.uuid)
                   for v in made["sr"].vdis}
        self.assertEqual(set(mapping.values()),
                         {v.uuid for v in model.vdis})
        # A VHD child's parent locator names the parent's new uuid.
        child = next(v for v in made["sr"].vdis
                     if v.parent_uuid and v.vdi_type == "vhd")
        new = next(v for v in model.vdis if v.uuid == mapping[child.uuid])
        out = os.path.join(self.tmpdir, "child.vhd")
        spec = next(s for s in made["vdis"] if s.uuid == child.uuid)
        length = len(create.vhd_contents(made["sr_uuid"], spec))
        with device.open_device(path) as dev, open(out, "wb") as f:
            f.write(sr_mod.read_lv(dev, model.lv(new.lv_name), 0, length))
        # vhdiinfo still reads the resigned child as a differential VHD.
        self.assertIn("Parent identifier", vhdiinfo(out))

    def assert_one_create_failed_message(self, vol):
        """The user sees one message: the driver failed to create ``vol``."""
        from cinder.message import api as message_api
        from cinder.message import message_field
        msgs = message_api.API().get_all(
            self.user, filters={"resource_uuid": vol.id})
        self.assertEqual(
            [(message_field.Action.CREATE_VOLUME_FROM_BACKEND[0],
              message_field.Detail.DRIVER_FAILED_CREATE[0], "ERROR")],
            [(m["action_id"], m["detail_id"], m["message_level"])
             for m in msgs])

    def published_to_user(self, vol):
        """Connection data a non-admin gets from os-initialize_connection."""
        vol = self.api.get(self.user, vol.id)
        info = self.api.initialize_connection(self.user, vol, CONNECTOR)
        self.api.terminate_connection(self.user, vol, CONNECTOR)
        return info["data"]


class TestClone(RealCinderTestCase):

    def test_clone_of_lvhd_volume_is_resigned_and_published(self):
        src, made = self.lvhd_source()
        before = sha256(self.lun(src))
        new = self.create(source_volume=src)
        self.assertEqual("available", new.status)
        expected = self.expected_sr_uuid(new)
        self.assertNotEqual(SR_UUID, expected)
        self.assertEqual(before, sha256(self.lun(src)))
        self.assert_resigned_by_lvm(self.lun(new), expected, made)
        self.assertEqual(expected, self.published_to_user(new)["sr_uuid"])
        self.assertNotIn("sr_uuid", self.published_to_user(src))

    def test_volume_from_snapshot_is_resigned(self):
        src, made = self.lvhd_source()
        before = sha256(self.lun(src))
        snap = self.api.create_snapshot(self.user, src, "snap", "")
        snap = self.cloud.wait_for(
            lambda: self.api.get_snapshot(self.user, snap.id),
            lambda s: s.status != "creating", "snapshot")
        self.assertEqual("available", snap.status)
        new = self.create(snapshot=snap)
        self.assertEqual("available", new.status)
        self.assertEqual(before, sha256(self.lun(src)))
        self.assert_resigned_by_lvm(self.lun(new),
                                    self.expected_sr_uuid(new), made)
        self.delete_snapshot(snap)

    def test_plain_data_clone_untouched(self):
        src = self.create()
        with open(self.lun(src), "r+b") as f:
            f.write(os.urandom(MIB))
            f.seek(40 * MIB)
            f.write(b"data" * 1024)
        before = sha256(self.lun(src))
        new = self.create(source_volume=src)
        self.assertEqual("available", new.status)
        self.assertEqual(before, sha256(self.lun(new)))
        self.assertNotIn("sr_uuid", self.published_to_user(new))


class TestNonAdminAttach(RealCinderTestCase):

    def test_attachments_api_gets_the_sr_uuid_on_the_lun(self):
        src, _ = self.lvhd_source()
        new = self.create(source_volume=src)
        on_lun = sr_mod.inspect_path(self.lun(new)).sr_uuid
        attachment = self.api.attachment_create(
            self.user, self.api.get(self.user, new.id),
            "3c4a7c5e-0000-4000-8000-000000000001", connector=CONNECTOR)
        try:
            # The attachments API flattens the driver's "data" into
            # connection_info (cinder/volume/manager.py _connection_create).
            data = attachment.connection_info
            self.assertEqual("local", data["driver_volume_type"])
            self.assertEqual(on_lun, data["sr_uuid"])
            self.assertIn("introduce_sr_keys", data)
        finally:
            # As the REST API does: the attachment as stored (with the
            # connector the update saved), not the object created above.
            from cinder import objects
            self.api.attachment_delete(
                self.cloud.nova, objects.VolumeAttachment.get_by_id(
                    self.user, attachment.id))
            # Cinder 24 terminates the connection after the API returned.
            backend = self.backend(new.host.split("@")[1].split("#")[0])
            self.cloud.wait_for(lambda: new.name in backend.loops, False,
                                "terminate_connection")
        self.assertEqual(on_lun, self.published_to_user(new)["sr_uuid"])


class TestProfiler(RealCinderTestCase):

    def test_manager_driver_is_the_traced_wrapper(self):
        wrapper = self.cloud.wrapper()
        self.assertIsInstance(wrapper, driver_mod.ResignVolumeDriver)
        # trace_cls set traced copies on the wrapper, not on the backend.
        self.assertIn("create_cloned_volume", vars(wrapper))
        self.assertNotIn("create_cloned_volume", vars(wrapper.backend))
        self.assertTrue(self.cloud.conf.profiler.enabled)


class TestGroups(RealCinderTestCase):

    def group_setup(self, backend):
        from cinder.volume import group_types
        from cinder.volume import volume_types
        admin = self.cloud.admin
        vtype = volume_types.create(admin, "vt-" + self.id()[-40:],
                                    {"volume_backend_name": backend})
        gtype = group_types.create(admin, "gt-" + self.id()[-40:], {})
        group = self.cloud.group_api.create(
            self.user, "g", "", gtype["id"], [vtype["id"]])
        group = self.cloud.wait_for(
            lambda: self.cloud.group_api.get(self.user, group.id),
            lambda g: g.status != "creating", "group")
        self.assertEqual("available", group.status)
        from cinder import objects
        return group, objects.VolumeType.get_by_id(admin, vtype["id"])

    def check_group_from_src(self, backend):
        group, vtype = self.group_setup(backend)
        src, made = self.lvhd_source(volume_type=vtype, group=group)
        before = sha256(self.lun(src, backend))
        new = self.cloud.group_api.create_from_src(
            self.user, "g2", "", source_group_id=group.id)
        new = self.cloud.wait_for(
            lambda: self.cloud.group_api.get(self.user, new.id),
            lambda g: g.status != "creating", "group from source")
        self.assertEqual("available", new.status)
        vols = self.api.get_all(self.cloud.admin,
                                filters={"group_id": new.id})
        self.assertEqual(1, len(vols))
        vol = vols[0]
        self.addCleanup(self.delete, vol)
        self.assertEqual("available", vol.status)
        expected = self.expected_sr_uuid(vol, backend)
        self.assert_resigned_by_lvm(self.lun(vol, backend), expected, made)
        self.assertEqual(before, sha256(self.lun(src, backend)))
        self.assertEqual(expected, self.published_to_user(vol)["sr_uuid"])
        return vol

    def test_generic_group_from_src_as_user(self):
        vol = self.check_group_from_src("loop")
        calls = [c for c in local_driver.LocalFileDriver.calls["loop"]
                 if c[1:2] == (vol.id,)]
        self.assertIn("create_cloned_volume", [c[0] for c in calls])

    def test_native_group_from_src_as_user(self):
        self.check_group_from_src("native")
        self.assertIn("create_group_from_src", [
            c[0] for c in local_driver.LocalFileDriver.calls["native"]])


class TestRefusal(RealCinderTestCase):

    def test_refusal_is_final_visible_and_leaks_nothing(self):
        # A source SR with an unfinished SM journal: the resignature
        # refuses it (it cannot be carried over consistently).
        src, made = self.lvhd_source(size=256 * MIB)
        loop = self.attach(self.lun(src))
        base.Lvm(loop)("lvcreate", "-L", "4m", "-n",
                       "jvhd_" + made["sr"].vdis[0].uuid, made["vg_name"])
        base.run(["losetup", "--detach", loop], False)
        before = sha256(self.lun(src))
        calls = local_driver.LocalFileDriver.calls["loop"]
        start = len(calls)
        new = self.api.create(self.user, 1, "vol", "", source_volume=src)
        new = self.wait_volume(new)
        self.assertEqual("error", new.status)
        clones = [c for c in calls[start:] if c[0] == "create_cloned_volume"]
        self.assertEqual(1, len(clones), "rescheduled: %s" % clones)
        deleted = [c for c in calls[start:] if c[0] == "delete_volume"]
        self.assertEqual([], deleted)
        self.assertEqual(before, sha256(self.lun(src)))
        self.assert_one_create_failed_message(new)
        # The user's delete of the error volume removes the LUN.
        self.assertTrue(os.path.exists(self.lun(new)))
        self.api.delete(self.user, new)
        self.cloud.wait_for(lambda: os.path.exists(self.lun(new)), False,
                            "the LUN to be deleted")


class TestPassThrough(RealCinderTestCase):

    def test_every_driver_method_reaches_the_backend_through_wrapper(self):
        wrapper = self.cloud.wrapper()
        backend = wrapper.backend
        for name in ("delete_volume", "create_snapshot",
                     "delete_snapshot", "create_export", "remove_export",
                     "ensure_export", "terminate_connection",
                     "get_volume_stats", "do_setup",
                     "check_for_setup_error", "migrate_volume",
                     "manage_existing_get_size", "unmanage", "get_pool"):
            got = getattr(wrapper, name)
            self.assertEqual(getattr(backend, name).__func__,
                             getattr(got, "__func__", None), name)
        # Hooked for LVHD volumes (test_lvhd_volumes), the backend's for a
        # raw one.
        for name in ("create_volume", "extend_volume", "retype",
                     "clone_image", "copy_image_to_volume",
                     "copy_volume_to_image", "manage_existing"):
            self.assertIn(name, vars(driver_mod.ResignVolumeDriver), name)
        self.assertEqual(backend.initialized, wrapper.initialized)
        # The manager's calls so far reached the backend.
        names = {c[0] for c in local_driver.LocalFileDriver.calls["loop"]}
        self.assertEqual(set(), {"do_setup", "check_for_setup_error"} - names)
        raw = self.create()
        self.assertIsNone(cinder_api.published_sr_uuid(raw))
        self.assertIn(("create_volume", raw.id),
                      local_driver.LocalFileDriver.calls["loop"])


class TestMigration(RealCinderTestCase):

    def test_generic_migration_publishes_the_sr_uuid_on_the_lun(self):
        # An original (never resigned) SR: after the migration its LUN has
        # a new target, so Nova's computed uuid no longer names its VG.
        src, _ = self.lvhd_source()
        vol = self.migrate_to_other_backend(src)
        self.assertEqual(SR_UUID, sr_mod.inspect_path(self.lun(vol)).sr_uuid)
        self.assertNotEqual(SR_UUID, self.expected_sr_uuid(vol))
        self.assertEqual(SR_UUID, self.published_to_user(vol)["sr_uuid"])
