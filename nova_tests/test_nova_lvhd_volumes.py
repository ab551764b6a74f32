"""VDI-per-LUN volumes with Nova 21.2.4's real VolumeOps/VMOps.

Each LVHD volume is a LUN holding an LVHD SR with one VHD VDI
(``lvhd.create.format_volume``), published with
``volume_utils.lvhd_connection_data``: ``sr_uuid``, ``sr_type=lvmoiscsi``,
``vdi_uuid`` and the device-config (``SCSIid`` as the host's ``SR.probe``
reports it, portal, IQN, CHAP) named in ``introduce_sr_keys``.  The
expected uuids are read back from the LUN images with the project's
inspect, never recomputed from the publishing code.
"""

import os

from nova import exception as nova_exception

from nova_tests import harness
from nova_tests.harness import OUR_DRIVER
from nova_tests.harness import STOCK_DRIVER
from nova_tests.test_nova_live_migration import LiveMigrationTestCase
from nova_xenapi_resign import demo_cinder
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign import resign
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import volume_utils
from tests.functional.test_live_migration_sim import iqn
from tests.functional.test_live_migration_sim import legacy
from tests.functional.test_live_migration_sim import PORTAL
from tests.functional.test_live_migration_sim import uuid5

VOL_LEGACY = "51111111-2222-4333-8444-555555555555"
VOL_UUID5 = "52222222-3333-4444-8555-666666666666"
VOL_LVHD = "53333333-4444-4555-8666-777777777777"
VOL_CLONE = "54444444-5555-4666-8777-888888888888"
SNAPSHOT = "55555555-6666-4777-8888-999999999999"
MiB = harness.MiB
VOLUME_SIZE = 32 * MiB
HOST, PORT = PORTAL.split(":")


class LvhdVolumeTestCase(LiveMigrationTestCase):

    def lun_path(self, volume_id):
        return self.pools.sim.san.path(PORTAL, iqn(volume_id), 0)

    def published(self, bdm, driver):
        """The LVHD connection data of a formatted LUN, as a backend would.

        The SR uuid is what Nova's uuid5 naming gives the volume's target;
        the SR and VDI uuids are read from the LUN; the SCSI id is what the
        host's ``SR.probe`` lists for the LUN.
        """
        data = bdm["connection_info"]["data"]
        model = sr_mod.inspect_path(self.lun_path(data["volume_id"]))
        (vdi,) = model.vdis
        config = volume_utils.lvmoiscsi_device_config(
            driver._session, volume_utils.iscsi_device_config(data), 0)
        config_id = config["SCSIid"]
        bdm["connection_info"]["data"] = volume_utils.lvhd_connection_data(
            data, model.sr_uuid, vdi.uuid, config_id)
        return model.sr_uuid, vdi.uuid

    def lvhd_volume(self, volume_id, mount, driver, name="data"):
        """A new LUN formatted as a volume, and its published mapping."""
        bdm = self.volume(volume_id, mount, size=VOLUME_SIZE)
        sr_uuid = sr_naming.uuid5_sr_uuid(HOST, PORT, iqn(volume_id))
        with device.open_device(self.lun_path(volume_id),
                                writable=True) as dev:
            create.format_volume(dev, sr_uuid, volume_id, name)
        return bdm, self.published(bdm, driver)

    def clone_volume(self, source_id, volume_id, mount, driver):
        """A SAN clone of ``source_id``'s LUN, resigned, and its mapping."""
        san = self.pools.sim.san
        bdm = self.volume(volume_id, mount, size=VOLUME_SIZE)
        os.unlink(self.lun_path(volume_id))
        san.clone_lun(self.lun_path(source_id), PORTAL, iqn(volume_id), 0)
        resign.resign_device(
            self.lun_path(volume_id),
            sr_naming.uuid5_sr_uuid(HOST, PORT, iqn(volume_id)),
            backup_dir=os.path.join(self.tmpdir, "backups"),
            lock_path=self.tmpdir)
        return bdm, self.published(bdm, driver)

    def vdi_uuids_of(self, index, instance):
        """``{VBD userdevice: (SR uuid, SR type, VDI uuid)}`` of a VM."""
        x = self.x[index]
        vm = x.VM.get_by_name_label(instance.name)[0]
        out = {}
        for vbd in x.VM.get_VBDs(vm):
            vdi = x.VBD.get_VDI(vbd)
            sr = x.VDI.get_SR(vdi)
            out[x.VBD.get_userdevice(vbd)] = (
                x.SR.get_uuid(sr), x.SR.get_type(sr), x.VDI.get_uuid(vdi))
        return out

    def device_config(self, index, sr_uuid):
        x = self.x[index]
        (pbd,) = x.SR.get_PBDs(x.SR.get_by_uuid(sr_uuid))
        self.assertTrue(x.PBD.get_currently_attached(pbd))
        return x.PBD.get_device_config(pbd)

    def volume_srs(self, index):
        """The iSCSI and LVHD SRs a pool still has."""
        x = self.x[index]
        return sorted(rec["uuid"] for rec in x.SR.get_all_records().values()
                      if rec["type"] in ("iscsi", "lvmoiscsi"))

    def attach(self, driver, instance, bdm):
        driver.attach_volume(self.ctx, bdm["connection_info"], instance,
                             bdm["mount_device"])

    def detach(self, driver, instance, bdm):
        driver.detach_volume(self.ctx, bdm["connection_info"], instance,
                             bdm["mount_device"])


