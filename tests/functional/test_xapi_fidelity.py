"""The embedded XAPI refuses what a real XenServer host refuses (issue 11).

One test class per rule, driven only through the PyPI ``XenAPI`` client over
XML-RPC.  Each cites the real code it reproduces; the expected codes, their
parameters and the SM numbers come from there (xapi-project/xen-api,
xapi-project/sm), not from the simulator.
"""

import hashlib
import os
import subprocess
import sys
import uuid
from xml.etree import ElementTree

import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.simulator import fixture
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign.xenapi import session as xenapi_session
from nova_xenapi_resign.xenapi import volume_utils
from tests import base

MiB = 1024 * 1024
HOST = "192.0.2.30"
PORTAL = HOST + ":3260"
IQN = "iqn.2010-01.com.example:fidelity"
LEGACY = "FA15E-D15C-0b9bf0a4-4ad3-4c55-9f44-3b1a5c6e0d02"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def iscsi_config(iqn=IQN, **extra):
    config = {"target": HOST, "port": "3260", "targetIQN": iqn}
    config.update(extra)
    return config


class FidelityTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(fixture.SimulatorFixture(
            pools=2, san_dir=self.tmpdir + "/san"))
        self.san = self.sim.san
        self.x = self.sim.session(0).xenapi
        self.x1 = self.sim.session(1).xenapi
        self.host = self.x.pool.get_master(self.x.pool.get_all()[0])

    def assertFailure(self, details, func, *args):
        exc = self.assertRaises(XenAPI.Failure, func, *args)
        self.assertEqual(details, exc.details)
        return exc

    def lvhd_lun(self, lun=0, sr_uuid=None, vdis=None, iqn=IQN):
        """A LUN holding an LVHD SR; returns (path, sr uuid, VDI uuids)."""
        path = self.san.create_lun(PORTAL, iqn, lun, 64 * MiB)
        sr_uuid = sr_uuid or str(uuid.uuid4())
        if vdis is None:
            vdis = [str(uuid.uuid4())]
        specs = [create.VdiSpec(v, "vhd", 8 * MiB, name_label="disk-%d" % i)
                 for i, v in enumerate(vdis)]
        with device.open_device(path, writable=True) as dev:
            create.format_sr(dev, sr_uuid, specs)
        return path, sr_uuid, list(vdis)

    def scsi_id(self, lun=0, iqn=IQN):
        return sanmod.scsi_id(PORTAL, iqn, lun)

    def introduce(self, x, sr_uuid, sr_type, config, sm_config=None):
        """SR.introduce + PBD.create (not plugged); returns (sr, pbd)."""
        host = x.pool.get_master(x.pool.get_all()[0])
        sr = x.SR.introduce(sr_uuid, "sr", "", sr_type, "", True,
                            sm_config or {})
        pbd = x.PBD.create({"host": host, "SR": sr,
                            "device_config": config})
        return sr, pbd

    def attach(self, x, sr_uuid, sr_type, config):
        sr, pbd = self.introduce(x, sr_uuid, sr_type, config)
        x.PBD.plug(pbd)
        x.SR.scan(sr)
        return sr, pbd

    def running_vm(self, x, vdi):
        vm = x.VM.create({"name_label": "instance"})
        x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "1",
                      "bootable": False, "mode": "RW", "type": "Disk",
                      "unpluggable": True, "empty": False,
                      "other_config": {"osvol": "True"},
                      "qos_algorithm_type": "", "qos_algorithm_params": {}})
        x.VM.start(vm, False, False)
        return vm

    def token(self, x):
        host = x.pool.get_master(x.pool.get_all()[0])
        return x.host.migrate_receive(host, x.network.get_all()[0], {})


