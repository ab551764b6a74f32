"""Nova 21.2.4's real XenAPI live-migration code against two simulated pools.

The machinery (drivers loaded by ``load_compute_driver``, the compute
manager's sequence, RPC hops) is :class:`nova_tests.harness.NovaPools`.
"""

import os

from nova import exception as nova_exception
from nova import objects
from nova.virt import driver as virt_driver
from os_xenapi.client import session as xenapi_session
from oslo_utils import importutils
import XenAPI

from nova_tests import harness
from nova_tests.harness import CONF
from nova_tests.harness import OUR_DRIVER
from nova_tests.harness import STOCK_DRIVER
from nova_xenapi_resign import exception
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign.simulator import errors as simerrors
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign import sr_naming
from tests import base
from tests.functional.test_live_migration_sim import iqn
from tests.functional.test_live_migration_sim import legacy
from tests.functional.test_live_migration_sim import PORTAL
from tests.functional.test_live_migration_sim import uuid5

VOL_A = "11111111-2222-4333-8444-555555555555"
VOL_B = "22222222-3333-4444-8555-666666666666"
VOL_C = "33333333-4444-4555-8666-777777777777"
VOL_D = "44444444-5555-4666-8777-888888888888"


class LiveMigrationTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pools = self.useFixture(harness.NovaPools(
            os.path.join(self.tmpdir, "san")))
        self.x = self.pools.x
        self.ctx = self.pools.ctx
        self.calls = self.pools.calls
        self.driver = self.pools.driver
        self.volume = self.pools.volume
        self.introduce = self.pools.introduce
        self.boot = self.pools.boot
        self.instance = self.pools.instance
        self.migrate = self.pools.migrate
        self.calls_of = self.pools.calls_of

    def sr_exists(self, index, sr_uuid):
        try:
            self.x[index].SR.get_by_uuid(sr_uuid)
        except XenAPI.Failure as exc:
            self.assertEqual("UUID_INVALID", exc.details[0])
            return False
        return True

    def vm_pool(self, vm_uuid):
        return [i for i in (0, 1) if vm_uuid in
                [r["uuid"] for r in
                 self.x[i].VM.get_all_records().values()]]

    def assert_no_hazard(self):
        for x in self.x:
            self.assertEqual([], x.debug.get_hazards())
            self.assertEqual([], [m for m in x.debug.get_migrations()
                                  if m["mirrored"]])


class TestStockNovaReproducesBug(LiveMigrationTestCase):
    """Launchpad bug 1566622 with Nova 21.2.4's own driver."""

    def test_legacy_sr_fails_with_uuid_invalid(self):
        source = self.driver(0, STOCK_DRIVER)
        dest = self.driver(1, STOCK_DRIVER)
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, legacy(VOL_A))])

        data, error = self.migrate(source, dest, instance, [bdm])

        # The destination computed the uuid5 name ...
        self.assertEqual([uuid5(VOL_A)], list(data.sr_uuid_map))
        # ... which the source only knows as FA15E-D15C-<volume>.
        self.assertIsInstance(error, nova_exception.MigrationError)
        cause = error.__context__
        self.assertIsInstance(cause, xenapi_session.XenAPI.Failure)
        self.assertEqual(["UUID_INVALID", "SR", uuid5(VOL_A)], cause.details)
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assert_no_hazard()


