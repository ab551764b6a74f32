"""The embedded XAPI on LVHD LUNs lvhd.create made: lvmoiscsi, relvmoiscsi."""

import hashlib
import uuid
import xml.dom.minidom

import XenAPI

from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.simulator import fixture
from nova_xenapi_resign.simulator import san
from tests import base

MiB = 1024 * 1024
PORTAL = "192.0.2.20:3260"
IQN = "iqn.2010-01.com.example:lvhd"
IQN_CLONE = "iqn.2010-01.com.example:lvhd-clone"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class LvhdSimulatorTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(fixture.SimulatorFixture(pools=1))
        self.x = self.sim.session(0).xenapi
        self.host = self.x.pool.get_master(self.x.pool.get_all()[0])
        self.lun = self.sim.san.create_lun(PORTAL, IQN, 0, 64 * MiB)
        self.sr_uuid = str(uuid.uuid4())
        self.base, self.leaf, self.snap = (str(uuid.uuid4())
                                           for _ in range(3))
        vdis = (create.VdiSpec(self.base, "vhd", 8 * MiB, name_label="base",
                               hidden=True, read_only=True, managed=False),
                create.VdiSpec(self.leaf, "vhd", 8 * MiB, name_label="disk",
                               parent=self.base),
                create.VdiSpec(self.snap, "vhd", 8 * MiB, name_label="snap",
                               parent=self.base, is_a_snapshot=True,
                               snapshot_of=self.leaf))
        with device.open_device(self.lun, writable=True) as dev:
            create.format_sr(dev, self.sr_uuid, vdis)

    def config(self, iqn=IQN):
        """lvmoiscsi picks its LUN by SCSIid (here: known from the SAN)."""
        return {"target": "192.0.2.20", "port": "3260", "targetIQN": iqn,
                "SCSIid": san.scsi_id(PORTAL, iqn, 0)}

    def attach(self, sr_uuid, iqn=IQN):
        sr = self.x.SR.introduce(sr_uuid, "sr", "", "lvmoiscsi", "", True,
                                 {})
        pbd = self.x.PBD.create({"host": self.host, "SR": sr,
                                 "device_config": self.config(iqn)})
        self.x.PBD.plug(pbd)
        self.x.SR.scan(sr)
        return sr

    def probe(self, iqn):
        out = self.x.SR.probe(self.host, self.config(iqn), "lvmoiscsi", {})
        return [n.firstChild.data.strip() for n in xml.dom.minidom
                .parseString(out).getElementsByTagName("UUID")]

    def test_scan_reads_the_lun(self):
        sr = self.attach(self.sr_uuid)
        records = {self.x.VDI.get_uuid(v): self.x.VDI.get_record(v)
                   for v in self.x.SR.get_VDIs(sr)}
        self.assertEqual({self.base, self.leaf, self.snap}, set(records))
        self.assertEqual(self.base,
                         records[self.leaf]["sm_config"]["vhd-parent"])
        self.assertTrue(records[self.snap]["is_a_snapshot"])
        self.assertEqual(self.x.VDI.get_by_uuid(self.leaf),
                         records[self.snap]["snapshot_of"])

    def test_wrong_vg_is_backend_failure_47(self):
        sr = self.x.SR.introduce(str(uuid.uuid4()), "sr", "", "lvmoiscsi",
                                 "", True, {})
        pbd = self.x.PBD.create({"host": self.host, "SR": sr,
                                 "device_config": self.config()})
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0])

    def test_clone_is_refused_then_relvmoiscsi_resigns_it(self):
        self.attach(self.sr_uuid)
        clone = self.sim.san.clone_lun(self.lun, PORTAL, IQN_CLONE, 0)
        self.assertEqual([self.sr_uuid], self.probe(IQN_CLONE))
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.introduce,
                                self.sr_uuid, "c", "", "lvmoiscsi", "", True,
                                {})
        self.assertEqual(["SR_UUID_EXISTS", self.sr_uuid], exc.details)
        original = sha256(self.lun)
        sr = self.x.SR.create(self.host, self.config(IQN_CLONE), "0",
                              "clone", "", "relvmoiscsi", "", True, {})
        new_uuid = self.x.SR.get_uuid(sr)
        self.assertEqual([new_uuid], self.probe(IQN_CLONE))
        labels = sorted(self.x.VDI.get_name_label(v)
                        for v in self.x.SR.get_VDIs(sr))
        self.assertEqual(["base", "disk", "snap"], labels)
        uuids = {self.x.VDI.get_uuid(v) for v in self.x.SR.get_VDIs(sr)}
        self.assertFalse(uuids & {self.base, self.leaf, self.snap})
        self.assertEqual(original, sha256(self.lun))
        self.assertNotEqual(original, sha256(clone))

    def test_sr_create_lvmoiscsi_formats_the_lun(self):
        lun = self.sim.san.create_lun(PORTAL, IQN_CLONE, 0, 32 * MiB)
        sr = self.x.SR.create(self.host, self.config(IQN_CLONE), "0", "new",
                              "", "lvmoiscsi", "", True, {})
        self.assertEqual([self.x.SR.get_uuid(sr)], self.probe(IQN_CLONE))
        self.assertEqual([], self.x.SR.get_VDIs(sr))
        self.assertGreater(len(open(lun, "rb").read(8192).strip(b"\0")), 0)
