"""ResignVolumeDriver's LVHD (VDI-per-LUN) paths, without Cinder.

The backend is :class:`ImageDriver` (a LUN image file per volume), os-brick
is replaced by a connector that hands out the image path, and the
privileged calls run in-process on the real images; what lands on an image
is read back with the project's inspect.  Expected SR uuids come from Nova
21's formula written out here, SCSI ids from the simulator SAN.
"""

import hashlib
import os
from unittest import mock
import uuid

from oslo_config import cfg
from oslo_config import fixture as config_fixture

from cinder_backend import cinder_api
from cinder_backend import driver
from cinder_backend import hook
from cinder_backend import lvhd
from cinder_backend import opts
from cinder_backend import privileged
from nova_xenapi_resign import conf as xenapi_conf
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.simulator import san as san_mod
from tests import base
from tests.unit import test_cinder_driver

MIB = 1024 * 1024
VOL = "22222222-2222-4222-8222-222222222222"
SRC = "11111111-1111-4111-8111-111111111111"
PORTAL = "192.0.2.10:3260"
IQN_PREFIX = "iqn.2010-10.org.openstack:volume-"
LUN_SIZE = 64 * MIB
LVHD_TYPE = {"extra_specs": {"xenapi_resign:sr_type": "lvmoiscsi"}}
#: Nova 21 nova/virt/xenapi/volume_utils.py parse_sr_info's namespace.
NOVA_SR_NAMESPACE = uuid.UUID("3cca4135-a809-5bb3-af62-275fbfe87178")
#: doc/source/admin/vdi-per-lun.rst: a volume's VDI is uuid5(this, id).
VDI_NAMESPACE = uuid.UUID("0d7c3b52-9e41-5f6a-8b2d-4c1e7a90f3b6")
#: A final error (Cinder's MetadataUpdateFailure, else the hook's).
FINAL = test_cinder_driver.REFUSAL_ERRORS
CONFIG = test_cinder_driver.CONFIG_ERRORS


def nova_sr_uuid(volume_id):
    host, port = PORTAL.split(":")
    return str(uuid.uuid5(NOVA_SR_NAMESPACE, "%s/%s/%s%s" % (
        host, port, IQN_PREFIX, volume_id)))


def scsi_id(volume_id):
    return san_mod.scsi_id(PORTAL, IQN_PREFIX + volume_id, 0)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ImageDriver(object):
    """A backend: one image file per volume id, iSCSI-shaped data."""

    root = None
    report_scsi_id = True

    def __init__(self, *args, **kwargs):
        self.calls = []

    def path(self, volume):
        return os.path.join(self.root, str(volume["id"]))

    def _call(self, name, *args):
        self.calls.append((name,) + args)

    def create_volume(self, volume):
        self._call("create_volume", volume["id"])
        with open(self.path(volume), "wb") as f:
            f.truncate(LUN_SIZE)

    def create_cloned_volume(self, volume, src_vref):
        self._call("create_cloned_volume", volume["id"])
        san_mod.sparse_copy(self.path(src_vref), self.path(volume))

    def create_export(self, context, volume, connector):
        self._call("create_export", volume["id"])

    def remove_export(self, context, volume):
        self._call("remove_export", volume["id"])

    def initialize_connection(self, volume, connector, **kwargs):
        self._call("initialize_connection", volume["id"])
        data = {"target_portal": PORTAL,
                "target_iqn": IQN_PREFIX + volume["id"], "target_lun": 0,
                "volume_id": volume["id"], "device_path": self.path(volume)}
        if self.report_scsi_id:
            data["scsi_wwn"] = scsi_id(volume["id"])
        return {"driver_volume_type": "iscsi", "data": data}

    def terminate_connection(self, volume, connector, **kwargs):
        self._call("terminate_connection", volume["id"])

    def manage_existing(self, volume, existing_ref):
        self._call("manage_existing", volume["id"])
        os.rename(os.path.join(self.root, existing_ref["source-name"]),
                  self.path(volume))

    def unmanage(self, volume):
        self._call("unmanage", volume["id"])

    def extend_volume(self, volume, new_size):
        self._call("extend_volume", volume["id"])

    def retype(self, *args):
        self._call("retype")
        return True

    def clone_image(self, *args):
        self._call("clone_image")
        return {"provider_location": "cloned"}, True

    def copy_image_to_volume(self, *args, **kwargs):
        self._call("copy_image_to_volume")

    def copy_volume_to_image(self, *args):
        self._call("copy_volume_to_image")


