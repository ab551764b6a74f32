"""VM.migrate_send over XML-RPC: XAPI's storage-motion rule."""

import hashlib
import time

from tests.functional import test_simulator as ts

IQN2 = "iqn.2010-01.com.example:storage.vol-2"
LEGACY = "FA15E-D15C-11111111-2222-3333-4444-555555555555"
MiB = ts.MiB


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class MigrationTest(ts.SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.lun = self.san.create_lun(ts.PORTAL, ts.IQN, 0, 8 * MiB)
        with open(self.lun, "r+b") as f:
            f.write(b"SOURCE-DATA")
            f.seek(5 * MiB)
            f.write(b"MORE")
        self.lun_digest = digest(self.lun)
        self.x1 = self.sim.session(1).xenapi
        # Source: the volume attached under its legacy SR name, a running VM.
        self.sr0, _ = ts.connect_iscsi(self.x, LEGACY, ts.iscsi_params())
        self.vdi0 = self.x.SR.get_VDIs(self.sr0)[0]
        self.vdi_uuid = self.x.VDI.get_uuid(self.vdi0)
        self.vm = self.x.VM.create({"name_label": "instance-1"})
        self.vm_uuid = self.x.VM.get_uuid(self.vm)
        self.vbd = self.x.VBD.create({
            "VM": self.vm, "VDI": self.vdi0, "userdevice": "1",
            "bootable": False, "mode": "RW", "type": "Disk",
            "unpluggable": True, "empty": False,
            "other_config": {"osvol": "True"}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}})
        net0 = self.x.network.get_all()[0]
        self.vif = self.x.VIF.create({"VM": self.vm, "network": net0,
                                      "device": "0",
                                      "MAC": "02:00:00:aa:bb:cc",
                                      "MTU": "1500", "other_config": {}})
        self.x.VM.start(self.vm, False, False)

    def receive(self, x):
        host = x.pool.get_master(x.pool.get_all()[0])
        net = x.network.get_all()[0]
        return x.host.migrate_receive(host, net, {})

    def dest_volume(self, sr_uuid, params):
        sr, _ = ts.connect_iscsi(self.x1, sr_uuid, params)
        return sr

    def migrations(self):
        return self.x.debug.get_migrations()

    def test_receive_token(self):
        token = self.receive(self.x1)
        self.assertEqual(self.sim.urls[1], token["master"])
        for key in ("SM", "xenops", "host", "session_id"):
            self.assertIn(key, token)

    def test_intra_pool_no_storage_motion(self):
        token = self.receive(self.x)
        ref = self.x.VM.migrate_send(self.vm, token, True,
                                     {self.vdi0: self.sr0}, {}, {})
        self.assertEqual(self.vm, ref)
        self.assertEqual([self.vbd], self.x.VM.get_VBDs(self.vm))
        self.assertEqual(self.vdi0, self.x.VBD.get_VDI(self.vbd))
        [entry] = self.migrations()
        self.assertFalse(entry["mirrored"])
        self.assertTrue(entry["intra_pool"])
        self.assertEqual([], self.x.debug.get_hazards())
        self.assertEqual(self.lun_digest, digest(self.lun))
        # check_vdi_map: every VDI must be mapped, intra-pool too.
        self.assertFailure(["VDI_NOT_IN_MAP", self.vdi0],
                           self.x.VM.migrate_send, self.vm, token, True, {},
                           {}, {})
        self.assertEqual(self.vdi0, self.x.VBD.get_VDI(self.vbd))

    def test_cross_pool_relaxed_equal_sr_uuid_no_mirror(self):
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        token = self.receive(self.x1)
        self.x.VM.assert_can_migrate(self.vm, token, True,
                                     {self.vdi0: sr1}, {}, {})
        new_vm = self.x.VM.migrate_send(self.vm, token, True,
                                        {self.vdi0: sr1}, {}, {})
        # The VM now lives in the destination pool only.
        self.assertEqual(new_vm, self.x1.VM.get_by_uuid(self.vm_uuid))
        self.assertFailure(["UUID_INVALID", "VM", self.vm_uuid],
                           self.x.VM.get_by_uuid, self.vm_uuid)
        self.assertFailure(["HANDLE_INVALID", "VBD", self.vbd],
                           self.x.VBD.get_record, self.vbd)
        [vbd1] = self.x1.VM.get_VBDs(new_vm)
        vdi1 = self.x1.VBD.get_VDI(vbd1)
        self.assertEqual(self.vdi_uuid, self.x1.VDI.get_uuid(vdi1))
        self.assertEqual(sr1, self.x1.VDI.get_SR(vdi1))
        self.assertEqual("Running", self.x1.VM.get_power_state(new_vm))
        self.assertEqual(1, len(self.x1.VM.get_VIFs(new_vm)))
        [entry] = self.migrations()
        self.assertFalse(entry["mirrored"])
        self.assertEqual([], self.x.debug.get_hazards())
        self.assertEqual(self.lun_digest, digest(self.lun))

    def test_cross_pool_relaxed_equal_sr_uuid_vdi_missing(self):
        self.san.create_lun(ts.PORTAL, IQN2, 0, 8 * MiB)
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params(iqn=IQN2))
        token = self.receive(self.x1)
        self.assertFailure(
            ["INTERNAL_ERROR",
             "SR UUID matches on destination but VDI does not exist"],
            self.x.VM.migrate_send, self.vm, token, True, {self.vdi0: sr1},
            {}, {})
        self.assertEqual(self.vm, self.x.VM.get_by_uuid(self.vm_uuid))

    def assertRefusedNothingMoved(self, sr1):
        """Raw iSCSI has no VDI_MIRROR: XAPI refuses before moving."""
        token = self.receive(self.x1)
        for call in (self.x.VM.assert_can_migrate, self.x.VM.migrate_send):
            self.assertFailure(["SR_DOES_NOT_SUPPORT_MIGRATION", self.sr0],
                               call, self.vm, token, True, {self.vdi0: sr1},
                               {}, {})
        self.assertEqual(self.vm, self.x.VM.get_by_uuid(self.vm_uuid))
        self.assertEqual("Running", self.x.VM.get_power_state(self.vm))
        self.assertFailure(["UUID_INVALID", "VM", self.vm_uuid],
                           self.x1.VM.get_by_uuid, self.vm_uuid)
        self.assertEqual([], self.migrations())
        self.assertEqual([], self.x.debug.get_hazards())
        self.assertEqual(self.lun_digest, digest(self.lun))

    def test_cross_pool_different_sr_uuid_is_refused(self):
        dest_lun = self.san.create_lun(ts.PORTAL, IQN2, 0, 8 * MiB)
        empty = digest(dest_lun)
        sr1 = self.dest_volume(ts.nova_sr_uuid("192.0.2.5", "3260", IQN2),
                               ts.iscsi_params(iqn=IQN2))
        self.assertRefusedNothingMoved(sr1)
        self.assertEqual(empty, digest(dest_lun))

    def test_same_lun_under_another_sr_uuid_is_refused(self):
        # Bug 1566622's naive fix: the destination names the same LUN's SR
        # by uuid5 while the source uses the legacy name.  XenServer 7.1+
        # refuses to mirror raw iSCSI, so the LUN is never mirrored onto
        # itself (only LVHD SRs can be: see test_xapi_fidelity).
        new_uuid = ts.nova_sr_uuid("192.0.2.5", "3260", ts.IQN)
        sr1 = self.dest_volume(new_uuid, ts.iscsi_params())
        self.assertRefusedNothingMoved(sr1)

    def test_strict_check_refuses_even_equal_uuids(self):
        self.sim.pools[0].settings["relax-xsm-sr-check"] = False
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        self.assertRefusedNothingMoved(sr1)

    def test_vdi_not_in_map(self):
        token = self.receive(self.x1)
        for method in (self.x.VM.assert_can_migrate, self.x.VM.migrate_send):
            self.assertFailure(["VDI_NOT_IN_MAP", self.vdi0], method,
                               self.vm, token, True, {}, {}, {})

    def test_bad_destination_sr(self):
        token = self.receive(self.x1)
        self.assertFailure(["HANDLE_INVALID", "SR", self.sr0],
                           self.x.VM.migrate_send, self.vm, token, True,
                           {self.vdi0: self.sr0}, {}, {})

    def test_halted_vm_may_migrate_with_live_true(self):
        self.x.VM.hard_shutdown(self.vm)
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        token = self.receive(self.x1)
        new_vm = self.x.VM.migrate_send(self.vm, token, True,
                                        {self.vdi0: sr1}, {}, {})
        self.assertEqual("Halted", self.x1.VM.get_power_state(new_vm))
        self.assertEqual("OpaqueRef:NULL", self.x1.VM.get_resident_on(new_vm))

    def test_async_migrate_send(self):
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        token = self.receive(self.x1)
        task = self.x.Async.VM.migrate_send(self.vm, token, True,
                                            {self.vdi0: sr1}, {}, {})
        for _ in range(300):
            if self.x.task.get_status(task) != "pending":
                break
            time.sleep(0.01)
        self.assertEqual("success", self.x.task.get_status(task))
        new_vm = self.x1.VM.get_by_uuid(self.vm_uuid)
        self.assertEqual("<value>%s</value>" % new_vm,
                         self.x.task.get_result(task))

    def test_xapi_calls_are_counted(self):
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        token = self.receive(self.x1)
        self.x.debug.reset()
        self.x.SR.get_by_uuid(LEGACY)
        self.x.VM.migrate_send(self.vm, token, True, {self.vdi0: sr1}, {},
                               {})
        counts = self.x.debug.get_call_count()
        self.assertEqual("2", counts["total"])
        self.assertEqual("1", counts["by_method"]["VM.migrate_send"])

    def test_nova_block_migration_root_disk_and_volume(self):
        # Nova maps the root disk to the destination default SR and each
        # volume's VDI to the destination SR of the same uuid.
        self.x.VM.hard_shutdown(self.vm)
        local0 = self.x.pool.get_default_SR(self.x.pool.get_all()[0])
        root = self.x.VDI.create({"SR": local0, "name_label": "root",
                                  "virtual_size": str(2 ** 33)})
        self.x.VBD.create({"VM": self.vm, "VDI": root, "userdevice": "0",
                           "bootable": True, "mode": "RW", "type": "Disk",
                           "empty": False})
        self.x.VM.start(self.vm, False, False)
        sr1 = self.dest_volume(LEGACY, ts.iscsi_params())
        local1 = self.x1.pool.get_default_SR(self.x1.pool.get_all()[0])
        token = self.receive(self.x1)
        new_vm = self.x.VM.migrate_send(
            self.vm, token, True, {root: local1, self.vdi0: sr1}, {}, {})
        srs = sorted(self.x1.VDI.get_SR(self.x1.VBD.get_VDI(v))
                     for v in self.x1.VM.get_VBDs(new_vm))
        self.assertEqual(sorted([local1, sr1]), srs)
        by_vdi = {m["vdi"]: m for m in self.migrations()}
        self.assertTrue(by_vdi[self.x.VDI.get_uuid(root)]["mirrored"])
        self.assertFalse(by_vdi[self.vdi_uuid]["mirrored"])
        self.assertEqual([], self.x.debug.get_hazards())