class Rule1LvmoiscsiNeedsScsiIdTest(FidelityTestCase):
    """Rule 1: lvmoiscsi needs SCSIid.

    xapi-project/sm drivers/LVHDoISCSISR.py ``load``: no SCSIid ->
    ``ConfigSCSIid`` (SR_BACKEND_FAILURE_107, drivers/XE_SR_ERRORCODES.xml)
    with ``print_LUNs_XML``'s ``<iscsi-target><LUN>`` list; the LUN is
    found by SCSIid only.
    """

    def test_probe_plug_create_without_scsi_id_list_the_luns(self):
        self.lvhd_lun(0)
        self.san.create_lun(PORTAL, IQN, 1, 32 * MiB)
        by_lun_id = iscsi_config(LUNid="0")
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.probe, self.host,
                                by_lun_id, "lvmoiscsi", {})
        self.assertEqual(["SR_BACKEND_FAILURE_107", ""],
                         exc.details[:2])
        self.assertTrue(exc.details[2].startswith(
            "The SCSIid parameter is missing or incorrect"))
        root = ElementTree.fromstring(exc.details[3].strip())
        self.assertEqual("iscsi-target", root.tag)
        luns = root.findall("LUN")
        self.assertEqual(
            [["vendor", "serial", "LUNid", "size", "SCSIid"]] * 2,
            [[child.tag for child in lun] for lun in luns])
        self.assertEqual(
            {"0": self.scsi_id(0), "1": self.scsi_id(1)},
            {lun.findtext("LUNid").strip(): lun.findtext("SCSIid").strip()
             for lun in luns})
        self.assertEqual(str(32 * MiB), luns[1].findtext("size").strip())

        sr, pbd = self.introduce(self.x, str(uuid.uuid4()), "lvmoiscsi",
                                 by_lun_id)
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_107", exc.details[0])
        self.assertFalse(self.x.PBD.get_currently_attached(pbd))

        before = set(self.x.SR.get_all())
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.create, self.host,
                                by_lun_id, "0", "new", "", "lvmoiscsi", "",
                                True, {})
        self.assertEqual("SR_BACKEND_FAILURE_107", exc.details[0])
        self.assertEqual(before, set(self.x.SR.get_all()))

    def test_lun_id_never_picks_the_lun(self):
        _, sr_uuid, vdis = self.lvhd_lun(0)
        self.san.create_lun(PORTAL, IQN, 1, 32 * MiB)
        # LUNid says 1, SCSIid says LUN 0: SM attaches LUN 0.
        sr, _ = self.attach(self.x, sr_uuid, "lvmoiscsi",
                            iscsi_config(LUNid="1", SCSIid=self.scsi_id(0)))
        self.assertEqual(vdis, [self.x.VDI.get_uuid(v)
                                for v in self.x.SR.get_VDIs(sr)])

    def test_two_step_flow_of_the_extension(self):
        _, sr_uuid, _ = self.lvhd_lun(0)
        session = xenapi_session.XenAPISession(self.sim.session(0))
        config = volume_utils.lvmoiscsi_device_config(session,
                                                      iscsi_config(), 0)
        self.assertEqual(self.scsi_id(0), config["SCSIid"])
        srlist = self.x.SR.probe(self.host, config, "lvmoiscsi", {})
        self.assertIn("<UUID>%s</UUID>" % sr_uuid, srlist)
        exc = self.assertRaises(exception.StorageError,
                                volume_utils.lvmoiscsi_device_config,
                                session, iscsi_config(), 5)
        self.assertIn("lists no LUN 5", str(exc))
        # Any other failure (here: no IQN, 96) is XAPI's, re-raised.
        exc = self.assertRaises(XenAPI.Failure,
                                volume_utils.lvmoiscsi_device_config,
                                session, {"target": HOST}, 0)
        self.assertEqual("SR_BACKEND_FAILURE_96", exc.details[0])


class Rule2LvhdSrUuidShapeTest(FidelityTestCase):
    """Rule 2: an LVHD SR uuid must be uuid-shaped.

    xapi-project/sm drivers/LVHDSR.py ``attach``: ``util.match_uuid``
    (drivers/util.py, lowercase 8-4-4-4-12 hex) or SRUnavailable (47),
    re-wrapped as 47 by drivers/LVHDoISCSISR.py ``attach``.
    """

    def test_legacy_named_lvhd_sr_does_not_plug(self):
        # The VG really is VG_XenStorage-FA15E-D15C-...: only the uuid
        # shape is wrong.
        _, sr_uuid, _ = self.lvhd_lun(0, sr_uuid=LEGACY)
        sr, pbd = self.introduce(self.x, sr_uuid, "lvmoiscsi",
                                 iscsi_config(SCSIid=self.scsi_id(0)))
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0])
        self.assertIn("no such volume group: VG_XenStorage-%s" % LEGACY,
                      exc.details[2])
        self.assertFalse(self.x.PBD.get_currently_attached(pbd))

    def test_uppercase_uuid_does_not_plug(self):
        upper = str(uuid.uuid4()).upper()
        _, sr_uuid, _ = self.lvhd_lun(0, sr_uuid=upper)
        sr, pbd = self.introduce(self.x, sr_uuid, "lvmoiscsi",
                                 iscsi_config(SCSIid=self.scsi_id(0)))
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0])

    def test_legacy_name_is_fine_for_raw_iscsi(self):
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, pbd = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        self.assertTrue(self.x.PBD.get_currently_attached(pbd))


