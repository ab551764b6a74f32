"""lvhd.lvm and lvhd.device against real LVM2 on loop devices.

Every test builds a PV with the real tools, reads it with ``read_pv``
through a ``Device``, and (for the writer tests) writes through ``Device``
and checks the result with ``vgs``/``pvs``/``vgck``.  LVM runs with
activation disabled (no device-mapper here).
"""

import os
import re

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device as lvdevice
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from tests.functional import base

_ID_RE = re.compile(rb'\bid = "([^"]+)"')
_SEQNO_RE = re.compile(rb"^\s*seqno = (\d+)", re.M)
MiB = 1024 * 1024


def read_pv(path):
    with lvdevice.open_device(path) as dev:
        pv = lvm.read_pv(dev)
        return pv, dev.bytes_read


def expected_bytes_read(pv):
    """What read_pv must have read.

    The label scan area, each header and each text copy (NUL included),
    nothing else.
    """
    total = lvm.LABEL_SCAN_SIZE
    for mda in pv.mdas:
        total += lvm.MDA_HEADER_SIZE
        if mda.header.committed is not None:
            total += mda.header.committed.size
    return total


def seqno_of(text):
    return int(_SEQNO_RE.search(text).group(1))


def rewrite(path, transform, new_label=None):
    """Write ``transform(committed_text)`` into every mda.

    In the project's order: text, precommit, (label), commit; fsync after
    each step.
    """
    with lvdevice.open_device(path, writable=True) as dev:
        pv = lvm.read_pv(dev)
        plans = []
        for mda in pv.mdas:
            new_text = transform(mda.committed_text)
            plan = lvm.plan_text_write(mda.header, new_text, device=path)
            for offset, data in plan.writes:
                dev.write(offset, data)
            plans.append((mda.header, plan))
        dev.fsync()
        for header, plan in plans:
            dev.write(header.start, lvm.render_mda_header(
                lvm.precommit_header(header, plan.rlocn)))
        dev.fsync()
        if new_label is not None:
            dev.write(new_label.offset, lvm.render_label(new_label))
            dev.fsync()
        for header, plan in plans:
            dev.write(header.start, lvm.render_mda_header(
                lvm.commit_header(header, plan.rlocn)))
        dev.fsync()
        return pv, plans, dev.writes


def bump_seqno(text):
    n = seqno_of(text)
    return _SEQNO_RE.sub(b"seqno = %d" % (n + 1), text, count=1)


class LvmRealTestCase(base.FunctionalTestCase):

    def make_vg(self, vg="vgtest", pv_args=(), vg_args=(), size=64 * MiB,
                lvs=0):
        image, dev, tool = self.new_pv(size=size)
        tool("pvcreate", "-ff", "-y", *pv_args, dev)
        tool("vgcreate", *vg_args, vg, dev)
        for i in range(lvs):
            tool("lvcreate", "-n", "VHD-%d" % i, "-L", "4M", vg)
        return image, dev, tool

    def assertVgck(self, tool, vg):
        proc = tool("vgck", vg, check=False)
        self.assertEqual(0, proc.returncode, proc.stderr)
        bad = [line for line in proc.stderr.splitlines()
               if "WARNING: Activation disabled" not in line
               and line.strip()]
        self.assertEqual([], bad)

    def assertMatchesBackup(self, tool, vg, text):
        backup = os.path.join(self.tmpdir, "%s.backup" % vg)
        tool("vgcfgbackup", "-f", backup, vg)
        with open(backup, "rb") as f:
            expected = f.read()
        self.assertEqual(_ID_RE.findall(expected), _ID_RE.findall(text))
        self.assertEqual(seqno_of(expected), seqno_of(text))
        self.assertTrue(text.startswith(vg.encode() + b" {\n"))
        for lv in re.findall(rb"^\t\t(\S+) \{$", expected, re.M):
            self.assertIn(b"\n" + lv + b" {\n", text)

    def check_pv(self, dev, tool, vg, n_mdas=1):
        pv, nread = read_pv(dev)
        report = tool.report("pvs", "pv_uuid,pe_start,pv_mda_count,"
                             "vg_seqno")[0]
        self.assertEqual(report["pv_uuid"],
                         lvm_id.format_lvm_id(pv.label.pv_id))
        self.assertEqual(int(report["pe_start"]),
                         pv.label.data_areas[0].offset)
        self.assertEqual(n_mdas, len(pv.mdas))
        self.assertEqual(n_mdas, int(report["pv_mda_count"]))
        self.assertEqual(expected_bytes_read(pv), nread)
        with open(dev, "rb") as f:
            raw = f.read(pv.label.offset + 512)
            self.assertEqual(raw[pv.label.offset:],
                             lvm.render_label(pv.label))
            for mda in pv.mdas:
                f.seek(mda.header.start)
                self.assertEqual(f.read(512),
                                 lvm.render_mda_header(mda.header))
                self.assertEqual(int(report["vg_seqno"]),
                                 seqno_of(mda.committed_text))
                self.assertIsNone(mda.precommitted_text)
        self.assertMatchesBackup(tool, vg, pv.mdas[0].committed_text)
        return pv, nread