class TestAttach(LvhdVolumeTestCase):

    def _attach_and_detach(self, service):
        driver = self.driver(0, service)
        instance = self.instance()
        self.boot(instance, [])
        bdm, (sr_uuid, vdi_uuid) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb",
                                                    driver, name="my data")
        self.attach(driver, instance, bdm)

        self.assertEqual({"1": (sr_uuid, "lvmoiscsi", vdi_uuid)},
                         self.vdi_uuids_of(0, instance))
        config = self.device_config(0, sr_uuid)
        self.assertEqual(sanmod.scsi_id(PORTAL, iqn(VOL_LVHD), 0),
                         config["SCSIid"])
        self.assertEqual((HOST, PORT, iqn(VOL_LVHD), "user", "secret"),
                         (config["target"], config["port"],
                          config["targetIQN"], config["chapuser"],
                          config["chappassword"]))
        self.assertNotIn("backend-kind", config)
        x = self.x[0]
        self.assertEqual("my data", x.VDI.get_name_label(
            x.VDI.get_by_uuid(vdi_uuid)))

        self.detach(driver, instance, bdm)
        self.assertEqual({}, self.vdi_uuids_of(0, instance))
        self.assertEqual([], self.volume_srs(0))

    def test_stock_nova_attaches_the_published_vdi(self):
        self._attach_and_detach(STOCK_DRIVER)

    def test_extension_attaches_the_published_vdi(self):
        self._attach_and_detach(OUR_DRIVER)

    def test_stock_nova_needs_sr_type_named(self):
        # Nova's parse_sr_info builds the SR's params from the keys named
        # in introduce_sr_keys only: without sr_type there it introduces
        # an iscsi SR, whose scan has no VDI with the published uuid.  The
        # extension takes the data's sr_type either way.
        stock = self.driver(0, STOCK_DRIVER)
        instance = self.instance()
        self.boot(instance, [])
        bdm, (sr_uuid, vdi_uuid) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb",
                                                    stock)
        data = bdm["connection_info"]["data"]
        data["introduce_sr_keys"].remove("sr_type")
        self.assertRaises(nova_exception.StorageError, self.attach, stock,
                          instance, bdm)
        self.assertEqual([], self.volume_srs(0))

        self.attach(self.driver(0, OUR_DRIVER), instance, bdm)
        self.assertEqual({"1": (sr_uuid, "lvmoiscsi", vdi_uuid)},
                         self.vdi_uuids_of(0, instance))