class Rule3StorageMotionCapabilityTest(FidelityTestCase):
    """Rule 3: storage motion needs SR types that can mirror.

    xapi-project/xen-api ocaml/xapi/xapi_vm_migrate.ml
    ``assert_sr_support_operations`` (CA-219436, XenServer 7.1): a VDI whose
    destination SR does not match needs VDI_MIRROR and VDI_SNAPSHOT, which
    sm drivers/RawISCSISR.py ``CAPABILITIES`` lack; ``migrate_send`` runs
    the assert first (ocaml/xapi/message_forwarding.ml).
    """

    def setUp(self):
        super().setUp()
        self.lun = self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        with open(self.lun, "r+b") as f:
            f.write(b"VOLUME-DATA")
        self.digest = sha256(self.lun)
        self.sr0, _ = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        self.vdi = self.x.SR.get_VDIs(self.sr0)[0]
        self.vm = self.running_vm(self.x, self.vdi)

    def assertNothingMoved(self):
        self.assertEqual("Running", self.x.VM.get_power_state(self.vm))
        self.assertEqual([], self.x1.VM.get_by_name_label("instance"))
        self.assertEqual([], self.x.debug.get_migrations())
        self.assertEqual(self.digest, sha256(self.lun))

    def test_raw_iscsi_to_another_sr_uuid_is_refused(self):
        dest_sr, _ = self.attach(self.x1, str(uuid.uuid4()), "iscsi",
                                 iscsi_config())
        token = self.token(self.x1)
        vdi_map = {self.vdi: dest_sr}
        for call in (self.x.VM.assert_can_migrate, self.x.VM.migrate_send):
            self.assertFailure(["SR_DOES_NOT_SUPPORT_MIGRATION", self.sr0],
                               call, self.vm, token, True, vdi_map, {}, {})
        self.assertNothingMoved()
        self.assertEqual([], self.x.debug.get_hazards())

    def test_strict_check_refuses_raw_iscsi_even_with_equal_uuids(self):
        self.x.debug.set_setting("relax-xsm-sr-check", False)
        dest_sr, _ = self.attach(self.x1, LEGACY, "iscsi", iscsi_config())
        self.assertFailure(["SR_DOES_NOT_SUPPORT_MIGRATION", self.sr0],
                           self.x.VM.migrate_send, self.vm,
                           self.token(self.x1), True, {self.vdi: dest_sr},
                           {}, {})
        self.assertNothingMoved()

    def test_relaxed_equal_uuid_moves_without_mirror(self):
        dest_sr, _ = self.attach(self.x1, LEGACY, "iscsi", iscsi_config())
        self.x.VM.migrate_send(self.vm, self.token(self.x1), True,
                               {self.vdi: dest_sr}, {}, {})
        [entry] = self.x.debug.get_migrations()
        self.assertFalse(entry["mirrored"])
        self.assertEqual(1, len(self.x1.VM.get_by_name_label("instance")))

    def test_lvmoiscsi_mirror_onto_its_own_lun_is_the_hazard(self):
        _, sr_uuid, [leaf] = self.lvhd_lun(0, iqn=IQN + "-lvhd")
        config = iscsi_config(IQN + "-lvhd",
                              SCSIid=self.scsi_id(0, IQN + "-lvhd"))
        self.attach(self.x, sr_uuid, "lvmoiscsi", config)
        vm = self.running_vm(self.x, self.x.VDI.get_by_uuid(leaf))
        dest_sr, _ = self.attach(self.x1, sr_uuid, "lvmoiscsi", config)
        self.x.debug.set_setting("relax-xsm-sr-check", False)
        self.x.VM.migrate_send(vm, self.token(self.x1), True,
                               {self.x.VDI.get_by_uuid(leaf): dest_sr}, {},
                               {})
        [hazard] = self.x.debug.get_hazards()
        self.assertEqual(leaf, hazard["vdi"])
        self.assertEqual(sr_uuid, hazard["dest_sr_uuid"])

    def test_lvmoiscsi_to_raw_iscsi_is_refused_on_the_destination(self):
        _, sr_uuid, [leaf] = self.lvhd_lun(0, iqn=IQN + "-lvhd")
        config = iscsi_config(IQN + "-lvhd",
                              SCSIid=self.scsi_id(0, IQN + "-lvhd"))
        self.attach(self.x, sr_uuid, "lvmoiscsi", config)
        vm = self.running_vm(self.x, self.x.VDI.get_by_uuid(leaf))
        dest_sr, _ = self.attach(self.x1, str(uuid.uuid4()), "iscsi",
                                 iscsi_config())
        self.assertFailure(["SR_DOES_NOT_SUPPORT_MIGRATION", dest_sr],
                           self.x.VM.assert_can_migrate, vm,
                           self.token(self.x1), True,
                           {self.x.VDI.get_by_uuid(leaf): dest_sr}, {}, {})