class TestExtensionDriver(LiveMigrationTestCase):

    def setUp(self):
        super().setUp()
        self.source = self.driver(0, OUR_DRIVER)
        self.dest = self.driver(1, OUR_DRIVER)

    def test_activation_keeps_the_compute_driver_name(self):
        # README: compute_driver = xenapi.XenAPIDriver, the service started
        # as nova-compute-xenapi-resign.  Nova loads the extension's class
        # under Nova's name, so is_xenapi() (device names, novncproxy)
        # holds, and Nova's own class stays Nova's.
        from nova.virt.xenapi import driver as nova_xenapi_driver
        from nova_xenapi_resign import nova_driver
        cls = nova_driver.build_driver_class()
        self.assertIsInstance(self.source, cls)
        self.assertIs(nova_xenapi_driver.XenAPIDriver, cls.__mro__[2])
        self.assertNotIsInstance(self.driver(0, STOCK_DRIVER), cls)
        self.assertIs(nova_xenapi_driver.XenAPIDriver,
                      importutils.import_class("nova.virt.xenapi."
                                               "XenAPIDriver"))
        CONF.set_override("compute_driver", harness.COMPUTE_DRIVER)
        self.addCleanup(CONF.clear_override, "compute_driver")
        self.assertTrue(virt_driver.is_xenapi())
        self.assertEqual("1.5", objects.XenapiLiveMigrateData.VERSION)
        self.assertEqual("auto", CONF.xenapi_resign.sr_naming)

    def test_vmops_and_volumeops_are_subclasses_of_novas(self):
        from nova.virt.xenapi import vmops
        from nova.virt.xenapi import volumeops
        self.assertIsInstance(self.source._vmops, vmops.VMOps)
        self.assertIsNot(vmops.VMOps, type(self.source._vmops))
        for ops in (self.source._volumeops, self.source._vmops._volumeops):
            self.assertIsInstance(ops, volumeops.VolumeOps)
            self.assertIsNot(volumeops.VolumeOps, type(ops))
        stock = self.driver(0, STOCK_DRIVER)
        self.assertIs(vmops.VMOps, type(stock._vmops))

    def test_legacy_and_uuid5_volumes_migrate_without_mirror(self):
        instance = self.instance()
        bdm_a = self.volume(VOL_A, "/dev/xvdb")
        bdm_b = self.volume(VOL_B, "/dev/xvdc")
        vm_uuid = self.boot(instance, [(bdm_a, legacy(VOL_A)),
                                       (bdm_b, uuid5(VOL_B))])

        data, error = self.migrate(self.source, self.dest, instance,
                                   [bdm_a, bdm_b])

        self.assertIsNone(error)
        self.assertEqual(["post"], self.calls)
        self.assertEqual({VOL_A: legacy(VOL_A), VOL_B: uuid5(VOL_B)},
                         md.get_volume_sr_uuid_map(data))
        self.assertEqual({legacy(VOL_A), uuid5(VOL_B)},
                         set(data.sr_uuid_map))
        self.assertEqual([1], self.vm_pool(vm_uuid))
        x1 = self.x[1]
        vm = x1.VM.get_by_uuid(vm_uuid)
        dest_srs = sorted(x1.SR.get_uuid(x1.VDI.get_SR(x1.VBD.get_VDI(v)))
                          for v in x1.VM.get_VBDs(vm))
        self.assertEqual(sorted([legacy(VOL_A), uuid5(VOL_B)]), dest_srs)
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))
        self.assertEqual(1, self.calls_of(0, "VM.migrate_send"))
        self.assert_no_hazard()
        # Nova's tidy-up forgot the source's volume SRs.
        self.assertFalse(self.sr_exists(0, legacy(VOL_A)))
        self.assertFalse(self.sr_exists(0, uuid5(VOL_B)))

    def _migrate_two_uuid5_volumes(self, number, drivers, volumes):
        instance = self.instance(number)
        bdms = [self.volume(v, "/dev/xvd%s" % d)
                for v, d in zip(volumes, "bc")]
        self.boot(instance, [(b, uuid5(v)) for b, v in zip(bdms, volumes)])
        for x in self.x:
            x.debug.reset()
        data, error = self.migrate(*drivers, instance, bdms)
        self.assertIsNone(error)
        counts = self.x[0].debug.get_call_count()["by_method"]
        moved = {(m["source_sr_uuid"], m["dest_sr_uuid"], m["mirrored"])
                 for m in self.x[0].debug.get_migrations()
                 if m["source_sr_uuid"] in data.sr_uuid_map}
        return moved, int(counts["VBD.get_VDI"])

    def test_vdi_map_is_novas_without_the_per_sr_walk(self):
        # Stock Nova can migrate uuid5-named volumes: the map XAPI gets
        # from the extension (answered by the pre-check) is the same.
        stock = (self.driver(0, STOCK_DRIVER), self.driver(1, STOCK_DRIVER))
        stock_moved, stock_walk = self._migrate_two_uuid5_volumes(
            1, stock, (VOL_A, VOL_B))
        ours_moved, ours_walk = self._migrate_two_uuid5_volumes(
            2, (self.source, self.dest), (VOL_C, VOL_D))
        self.assertEqual({(uuid5(v), uuid5(v), False)
                          for v in (VOL_A, VOL_B)}, stock_moved)
        self.assertEqual({(uuid5(v), uuid5(v), False)
                          for v in (VOL_C, VOL_D)}, ours_moved)
        # Nova walks the VM's 2 VBDs once per volume SR: 2 x 2 fewer.
        self.assertEqual(stock_walk - 4, ours_walk)
        self.assert_no_hazard()

    def _refused(self, dest, version):
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, legacy(VOL_A))])

        data, error = self.migrate(self.source, dest, instance, [bdm],
                                   version)

        self.assertIsInstance(error, exception.LiveMigrationPreCheckError)
        self.assertIn(legacy(VOL_A), str(error))
        self.assertIn(uuid5(VOL_A), str(error))
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.assert_can_migrate"))
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertEqual("Running", self.x[0].VM.get_power_state(
            self.x[0].VM.get_by_uuid(vm_uuid)))
        self.assertTrue(self.sr_exists(0, legacy(VOL_A)))
        # The destination's rollback forgot what it introduced.
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))
        self.assertFalse(self.sr_exists(1, legacy(VOL_A)))
        self.assert_no_hazard()

    def test_destination_pinned_to_1_4_is_refused(self):
        self._refused(self.dest, "1.4")

    def test_old_destination_is_refused(self):
        self._refused(self.driver(1, STOCK_DRIVER), "1.4")

    def hide_from_destination(self, volume_id):
        """The destination pool's SAN view lacks this volume's target."""
        view = sanmod.San(os.path.join(self.tmpdir, "dest-view"))
        for vol in (VOL_A, VOL_B, VOL_C, VOL_D):
            if vol == volume_id:
                continue
            target = self.pools.sim.san.target_dir(PORTAL, iqn(vol))
            if os.path.isdir(target):
                visible = view.target_dir(PORTAL, iqn(vol))
                os.makedirs(os.path.dirname(visible), exist_ok=True)
                os.symlink(target, visible)
        self.pools.sim.pools[1].san = view

    def test_failed_connect_keeps_preexisting_destination_sr(self):
        instance = self.instance()
        bdm_a = self.volume(VOL_A, "/dev/xvdb")
        bdm_b = self.volume(VOL_B, "/dev/xvdc")
        vm_uuid = self.boot(instance, [(bdm_a, legacy(VOL_A)),
                                       (bdm_b, legacy(VOL_B))])
        # On the destination another instance already has VOL_A (multiattach)
        # on its legacy SR; VOL_B's target is not visible there.
        x1 = self.x[1]
        sr = self.introduce(x1, legacy(VOL_A), bdm_a)
        other = x1.VM.create({"name_label": "other"})
        self.pools.attach(x1, other, sr)
        self.hide_from_destination(VOL_B)

        self.assertRaises(xenapi_session.XenAPI.Failure, self.migrate,
                          self.source, self.dest, instance, [bdm_a, bdm_b])
        # Nova's own cleanup would have forgotten the other instance's SR.
        self.assertTrue(self.sr_exists(1, legacy(VOL_A)))
        self.assertEqual(1, len(x1.VM.get_VBDs(other)))
        self.assertFalse(self.sr_exists(1, legacy(VOL_B)))
        # The compute manager's rollback at the destination keeps it too.
        self.dest.rollback_live_migration_at_destination(
            self.ctx, instance, [], {"block_device_mapping": [bdm_a, bdm_b]},
            True, None)
        self.assertTrue(self.sr_exists(1, legacy(VOL_A)))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertTrue(self.sr_exists(0, legacy(VOL_A)))
        self.assertTrue(self.sr_exists(0, legacy(VOL_B)))
        self.assert_no_hazard()

    def test_attach_auto_reuses_legacy_sr(self):
        instance = self.instance()
        self.boot(instance, [])
        x0 = self.x[0]
        bdm_b = self.volume(VOL_B, "/dev/xvdb")
        bdm_c = self.volume(VOL_C, "/dev/xvdc")
        self.introduce(x0, legacy(VOL_B), bdm_b)  # attached before Mitaka
        for bdm in (bdm_b, bdm_c):
            self.source.attach_volume(self.ctx, bdm["connection_info"],
                                      instance, bdm["mount_device"])
        vm = x0.VM.get_by_name_label(instance.name)[0]
        srs = sorted(x0.SR.get_uuid(x0.VDI.get_SR(x0.VBD.get_VDI(v)))
                     for v in x0.VM.get_VBDs(vm))
        self.assertEqual(sorted([legacy(VOL_B), uuid5(VOL_C)]), srs)
        self.assertFalse(self.sr_exists(0, uuid5(VOL_B)))
        self.assertFalse(self.sr_exists(0, legacy(VOL_C)))

    def test_attach_legacy_naming(self):
        CONF.set_override("sr_naming", "legacy", "xenapi_resign")
        self.addCleanup(CONF.clear_override, "sr_naming", "xenapi_resign")
        instance = self.instance()
        self.boot(instance, [])
        bdm = self.volume(VOL_C, "/dev/xvdb")
        self.source.attach_volume(self.ctx, bdm["connection_info"],
                                  instance, bdm["mount_device"])
        self.assertTrue(self.sr_exists(0, legacy(VOL_C)))
        self.assertFalse(self.sr_exists(0, uuid5(VOL_C)))