class Connector(object):
    """os-brick's connector: the device is the data's ``device_path``."""

    def __init__(self):
        self.attached = []

    def connect_volume(self, data):
        self.attached.append(data["device_path"])
        return {"type": "block", "path": data["device_path"]}

    def disconnect_volume(self, data, device_info, force=False,
                          ignore_errors=False):
        self.attached.remove(data["device_path"])


class LvhdTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        privileged.default.set_client_mode(False)
        self.addCleanup(privileged.default.set_client_mode, True)
        ImageDriver.root = self.tmpdir
        ImageDriver.report_scsi_id = True
        conf = cfg.ConfigOpts()
        conf([])
        self.configuration = test_cinder_driver.Configuration(conf)
        conf.register_opts(opts.resign_opts, group="backend")
        conf.set_override("resign_backend_driver",
                          __name__ + ".ImageDriver", group="backend")
        xenapi_conf.register_opts(cfg.CONF)
        self.cfg = self.useFixture(config_fixture.Config(cfg.CONF))
        self.cfg.config(group="xenapi_resign",
                        backup_dir=os.path.join(self.tmpdir, "bk"))
        self.wrapper = driver.ResignVolumeDriver(
            configuration=self.configuration)
        self.backend = self.wrapper.backend
        self.connector = Connector()
        for name, value in (("get_connector", lambda *a: self.connector),
                            ("host_connector_properties",
                             lambda *a: {"host": "cinder-1"})):
            patcher = mock.patch.object(hook, name, value)
            patcher.start()
            self.addCleanup(patcher.stop)
        self.addCleanup(lambda: self.assertEqual([],
                                                 self.connector.attached))

    def volume(self, volume_id=VOL, vtype=LVHD_TYPE, **fields):
        return dict(id=volume_id, display_name="my data",
                    volume_type=vtype, **fields)

    def lvhd_volume(self, volume_id=SRC):
        vol = self.volume(volume_id)
        update = self.wrapper.create_volume(vol)
        vol["admin_metadata"] = update["admin_metadata"]
        return vol


class TestBlankCreate(LvhdTestCase):

    def test_lun_formatted_and_published(self):
        vol = self.volume()
        update = self.wrapper.create_volume(vol)
        sr_uuid = nova_sr_uuid(VOL)
        vdi_uuid = str(uuid.uuid5(VDI_NAMESPACE, VOL))
        self.assertEqual({"xenapi_sr_uuid": sr_uuid,
                          "xenapi_sr_type": "lvmoiscsi",
                          "xenapi_vdi_uuid": vdi_uuid,
                          "xenapi_scsi_id": scsi_id(VOL),
                          "xenapi_sr_volume_id": VOL},
                         update["admin_metadata"])
        model = sr_mod.inspect_path(self.backend.path(vol))
        self.assertEqual((), model.problems)
        self.assertEqual(sr_uuid, model.sr_uuid)
        self.assertEqual([(vdi_uuid, "my data")],
                         [(v.uuid, v.name_label) for v in model.vdis])
        self.assertEqual(("terminate_connection", VOL),
                         self.backend.calls[-2])
        self.assertEqual(("remove_export", VOL), self.backend.calls[-1])

    def test_raw_type_untouched(self):
        vol = self.volume(vtype={"extra_specs": {}})
        self.assertIsNone(self.wrapper.create_volume(vol))
        self.assertEqual([("create_volume", VOL)], self.backend.calls)
        self.assertEqual(bytes(LUN_SIZE), open(self.backend.path(vol),
                                               "rb").read())

    def test_bad_sr_type_refused_before_the_backend(self):
        vol = self.volume(vtype={"extra_specs": {
            "xenapi_resign:sr_type": "ext"}})
        err = self.assertRaises(CONFIG, self.wrapper.create_volume, vol)
        self.assertIn("xenapi_resign:sr_type", str(err))
        self.assertEqual([], self.backend.calls)

    def test_no_scsi_id_refused_nothing_written_or_published(self):
        ImageDriver.report_scsi_id = False
        vol = self.volume()
        err = self.assertRaises(FINAL, self.wrapper.create_volume, vol)
        cause = err if isinstance(err, exception.VolumeResignError) \
            else err.__cause__
        self.assertIsInstance(cause, exception.LvhdVolumeRefused)
        self.assertEqual(lvhd.STEP_SCSI_ID, cause.kwargs["step"])
        self.assertIn("SCSI id", str(err))
        self.assertEqual(bytes(LUN_SIZE), open(self.backend.path(vol),
                                               "rb").read())
        self.assertNotIn("admin_metadata", vol)
        self.assertEqual(("remove_export", VOL), self.backend.calls[-1])

    def test_lun_with_a_label_is_not_formatted(self):
        vol = self.volume()
        with mock.patch.object(self.backend, "create_volume"):
            with open(self.backend.path(vol), "wb") as f:
                f.truncate(LUN_SIZE)
            with device.open_device(self.backend.path(vol),
                                    writable=True) as dev:
                create.format_volume(dev, nova_sr_uuid(SRC), SRC, "other")
            before = sha256(self.backend.path(vol))
            err = self.assertRaises(FINAL, self.wrapper.create_volume, vol)
        self.assertIn("already holds an LVM2 label", str(err))
        self.assertEqual(before, sha256(self.backend.path(vol)))