class TestRead(LvmRealTestCase):

    def test_default_layout(self):
        _, dev, tool = self.make_vg(lvs=2)
        pv, _ = self.check_pv(dev, tool, "vgtest")
        self.assertEqual(1, pv.label.sector)
        self.assertEqual(4096, pv.mdas[0].header.start)
        self.assertEqual(MiB, pv.label.data_areas[0].offset)

    def test_xenserver_layout(self):
        vg = "VG_XenStorage-5a2ee3d8-1b7d-4f8e-9c55-0a3c7c1e2b4d"
        _, dev, tool = self.make_vg(vg=vg, pv_args=("--metadatasize", "10M"),
                                    vg_args=("--metadatasize", "10M"),
                                    lvs=3)
        pv, nread = self.check_pv(dev, tool, vg)
        header = pv.mdas[0].header
        self.assertGreaterEqual(header.size, 10 * MiB)
        # Bytes read do not depend on the LUN or the mda size.
        self.assertLess(nread, 8192)

    def test_bytes_read_independent_of_lun_size(self):
        reads = []
        for size in (64 * MiB, 1024 * MiB):
            _, dev, tool = self.make_vg(pv_args=("--metadatasize", "10M"),
                                        size=size)
            pv, nread = read_pv(dev)
            reads.append(nread - pv.mdas[0].header.committed.size)
        self.assertEqual(reads[0], reads[1])
        self.assertEqual(2048 + 512, reads[0])

    def test_two_metadata_copies(self):
        _, dev, tool = self.make_vg(pv_args=("--pvmetadatacopies", "2"),
                                    lvs=1)
        pv, _ = self.check_pv(dev, tool, "vgtest", n_mdas=2)
        first, second = pv.mdas
        self.assertEqual(first.committed_text, second.committed_text)
        self.assertGreater(second.header.start,
                           pv.label.data_areas[0].offset)
        self.assertEqual(pv.label.device_size, second.header.end)

    def test_wrapped_committed_copy(self):
        _, dev, tool = self.make_vg(
            pv_args=("--metadatasize", "32k", "--dataalignment", "64k"),
            vg_args=("-s", "1M"))
        wrapped = None
        for i in range(150):
            if i % 3 == 0:
                tool("lvcreate", "-n", "lv%d" % i, "-L", "1M", "vgtest")
            elif i % 3 == 1:
                tool("lvchange", "--addtag", "tag%d" % i,
                     "vgtest/lv%d" % (i - 1))
            else:
                tool("lvrename", "vgtest", "lv%d" % (i - 2), "lvr%d" % i)
            pv, _ = read_pv(dev)
            header = pv.mdas[0].header
            if len(lvm.text_extents(header, header.committed)) == 2:
                wrapped = pv
                break
        self.assertIsNotNone(wrapped, "the committed copy never wrapped")
        self.check_pv(dev, tool, "vgtest")
        # After LVM wrote across the end, it still accepts our writes.
        rewrite(dev, bump_seqno)
        self.assertVgck(tool, "vgtest")

    def test_corrupt_mda_header_is_typed(self):
        _, dev, tool = self.make_vg()
        with open(dev, "r+b") as f:
            f.seek(4096 + 8)
            f.write(b"X")
        with lvdevice.open_device(dev) as d:
            err = self.assertRaises(exception.LvmMetadataError,
                                    lvm.read_pv, d)
        self.assertEqual(dev, err.kwargs["device"])


