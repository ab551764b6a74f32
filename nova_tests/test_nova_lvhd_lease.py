"""The on-LUN lease of LVHD volume SRs with Nova 21.2.4's real VMOps.

Two simulated pools on one SAN; each host runs the project's dom0 lease
plugin with its own virtual monotonic clock.  After every step the lease
record is read from the LUN image with the package's codec (never through
the code under test), and the owner is compared with the pool and master
uuids XAPI reports.  Every scenario ends with empty hazard lists: no pool
ever had a volume SR plugged with sm's GC on without holding its lease.
"""

import fixtures
from nova import exception as nova_exception

from nova_tests.harness import OUR_DRIVER
from nova_tests.test_nova_lvhd_volumes import LvhdVolumeTestCase
from nova_tests.test_nova_lvhd_volumes import VOL_CLONE
from nova_tests.test_nova_lvhd_volumes import VOL_LVHD
from nova_tests.test_nova_lvhd_volumes import VOLUME_SIZE
from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.simulator import lease as simlease
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import volume_lease
from nova_xenapi_resign.xenapi import volume_utils
from tests.functional.test_live_migration_sim import iqn

#: The option defaults (lease.rst): D = 120 s, T = 10 s.
TIMING = protocol.DEFAULT_TIMING
VOL_SHARED = "55555555-6666-4777-8888-999999999999"


class Killed(BaseException):
    """The source's nova-compute died here (no handler of it runs on)."""


class LeaseTestCase(LvhdVolumeTestCase):

    def setUp(self):
        super().setUp()
        self.source = self.driver(0, OUR_DRIVER)
        self.dest = self.driver(1, OUR_DRIVER)

    def owner(self, index):
        x = self.x[index]
        pool = x.pool.get_all()[0]
        return rec.Owner(x.pool.get_uuid(pool),
                         x.host.get_uuid(x.pool.get_master(pool)))

    def on_lun(self, volume_id=VOL_LVHD):
        with device.open_device(self.lun_path(volume_id)) as dev:
            where = locator.locate(dev)
            return rec.snapshot(locator.DeviceStore(dev, where)
                                .read_slots()).latest

    def assert_owner(self, index):
        latest = self.on_lun()
        self.assertTrue(latest.held, latest)
        self.assertEqual(self.owner(index), latest.owner)

    def clock(self, index):
        pool = self.pools.sim.pools[index]
        return simlease.host_state(pool, pool.master).clock

    def other_config(self, index, sr_uuid):
        x = self.x[index]
        sr = x.SR.get_by_uuid(sr_uuid)
        return (x.SR.get_other_config(sr),
                [x.VDI.get_other_config(v) for v in x.SR.get_VDIs(sr)])

    def booted(self):
        instance = self.instance()
        vm_uuid = self.boot(instance, [])
        bdm, (sr_uuid, _) = self.lvhd_volume(VOL_LVHD, "/dev/xvdb",
                                             self.source)
        self.attach(self.source, instance, bdm)
        return instance, vm_uuid, bdm, sr_uuid

    def prepare(self, instance, bdm):
        """Nova's order up to ``pre_live_migration``; the migrate data."""
        info = {"block_device_mapping": [bdm]}
        hop = self.pools.hop
        data = self.dest.check_can_live_migrate_destination(
            self.ctx, instance, {}, {}, block_migration=None)
        data = self.source.check_can_live_migrate_source(
            self.ctx, instance, hop(data), info)
        data = self.dest.pre_live_migration(self.ctx, instance, info, [],
                                            None, hop(data))
        self.assertEqual(set(volume_lease.DEST_KEYS),
                         set(volume_lease.DEST_KEYS)
                         & set(data.migrate_send_data))
        return info, hop(data)

    def refused(self, instance, bdm):
        """A migration refused by the source's pre-check; the error."""
        info, data = self.prepare(instance, bdm)
        recovered = []

        def recover(context, inst, host, migrate_data):
            recovered.append(inst)
            self.dest.rollback_live_migration_at_destination(
                context, inst, [], info, True, migrate_data)
        try:
            self.source.live_migration(self.ctx, instance, "pool1-host0",
                                       lambda *a: self.fail("post"),
                                       recover, True, data)
        except Exception as exc:
            self.assertEqual([instance], recovered)
            self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
            self.assertEqual([], self.volume_srs(1))
            return exc
        self.fail("the migration was not refused")

    def take_over(self, index, driver, bdm):
        """Pool ``index`` takes the lease: only after D + T by its clock."""
        before = self.clock(index).monotonic()
        driver._resign_state.leases.acquire(volume_lease.lease_for_connection(
            bdm["connection_info"]["data"]))
        self.assertGreaterEqual(self.clock(index).monotonic() - before,
                                TIMING.takeover_wait)
        self.assert_owner(index)
        self.assert_no_hazard()

    def killed_at_hand_over(self, instance, data):
        """The source dies right after VM.migrate_send, at the hand-over."""
        def killed(session, sr_ref):
            self.kill_host(0)
            raise Killed()
        self.useFixture(fixtures.MonkeyPatch(
            "nova_xenapi_resign.xenapi.volume_lease.hold_off_gc", killed))
        self.assertRaises(Killed, self.source.live_migration, self.ctx,
                          instance, "pool1-host0",
                          lambda *a: self.fail("post"),
                          lambda *a: None, True, data)

    def kill_host(self, index):
        """The pool's only host dies: no SM runs there any more."""
        pool = self.pools.sim.pools[index]
        with pool.lock:
            for pbd in pool.db.all_refs("PBD"):
                pool.db.raw("PBD", pbd)["currently_attached"] = False