class TestConnection(LvhdTestCase):

    def test_lvhd_keys_in_connection_data(self):
        vol = self.lvhd_volume(VOL)
        data = self.wrapper.initialize_connection(vol, {})["data"]
        host, port = PORTAL.split(":")
        self.assertEqual(
            {"sr_uuid": nova_sr_uuid(VOL), "sr_type": "lvmoiscsi",
             "vdi_uuid": str(uuid.uuid5(VDI_NAMESPACE, VOL)),
             "SCSIid": scsi_id(VOL), "target": host, "port": port,
             "targetIQN": IQN_PREFIX + VOL},
            {k: data[k] for k in ("sr_uuid", "sr_type", "vdi_uuid", "SCSIid",
                                  "target", "port", "targetIQN")})
        self.assertEqual({"target", "port", "targetIQN", "sr_type",
                          "SCSIid"}, set(data["introduce_sr_keys"]))

    def test_inherited_record_ignored(self):
        src = self.lvhd_volume(SRC)
        raw = self.volume(vtype=None,
                          admin_metadata=dict(src["admin_metadata"]))
        self.assertIsNone(cinder_api.published(raw))
        self.assertNotIn("sr_uuid", self.wrapper.initialize_connection(
            raw, {})["data"])

    def test_lvhd_type_with_nothing_published_refused_before_backend(self):
        # Attached raw, the guest would get the LUN's LVM metadata.
        src = self.lvhd_volume(SRC)
        calls = list(self.backend.calls)
        for vol in (self.volume(), self.volume(
                admin_metadata=dict(src["admin_metadata"]))):
            err = self.assertRaises(exception.LvhdVolumeOperationRefused,
                                    self.wrapper.initialize_connection,
                                    vol, {})
            self.assertEqual((VOL, "attach"), (err.kwargs["volume_id"],
                                               err.kwargs["operation"]))
        self.assertEqual(calls, self.backend.calls)


class TestMigrated(LvhdTestCase):
    """update_migrated_volume of an LVHD volume: all of it, or refused."""

    def setUp(self):
        super().setUp()
        self.src = self.lvhd_volume(SRC)
        self.published = []

    def migrated(self, new):
        """update_migrated_volume; what it published goes to .published."""
        with mock.patch.object(
                cinder_api, "publish", lambda vol, update, what,
                owner_id=None: self.published.append(
                    (vol["id"], what, owner_id))):
            return self.wrapper.update_migrated_volume(None, self.src, new,
                                                       "available")

    def copy(self):
        new = self.volume(VOL)
        san_mod.sparse_copy(self.backend.path(self.src),
                            self.backend.path(new))
        return new

    def test_copy_republished_with_the_new_scsi_id(self):
        # The backend has no update_migrated_volume: Cinder's default
        # model update still applies, after the wrapper published.
        self.assertRaises(NotImplementedError, self.migrated, self.copy())
        what = cinder_api.Published(
            nova_sr_uuid(SRC), "lvmoiscsi", str(uuid.uuid5(VDI_NAMESPACE,
                                                           SRC)),
            scsi_id(VOL))
        self.assertEqual([(SRC, what, SRC), (VOL, what, SRC)],
                         self.published)

    def test_copy_without_scsi_id_refused(self):
        new = self.copy()
        ImageDriver.report_scsi_id = False
        err = self.assertRaises(exception.LvhdVolumeRefused, self.migrated,
                                new)
        self.assertIn("SCSI id", str(err))
        self.assertEqual(SRC, err.kwargs["volume_id"])
        # The copy keeps nothing published; the volume what it had.
        self.assertEqual([(VOL, None, None)], self.published)

    def test_copy_holding_another_sr_refused(self):
        err = self.assertRaises(exception.LvhdVolumeRefused, self.migrated,
                                self.lvhd_volume(VOL))
        self.assertIn("LVHD SR %s holds SR %s" % (
            nova_sr_uuid(SRC), nova_sr_uuid(VOL)), str(err))
        self.assertEqual([(VOL, None, None)], self.published)