class Rule4VdiNotInMapTest(FidelityTestCase):
    """Rule 4: VDI_NOT_IN_MAP.

    xapi-project/xen-api ocaml/xapi/xapi_vm_migrate.ml ``check_vdi_map``:
    every VDI of the VM must be mapped, intra-pool too.
    """

    def test_intra_pool_unmapped_vdi(self):
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, _ = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        vdi = self.x.SR.get_VDIs(sr)[0]
        vm = self.running_vm(self.x, vdi)
        token = self.token(self.x)
        for call in (self.x.VM.assert_can_migrate, self.x.VM.migrate_send):
            self.assertFailure(["VDI_NOT_IN_MAP", vdi], call, vm, token,
                               True, {}, {}, {})
        self.x.VM.migrate_send(vm, token, True, {vdi: sr}, {}, {})
        self.assertEqual(sr, self.x.VDI.get_SR(self.x.VBD.get_VDI(
            self.x.VM.get_VBDs(vm)[0])))


class Rule5ScanOfATakenVdiUuidTest(FidelityTestCase):
    """Rule 5: a scan meeting a taken VDI uuid.

    xapi-project/sm drivers/SR.py ``ScanRecord`` introduces new VDIs one
    by one through drivers/VDI.py ``_db_introduce``; XAPI's uniqueness
    failure comes back as the opterr of SR_BACKEND_FAILURE_40 (SRScan),
    drivers/SRCommand.py.
    """

    def assertScanClash(self, sr, vdi_uuid):
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.scan, sr)
        self.assertEqual("SR_BACKEND_FAILURE_40", exc.details[0])
        self.assertEqual(
            "The SR scan failed [opterr=['INTERNAL_ERROR', "
            "'Db_exn.Uniqueness_constraint_violation(\"VDI\", \"uuid\", "
            "\"%s\")']]" % vdi_uuid, exc.details[2])

    def test_raw_iscsi_keeps_the_vdis_introduced_before(self):
        self.san.create_lun(PORTAL, IQN, 1, 8 * MiB)
        self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, _ = self.introduce(self.x, str(uuid.uuid4()), "iscsi",
                               iscsi_config())
        self.x.PBD.plug(self.x.SR.get_PBDs(sr)[0])
        lun1 = sanmod.vdi_uuid_for_scsi_id(self.scsi_id(1))
        self.assertScanClash(sr, lun1)
        lun0 = sanmod.vdi_uuid_for_scsi_id(self.scsi_id(0))
        self.assertEqual([lun0], [self.x.VDI.get_uuid(v)
                                  for v in self.x.SR.get_VDIs(sr)])

    def test_lvmoiscsi_clone_with_unchanged_vdi_uuids(self):
        _, sr_uuid, [taken] = self.lvhd_lun(0)
        self.attach(self.x, sr_uuid, "lvmoiscsi",
                    iscsi_config(SCSIid=self.scsi_id(0)))
        fresh = str(uuid.uuid4())
        _, clone_uuid, _ = self.lvhd_lun(1, vdis=[fresh, taken])
        sr, _ = self.introduce(self.x, clone_uuid, "lvmoiscsi",
                               iscsi_config(SCSIid=self.scsi_id(1)))
        self.x.PBD.plug(self.x.SR.get_PBDs(sr)[0])
        self.assertScanClash(sr, taken)
        self.assertEqual([fresh], [self.x.VDI.get_uuid(v)
                                   for v in self.x.SR.get_VDIs(sr)])


