"""The Cinder wrapper driver and hook with real os-brick and loop devices.

The backend is :class:`tests.functional.cinder_fakes.LoopBackendDriver`:
LUN image files exported on loop devices through os-brick's ``LOCAL``
connector.  The last test class runs the whole story on the embedded XAPI:
an lvmoiscsi SR in a pool, a Cinder clone of its LUN, and the clone
introduced beside the original under the published SR uuid.
"""

import hashlib
import os
import uuid

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import importutils
import XenAPI

from cinder_backend import driver
from cinder_backend import hook
from cinder_backend import opts
from cinder_backend import privileged
from nova_xenapi_resign import conf as xenapi_conf
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign import resign
from nova_xenapi_resign.simulator import fixture as sim_fixture
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import session as xenapi_session
from nova_xenapi_resign.xenapi import volume_utils
from tests.crash import CrashingDevice
from tests.functional import base
from tests.functional import cinder_fakes
from tests.functional import lvhd_images

MiB = 1024 * 1024
SRC = "11111111-1111-4111-8111-111111111111"
NEW = "22222222-2222-4222-8222-222222222222"
SNAP = "33333333-3333-4333-8333-333333333333"
SR_UUID = "7c1a3f0e-1111-4222-8333-444455556666"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def conn_data(volume_id, portal=cinder_fakes.PORTAL):
    """The connection data the fake backend gives a volume (naming keys)."""
    return {"target_portal": portal,
            "target_iqn": cinder_fakes.volume_iqn(volume_id),
            "target_lun": 0, "volume_id": volume_id}


class PrivsepInProcess(fixtures.Fixture):
    """Run os-brick's and the hook's privileged calls in-process (root)."""

    def _setUp(self):
        from os_brick import privileged as brick_privileged
        for pctxt in (brick_privileged.default, privileged.default):
            pctxt.set_client_mode(False)
            self.addCleanup(pctxt.set_client_mode, True)


def hook_error(test, func, *args):
    """The hook's error behind ``func``'s (Cinder's own when installed)."""
    cinder_exception = importutils.try_import("cinder.exception")
    types = tuple({exception.VolumeResignError, getattr(
        cinder_exception, "VolumeBackendAPIException",
        exception.VolumeResignError), getattr(
        cinder_exception, "MetadataUpdateFailure",
        exception.VolumeResignError)})
    err = test.assertRaises(types, func, *args)
    return err if isinstance(err, exception.VolumeResignError) else (
        err.__cause__)


class CinderHookTestCase(base.FunctionalTestCase):

    TOOLS = ("losetup",)
    STYLE = "auto"

    def setUp(self):
        super().setUp()
        self.useFixture(PrivsepInProcess())
        self.san_dir = self.san_root()
        xenapi_conf.register_opts(cfg.CONF)
        self.cfg = self.useFixture(config_fixture.Config(cfg.CONF))
        self.backups = os.path.join(self.tmpdir, "backups")
        self.cfg.config(group="xenapi_resign", resignature_duplicate_srs=True,
                        backup_dir=self.backups, sr_naming=self.STYLE)
        self.conf = cfg.ConfigOpts()
        self.conf([])
        self.configuration = cinder_fakes.backend_configuration(self.conf)
        self.configuration.append_config_values(opts.resign_opts)
        self.configuration.append_config_values(cinder_fakes.fake_opts)
        for name, value in (
                ("resign_backend_driver",
                 "tests.functional.cinder_fakes.LoopBackendDriver"),
                ("fake_san_dir", self.san_dir),
                ("resign_attach_timeout", 5)):
            cinder_fakes.set_backend_option(self.configuration, name, value)
        self.driver = driver.ResignVolumeDriver(
            configuration=self.configuration)
        self.backend = self.driver.backend
        self.addCleanup(self.backend.detach_all)

    def san_root(self):
        return os.path.join(self.tmpdir, "san")

    # --- helpers ---

    def volume(self, volume_id, size=1):
        # Cinder sizes are GiB; the fake backend honours size_bytes so the
        # LUN files stay small.
        return {"id": volume_id, "size": size, "size_bytes": 64 * MiB}

    def lvhd_volume(self, volume_id=SRC, sr_uuid=SR_UUID, vdis=None):
        vol = self.volume(volume_id)
        self.driver.create_volume(vol)
        vdis = lvhd_images.snapshot_tree(sr_uuid) if vdis is None else vdis
        with device.open_device(self.backend.lun_path(vol),
                                writable=True) as dev:
            create.format_sr(dev, sr_uuid, vdis)
        return vol

    def apply(self, volume, update):
        """What Cinder's volume manager does with a model update."""
        volume.update(update or {})
        return volume

    def assert_detached(self, *volumes):
        for vol in volumes:
            self.assertEqual([], cinder_fakes.losetup_find(
                self.backend.lun_path(vol)))
        self.assertEqual({}, self.backend.attachments)

    def assert_resigned(self, vol, expected, source_sr=SR_UUID,
                        source_vdis=None):
        path = self.backend.lun_path(vol)
        model = sr_mod.inspect_path(path)
        self.assertEqual(expected, model.sr_uuid)
        self.assertEqual((), model.problems)
        with device.open_device(path) as dev:
            self.assertEqual(resign.STATE_RESIGNED,
                             resign.inspect(dev).state)
        if source_vdis is not None:
            mapping = {v.uuid: resign.new_vdi_uuid(expected, v.uuid)
                       for v in source_vdis}
            got = {v.uuid: v for v in model.vdis}
            self.assertEqual(set(mapping.values()), set(got))
            for old in source_vdis:
                new = got[mapping[old.uuid]]
                self.assertEqual(old.name_label, new.name_label)
                self.assertEqual(
                    mapping.get(old.parent_uuid), new.parent_uuid)
        return model