class TestClone(LvhdTestCase):

    def test_clone_resigned_and_published_with_its_own_vdi(self):
        src = self.lvhd_volume(SRC)
        before = sha256(self.backend.path(src))
        new = self.volume(VOL, admin_metadata=dict(src["admin_metadata"]))
        update = self.wrapper.create_cloned_volume(new, src)
        model = sr_mod.inspect_path(self.backend.path(new))
        self.assertEqual(nova_sr_uuid(VOL), model.sr_uuid)
        [vdi] = model.vdis
        self.assertNotEqual(src["admin_metadata"]["xenapi_vdi_uuid"],
                            vdi.uuid)
        self.assertEqual({"xenapi_sr_uuid": nova_sr_uuid(VOL),
                          "xenapi_sr_type": "lvmoiscsi",
                          "xenapi_vdi_uuid": vdi.uuid,
                          "xenapi_scsi_id": scsi_id(VOL),
                          "xenapi_sr_volume_id": VOL},
                         update["admin_metadata"])
        self.assertEqual(before, sha256(self.backend.path(src)))

    def test_clone_of_the_other_layout_refused_before_the_backend(self):
        # The new volume would get the source's bytes as they are.
        raw = self.volume(SRC, vtype=None)
        self.backend.create_volume(raw)
        lvhd_src = self.lvhd_volume(VOL)
        calls = list(self.backend.calls)
        for new, src, named in (
                (self.volume("new-1"), raw, "new-1"),
                (self.volume("new-2", vtype=None), lvhd_src, VOL)):
            for call in (self.wrapper.create_cloned_volume,
                         lambda v, s: self.wrapper.create_volume_from_snapshot(
                             v, {"id": "snap", "volume": s})):
                err = self.assertRaises(
                    exception.LvhdVolumeOperationRefused, call, new, src)
                self.assertEqual(named, err.kwargs["volume_id"])
                self.assertTrue(err.kwargs["operation"].startswith("clone"))
        self.assertEqual(calls, self.backend.calls)

    def test_legacy_naming_still_gives_a_uuid5_sr(self):
        self.cfg.config(group="xenapi_resign", sr_naming="legacy")
        src = self.lvhd_volume(SRC)
        update = self.wrapper.create_cloned_volume(self.volume(VOL), src)
        self.assertEqual(nova_sr_uuid(VOL),
                         update["admin_metadata"]["xenapi_sr_uuid"])