class TestNovaContract(LiveMigrationTestCase):
    """The extension keeps Nova's behaviour where it changes nothing."""

    def setUp(self):
        super().setUp()
        self.source = self.driver(0, OUR_DRIVER)
        self.dest = self.driver(1, OUR_DRIVER)

    def fail_on_source(self, method, nargs, error):
        """Make the source pool's XAPI answer ``method`` with ``error``.

        ``nargs`` for a method the simulator resolves generically; an
        explicitly registered one keeps its own arity.
        """
        pool = self.pools.sim.pools[0]
        original = pool.methods.get(method)

        def failing(*args):
            raise error
        if original is None:
            pool.register(method, failing, nargs)
            self.addCleanup(pool.methods.pop, method)
        else:
            pool.register(method, failing, original.max_args,
                          original.max_args - original.min_args)
            self.addCleanup(pool.methods.__setitem__, method, original)

    def test_xapi_failure_in_the_pre_check_runs_recover(self):
        # A XAPI call of the pre-check fails: Nova's live_migrate contract
        # is recover_method, then the error.
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, uuid5(VOL_A))])
        self.fail_on_source("SR.get_all_records_where", 1, simerrors.XapiError(
            "INTERNAL_ERROR", "database unavailable"))

        data, error = self.migrate(self.source, self.dest, instance, [bdm])

        self.assertIsInstance(error, xenapi_session.XenAPI.Failure)
        self.assertEqual(["INTERNAL_ERROR", "database unavailable"],
                         error.details)
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        # The destination's rollback forgot the SR it introduced.
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))
        self.assert_no_hazard()

    def test_migrate_send_failure_is_novas_migration_error(self):
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, uuid5(VOL_A))])
        self.fail_on_source("VM.migrate_send", None, simerrors.XapiError(
            "VM_MIGRATE_FAILED", "vm", "pool0", "pool1", "network"))

        data, error = self.migrate(self.source, self.dest, instance, [bdm])

        self.assertIsInstance(error, nova_exception.MigrationError)
        self.assertEqual(["recover"], self.calls)
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertTrue(self.sr_exists(0, uuid5(VOL_A)))
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))

    def _migrate_without_volumes(self, number, service):
        instance = self.instance(number)
        vm_uuid = self.boot(instance, [])
        source = self.driver(0, service)
        dest = self.driver(1, service)
        del self.calls[:]
        data, error = self.migrate(source, dest, instance, [])
        self.assertIsNone(error)
        self.assertEqual(["post"], self.calls)
        self.assertEqual([1], self.vm_pool(vm_uuid))
        return self.x[0].debug.get_call_count()["by_method"]

    def test_vm_without_volumes_makes_exactly_novas_calls(self):
        stock = self._migrate_without_volumes(1, STOCK_DRIVER)
        ours = self._migrate_without_volumes(2, OUR_DRIVER)
        # No config_file plugin call, no VBD query: the same XAPI calls as
        # Nova's own driver, method by method.
        self.assertEqual(stock, ours)
        self.assertNotIn("VBD.get_all_records_where", ours)

    def _attach(self, volume_id):
        instance = self.instance()
        self.boot(instance, [])
        bdm = self.volume(volume_id, "/dev/xvdb")
        bdm["connection_info"]["data"]["volume_id"] = int(volume_id)
        self.source.attach_volume(self.ctx, bdm["connection_info"],
                                  instance, bdm["mount_device"])
        return bdm

    def test_integer_volume_id_under_legacy_naming(self):
        # Nova names a legacy SR 'FA15E-D15C-%s' % volume_id.
        CONF.set_override("sr_naming", "legacy", "xenapi_resign")
        self.addCleanup(CONF.clear_override, "sr_naming", "xenapi_resign")
        self._attach("42")
        self.assertTrue(self.sr_exists(0, "FA15E-D15C-42"))

    def test_integer_volume_id_under_auto_naming(self):
        self._attach("43")
        self.assertTrue(self.sr_exists(0, uuid5("43")))
        self.assertFalse(self.sr_exists(0, "FA15E-D15C-43"))