class TestCloneResign(CinderHookTestCase):

    def test_clone_of_lvhd_lun_is_resigned(self):
        src = self.lvhd_volume()
        source_model = sr_mod.inspect_path(self.backend.lun_path(src))
        before = sha256(self.backend.lun_path(src))
        new = self.volume(NEW)
        update = self.driver.create_cloned_volume(new, src)
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        self.assertNotEqual(SR_UUID, expected)
        self.assertEqual({"xenapi_sr_uuid": expected,
                          "xenapi_sr_volume_id": NEW},
                         update["admin_metadata"])
        self.assertIn("provider_location", update)
        self.assert_resigned(new, expected, source_vdis=source_model.vdis)
        self.assertEqual(before, sha256(self.backend.lun_path(src)))
        self.assert_detached(src, new)
        # The source was never exported nor attached.
        touched = {c[1] for c in self.backend.calls
                   if c[0] in ("create_export", "initialize_connection",
                               "terminate_connection", "remove_export")}
        self.assertEqual({NEW}, touched)

    def test_initialize_connection_publishes_sr_uuid(self):
        src = self.lvhd_volume()
        new = self.volume(NEW)
        self.apply(new, self.driver.create_cloned_volume(new, src))
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        info = self.driver.initialize_connection(new, {})
        try:
            data = info["data"]
            self.assertEqual(expected, data["sr_uuid"])
            self.assertEqual(["target", "port", "targetIQN", "id"],
                             data["introduce_sr_keys"])
            self.assertEqual(cinder_fakes.volume_iqn(NEW), data["targetIQN"])
            # Nova computes the same uuid from the published data.
            self.assertEqual(expected,
                             sr_naming.preferred_sr_uuid(data, "legacy"))
        finally:
            self.driver.terminate_connection(new, {})
        self.assert_detached(new)
        # The source has nothing published.
        info = self.driver.initialize_connection(src, {})
        self.driver.terminate_connection(src, {})
        self.assertNotIn("sr_uuid", info["data"])

    def test_volume_from_snapshot_real_lvm_image(self):
        base.require_tools(self, "lvm")
        image = os.path.join(self.tmpdir, "lvm.img")
        made = lvhd_images.make_lvhd_image(
            self, image, SR_UUID, lvhd_images.snapshot_tree(SR_UUID))
        src = self.volume(SRC)
        self.backend.import_image(src, image)
        before = sha256(self.backend.lun_path(src))
        snap = {"id": SNAP, "volume_id": SRC}
        self.driver.create_snapshot(snap)
        new = self.volume(NEW)
        update = self.driver.create_volume_from_snapshot(new, snap)
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        self.assertEqual(expected, update["admin_metadata"]["xenapi_sr_uuid"])
        self.assert_resigned(new, expected, source_vdis=made["sr"].vdis)
        self.assertEqual(before, sha256(self.backend.lun_path(src)))
        self.assert_detached(src, new)
        # lvm2 itself agrees with the new identity.
        loop = self.attach(self.backend.lun_path(new), read_only=True)
        lvm_ = base.Lvm(loop)
        vgs = lvm_.report("vgs", "vg_name,vg_uuid")
        self.assertEqual("VG_XenStorage-" + expected, vgs[0]["vg_name"])
        self.assertNotEqual(made["vg_id"], vgs[0]["vg_uuid"])
        pvs = lvm_.report("pvs", "pv_uuid")
        self.assertNotEqual(made["pv_id"], pvs[0]["pv_uuid"])
        lvm_("vgck", "VG_XenStorage-" + expected)

    def test_plain_data_lun_untouched(self):
        src = self.volume(SRC)
        self.driver.create_volume(src)
        with open(self.backend.lun_path(src), "r+b") as f:
            f.write(os.urandom(MiB))
            f.seek(40 * MiB)
            f.write(b"data" * 1024)
        before = sha256(self.backend.lun_path(src))
        new = self.volume(NEW)
        update = self.driver.create_cloned_volume(new, src)
        self.assertNotIn("admin_metadata", update)
        self.assertEqual(before, sha256(self.backend.lun_path(new)))
        self.assertEqual(before, sha256(self.backend.lun_path(src)))
        self.assert_detached(src, new)
        self.assertFalse(os.path.exists(self.backups)
                         and os.listdir(self.backups))

    def test_plain_lvm_volume_untouched(self):
        base.require_tools(self, "lvm")
        src = self.volume(SRC)
        self.driver.create_volume(src)
        loop = self.attach(self.backend.lun_path(src))
        lvm_ = base.Lvm(loop)
        lvm_("pvcreate", "-ff", "-y", loop)
        lvm_("vgcreate", "datavg", loop)
        before = sha256(self.backend.lun_path(src))
        new = self.volume(NEW)
        update = self.driver.create_cloned_volume(new, src)
        self.assertNotIn("admin_metadata", update)
        self.assertEqual(before, sha256(self.backend.lun_path(new)))

    def test_disabled_leaves_clone_a_duplicate(self):
        self.cfg.config(group="xenapi_resign",
                        resignature_duplicate_srs=False)
        src = self.lvhd_volume()
        new = self.volume(NEW)
        update = self.driver.create_cloned_volume(new, src)
        self.assertNotIn("admin_metadata", update)
        self.assertEqual(sha256(self.backend.lun_path(src)),
                         sha256(self.backend.lun_path(new)))
        self.assertNotIn("initialize_connection",
                         [c[0] for c in self.backend.calls])

    def test_second_run_is_a_no_op(self):
        src = self.lvhd_volume()
        new = self.volume(NEW)
        first = self.driver.create_cloned_volume(new, src)
        after = sha256(self.backend.lun_path(new))
        again = self.driver.resign_volume(new)
        self.assertFalse(again["changed"])
        self.assertEqual(first["admin_metadata"]["xenapi_sr_uuid"],
                         again["sr_uuid"])
        self.assertEqual(after, sha256(self.backend.lun_path(new)))
        self.assert_detached(new)