class Rule6UuidUniqueAcrossClassesTest(FidelityTestCase):
    """Rule 6: uuids are unique across classes.

    xapi-project/xen-api ocaml/database/db_cache_types.ml: one uuid
    index over every table, so SR.introduce of a VDI's or VM's uuid gives
    SR_UUID_EXISTS (ocaml/xapi/xapi_sr.ml ``introduce``).
    """

    def test_sr_with_a_vdi_or_vm_uuid(self):
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, _ = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        vdi_uuid = self.x.VDI.get_uuid(self.x.SR.get_VDIs(sr)[0])
        vm_uuid = self.x.VM.get_uuid(self.x.VM.create({"name_label": "v"}))
        before = len(self.x.SR.get_all())
        for taken in (vdi_uuid, vm_uuid):
            self.assertFailure(["SR_UUID_EXISTS", taken],
                               self.x.SR.introduce, taken, "l", "",
                               "iscsi", "", False, {})
        self.assertEqual(before, len(self.x.SR.get_all()))
        # Nor may a VDI take an SR's uuid.
        exc = self.assertRaises(XenAPI.Failure, self.x.VDI.introduce,
                                LEGACY, "l", "", sr, "user", False, False,
                                {}, "loc", {}, {})
        self.assertEqual(
            ["INTERNAL_ERROR", 'Db_exn.Uniqueness_constraint_violation('
             '"VDI", "uuid", "%s")' % LEGACY], exc.details)


class Rule8SrDestroyAndScanTest(FidelityTestCase):
    """Rule 8: SR.destroy and SR.scan checks.

    xapi-project/xen-api ocaml/xapi/xapi_sr_operations.ml (SR_HAS_PBD,
    SR_NO_PBDS, SR_NOT_EMPTY for destroy) and message_forwarding.ml
    ``forward_sr_op`` (a scan needs a plugged PBD: SR_NO_PBDS).
    """

    def test_destroy_and_scan_rules(self):
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, pbd = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        self.assertFailure(["SR_HAS_PBD", sr], self.x.SR.destroy, sr)
        self.x.PBD.unplug(pbd)
        self.assertFailure(["SR_NOT_EMPTY"], self.x.SR.destroy, sr)
        self.assertFailure(["SR_NO_PBDS", sr], self.x.SR.scan, sr)
        bare = self.x.SR.introduce("", "l", "", "iscsi", "", False, {})
        self.assertFailure(["SR_NO_PBDS", bare], self.x.SR.destroy, bare)
        self.assertEqual(bare, self.x.SR.get_by_uuid(
            self.x.SR.get_uuid(bare)))

    def test_destroy_of_an_unplugged_empty_sr(self):
        path, sr_uuid, _ = self.lvhd_lun(0, vdis=[])
        sr, pbd = self.attach(self.x, sr_uuid, "lvmoiscsi",
                              iscsi_config(SCSIid=self.scsi_id(0)))
        self.x.PBD.unplug(pbd)
        self.x.SR.destroy(sr)
        self.assertFailure(["UUID_INVALID", "SR", sr_uuid],
                           self.x.SR.get_by_uuid, sr_uuid)
        self.assertTrue(os.path.exists(path))


