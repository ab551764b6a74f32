"""A LUN formatted as one volume (VDI-per-LUN), checked by real tools.

``lvhd.create.format_volume`` on a 64 MiB image: lvm2 (``vgck``, ``pvs``,
``lvs`` on a loop device), ``vhdiinfo`` and ``qemu-img`` read the VDI,
``qemu-io`` fills every byte of it and the result still fits its LV, and
the project's inspect reads it back.

The sizes of a 64 MiB LUN, worked out by hand from lvm2's and sm's rules
(README "VDI-per-LUN volumes"): the label and 10 MiB metadata area end at
pe_start = 11 MiB; (64 - 11) // 4 = 13 extents of 4 MiB; MGT takes one,
the lease LV ``xenapi_resign_lease`` one, the VDI's LV the other 11 (44
MiB).  sm reserves the VHD metadata of its largest VHD in it (4321280
bytes, ``vhdutil.calcOverheadEmpty(2093050 MiB)``) and 4 KiB of bitmap per
2 MiB block: (44 MiB - 4321280) // (2 MiB + 4 KiB) = 19 blocks, a 38 MiB
VDI.
"""

import json
import os

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import record
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.lvhd import sr
from tests.functional import base
from tests.functional.test_lvhd_images import assert_matches_lvs
from tests.functional.test_lvhd_images import vhdiinfo

MIB = 1024 * 1024
SR = "3a8f0c6e-1d2b-4c5a-9e7f-0b1c2d3e4f50"
VG = "VG_XenStorage-" + SR
VOLUME = "c0ffee00-1111-4222-8333-444455556666"
#: uuid5(create.VOLUME_VDI_NAMESPACE, VOLUME), computed once with Python's
#: uuid module from the namespace README documents.
VDI = "39e4e0e0-33b9-5f37-824d-4c829819e249"
LUN_SIZE = 64 * MIB
VDI_SIZE = 38 * MIB
LV_SIZE = 44 * MIB


class FormatVolumeRealToolsTest(base.FunctionalTestCase):

    TOOLS = ("losetup", "lvm", "vhdiinfo", "qemu-img", "qemu-io")

    def setUp(self):
        super().setUp()
        self.path = base.make_image(os.path.join(self.tmpdir, "lun.img"),
                                    LUN_SIZE)

    def format(self, sr_uuid=SR):
        with device.open_device(self.path, writable=True) as dev:
            return create.format_volume(dev, sr_uuid, VOLUME, "my volume")

    def vhd_head(self, model):
        """The VHD at the start of the VDI's LV, as a file."""
        (vdi,) = model.vdis
        lv = model.lv("VHD-" + vdi.uuid)
        spec = create.VdiSpec(vdi.uuid, "vhd", vdi.virtual_size)
        length = len(create.vhd_contents(SR, spec))
        with device.open_device(self.path) as dev:
            data = sr.read_lv(dev, lv, 0, length)
        out = os.path.join(self.tmpdir, "vdi.vhd")
        with open(out, "wb") as f:
            f.write(data)
        return out

    def test_lvm_vhd_tools_and_inspect_agree(self):
        model = self.format()
        self.assertEqual((), model.problems)
        (vdi,) = model.vdis
        self.assertEqual((SR, VDI, "my volume", VDI_SIZE),
                         (model.sr_uuid, vdi.uuid, vdi.name_label,
                          vdi.virtual_size))

        lvm_ = base.Lvm(self.attach(self.path))
        lvm_("vgck", VG)
        assert_matches_lvs(self, lvm_, model)
        sizes = {r["lv_name"]: int(r["lv_size"]) for r in lvm_.report(
            "lvs", "lv_name,lv_size")}
        self.assertEqual({"MGT": 4 * MIB, "xenapi_resign_lease": 4 * MIB,
                          "VHD-" + VDI: LV_SIZE}, sizes)
        self.assertEqual("0", lvm_.report("vgs", "vg_free_count")[0]
                         ["vg_free_count"])
        # The lease LV is extent 1 (lvm2's own report), where the locator
        # finds it and reads a free record of this SR.
        ranges = {r["lv_name"]: r["seg_pe_ranges"] for r in lvm_.report(
            "lvs", "lv_name,seg_pe_ranges")}
        self.assertTrue(ranges["xenapi_resign_lease"].endswith(":1-1"),
                        ranges)
        with device.open_device(self.path) as dev:
            where = locator.locate(dev)
            snap = record.snapshot(locator.DeviceStore(dev, where)
                                   .read_slots())
        self.assertEqual(11 * MIB + 4 * MIB, where.offset)
        self.assertEqual((SR, "free"), (snap.latest.sr_uuid,
                                        snap.latest.state_name))

        head = self.vhd_head(model)
        info = vhdiinfo(head)
        self.assertEqual("Dynamic", info["Disk type"])
        self.assertIn("(%d bytes)" % VDI_SIZE, info["Media size"])
        qinfo = json.loads(base.run(["qemu-img", "info", "--output=json",
                                     "-f", "vpc", head]).stdout)
        self.assertEqual(VDI_SIZE, qinfo["virtual-size"])

    def test_a_full_vdi_fits_its_lv(self):
        head = self.vhd_head(self.format())
        base.run(["qemu-io", "-f", "vpc", "-c",
                  "write -P 0xab 0 %d" % VDI_SIZE, head])
        self.assertLessEqual(os.path.getsize(head), LV_SIZE)
        out = base.run(["qemu-io", "-f", "vpc", "-c",
                        "read -P 0xab 0 %d" % VDI_SIZE, head]).stdout
        self.assertIn("read %d/%d bytes" % (VDI_SIZE, VDI_SIZE), out)
        self.assertNotIn("Pattern verification failed", out)
        self.assertIn("(%d bytes)" % VDI_SIZE, vhdiinfo(head)["Media size"])

    def test_refusals_write_nothing(self):
        for sr_uuid in ("FA15E-D15C-" + VOLUME, SR.upper()):
            self.assertRaises(exception.InvalidInput, self.format, sr_uuid)
        small = base.make_image(os.path.join(self.tmpdir, "small.img"),
                                16 * MIB)
        with device.open_device(small, writable=True) as dev:
            self.assertRaises(exception.InvalidInput, create.format_volume,
                              dev, SR, VOLUME, "v")
        for path in (self.path, small):
            with open(path, "rb") as f:
                self.assertEqual(b"", f.read().strip(b"\0"))