class TestFailures(CinderHookTestCase):

    def test_resign_error_leaves_no_attachment_and_retry_succeeds(self):
        src = self.lvhd_volume()
        before = sha256(self.backend.lun_path(src))
        new = self.volume(NEW)
        boom = exception.DeviceError(device="/dev/x", reason="injected EIO")
        with fixtures.MockPatchObject(resign, "resign_device",
                                      side_effect=boom):
            err = hook_error(self, self.driver.create_cloned_volume, new,
                             src)
        self.assertEqual(NEW, err.kwargs["volume_id"])
        self.assertEqual(hook.STEP_RESIGN, err.kwargs["step"])
        self.assertTrue(err.kwargs["device"].startswith("/dev/loop"))
        self.assertIn("injected EIO", str(err))
        self.assert_detached(src, new)
        self.assertEqual(["terminate_connection", "remove_export"],
                         [c[0] for c in self.backend.calls[-2:]])
        # A retry (the hook alone: the LUN exists) succeeds.
        self.apply(new, {"provider_location": "x"})
        out = self.driver.resign_volume(new)
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        self.assertEqual(expected, out["sr_uuid"])
        self.assert_resigned(new, expected)
        self.assertEqual(before, sha256(self.backend.lun_path(src)))
        self.assert_detached(src, new)

    def test_crash_mid_resignature_then_retry_resumes(self):
        src = self.lvhd_volume()
        new = self.volume(NEW)
        real = resign.resign_device

        def crashing(path, target, **kwargs):
            def opener(p, writable=False):
                return CrashingDevice(p, writable, 4)
            return real(path, target, opener=opener, **kwargs)

        with fixtures.MockPatchObject(resign, "resign_device", crashing):
            err = hook_error(self, self.driver.create_cloned_volume, new,
                             src)
        self.assertIn("Crash", str(err))
        self.assert_detached(new)
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        with device.open_device(self.backend.lun_path(new)) as dev:
            self.assertEqual(resign.STATE_RESIGNING,
                             resign.inspect(dev, self.backups,
                                            expected).state)
        out = self.driver.resign_volume(new)
        self.assertTrue(out["changed"])
        self.assert_resigned(new, expected)
        self.assert_detached(new)

    def test_refused_resignature_is_clear(self):
        # A LUN already named what Nova will compute: refused, untouched.
        expected = sr_naming.preferred_sr_uuid(conn_data(NEW), self.STYLE)
        vol = self.lvhd_volume(NEW, sr_uuid=expected)
        before = sha256(self.backend.lun_path(vol))
        err = self.assertRaises(exception.VolumeResignRefused,
                                self.driver.resign_volume, vol)
        self.assertIn("nothing written", str(err))
        self.assertIn(NEW, str(err))
        self.assertEqual(before, sha256(self.backend.lun_path(vol)))
        self.assert_detached(vol)

    def test_connect_failure_leaves_no_attachment(self):
        src = self.lvhd_volume()
        new = self.volume(NEW)
        with fixtures.MockPatch(
                "os_brick.initiator.connectors.local.LocalConnector."
                "connect_volume", side_effect=ValueError("no device")):
            err = hook_error(self, self.driver.create_cloned_volume, new,
                             src)
        self.assertEqual(hook.STEP_CONNECT, err.kwargs["step"])
        self.assert_detached(src, new)