class Rule9LvhdAttachRewritesSmConfigTest(FidelityTestCase):
    """Rule 9: LVHD attach is not read-only.

    xapi-project/sm drivers/LVHDSR.py: attach and scan on the master set
    the SR's sm_config to ``{allocation, use_vhd}``
    (``_synchSmConfigWithMetaData``, ``update``).
    """

    def test_plug_replaces_sm_config(self):
        _, sr_uuid, _ = self.lvhd_lun(0)
        sr, pbd = self.introduce(self.x, sr_uuid, "lvmoiscsi",
                                 iscsi_config(SCSIid=self.scsi_id(0)),
                                 sm_config={"stale": "key"})
        self.x.PBD.plug(pbd)
        self.assertEqual({"allocation": "thick", "use_vhd": "true"},
                         self.x.SR.get_sm_config(sr))
        self.x.SR.add_to_sm_config(sr, "other", "1")
        self.x.SR.scan(sr)
        self.assertEqual({"allocation": "thick", "use_vhd": "true"},
                         self.x.SR.get_sm_config(sr))


class Rule10SmallerRulesTest(FidelityTestCase):
    """The smaller rules of issue 11, each with its source."""

    def test_halted_vm_migrates_with_live_true(self):
        # ocaml/xapi/xapi_vm_lifecycle.ml: migrate_send is allowed Halted.
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, _ = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        vdi = self.x.SR.get_VDIs(sr)[0]
        vm = self.running_vm(self.x, vdi)
        self.x.VM.hard_shutdown(vm)
        dest_sr, _ = self.attach(self.x1, LEGACY, "iscsi", iscsi_config())
        self.x.VM.migrate_send(vm, self.token(self.x1), True,
                               {vdi: dest_sr}, {}, {})
        [moved] = self.x1.VM.get_by_name_label("instance")
        self.assertEqual("Halted", self.x1.VM.get_power_state(moved))

    def test_raw_iscsi_vdi_location_and_backend_kind(self):
        # sm drivers/LUNperVDI.py RAWVDI: location = uuid; the uuid is the
        # md5 of the LUN's SCSI id (drivers/scsiutil.py gen_uuid_from_string).
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr, _ = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        rec = self.x.VDI.get_record(self.x.SR.get_VDIs(sr)[0])
        scsi = self.scsi_id(0)
        expected_uuid = str(uuid.UUID(hashlib.md5(scsi.encode()).hexdigest()))
        self.assertEqual(expected_uuid, rec["uuid"])
        self.assertEqual(expected_uuid, rec["location"])
        self.assertEqual("vbd", rec["sm_config"]["backend-kind"])

    def test_iscsi_probe_lists_the_known_srs(self):
        # sm drivers/BaseISCSI.py probe: SRs whose sm_config names the IQN.
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        self.x.SR.introduce(LEGACY, "l", "", "iscsi", "", False,
                            iscsi_config())
        self.x.SR.introduce("", "other", "", "iscsi", "", False,
                            iscsi_config(IQN + "-other"))
        root = ElementTree.fromstring(self.x.SR.probe(
            self.host, iscsi_config(), "iscsi", {}).strip())
        self.assertEqual("SRlist", root.tag)
        self.assertEqual([(LEGACY, HOST, IQN)],
                         [(sr.findtext("UUID").strip(),
                           sr.findtext("Target").strip(),
                           sr.findtext("TargetIQN").strip())
                          for sr in root.findall("SR")])

    def test_sm_error_codes(self):
        # sm drivers/BaseISCSI.py load/attach, numbers from
        # drivers/XE_SR_ERRORCODES.xml.
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        cases = ((95, {"targetIQN": IQN}),
                 (142, iscsi_config(port="70000")),
                 (142, iscsi_config(port="x")),
                 (141, iscsi_config(target="192.0.2.99")),
                 (83, iscsi_config(IQN + "-absent")))
        for number, config in cases:
            sr, pbd = self.introduce(self.x, "", "iscsi", config)
            exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
            self.assertEqual("SR_BACKEND_FAILURE_%d" % number,
                             exc.details[0], config)
            self.assertFalse(self.x.PBD.get_currently_attached(pbd))

    def test_every_lvmoiscsi_attach_failure_is_47(self):
        # sm drivers/LVHDoISCSISR.py attach: except -> SRUnavailable (47).
        _, sr_uuid, _ = self.lvhd_lun(0)
        self.san.set_chap(PORTAL, IQN, "user", "secret")
        for config in (iscsi_config(SCSIid=self.scsi_id(0),
                                    chapuser="user", chappassword="no"),
                       iscsi_config(IQN + "-absent", SCSIid="36abc"),
                       iscsi_config(SCSIid="36abc", chapuser="user",
                                    chappassword="secret")):
            sr, pbd = self.introduce(self.x, sr_uuid, "lvmoiscsi", config)
            exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
            self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0],
                             config)
            self.x.PBD.destroy(pbd)
            self.x.SR.forget(sr)

    def test_pbd_unplug_with_a_vbd_in_use(self):
        # ocaml/xapi/xapi_pbd.ml unplug: VDI_IN_USE [vdi refs].
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        self.san.create_lun(PORTAL, IQN, 1, 8 * MiB)
        sr, pbd = self.attach(self.x, LEGACY, "iscsi", iscsi_config())
        vdis = sorted(self.x.SR.get_VDIs(sr))
        for vdi in vdis:
            self.running_vm(self.x, vdi)
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.unplug, pbd)
        self.assertEqual("VDI_IN_USE", exc.details[0])
        self.assertEqual(vdis, sorted(exc.details[1:]))
        self.assertTrue(self.x.PBD.get_currently_attached(pbd))

    def test_enums_canonicalised_and_type_lowercased(self):
        # ocaml/idl/datamodel.ml enums; ocaml/xapi/xapi_sr.ml introduce.
        self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        sr = self.x.SR.introduce(LEGACY, "l", "", "ISCSI", "", False, {})
        self.assertEqual("iscsi", self.x.SR.get_type(sr))
        pbd = self.x.PBD.create({"host": self.host, "SR": sr,
                                 "device_config": iscsi_config()})
        self.x.PBD.plug(pbd)
        self.x.SR.scan(sr)
        vm = self.x.VM.create({"name_label": "e"})
        vbd = self.x.VBD.create({"VM": vm, "VDI": self.x.SR.get_VDIs(sr)[0],
                                 "userdevice": "1", "mode": "rw",
                                 "type": "disk", "empty": False})
        self.assertEqual(("RW", "Disk"), (self.x.VBD.get_mode(vbd),
                                          self.x.VBD.get_type(vbd)))
        self.assertFailure(["FIELD_TYPE_ERROR", "mode"], self.x.VBD.create,
                           {"VM": vm, "VDI": self.x.SR.get_VDIs(sr)[0],
                            "mode": "rwx", "empty": False})