class TestAttach(LeaseTestCase):

    def test_attach_takes_the_lease_renews_and_detach_releases(self):
        instance, _, bdm, sr_uuid = self.booted()
        self.assert_owner(0)
        self.assertEqual((1, 0), (self.on_lun().generation,
                                  self.on_lun().counter))
        config, vdis = self.other_config(0, sr_uuid)
        self.assertNotIn("gc", config)
        renewer = self.source._resign_state.renewer
        self.assertTrue(renewer.holds(sr_uuid))
        renewer.tick()
        self.assertEqual(1, self.on_lun().counter)

        self.detach(self.source, instance, bdm)
        latest = self.on_lun()
        self.assertEqual((False, None, None, 2),
                         (latest.held, latest.owner, latest.next_owner,
                          latest.counter))
        self.assertFalse(renewer.holds(sr_uuid))
        self.assertEqual([], self.volume_srs(0))
        self.assert_no_hazard()

    def test_attach_refused_while_another_pool_holds_it(self):
        instance, _, bdm, sr_uuid = self.booted()
        other = self.instance(2)
        vm = self.x[1].VM.create({"name_label": other.name})
        self.x[1].VM.start(vm, False, False)
        # Pool 1's host tries to attach the same volume: it waits D + T by
        # its own clock while pool 0 renews, and is refused.
        self.clock(1).hooks.append(
            lambda s: self.source._resign_state.renewer.tick())
        self.assertRaises(exception.LeaseHeld, self.attach, self.dest,
                          other, bdm)
        self.assert_owner(0)
        self.assertEqual([], self.volume_srs(1))
        self.assert_no_hazard()

    def connect_again(self, driver, bdm, name="instance-again"):
        """What a second attach to the already plugged SR does first."""
        return driver._volumeops._connect_to_volume_provider(
            bdm["connection_info"]["data"], name)

    def test_reattach_after_restart_renews_the_held_lease(self):
        instance, _, bdm, sr_uuid = self.booted()
        restarted = self.driver(0, OUR_DRIVER)
        renewer = restarted._resign_state.renewer
        self.assertFalse(renewer.holds(sr_uuid))
        before = self.clock(0).monotonic()
        sr_ref, found = self.connect_again(restarted, bdm)
        self.assertEqual((self.x[0].SR.get_by_uuid(sr_uuid), sr_uuid),
                         (sr_ref, found))
        # Renewed from dom0's own record, no wait; the new renewer has it.
        self.assertEqual(before, self.clock(0).monotonic())
        self.assertEqual((1, 1), (self.on_lun().generation,
                                  self.on_lun().counter))
        self.assertTrue(renewer.holds(sr_uuid))
        self.assert_owner(0)
        self.assert_no_hazard()

    def test_reattach_refused_while_another_pool_took_the_lease(self):
        instance, _, bdm, sr_uuid = self.booted()
        # Pool 0 stalls past D; pool 1 takes the lease after D + T.
        self.clock(0).advance(TIMING.duration + 1)
        self.source._resign_state.renewer.tick()
        params = dict(self.device_config(0, sr_uuid), sr_type="lvmoiscsi")
        volume_utils.introduce_sr(self.dest._session, sr_uuid, "volume",
                                  params, hold_gc=True)
        self.take_over(1, self.dest, bdm)
        self.dest._resign_state.renewer.add(
            volume_lease.lease_for_connection(
                bdm["connection_info"]["data"]),
            self.x[1].SR.get_by_uuid(sr_uuid))
        # Pool 0 attaches another volume of that SR: refused, its SR kept
        # (another VM of the pool uses it) with the GC off.
        self.clock(0).hooks.append(
            lambda s: self.dest._resign_state.renewer.tick())
        self.assertRaises(exception.LeaseHeld, self.connect_again,
                          self.source, bdm)
        self.assertTrue(self.sr_exists(0, sr_uuid))
        self.assertEqual("false", self.other_config(0, sr_uuid)[0]["gc"])
        self.assertFalse(self.source._resign_state.renewer.holds(sr_uuid))
        self.assert_owner(1)
        self.assert_no_hazard()