class TestWrite(LvmRealTestCase):

    def test_rename_and_bump_seqno(self):
        _, dev, tool = self.make_vg(pv_args=("--metadatasize", "10M"), lvs=2)
        before, _ = read_pv(dev)
        seqno = seqno_of(before.committed_text)

        def transform(text):
            self.assertTrue(text.startswith(b"vgtest {\n"))
            return bump_seqno(b"vgnew {\n" + text[len(b"vgtest {\n"):])

        _, plans, writes = rewrite(dev, transform)
        self.assertEqual(3, writes)
        report = tool.report("vgs", "vg_name,vg_seqno")
        self.assertEqual([{"vg_name": "vgnew", "vg_seqno": str(seqno + 1)}],
                         report)
        self.assertVgck(tool, "vgnew")
        after, _ = read_pv(dev)
        self.assertEqual(plans[0][1].rlocn, after.mdas[0].header.committed)
        self.assertEqual(transform(before.committed_text),
                         after.committed_text)
        # LVM's own writer carries on from our copy.
        tool("lvcreate", "-n", "after", "-L", "4M", "vgnew")
        self.assertEqual(str(seqno + 2),
                         tool.report("vgs", "vg_seqno")[0]["vg_seqno"])
        self.assertVgck(tool, "vgnew")

    def test_two_copies_written(self):
        _, dev, tool = self.make_vg(pv_args=("--pvmetadatacopies", "2"))
        before, _ = read_pv(dev)
        rewrite(dev, bump_seqno)
        after, _ = read_pv(dev)
        self.assertEqual([bump_seqno(m.committed_text) for m in before.mdas],
                         [m.committed_text for m in after.mdas])
        self.assertEqual(str(seqno_of(before.committed_text) + 1),
                         tool.report("vgs", "vg_seqno")[0]["vg_seqno"])
        self.assertVgck(tool, "vgtest")

    def test_new_pv_id(self):
        _, dev, tool = self.make_vg(pv_args=("--metadatasize", "10M"), lvs=1)
        before, _ = read_pv(dev)
        old_id = lvm_id.format_lvm_id(before.label.pv_id).encode()
        new_raw = "Resign" + before.label.pv_id[6:]
        new_label = before.label.with_pv_id(new_raw)
        new_id = lvm_id.format_lvm_id(new_label.pv_id).encode()

        def transform(text):
            self.assertEqual(1, text.count(old_id))
            return bump_seqno(text.replace(old_id, new_id))

        rewrite(dev, transform, new_label=new_label)
        report = tool.report("pvs", "pv_uuid,vg_name")
        self.assertEqual([{"pv_uuid": new_id.decode(), "vg_name": "vgtest"}],
                         report)
        self.assertVgck(tool, "vgtest")
        after, _ = read_pv(dev)
        self.assertEqual(new_label, after.label)


class TestDeviceReal(base.FunctionalTestCase):

    def test_exclusive_open_refused(self):
        image, dev, _ = self.new_pv(size=8 * MiB)
        holder = os.open(dev, os.O_RDONLY | os.O_EXCL)
        try:
            err = self.assertRaises(exception.DeviceInUse,
                                    lvdevice.open_device, dev, True)
            self.assertEqual(dev, err.kwargs["device"])
            self.assertEqual(3, err.exit_code)
            # Inspection (read-only, not exclusive) is still possible.
            with lvdevice.open_device(dev) as d:
                self.assertEqual(8 * MiB, d.size)
        finally:
            os.close(holder)
        with lvdevice.open_device(dev, writable=True) as d:
            self.assertTrue(d.is_block)
            self.assertEqual(("blk", os.stat(dev).st_rdev), d.identity())
            self.assertEqual(8 * MiB, d.size)
            d.write(8 * MiB - 512, b"\x07" * 512)
            d.fsync()
            # While we hold it O_EXCL nobody else can.
            self.assertRaises(OSError, os.open, dev,
                              os.O_RDONLY | os.O_EXCL)
        with open(image, "rb") as f:
            f.seek(8 * MiB - 512)
            self.assertEqual(b"\x07" * 512, f.read())