class TestVdiPerLunStory(LvhdVolumeTestCase):
    """Attach, clone beside the source, live-migrate mixed, detach."""

    def setUp(self):
        super().setUp()
        self.source = self.driver(0, OUR_DRIVER)
        self.dest = self.driver(1, OUR_DRIVER)

    def _boot_mixed(self):
        instance = self.instance(1)
        bdm_legacy = self.volume(VOL_LEGACY, "/dev/xvdb")
        bdm_uuid5 = self.volume(VOL_UUID5, "/dev/xvdc")
        vm_uuid = self.boot(instance, [(bdm_legacy, legacy(VOL_LEGACY)),
                                       (bdm_uuid5, uuid5(VOL_UUID5))])
        bdm_lvhd, ids = self.lvhd_volume(VOL_LVHD, "/dev/xvdd", self.source)
        self.attach(self.source, instance, bdm_lvhd)
        return instance, vm_uuid, [bdm_legacy, bdm_uuid5, bdm_lvhd], ids

    def test_clone_beside_source_then_live_migrate_and_detach(self):
        instance, vm_uuid, bdms, (sr_uuid, vdi_uuid) = self._boot_mixed()
        # The clone of the LVHD volume, resigned, beside its source.
        second = self.instance(2)
        self.boot(second, [])
        bdm_clone, (clone_sr, clone_vdi) = self.clone_volume(
            VOL_LVHD, VOL_CLONE, "/dev/xvdb", self.source)
        self.attach(self.source, second, bdm_clone)
        self.assertNotIn(clone_sr, (sr_uuid,))
        self.assertNotEqual(vdi_uuid, clone_vdi)
        self.assertEqual({"1": (clone_sr, "lvmoiscsi", clone_vdi)},
                         self.vdi_uuids_of(0, second))
        self.assertEqual(sanmod.scsi_id(PORTAL, iqn(VOL_CLONE), 0),
                         self.device_config(0, clone_sr)["SCSIid"])

        data, error = self.migrate(self.source, self.dest, instance, bdms)

        self.assertIsNone(error)
        self.assertEqual(["post"], self.calls)
        self.assertEqual({VOL_LEGACY: legacy(VOL_LEGACY),
                          VOL_UUID5: uuid5(VOL_UUID5), VOL_LVHD: sr_uuid},
                         md.get_volume_sr_uuid_map(data))
        self.assertEqual([1], self.vm_pool(vm_uuid))
        self.assertEqual({
            "1": (legacy(VOL_LEGACY), "iscsi", None),
            "2": (uuid5(VOL_UUID5), "iscsi", None),
            "3": (sr_uuid, "lvmoiscsi", vdi_uuid)},
            {k: (s, t, v if t == "lvmoiscsi" else None) for k, (s, t, v)
             in self.vdi_uuids_of(1, instance).items()})
        self.assertEqual(sanmod.scsi_id(PORTAL, iqn(VOL_LVHD), 0),
                         self.device_config(1, sr_uuid)["SCSIid"])
        moved = sorted((m["source_sr_uuid"], m["dest_sr_uuid"], m["mirrored"])
                       for m in self.x[0].debug.get_migrations())
        self.assertIn((sr_uuid, sr_uuid, False), moved)
        self.assert_no_hazard()
        # The source forgot the migrated VM's SRs, the LVHD one included,
        # and kept the clone's beside it.
        self.assertEqual([clone_sr], self.volume_srs(0))

        for bdm in bdms:
            self.detach(self.dest, instance, bdm)
        self.detach(self.source, second, bdm_clone)
        self.assertEqual([], self.volume_srs(0))
        self.assertEqual([], self.volume_srs(1))
        self.assertEqual({}, self.vdi_uuids_of(1, instance))

    def test_strict_xsm_check_refuses_before_anything_moves(self):
        # A VM whose only volume is an LVHD one: Nova's own relaxed-check
        # test looks at iscsi SRs only; the extension's pre-check refuses,
        # runs recover, and the destination forgets what it introduced.
        instance = self.instance()
        vm_uuid = self.boot(instance, [])
        bdm, (sr_uuid, _) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb",
                                             self.source)
        self.attach(self.source, instance, bdm)
        self.pools.sim.pools[0].settings["relax-xsm-sr-check"] = False

        _, error = self.migrate(self.source, self.dest, instance, [bdm])

        self.assertIsInstance(error, exception.LiveMigrationPreCheckError)
        self.assertIn("relax-xsm-sr-check", str(error))
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual(0, self.calls_of(0, "VM.assert_can_migrate"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertEqual([], self.volume_srs(1))
        self.assertEqual([sr_uuid], self.volume_srs(0))
        self.assert_no_hazard()


class TestStockNovaHazard(LvhdVolumeTestCase):
    """Stock Nova with LVHD volumes: what the extension fixes."""

    def test_stock_nova_mirrors_the_lun_onto_itself(self):
        source = self.driver(0, STOCK_DRIVER)
        dest = self.driver(1, STOCK_DRIVER)
        instance = self.instance()
        vm_uuid = self.boot(instance, [])
        bdm, (sr_uuid, _) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb", source)
        self.attach(source, instance, bdm)
        self.pools.sim.pools[0].settings["relax-xsm-sr-check"] = False

        _, error = self.migrate(source, dest, instance, [bdm])

        # Nova checks the relaxed XSM SR check for iscsi SRs only: XAPI
        # was asked to move the VM and mirrored the volume's LUN onto
        # itself.
        self.assertIsNone(error)
        self.assertEqual([1], self.vm_pool(vm_uuid))
        self.assertNotEqual([], self.x[0].debug.get_hazards())

    def test_stock_nova_leaves_the_lvhd_sr_plugged_on_the_source(self):
        source = self.driver(0, STOCK_DRIVER)
        dest = self.driver(1, STOCK_DRIVER)
        instance = self.instance()
        vm_uuid = self.boot(instance, [])
        bdm, (sr_uuid, _) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb", source)
        self.attach(source, instance, bdm)

        _, error = self.migrate(source, dest, instance, [bdm])

        # Relaxed check on: no mirror, but Nova's tidy-up forgets iscsi SRs
        # only, and the VM's LVHD SR stays plugged where the VM is not.
        # Stock Nova never takes the lease either: both pools plug the SR
        # with sm's GC on, neither holding it (lease hazards, no mirror).
        self.assertIsNone(error)
        self.assertEqual([1], self.vm_pool(vm_uuid))
        self.assertEqual([], [m for x in self.x for m in
                              x.debug.get_migrations() if m["mirrored"]])
        self.assertEqual({("pool0", sr_uuid), ("pool1", sr_uuid)},
                         {(h["pool"], h["sr_uuid"]) for x in self.x
                          for h in x.debug.get_hazards()
                          if h["kind"] == "lease"})
        self.assertEqual([sr_uuid], self.volume_srs(0))
        self.device_config(0, sr_uuid)


class TestThroughTheCinderWrapper(LvhdVolumeTestCase):
    """Stock Nova attaches what ResignVolumeDriver made and published.

    The wrapper runs around the demo's simulated-SAN backend driver
    (:mod:`nova_xenapi_resign.demo_cinder`) on this test's SAN: it formats
    a blank volume, snapshots it and makes a volume from the snapshot
    (resigned); Nova 21.2.4's own VolumeOps attaches both, side by side in
    one pool, from ``initialize_connection``'s data alone.
    """

    def bdm(self, wrapper, volume, mount):
        info = wrapper.initialize_connection(volume, {"host": "compute"})
        return {"mount_device": mount, "connection_info": {
            "driver_volume_type": info["driver_volume_type"],
            "serial": volume["id"], "data": info["data"]}}

    def on_lun(self, wrapper, volume):
        model = sr_mod.inspect_path(wrapper.backend.path(volume))
        (vdi,) = model.vdis
        return model.sr_uuid, "lvmoiscsi", vdi.uuid

    def test_stock_nova_attaches_a_volume_and_its_snapshot_copy(self):
        lvhd_type = {"extra_specs": {"xenapi_resign:sr_type": "lvmoiscsi"}}
        with demo_cinder.cinder_wrapper(self.pools.sim.san,
                                        self.tmpdir) as (wrapper, _):
            source = {"id": VOL_LVHD, "display_name": "my data",
                      "volume_type": lvhd_type}
            source["admin_metadata"] = wrapper.create_volume(source)[
                "admin_metadata"]
            snapshot = {"id": SNAPSHOT, "volume": source}
            wrapper.create_snapshot(snapshot)
            copy = {"id": VOL_CLONE, "display_name": "copy",
                    "volume_type": lvhd_type}
            copy["admin_metadata"] = wrapper.create_volume_from_snapshot(
                copy, snapshot)["admin_metadata"]
            bdms = [self.bdm(wrapper, v, "/dev/xvdb") for v in (source, copy)]
            expected = [self.on_lun(wrapper, v) for v in (source, copy)]
        stock = self.driver(0, STOCK_DRIVER)
        instances = [self.instance(1), self.instance(2)]
        for instance, bdm in zip(instances, bdms):
            self.boot(instance, [])
            self.attach(stock, instance, bdm)
        self.assertNotEqual(expected[0], expected[1])
        for instance, volume_id, want in zip(instances, (VOL_LVHD, VOL_CLONE),
                                             expected):
            self.assertEqual({"1": want}, self.vdi_uuids_of(0, instance))
            self.assertEqual(sanmod.scsi_id(
                demo_cinder.PORTAL, demo_cinder.IQN_PREFIX + volume_id, 0),
                self.device_config(0, want[0])["SCSIid"])
        for instance, bdm in zip(instances, bdms):
            self.detach(stock, instance, bdm)
        self.assertEqual([], self.volume_srs(0))
        # Stock Nova knows no lease: it plugs each SR with sm's GC on while
        # nobody holds the lease, which the embedded XAPI records (nothing
        # would stop a second pool); the lease needs the extension.
        self.assertEqual(
            sorted((want[0], "nobody") for want in expected),
            sorted((h["sr_uuid"], h["lease_owner"])
                   for h in self.x[0].debug.get_hazards()))
        self.assertEqual([], self.x[1].debug.get_hazards())