class TestImport(LvhdTestCase):

    def lun(self, name, sr_uuid="5a0f7c2e-3b1d-4e6f-9a8b-7c6d5e4f3a2b"):
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.truncate(LUN_SIZE)
        with device.open_device(path, writable=True) as dev:
            create.format_volume(dev, sr_uuid, "cs-1", "cs-disk")
        return path

    def test_import_publishes_what_is_on_the_lun(self):
        path = self.lun("existing")
        vdi_uuid = sr_mod.inspect_path(path).vdis[0].uuid
        before = sha256(path)
        vol = self.volume()
        update = self.wrapper.manage_existing(vol, {"source-name":
                                                    "existing"})
        self.assertEqual(before, sha256(self.backend.path(vol)))
        self.assertEqual(
            ("5a0f7c2e-3b1d-4e6f-9a8b-7c6d5e4f3a2b", vdi_uuid, scsi_id(VOL)),
            tuple(update["admin_metadata"][k] for k in (
                "xenapi_sr_uuid", "xenapi_vdi_uuid", "xenapi_scsi_id")))

    def test_collision_refused_and_lun_handed_back(self):
        path = self.lun("existing")
        before = sha256(path)
        vol = self.volume()
        with mock.patch.object(cinder_api, "volumes_publishing",
                               return_value=[SRC]):
            err = self.assertRaises(FINAL, self.wrapper.manage_existing,
                                    vol, {"source-name": "existing"})
        self.assertIn(SRC, str(err))
        self.assertIn("resign_on_import", str(err))
        self.assertEqual(before, sha256(self.backend.path(vol)))
        self.assertNotIn("admin_metadata", vol)
        self.assertEqual(("unmanage", VOL), self.backend.calls[-1])

    def test_resign_on_import(self):
        self.lun("existing")
        vol = self.volume(vtype={"extra_specs": dict(
            LVHD_TYPE["extra_specs"],
            **{"xenapi_resign:resign_on_import": "<is> True"})})
        with mock.patch.object(cinder_api, "volumes_publishing",
                               return_value=[SRC]):
            update = self.wrapper.manage_existing(
                vol, {"source-name": "existing"})
        model = sr_mod.inspect_path(self.backend.path(vol))
        self.assertEqual(nova_sr_uuid(VOL), model.sr_uuid)
        self.assertEqual(model.vdis[0].uuid,
                         update["admin_metadata"]["xenapi_vdi_uuid"])

    def test_bad_resign_on_import_refused_before_the_backend(self):
        self.lun("existing")
        vol = self.volume(vtype={"extra_specs": dict(
            LVHD_TYPE["extra_specs"],
            **{"xenapi_resign:resign_on_import": "perhaps"})})
        err = self.assertRaises(CONFIG, self.wrapper.manage_existing, vol,
                                {"source-name": "existing"})
        self.assertIn("resign_on_import", str(err))
        self.assertEqual([], self.backend.calls)

    def test_lvhd_type_refuses_a_raw_lun(self):
        with open(os.path.join(self.tmpdir, "raw"), "wb") as f:
            f.truncate(LUN_SIZE)
        err = self.assertRaises(FINAL, self.wrapper.manage_existing,
                                self.volume(), {"source-name": "raw"})
        self.assertIn("holds no LVHD SR", str(err))
        self.assertEqual(("unmanage", VOL), self.backend.calls[-1])


class TestRefusedOperations(LvhdTestCase):

    def test_refused_before_the_backend_is_called(self):
        vol = self.lvhd_volume(VOL)
        before = sha256(self.backend.path(vol))
        calls = list(self.backend.calls)
        for operation, call in (
                ("extend", lambda: self.wrapper.extend_volume(vol, 2)),
                ("retype", lambda: self.wrapper.retype(
                    None, vol, {"extra_specs": {}}, {}, "h")),
                ("copy_image_to_volume",
                 lambda: self.wrapper.copy_image_to_volume(
                     None, vol, None, "img")),
                ("copy_volume_to_image",
                 lambda: self.wrapper.copy_volume_to_image(
                     None, vol, None, {}))):
            err = self.assertRaises(exception.LvhdVolumeOperationRefused,
                                    call)
            self.assertEqual((VOL, operation), (err.kwargs["volume_id"],
                                                err.kwargs["operation"]))
            self.assertIn("Instead:", str(err))
        self.assertEqual((None, False), self.wrapper.clone_image(
            None, vol, None, None, None))
        self.assertEqual(calls, self.backend.calls)
        self.assertEqual(before, sha256(self.backend.path(vol)))

    def test_raw_volume_reaches_the_backend(self):
        vol = self.volume(vtype=None)
        self.wrapper.extend_volume(vol, 2)
        self.assertTrue(self.wrapper.retype(None, vol, {}, {}, "h"))
        self.wrapper.copy_image_to_volume(None, vol, None, "img")
        self.wrapper.copy_volume_to_image(None, vol, None, {})
        self.assertEqual(({"provider_location": "cloned"}, True),
                         self.wrapper.clone_image(None, vol, None, None,
                                                  None))
        self.assertEqual(["extend_volume", "retype", "copy_image_to_volume",
                          "copy_volume_to_image", "clone_image"],
                         [c[0] for c in self.backend.calls])

    def test_retype_of_raw_volume_to_lvhd_refused(self):
        err = self.assertRaises(
            exception.LvhdVolumeOperationRefused, self.wrapper.retype, None,
            self.volume(vtype=None), LVHD_TYPE, {}, "h")
        self.assertEqual("retype", err.kwargs["operation"])
        self.assertEqual([], self.backend.calls)