class TestSharedTargetSr(LiveMigrationTestCase):
    """Two LUNs behind one portal+IQN: one uuid5 SR for both volumes."""

    TARGET = iqn("shared")

    def shared_volumes(self, number):
        """VOL_A and VOL_B on one target (uuid5 SR), VOL_C legacy-named."""
        instance = self.instance(number)
        bdm_a = self.volume(VOL_A, "/dev/xvdb", target=self.TARGET, lun=0)
        bdm_b = self.volume(VOL_B, "/dev/xvdc", target=self.TARGET, lun=1)
        bdm_c = self.volume(VOL_C, "/dev/xvdd")
        shared = sr_naming.uuid5_sr_uuid("192.0.2.5", "3260", self.TARGET)
        return instance, shared, [bdm_a, bdm_b, bdm_c], [
            (bdm_a, shared), (bdm_b, shared), (bdm_c, legacy(VOL_C))]

    def test_stock_nova_forgets_the_shared_sr_twice(self):
        # Nova's _get_iscsi_srs lists the SR once per VBD: the VM moves,
        # the second SR.forget fails, and Nova runs recover, not post.
        source = self.driver(0, STOCK_DRIVER)
        dest = self.driver(1, STOCK_DRIVER)
        instance, shared, bdms, volumes = self.shared_volumes(1)
        vm_uuid = self.boot(instance, volumes[:2])

        data, error = self.migrate(source, dest, instance, bdms[:2])

        self.assertIsInstance(error, xenapi_session.XenAPI.Failure)
        self.assertEqual("HANDLE_INVALID", error.details[0])
        self.assertEqual(["recover"], self.calls)
        self.assertEqual([1], self.vm_pool(vm_uuid))

    def assert_moved(self, vm_uuid, to, shared):
        self.assertEqual(["post"], self.calls)
        self.assertEqual([to], self.vm_pool(vm_uuid))
        frm = 1 - to
        # Each source SR forgotten exactly once, during live_migration.
        self.assertEqual(2, self.calls_of(frm, "SR.forget"))
        self.assertFalse(self.sr_exists(frm, shared))
        self.assertFalse(self.sr_exists(frm, legacy(VOL_C)))
        x = self.x[to]
        vm = x.VM.get_by_uuid(vm_uuid)
        self.assertEqual(
            sorted([shared, shared, legacy(VOL_C)]),
            sorted(x.SR.get_uuid(x.VDI.get_SR(x.VBD.get_VDI(v)))
                   for v in x.VM.get_VBDs(vm)))
        self.assert_no_hazard()

    def test_shared_sr_and_legacy_volume_migrate_there_and_back(self):
        pool0 = self.driver(0, OUR_DRIVER)
        pool1 = self.driver(1, OUR_DRIVER)
        instance, shared, bdms, volumes = self.shared_volumes(1)
        vm_uuid = self.boot(instance, volumes)

        data, error = self.migrate(pool0, pool1, instance, bdms)
        self.assertIsNone(error)
        self.assertEqual({VOL_A: shared, VOL_B: shared,
                          VOL_C: legacy(VOL_C)},
                         md.get_volume_sr_uuid_map(data))
        self.assert_moved(vm_uuid, 1, shared)

        del self.calls[:]
        data, error = self.migrate(pool1, pool0, instance, bdms)
        self.assertIsNone(error)
        self.assert_moved(vm_uuid, 0, shared)