class TestMigration(LeaseTestCase):

    def test_live_migration_hands_the_lease_over(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        info, data = self.prepare(instance, bdm)
        # The destination plugged the SR with sm's GC and leaf-coalesce
        # off; the source still holds the lease.
        self.assert_owner(0)
        config, vdis = self.other_config(1, sr_uuid)
        self.assertEqual("false", config["gc"])
        self.assertEqual(["false"], [v["leaf-coalesce"] for v in vdis])
        steps = []

        lun = volume_lease.lease_for_connection(
            bdm["connection_info"]["data"]).device[len(simlease.BY_ID):]
        pool0 = self.pools.sim.pools[0]
        dom0 = simlease.host_state(pool0, pool0.master)
        from nova.virt.xenapi import volume_utils as nova_volume_utils
        original = nova_volume_utils.forget_sr

        def forget(session, sr_ref):
            # Nova's tidy-up, after VM.migrate_send: the source handed the
            # lease over (reserved for the destination) while the SR was
            # still plugged and its LUN visible in dom0, GC held off.
            latest = self.on_lun()
            steps.append(("handed over", latest.held, latest.next_owner,
                          lun in dom0.luns,
                          self.other_config(0, sr_uuid)))
            original(session, sr_ref)
        self.useFixture(fixtures.MonkeyPatch(
            "nova.virt.xenapi.volume_utils.forget_sr", forget))

        def post(context, inst, host, block_migration, migrate_data):
            # SM logged out of the target with its last SR: the source's
            # dom0 no longer sees the LUN.
            steps.append(("forgotten", self.sr_exists(0, sr_uuid),
                          lun in dom0.luns))
            self.source.post_live_migration(context, inst, info,
                                            migrate_data)
            self.dest.post_live_migration_at_destination(
                context, inst, [], block_migration, info)

        def recover(*args):
            self.fail("recover ran")

        self.source.live_migration(self.ctx, instance, "pool1-host0", post,
                                   recover, True, data)

        self.assertEqual(
            [("handed over", False, self.owner(1), True,
              ({"gc": "false"}, [{"leaf-coalesce": "false"}])),
             ("forgotten", False, False)], steps)
        # The destination's offer never reached XAPI's VM.migrate_send.
        self.assertEqual(set(), set(volume_lease.DEST_KEYS)
                         & set(data.migrate_send_data))
        self.assert_owner(1)
        self.assertEqual(2, self.on_lun().generation)
        config, vdis = self.other_config(1, sr_uuid)
        self.assertNotIn("gc", config)
        self.assertEqual([None], [v.get("leaf-coalesce") for v in vdis])
        self.assertEqual([1], self.vm_pool(vm_uuid))
        self.assertTrue(self.dest._resign_state.renewer.holds(sr_uuid))
        self.assertFalse(self.source._resign_state.renewer.holds(sr_uuid))
        self.assertEqual([], self.volume_srs(0))
        self.assert_no_hazard()

    def test_destination_dies_before_acquire_lease_expires_safely(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        info, data = self.prepare(instance, bdm)
        params = dict(self.device_config(1, sr_uuid), sr_type="lvmoiscsi")

        def post(context, inst, host, block_migration, migrate_data):
            self.source.post_live_migration(context, inst, info,
                                            migrate_data)
            self.kill_host(1)  # before post_live_migration_at_destination

        self.source.live_migration(self.ctx, instance, "pool1-host0", post,
                                   lambda *a: self.fail("recover"), True,
                                   data)
        # Free, reserved for the dead destination: nobody changes the SR.
        latest = self.on_lun()
        self.assertEqual((False, self.owner(1)),
                         (latest.held, latest.next_owner))
        self.assertEqual("false", self.other_config(1, sr_uuid)[0]["gc"])
        self.assert_no_hazard()
        # Anyone else (here the source's host, which has to plug the SR
        # again to see the LUN) takes it only after D + T of silence by
        # its own clock.
        volume_utils.introduce_sr(self.source._session, sr_uuid, "volume",
                                  params, hold_gc=True)
        self.take_over(0, self.source, bdm)

    def test_source_killed_after_migrate_send(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        info, data = self.prepare(instance, bdm)

        self.killed_at_hand_over(instance, data)
        self.assertEqual([1], self.vm_pool(vm_uuid))
        # The dead source still holds the lease; the destination keeps its
        # GC off until it can take it.
        self.assert_owner(0)
        self.assertEqual("false", self.other_config(1, sr_uuid)[0]["gc"])
        before = self.clock(1).monotonic()
        self.dest.post_live_migration_at_destination(self.ctx, instance, [],
                                                     True, info)
        self.assertGreaterEqual(self.clock(1).monotonic() - before,
                                TIMING.takeover_wait)
        self.assert_owner(1)
        self.assertNotIn("gc", self.other_config(1, sr_uuid)[0])
        self.assert_no_hazard()
        # The source's pool, back: its next pre-check reports and forgets
        # the SR it had plugged without the lease.
        restarted = self.driver(0, OUR_DRIVER)
        state = restarted._resign_state
        self.assertEqual([sr_uuid], volume_lease.report_stale(
            state.leases, state.renewer))
        self.assertEqual([], self.volume_srs(0))
        self.assert_no_hazard()

    def test_two_volumes_source_killed_destination_waits_once(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        bdm2, (sr2, _) = self.lvhd_volume(VOL_CLONE, "/dev/xvdc",
                                          self.source)
        self.attach(self.source, instance, bdm2)
        info = {"block_device_mapping": [bdm, bdm2]}
        hop = self.pools.hop
        data = self.dest.check_can_live_migrate_destination(
            self.ctx, instance, {}, {}, block_migration=None)
        data = self.source.check_can_live_migrate_source(
            self.ctx, instance, hop(data), info)
        data = hop(self.dest.pre_live_migration(self.ctx, instance, info,
                                                [], None, hop(data)))
        self.killed_at_hand_over(instance, data)
        # Both leases the dead source's: one acquire_many watches both
        # for one D + T and waits one claim wait, not one of each per SR.
        before = self.clock(1).monotonic()
        plugin_calls = self.calls_of(1, "host.call_plugin")
        self.dest.post_live_migration_at_destination(self.ctx, instance, [],
                                                     True, info)
        self.assertEqual(TIMING.takeover_wait + TIMING.claim_wait,
                         self.clock(1).monotonic() - before)
        self.assertEqual(1, self.calls_of(1, "host.call_plugin")
                         - plugin_calls)
        for volume in (VOL_LVHD, VOL_CLONE):
            self.assertEqual(self.owner(1), self.on_lun(volume).owner)
        self.assert_no_hazard()

    def test_rollback_keeps_the_lease_on_the_source(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        info, data = self.prepare(instance, bdm)
        pool = self.pools.sim.pools[0]
        original = pool.methods["VM.migrate_send"]

        def failing(*args):
            raise RuntimeError("destination unreachable")
        pool.register("VM.migrate_send", failing, original.max_args,
                      original.max_args - original.min_args)
        self.addCleanup(pool.methods.__setitem__, "VM.migrate_send",
                        original)
        recovered = []

        def recover(context, inst, host, migrate_data):
            recovered.append(self.on_lun().owner)
            self.dest.rollback_live_migration_at_destination(
                context, inst, [], info, True, migrate_data)

        self.assertRaises(nova_exception.MigrationError,
                          self.source.live_migration, self.ctx,
                          instance, "pool1-host0",
                          lambda *a: self.fail("post"), recover, True, data)
        self.assertEqual([self.owner(0)], recovered)
        self.assert_owner(0)
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertEqual([], self.volume_srs(1))
        self.assertTrue(self.source._resign_state.renewer.holds(sr_uuid))
        self.assertNotIn("gc", self.other_config(0, sr_uuid)[0])
        self.assert_no_hazard()

    def test_rollback_after_hand_over_reacquires_before_gc_runs(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        state = self.source._resign_state
        lease = volume_lease.lease_for_connection(
            bdm["connection_info"]["data"])
        sr_ref = self.x[0].SR.get_by_uuid(sr_uuid)
        # As a failed migration leaves it: GC off, lease handed over.
        volume_lease.hold_off_gc(state.session, sr_ref)
        state.renewer.drop(sr_uuid)
        state.leases.hand_over(lease, self.owner(1))
        before = self.clock(0).monotonic()
        self.assertEqual([sr_uuid], volume_lease.reacquire_at_source(
            state.leases, state.renewer, [lease]))
        self.assertGreaterEqual(self.clock(0).monotonic() - before,
                                TIMING.takeover_wait)
        self.assert_owner(0)
        self.assertNotIn("gc", self.other_config(0, sr_uuid)[0])
        self.assert_no_hazard()

    def test_rollback_renews_a_lease_dom0_still_holds(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        state = self.source._resign_state
        lease = volume_lease.lease_for_connection(
            bdm["connection_info"]["data"])
        state.renewer.drop(sr_uuid)   # e.g. nova-compute restarted
        before = self.clock(0).monotonic()
        self.assertEqual([], volume_lease.reacquire_at_source(
            state.leases, state.renewer, [lease]))
        # Renewed from dom0's record: no wait, same generation.
        self.assertEqual(before, self.clock(0).monotonic())
        self.assertEqual((1, 1), (self.on_lun().generation,
                                  self.on_lun().counter))
        self.assertTrue(state.renewer.holds(sr_uuid))
        self.assert_owner(0)
        self.assert_no_hazard()


class TestRefusals(LeaseTestCase):

    def test_renewal_stall_refuses_and_is_taken_only_after_d(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        renewer = self.source._resign_state.renewer
        self.clock(0).advance(TIMING.duration + 1)  # dom0 paused past D
        self.assertEqual("LeaseLost", renewer.tick()[sr_uuid][0])
        self.assertEqual("false", self.other_config(0, sr_uuid)[0]["gc"])
        exc = self.refused(instance, bdm)
        self.assertIsInstance(exc, exception.LiveMigrationPreCheckError)
        self.assertIn("renews it no longer", str(exc))
        # Another pool takes it only after D + T of silence by its clock.
        params = dict(self.device_config(0, sr_uuid), sr_type="lvmoiscsi")
        volume_utils.introduce_sr(self.dest._session, sr_uuid, "volume",
                                  params, hold_gc=True)
        self.take_over(1, self.dest, bdm)

    def test_clock_skew_refused_then_overridden(self):
        instance, vm_uuid, bdm, sr_uuid = self.booted()
        self.pools.sim.pools[1].settings["clock_offset"] = 3600.0
        exc = self.refused(instance, bdm)
        self.assertIsInstance(exc, exception.ClockSkewTooLarge)
        self.assertIn(self.owner(0).host, str(exc))
        self.assertIn(self.owner(1).host, str(exc))
        self.assertGreater(exc.kwargs["skew"], 3500)
        self.assert_owner(0)
        self.assertEqual([], self.volume_srs(1))

        conf = self.source._nova_conf
        conf.set_override("ignore_clock_skew", True, "xenapi_resign")
        self.addCleanup(conf.clear_override, "ignore_clock_skew",
                        "xenapi_resign")
        logger = self.useFixture(fixtures.FakeLogger(
            name="nova_xenapi_resign.lease.clock_guard"))
        data, error = self.migrate(self.source, self.dest, instance, [bdm])
        self.assertIsNone(error)
        self.assertIn("Operator override", logger.output)
        self.assertIn(self.owner(1).host, logger.output)
        self.assertEqual([1], self.vm_pool(vm_uuid))
        self.assert_owner(1)
        self.assert_no_hazard()

    def test_two_migrations_sharing_one_sr_are_refused(self):
        # One LUN holding an LVHD SR with two VDIs and the lease LV; each
        # VDI a volume of its own VM.
        bdm_a = self.volume(VOL_SHARED, "/dev/xvdb", size=VOLUME_SIZE * 2)
        sr_uuid = sr_naming.uuid5_sr_uuid(*bdm_a["connection_info"]["data"][
            "target_portal"].split(":"), iqn(VOL_SHARED))
        vdis = [create.VdiSpec("5%07d-0000-4000-8000-000000000000" % i,
                               "vhd", 4 * 1024 * 1024, name_label="d%d" % i)
                for i in (1, 2)]
        plan = create.plan_format(
            sr_uuid, vdis, device_size=VOLUME_SIZE * 2,
            plain_lvs=((locator.LEASE_LV, protocol.initial_area(sr_uuid)),))
        with device.open_device(self.lun_path(VOL_SHARED),
                                writable=True) as dev:
            create.apply_plan(dev, plan)
        data = bdm_a["connection_info"]["data"]
        config = volume_utils.lvmoiscsi_device_config(
            self.source._session, volume_utils.iscsi_device_config(data), 0)
        instances, bdms = [], []
        for number, spec in enumerate(vdis, 1):
            bdm = {"connection_info": {
                "driver_volume_type": "iscsi", "serial": spec.uuid,
                "data": volume_utils.lvhd_connection_data(
                    dict(data, volume_id=spec.uuid), sr_uuid, spec.uuid,
                    config["SCSIid"])}, "mount_device": "/dev/xvdb"}
            instance = self.instance(number)
            self.boot(instance, [])
            self.attach(self.source, instance, bdm)
            instances.append(instance)
            bdms.append(bdm)
        for instance, bdm in zip(instances, bdms):
            exc = self.refused(instance, bdm)
            self.assertIsInstance(exc, exception.LiveMigrationPreCheckError)
            self.assertIn("used by other VMs too", str(exc))
        self.assertEqual(self.owner(0), self.on_lun(VOL_SHARED).owner)
        self.assertEqual([], self.volume_srs(1))
        self.assert_no_hazard()
