"""Unit tests: the lvmoiscsi SM backend, with a fake LVHD reader.

The real reader is the project's ``lvhd`` library; functional tests on real
LVHD LUN images belong with it.  Here a fake reader returns LvhdSr-shaped
objects for given LUN paths.
"""

import collections
import os

from nova_xenapi_resign import exception
from nova_xenapi_resign.simulator import api
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign.simulator import sm
from tests import base

PORTAL = "192.0.2.9:3260"
IQN = "iqn.2010-01.com.example:lvhd"
SR_UUID = "0f0e0d0c-0b0a-4909-8807-060504030201"
LvhdSr = collections.namedtuple("LvhdSr", "sr_uuid vg_name vdis")
Vdi = collections.namedtuple(
    "Vdi", "uuid vdi_type name_label name_description parent_uuid "
    "is_a_snapshot snapshot_of hidden read_only virtual_size")

BASE = Vdi("b0000000-0000-4000-8000-000000000001", "vhd", "base", "", None,
           False, None, True, True, 2 ** 33)
LEAF = Vdi("b0000000-0000-4000-8000-000000000002", "vhd", "disk", "d",
           BASE.uuid, False, None, False, False, 2 ** 33)
SNAP = Vdi("b0000000-0000-4000-8000-000000000003", "vhd", "snap", "",
           BASE.uuid, True, LEAF.uuid, False, True, 2 ** 33)
RAW = Vdi("b0000000-0000-4000-8000-000000000004", "raw", "raw", "", None,
          False, None, False, False, 2 ** 20)


class FakeReader(object):
    def __init__(self):
        self.images = {}

    def inspect(self, path):
        try:
            return self.images[path]
        except KeyError:
            raise exception.FormatError(device=path, structure="label",
                                        offset=512, expected="LABELONE",
                                        found="zeros")


class _LvmoBase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.san = sanmod.San(os.path.join(self.tmpdir, "san"))
        self.reader = FakeReader()
        self.pool = api.Pool(self.san, name="p", lvhd_reader=self.reader,
                             registry={})
        self.session = self.call("session.login_with_password", "root", "x")
        self.host = self.pool.master
        self.path = self.san.create_lun(PORTAL, IQN, 0, 64 * 2 ** 20)
        self.reader.images[self.path] = LvhdSr(
            SR_UUID, "VG_XenStorage-" + SR_UUID, (BASE, LEAF, SNAP, RAW))
        self.dc = {"target": "192.0.2.9", "port": "3260", "targetIQN": IQN,
                   "SCSIid": sanmod.scsi_id(PORTAL, IQN, 0)}

    def call(self, method, *params, ok=True):
        login = method.startswith("session.login")
        args = params if login else (self.session,) + params
        env = self.pool.dispatch(method, args)
        if ok:
            self.assertEqual("Success", env["Status"], env)
            return env["Value"]
        self.assertEqual("Failure", env["Status"], env)
        return env["ErrorDescription"]

    def attach(self, sr_uuid=SR_UUID, dc=None):
        sr = self.call("SR.introduce", sr_uuid, "l", "", "lvmoiscsi", "",
                       True, {})
        pbd = self.call("PBD.create", {"host": self.host, "SR": sr,
                                       "device_config": dc or self.dc})
        return sr, pbd


