"""Cross-check lvhd.vhd against real VHD readers: vhdiinfo and qemu-img.

Files only: no root and no loop devices are needed.
"""

import json
import os
import uuid

from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import vhd
from tests import base as tests_base
from tests.functional import base

MIB = 1024 * 1024
SR = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
NEW_SR = "0f0f0f0f-1111-2222-3333-444444444444"
PARENT_VDI = "12345678-1234-1234-1234-123456789abc"
NEW_PARENT_VDI = "87654321-4321-4321-4321-cba987654321"
PARENT_UID = uuid.UUID("11111111-2222-3333-4444-555555555555")
CHILD_UID = uuid.UUID("66666666-7777-8888-9999-000000000000")


def vhdiinfo(path):
    """``vhdiinfo`` output as a dict: ``{"Disk type": "Dynamic", ...}``."""
    out = base.run(["vhdiinfo", path]).stdout
    info = {}
    for line in out.splitlines():
        if ":" in line and line.startswith("\t"):
            key, _, value = line.strip().partition(":")
            info[key.strip()] = value.strip()
    return info


def qemu_info(path):
    return json.loads(base.run(["qemu-img", "info", "--output=json",
                                path]).stdout)


class VhdRealToolsTest(base.FunctionalTestCase):

    TOOLS = ("vhdiinfo", "qemu-img")

    def setUp(self):
        # Plain files: skip FunctionalTestCase's root/loop requirement.
        tests_base.TestCase.setUp(self)
        base.require_tools(self, *self.TOOLS)

    def write(self, name, data):
        path = os.path.join(self.tmpdir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def parent_and_child(self, size=8 * MIB):
        parent = self.write("parent.vhd", create.build_dynamic_vhd(
            size, uuid=PARENT_UID, hidden=True))
        name = naming.lvhd_parent_name(SR, PARENT_VDI)
        child = self.write("child.vhd", create.build_dynamic_vhd(
            size, uuid=CHILD_UID, parent=(name, PARENT_UID)))
        return parent, child

    def test_dynamic_parent(self):
        parent, _ = self.parent_and_child(16 * MIB)
        info = vhdiinfo(parent)
        self.assertEqual("Dynamic", info["Disk type"])
        self.assertIn("(%d bytes)" % (16 * MIB), info["Media size"])
        self.assertEqual(str(PARENT_UID), info["Identifier"])
        self.assertNotIn("Parent identifier", info)
        q = qemu_info(parent)
        self.assertEqual("vpc", q["format"])
        self.assertEqual(16 * MIB, q["virtual-size"])
        self.assertEqual(2 * MIB, q["cluster-size"])

    def test_dynamic_reads_as_zeroes(self):
        parent, _ = self.parent_and_child(4 * MIB)
        raw = os.path.join(self.tmpdir, "parent.raw")
        base.run(["qemu-img", "convert", "-f", "vpc", "-O", "raw", parent,
                  raw])
        data = self.read(raw)
        self.assertEqual(4 * MIB, len(data))
        self.assertEqual(bytes(4 * MIB), data)

    def test_differencing_child(self):
        _, child = self.parent_and_child()
        info = vhdiinfo(child)
        self.assertEqual("Differential", info["Disk type"])
        self.assertIn("(%d bytes)" % (8 * MIB), info["Media size"])
        self.assertEqual(str(CHILD_UID), info["Identifier"])
        self.assertEqual(str(PARENT_UID), info["Parent identifier"])
        self.assertEqual(naming.lvhd_parent_name(SR, PARENT_VDI),
                         info["Parent filename"])
        q = qemu_info(child)
        self.assertEqual("vpc", q["format"])
        self.assertEqual(8 * MIB, q["virtual-size"])

    def test_rewrite_parent_link(self):
        _, child = self.parent_and_child()
        image = self.read(child)
        lv = vhd.parse_lv_start(image[:vhd.INITIAL_READ],
                                trailing=image[-512:])
        self.assertTrue(lv.trailing_footer_ok)
        region = image[:vhd.header_region(lv.footer, lv.header)]
        new_name = naming.lvhd_parent_name(NEW_SR, NEW_PARENT_VDI)
        new_uid = uuid.UUID("99999999-8888-7777-6666-555555555555")
        writes = vhd.plan_parent_change(lv.footer, lv.header, region,
                                        new_name, new_parent_uuid=new_uid)
        with open(child, "r+b") as f:
            for offset, data in writes:
                f.seek(offset)
                f.write(data)
        info = vhdiinfo(child)
        self.assertEqual(new_name, info["Parent filename"])
        self.assertEqual(str(new_uid), info["Parent identifier"])
        self.assertEqual(str(CHILD_UID), info["Identifier"])
        self.assertEqual("Differential", info["Disk type"])
        self.assertEqual(8 * MIB, qemu_info(child)["virtual-size"])
        # Our own reader agrees, locators included.
        new_image = self.read(child)
        again = vhd.parse_lv_start(new_image, trailing=new_image[-512:])
        self.assertEqual(["./" + new_name] * 3,
                         [p.path for p in vhd.read_parent_locators(
                             again.header, new_image)])
        self.assertEqual(len(image), len(new_image))

    def test_footer_at_lv_end(self):
        # blktap on a block device: the footer is the LV's last sector.
        path = self.write("lv.vhd", create.build_dynamic_vhd(
            8 * MIB, uuid=CHILD_UID, lv_size=12 * MIB))
        info = vhdiinfo(path)
        self.assertEqual(str(CHILD_UID), info["Identifier"])
        self.assertEqual(8 * MIB, qemu_info(path)["virtual-size"])

    def test_qemu_img_dynamic_vhd(self):
        for size in ("8M", "100M", "1G"):
            path = os.path.join(self.tmpdir, "q%s.vhd" % size)
            base.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                      "subformat=dynamic", path, size])
            data = self.read(path)
            lv = vhd.parse_lv_start(data, trailing=data[-512:])
            self.assertTrue(lv.trailing_footer_ok)
            self.assertEqual(vhd.DISK_DYNAMIC, lv.footer.disk_type)
            self.assertEqual(b"qemu", lv.footer.creator_app)
            info = vhdiinfo(path)
            self.assertEqual(str(lv.footer.uuid), info["Identifier"])
            self.assertIn("(%d bytes)" % lv.footer.current_size,
                          info["Media size"])
            q = qemu_info(path)
            self.assertEqual(lv.footer.current_size, q["virtual-size"])
            self.assertEqual(lv.header.block_size, q["cluster-size"])
            self.assertEqual((), lv.header.locator_slots())
            # Round trips exactly.
            self.assertEqual(data[:512], vhd.render_footer(lv.footer))
            self.assertEqual(data[512:1536], vhd.render_header(lv.header))