class Rule11LoginCredentialsTest(base.TestCase):
    """Rule 11: login checks the password.

    ocaml/xapi/xapi_session.ml ``login_with_password``: a wrong password
    is SESSION_AUTHENTICATION_FAILED [user, message].
    """

    def test_fixture_credentials(self):
        sim = self.useFixture(fixture.SimulatorFixture(
            pools=1, credentials=("root", "s3cret")))
        session = XenAPI.Session(sim.urls[0])
        exc = self.assertRaises(XenAPI.Failure,
                                session.xenapi.login_with_password, "root",
                                "wrong")
        self.assertEqual(["SESSION_AUTHENTICATION_FAILED", "root",
                          "Authentication failure"], exc.details)
        self.assertEqual(1, len(sim.session(0).xenapi.pool.get_all()))

    def test_cli_password(self):
        env = dict(os.environ, XENAPI_RESIGN_SIM_PASSWORD="s3cret")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nova_xenapi_resign.cmd.main",
             "simulator", "--san", self.tmpdir + "/san", "--pools", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env)
        self.addCleanup(proc.stderr.close)
        self.addCleanup(proc.stdout.close)
        self.addCleanup(proc.wait, 10)
        self.addCleanup(proc.terminate)
        name, url = proc.stdout.readline().split()
        session = XenAPI.Session(url)
        exc = self.assertRaises(XenAPI.Failure,
                                session.xenapi.login_with_password, "root",
                                "wrong")
        self.assertEqual("SESSION_AUTHENTICATION_FAILED", exc.details[0])
        session.xenapi.login_with_password("root", "s3cret")
        session.xenapi.session.logout()
        self.assertNotIn("s3cret", name + url)