class LvmoIscsiTest(_LvmoBase):

    def test_plug_and_scan(self):
        sr, pbd = self.attach()
        self.call("PBD.plug", pbd)
        self.call("SR.scan", sr)
        recs = {r["uuid"]: r for r in self.call(
            "VDI.get_all_records_where", 'field "SR"="%s"' % sr).values()}
        self.assertEqual({BASE.uuid, LEAF.uuid, SNAP.uuid, RAW.uuid},
                         set(recs))
        leaf, base_, snap = recs[LEAF.uuid], recs[BASE.uuid], recs[SNAP.uuid]
        self.assertEqual({"vdi_type": "vhd", "vhd-parent": BASE.uuid},
                         leaf["sm_config"])
        self.assertFalse(base_["managed"])
        self.assertTrue(base_["read_only"])
        self.assertTrue(leaf["managed"])
        self.assertEqual("disk", leaf["name_label"])
        self.assertEqual(str(2 ** 33), leaf["virtual_size"])
        self.assertTrue(snap["is_a_snapshot"])
        leaf_ref = self.call("VDI.get_by_uuid", LEAF.uuid)
        self.assertEqual(leaf_ref, snap["snapshot_of"])
        self.assertEqual({"vdi_type": "raw"}, recs[RAW.uuid]["sm_config"])
        # Rescan after a VDI disappears.
        self.reader.images[self.path] = LvhdSr(
            SR_UUID, "VG_XenStorage-" + SR_UUID, (BASE, LEAF))
        self.call("SR.scan", sr)
        self.assertEqual(2, len(self.call("SR.get_VDIs", sr)))

    def test_lun_id_alone_is_refused_with_the_lun_list(self):
        # LVHDoISCSISR.load: no SCSIid -> 107 listing the LUNs; LUNid is
        # never used to pick one.
        dc = dict(self.dc)
        del dc["SCSIid"]
        dc["LUNid"] = "0"
        sr, pbd = self.attach(dc=dc)
        details = self.call("PBD.plug", pbd, ok=False)
        self.assertEqual("SR_BACKEND_FAILURE_107", details[0])
        self.assertIn("<SCSIid>%s</SCSIid>" % self.dc["SCSIid"], details[3])
        self.assertIn("<LUNid>0</LUNid>", details[3])
        self.assertFalse(self.call("PBD.get_currently_attached", pbd))
        self.assertEqual([], self.call("SR.get_VDIs", sr))

    def test_vg_name_mismatch_is_backend_failure_47(self):
        other = "11111111-2222-4333-8444-555555555555"
        sr, pbd = self.attach(sr_uuid=other)
        details = self.call("PBD.plug", pbd, ok=False)
        # LVHDSR.attach's failure, re-wrapped by LVHDoISCSISR.attach.
        self.assertEqual(
            ["SR_BACKEND_FAILURE_47", "",
             "The SR is not available [opterr=The SR is not available "
             "[opterr=no such volume group: VG_XenStorage-%s]]" % other, ""],
            details)
        self.assertFalse(self.call("PBD.get_currently_attached", pbd))

    def test_unreadable_lun_is_backend_failure_47(self):
        del self.reader.images[self.path]
        sr, pbd = self.attach()
        self.assertEqual("SR_BACKEND_FAILURE_47",
                         self.call("PBD.plug", pbd, ok=False)[0])

    def test_unknown_scsi_id(self):
        sr, pbd = self.attach(dc=dict(self.dc, SCSIid="36nope"))
        self.assertEqual("SR_BACKEND_FAILURE_47",
                         self.call("PBD.plug", pbd, ok=False)[0])

    def test_duplicate_sr_uuid_refused(self):
        self.attach()
        self.assertEqual(["SR_UUID_EXISTS", SR_UUID],
                         self.call("SR.introduce", SR_UUID, "l", "",
                                   "lvmoiscsi", "", True, {}, ok=False))

    def test_clone_vdi_uuids_refused_on_scan(self):
        # A SAN clone of the LUN, already resigned at the VG level (new SR
        # uuid) but with the VDI uuids unchanged: XAPI refuses the VDIs.
        clone = self.san.clone_lun(self.path, PORTAL, IQN, 1)
        new_sr = "22222222-3333-4444-8555-666666666666"
        self.reader.images[clone] = LvhdSr(
            new_sr, "VG_XenStorage-" + new_sr, (BASE, LEAF))
        sr, pbd = self.attach()
        self.call("PBD.plug", pbd)
        self.call("SR.scan", sr)
        sr2, pbd2 = self.attach(
            sr_uuid=new_sr,
            dc=dict(self.dc, SCSIid=sanmod.scsi_id(PORTAL, IQN, 1)))
        self.call("PBD.plug", pbd2)
        details = self.call("SR.scan", sr2, ok=False)
        self.assertEqual(
            ["SR_BACKEND_FAILURE_40", "",
             "The SR scan failed [opterr=['INTERNAL_ERROR', "
             "'Db_exn.Uniqueness_constraint_violation(\"VDI\", \"uuid\", "
             "\"%s\")']]" % BASE.uuid, ""], details)
        self.assertEqual([], self.call("SR.get_VDIs", sr2))

    def test_probe(self):
        xml = self.call("SR.probe", self.host, self.dc, "lvmoiscsi", {})
        self.assertIn("<SRlist>", xml)
        self.assertIn("<UUID>%s</UUID>" % SR_UUID, xml)
        del self.reader.images[self.path]
        xml = self.call("SR.probe", self.host, self.dc, "lvmoiscsi", {})
        self.assertNotIn("<UUID>", xml)
        self.assertEqual(sm.srlist_xml([]), xml)

    def test_default_reader_uses_lvhd_library(self):
        reader = sm.LvhdReader()
        try:
            from nova_xenapi_resign.lvhd import sr as lvhd_sr  # noqa
        except ImportError:
            self.assertRaises(ImportError, reader.inspect, self.path)
        else:
            self.assertRaises(exception.FormatError, reader.inspect,
                              self.path)