class TestLegacyNaming(CinderHookTestCase):

    STYLE = "legacy"

    def test_clone_not_resigned_to_legacy_name(self):
        # sm's LVHDSR.attach refuses an SR uuid that is not a lowercase
        # uuid (SR_BACKEND_FAILURE_47): a legacy name is never written.
        src = self.lvhd_volume()
        new = self.volume(NEW)
        err = hook_error(self, self.driver.create_cloned_volume, new, src)
        self.assertEqual(hook.STEP_RESIGN, err.kwargs["step"])
        self.assertIn("legacy Nova SR name", str(err))
        # The clone is still a byte copy of its source.
        self.assertEqual(sha256(self.backend.lun_path(src)),
                         sha256(self.backend.lun_path(new)))
        self.assert_detached(src, new)


class TestEndToEndSimulator(CinderHookTestCase):
    """Original and Cinder clone attached side by side in one pool."""

    def san_root(self):
        self.sim = self.useFixture(sim_fixture.SimulatorFixture(pools=1))
        return self.sim.san.root

    def setUp(self):
        super().setUp()
        self.x = self.sim.session(0).xenapi
        self.host = self.x.pool.get_master(self.x.pool.get_all()[0])

    def scsi_id_config(self, device_config, lun=0):
        """The LUN's SCSIid, found as XenServer's tools find it.

        A probe without it lists the LUNs (SR_BACKEND_FAILURE_107).
        """
        session = xenapi_session.XenAPISession(self.sim.session(0))
        return volume_utils.lvmoiscsi_device_config(session, device_config,
                                                    lun)

    def attach_sr(self, sr_uuid, device_config, lun=0):
        sr = self.x.SR.introduce(sr_uuid, "sr-" + sr_uuid[:8], "",
                                 "lvmoiscsi", "", True, {})
        pbd = self.x.PBD.create({
            "host": self.host, "SR": sr,
            "device_config": self.scsi_id_config(device_config, lun)})
        self.x.PBD.plug(pbd)
        self.x.SR.scan(sr)
        return sr

    def vdis(self, sr):
        out = {}
        for ref in self.x.SR.get_VDIs(sr):
            rec = self.x.VDI.get_record(ref)
            snap = rec["snapshot_of"]
            rec["snapshot_of_uuid"] = (self.x.VDI.get_uuid(snap)
                                       if snap != "OpaqueRef:NULL" else None)
            out[rec["uuid"]] = rec
        return out

    def test_clone_introduced_beside_original(self):
        src = self.lvhd_volume()
        host, port = cinder_fakes.PORTAL.split(":")
        original = self.attach_sr(SR_UUID, {
            "target": host, "port": port,
            "targetIQN": cinder_fakes.volume_iqn(SRC)})
        orig_vdis = self.vdis(original)
        self.assertEqual(4, len(orig_vdis))
        before = sha256(self.backend.lun_path(src))

        # Without the hook the clone is a duplicate: Nova's name for it
        # finds no such VG on the LUN.
        self.cfg.config(group="xenapi_resign",
                        resignature_duplicate_srs=False)
        dup = self.volume("44444444-4444-4444-8444-444444444444")
        self.driver.create_cloned_volume(dup, src)
        dup_uuid = sr_naming.preferred_sr_uuid(conn_data(dup["id"]))
        sr = self.x.SR.introduce(dup_uuid, "dup", "", "lvmoiscsi", "",
                                 True, {})
        pbd = self.x.PBD.create({"host": self.host, "SR": sr,
                                 "device_config": self.scsi_id_config({
                                     "target": host, "port": port,
                                     "targetIQN": cinder_fakes.volume_iqn(
                                         dup["id"])})})
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0])
        self.x.PBD.destroy(pbd)
        self.x.SR.forget(sr)
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.introduce,
                                SR_UUID, "dup", "", "lvmoiscsi", "", True,
                                {})
        self.assertEqual(["SR_UUID_EXISTS", SR_UUID], exc.details)

        # With the hook: clone, publish, introduce under the published uuid.
        self.cfg.config(group="xenapi_resign",
                        resignature_duplicate_srs=True)
        new = self.volume(NEW)
        self.apply(new, self.driver.create_cloned_volume(new, src))
        info = self.driver.initialize_connection(new, {})
        self.driver.terminate_connection(new, {})
        data = info["data"]
        device_config = {k: str(data[k]) for k in data["introduce_sr_keys"]
                         if k != "id"}
        clone = self.attach_sr(data["sr_uuid"], device_config,
                               data["target_lun"])
        self.assertEqual(data["sr_uuid"], self.x.SR.get_uuid(clone))

        clone_vdis = self.vdis(clone)
        target = data["sr_uuid"]
        mapping = {old: resign.new_vdi_uuid(target, old) for old in orig_vdis}
        self.assertEqual(set(mapping.values()), set(clone_vdis))
        for old, rec in orig_vdis.items():
            new_rec = clone_vdis[mapping[old]]
            self.assertEqual(rec["name_label"], new_rec["name_label"])
            self.assertEqual(rec["is_a_snapshot"], new_rec["is_a_snapshot"])
            self.assertEqual(rec["managed"], new_rec["managed"])
            self.assertEqual(rec["sm_config"].get("vdi_type"),
                             new_rec["sm_config"].get("vdi_type"))
            parent = rec["sm_config"].get("vhd-parent")
            self.assertEqual(mapping.get(parent),
                             new_rec["sm_config"].get("vhd-parent"))
            self.assertEqual(mapping.get(rec["snapshot_of_uuid"]),
                             new_rec["snapshot_of_uuid"])
        # The original is still attached and unchanged.
        self.assertEqual(orig_vdis.keys(), self.vdis(original).keys())
        self.assertEqual(before, sha256(self.backend.lun_path(src)))
        self.assertEqual([], self.sim.pools[0].hazards)
        self.assert_detached(src, new)

    def test_many_clones_of_one_source(self):
        src = self.lvhd_volume()
        uuids = set()
        for i in range(3):
            vol = self.volume(str(uuid.UUID(int=i + 1)))
            update = self.driver.create_cloned_volume(vol, src)
            sr_uuid = update["admin_metadata"]["xenapi_sr_uuid"]
            host, port = cinder_fakes.PORTAL.split(":")
            self.attach_sr(sr_uuid, {
                "target": host, "port": port,
                "targetIQN": cinder_fakes.volume_iqn(vol["id"])})
            uuids.add(sr_uuid)
        self.assertEqual(3, len(uuids))
        self.assert_detached(src)