class LvmoIscsiMigrationTest(_LvmoBase):
    """Cross-pool migration of a VM on a shared lvmoiscsi SR."""

    def setUp(self):
        super().setUp()
        registry = {}
        self.pool.registry = registry
        registry[self.pool.pool_id] = self.pool
        self.dest = api.Pool(self.san, name="q", lvhd_reader=self.reader,
                             registry=registry)
        self.dsession = self.dest.dispatch("session.login_with_password",
                                           ["root", "x"])["Value"]
        sr, pbd = self.attach()
        self.call("PBD.plug", pbd)
        self.call("SR.scan", sr)
        self.vdi = self.call("VDI.get_by_uuid", LEAF.uuid)
        self.vm = self.call("VM.create", {"name_label": "i"})
        self.call("VBD.create", {"VM": self.vm, "VDI": self.vdi,
                                 "userdevice": "0", "mode": "RW",
                                 "type": "Disk", "empty": False})
        self.call("VM.start", self.vm, False, False)

    def dcall(self, method, *params):
        env = self.dest.dispatch(method, [self.dsession] + list(params))
        self.assertEqual("Success", env["Status"], env)
        return env["Value"]

    def migrate(self):
        dsr = self.dcall("SR.introduce", SR_UUID, "l", "", "lvmoiscsi", "",
                         True, {})
        pbd = self.dcall("PBD.create", {"host": self.dest.master, "SR": dsr,
                                        "device_config": self.dc})
        self.dcall("PBD.plug", pbd)
        token = self.dcall("host.migrate_receive", self.dest.master,
                           self.dest.network, {})
        return self.call("VM.migrate_send", self.vm, token, True,
                         {self.vdi: dsr}, {}, {})

    def test_relaxed_same_sr_no_mirror(self):
        new_vm = self.migrate()
        [vbd] = self.dcall("VM.get_VBDs", new_vm)
        self.assertEqual(LEAF.uuid,
                         self.dcall("VDI.get_uuid",
                                    self.dcall("VBD.get_VDI", vbd)))
        self.assertEqual([], self.pool.hazards)
        self.assertFalse(self.pool.migrations[0]["mirrored"])

    def test_strict_same_lun_mirror_is_a_hazard(self):
        # LVHD can mirror (VDI_MIRROR): the strict check mirrors the shared
        # LUN onto itself.
        self.pool.settings["relax-xsm-sr-check"] = False
        self.migrate()
        [hazard] = self.pool.hazards
        self.assertEqual(self.path, hazard["lun_path"])
        self.assertEqual(SR_UUID, hazard["dest_sr_uuid"])
        self.assertTrue(self.pool.migrations[0]["mirrored"])
        self.assertEqual([hazard], self.call("debug.get_hazards"))
        self.call("debug.clear_hazards")
        self.assertEqual([], self.call("debug.get_hazards"))
