"""Unit tests for nova_xenapi_resign.lvhd.lvm (pure: no devices)."""

import dataclasses
import os
import struct

from hypothesis import given, strategies as st

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from tests import base
from tests.fuzz import FUZZ


# A label sector and an mda_header written by lvm2 2.03.16 (pvcreate
# --metadatasize 10M on a 64 MiB loop device, vgcreate, one lvcreate).
# Everything after these bytes is zero.
REAL_LABEL = bytes.fromhex(
    "4c4142454c4f4e4501000000000000001490cdbf200000004c564d3220303031"
    "3269787830646d7371733156516a724b654c44584235376c6432507568734d4c"
    "00000004000000000000b0000000000000000000000000000000000000000000"
    "0000000000000000001000000000000000f0af00000000000000000000000000"
    "00000000000000000200000001").ljust(512, b"\0")
REAL_LABEL_CRC = 0xBFCD9014
REAL_PV_ID = "2ixx0dmsqs1VQjrKeLDXB57ld2PuhsML"
REAL_MDA = bytes.fromhex(
    "9610c283204c564d3220785b35412572304e2a3e010000000010000000000000"
    "00f0af00000000000006000000000000f0040000000000009b13d121"
).ljust(512, b"\0")
REAL_MDA_CRC = 0x83C21096


def _table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def reference_crc(data, seed=lvm.INITIAL_CRC):
    """A byte-at-a-time transcription of lvm2's calc_crc loop."""
    crc = seed
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def scan_area(label_sector=REAL_LABEL, sector=1):
    buf = bytearray(lvm.LABEL_SCAN_SIZE)
    buf[sector * 512:(sector + 1) * 512] = label_sector
    return bytes(buf)


def fix_label_crc(sector):
    sector = bytearray(sector)
    struct.pack_into("<I", sector, 16, lvm.lvm_crc(bytes(sector[20:512])))
    return bytes(sector)


def fix_mda_crc(buf):
    buf = bytearray(buf)
    struct.pack_into("<I", buf, 0, lvm.lvm_crc(bytes(buf[4:512])))
    return bytes(buf)


class FakeArea(object):
    """A sparse in-memory device for the circular buffer tests."""

    def __init__(self, size):
        self.data = bytearray(size)
        self.path = "<fake>"

    def read(self, offset, length):
        assert offset >= 0 and offset + length <= len(self.data)
        return bytes(self.data[offset:offset + length])

    def write(self, offset, data):
        assert offset % 512 == 0 and len(data) % 512 == 0, (offset, len(data))
        self.data[offset:offset + len(data)] = data


class TestCrc(base.TestCase):

    def test_matches_reference_loop(self):
        for n in (0, 1, 5, 100, 492, 512, 4097):
            data = os.urandom(n)
            self.assertEqual(reference_crc(data), lvm.lvm_crc(data))
            self.assertEqual(reference_crc(data, 0), lvm.lvm_crc(data, 0))

    def test_real_label_and_mda_vectors(self):
        self.assertEqual(REAL_LABEL_CRC, lvm.lvm_crc(REAL_LABEL[20:]))
        self.assertEqual(REAL_LABEL_CRC, reference_crc(REAL_LABEL[20:]))
        self.assertEqual(REAL_MDA_CRC, lvm.lvm_crc(REAL_MDA[4:]))
        self.assertEqual(0x21D1139B,
                         struct.unpack_from("<I", REAL_MDA, 56)[0])

    def test_empty_is_seed(self):
        self.assertEqual(lvm.INITIAL_CRC, lvm.lvm_crc(b""))

    def test_chains(self):
        a, b = b"hello ", b"world"
        self.assertEqual(lvm.lvm_crc(a + b), lvm.lvm_crc(b, lvm.lvm_crc(a)))


class TestLabel(base.TestCase):

    def test_parse_real(self):
        label = lvm.parse_label(scan_area(), device="/dev/x")
        self.assertEqual(1, label.sector)
        self.assertEqual(512, label.offset)
        self.assertEqual(REAL_PV_ID, label.pv_id)
        self.assertEqual(64 * 1024 * 1024, label.device_size)
        self.assertEqual((lvm.DiskLocn(11534336, 0),), label.data_areas)
        self.assertEqual((lvm.DiskLocn(4096, 11530240),),
                         label.metadata_areas)
        self.assertEqual((2, 1, ()), (label.ext_version, label.ext_flags,
                                      label.bootloader_areas))

    def test_render_round_trip_real(self):
        label = lvm.parse_label(scan_area())
        self.assertEqual(REAL_LABEL, lvm.render_label(label))

    def test_with_pv_id(self):
        label = lvm.parse_label(scan_area())
        new_id = "A" * 32
        new = label.with_pv_id(lvm_id.format_lvm_id(new_id))
        self.assertEqual(new_id, new.pv_id)
        rendered = lvm.render_label(new)
        self.assertEqual(new, lvm.parse_label(scan_area(rendered)))
        self.assertEqual(REAL_LABEL[32:64].replace(REAL_PV_ID.encode(),
                                                   new_id.encode()),
                         rendered[32:64])
        self.assertEqual(REAL_LABEL[64:], rendered[64:])
        self.assertRaises(exception.InvalidInput, label.with_pv_id, "x")

    def test_other_sectors_and_first_wins(self):
        for sector in range(4):
            label = dataclasses.replace(lvm.parse_label(scan_area()),
                                        sector=sector)
            raw = lvm.render_label(label)
            self.assertEqual(label,
                             lvm.parse_label(scan_area(raw, sector)))
        # Two labels: the lower sector wins, as in lvm2.
        buf = bytearray(scan_area())
        other = dataclasses.replace(lvm.parse_label(scan_area()), sector=3,
                                    pv_id="B" * 32)
        buf[1536:2048] = lvm.render_label(other)
        self.assertEqual(REAL_PV_ID, lvm.parse_label(bytes(buf)).pv_id)

    def test_multiple_areas_and_old_label(self):
        label = lvm.Label(
            sector=1, pv_id="C" * 32, device_size=1 << 30,
            data_areas=(lvm.DiskLocn(1 << 20, 0),),
            metadata_areas=(lvm.DiskLocn(4096, 1044480),
                            lvm.DiskLocn((1 << 30) - (1 << 20), 1 << 20)),
            ext_version=2, ext_flags=1,
            bootloader_areas=(lvm.DiskLocn(1 << 21, 1 << 20),))
        self.assertEqual(label, lvm.parse_label(
            scan_area(lvm.render_label(label))))
        old = dataclasses.replace(label, ext_version=0, ext_flags=0,
                                  bootloader_areas=())
        raw = lvm.render_label(old)
        self.assertEqual(old, lvm.parse_label(scan_area(raw)))

    def assertLabelError(self, buf, structure):
        err = self.assertRaises(exception.LvmLabelError, lvm.parse_label,
                                buf, device="/dev/test")
        self.assertIn(structure, err.kwargs["structure"])
        self.assertEqual("/dev/test", err.kwargs["device"])
        self.assertIsInstance(err, exception.FormatError)
        return err

    def test_no_label(self):
        self.assertLabelError(bytes(2048), "label")

    def test_truncated(self):
        self.assertLabelError(scan_area()[:1024], "label scan area")

    def test_bad_crc(self):
        bad = bytearray(REAL_LABEL)
        bad[100] ^= 1
        err = self.assertLabelError(scan_area(bytes(bad)), "crc")
        self.assertEqual(512 + 16, err.kwargs["offset"])

    def test_bad_sector_xl(self):
        bad = bytearray(REAL_LABEL)
        bad[8] = 2
        self.assertLabelError(scan_area(bytes(bad)), "sector_xl")

    def test_bad_type(self):
        bad = bytearray(REAL_LABEL)
        bad[24:32] = b"LVM1 001"
        self.assertLabelError(scan_area(fix_label_crc(bad)), "type")

    def test_bad_pv_id(self):
        bad = bytearray(REAL_LABEL)
        bad[32] = ord("-")
        self.assertLabelError(scan_area(fix_label_crc(bad)), "pv_uuid")

    def test_bad_offset_xl(self):
        bad = bytearray(REAL_LABEL)
        struct.pack_into("<I", bad, 20, 500)
        self.assertLabelError(scan_area(fix_label_crc(bad)), "offset_xl")

    def test_unterminated_list(self):
        bad = bytearray(REAL_LABEL)
        for pos in range(72, 512 - 15, 16):
            struct.pack_into("<QQ", bad, pos, 4096, 1)
        self.assertLabelError(scan_area(fix_label_crc(bad)), "pv_header")

    def test_render_rejects_bad_fields(self):
        label = lvm.parse_label(scan_area())
        self.assertRaises(exception.LvmLabelError, lvm.render_label,
                          dataclasses.replace(label, pv_id="short"))
        self.assertRaises(exception.LvmLabelError, lvm.render_label,
                          dataclasses.replace(label, sector=4))
        many = tuple(lvm.DiskLocn(4096 * (i + 1), 1) for i in range(40))
        self.assertRaises(exception.LvmLabelError, lvm.render_label,
                          dataclasses.replace(label, metadata_areas=many))

    @FUZZ
    @given(st.binary(min_size=0, max_size=2048))
    def test_fuzz_random(self, data):
        try:
            lvm.parse_label(data)
        except exception.FormatError:
            pass

    @FUZZ
    @given(st.lists(st.tuples(st.integers(32, 511), st.integers(0, 255)),
                    max_size=8), st.booleans())
    def test_fuzz_mutated_real(self, edits, fix_crc):
        sector = bytearray(REAL_LABEL)
        for pos, value in edits:
            sector[pos] = value
        sector = fix_label_crc(sector) if fix_crc else bytes(sector)
        try:
            label = lvm.parse_label(scan_area(sector))
        except exception.FormatError:
            return
        # Whatever parses renders to a sector that parses the same.
        try:
            rendered = lvm.render_label(label)
        except exception.FormatError:
            return
        self.assertEqual(label, lvm.parse_label(scan_area(rendered)))


class TestMdaHeader(base.TestCase):

    def test_parse_real(self):
        h = lvm.parse_mda_header(REAL_MDA, 4096, area_size=11530240)
        self.assertEqual(4096, h.start)
        self.assertEqual(11530240, h.size)
        self.assertEqual(lvm.RawLocn(1536, 1264, 0x21D1139B, 0),
                         h.committed)
        self.assertIsNone(h.precommitted)
        self.assertFalse(h.ignored)
        self.assertEqual(REAL_MDA, lvm.render_mda_header(h))

    def test_precommitted_round_trip(self):
        h = lvm.parse_mda_header(REAL_MDA, 4096)
        new = lvm.RawLocn(3072, 1300, 1234, 0)
        pre = lvm.precommit_header(h, new)
        self.assertEqual(h.committed, pre.committed)
        self.assertEqual(new, pre.precommitted)
        raw = lvm.render_mda_header(pre)
        self.assertEqual(pre, lvm.parse_mda_header(raw, 4096))
        com = lvm.commit_header(pre, new)
        self.assertEqual(new, com.committed)
        self.assertIsNone(com.precommitted)
        raw = lvm.render_mda_header(com)
        self.assertEqual(com, lvm.parse_mda_header(raw, 4096))
        # Slot 1 bytes are zero after a commit.
        self.assertEqual(bytes(48), raw[64:112])

    def test_precommit_on_empty_area(self):
        h = lvm.MdaHeader(start=4096, size=1 << 20)
        self.assertIsNone(h.committed)
        pre = lvm.precommit_header(h, lvm.RawLocn(512, 10, 5, 0))
        parsed = lvm.parse_mda_header(lvm.render_mda_header(pre), 4096)
        self.assertIsNone(parsed.committed)
        self.assertEqual(lvm.RawLocn(512, 10, 5, 0), parsed.precommitted)

    def test_ignored_flag_kept(self):
        h = lvm.MdaHeader(start=4096, size=1 << 20,
                          raw_locns=(lvm.RawLocn(0, 0, 0, 1),))
        parsed = lvm.parse_mda_header(lvm.render_mda_header(h), 4096)
        self.assertTrue(parsed.ignored)
        self.assertIsNone(parsed.committed)
        self.assertRaises(exception.LvmMetadataError, lvm.plan_text_write,
                          parsed, b"x")

    def assertMdaError(self, buf, structure, start=4096, **kw):
        err = self.assertRaises(exception.LvmMetadataError,
                                lvm.parse_mda_header, buf, start,
                                device="/dev/test", **kw)
        self.assertIn(structure, err.kwargs["structure"])
        return err

    def test_bad_checksum(self):
        bad = bytearray(REAL_MDA)
        bad[300] = 1
        self.assertMdaError(bytes(bad), "checksum")

    def test_bad_magic(self):
        bad = bytearray(REAL_MDA)
        bad[5] = ord("X")
        self.assertMdaError(fix_mda_crc(bad), "magic")

    def test_bad_version(self):
        bad = bytearray(REAL_MDA)
        bad[20] = 2
        self.assertMdaError(fix_mda_crc(bad), "version")

    def test_wrong_start(self):
        self.assertMdaError(REAL_MDA, "start", start=8192)

    def test_size_mismatch(self):
        self.assertMdaError(REAL_MDA, "size", area_size=1 << 20)

    def test_truncated(self):
        self.assertMdaError(REAL_MDA[:100], "mda_header")

    def test_bad_rlocns(self):
        for offset, size in ((100, 10), (11530240, 10), (512, 0),
                             (512, 11530240)):
            bad = bytearray(REAL_MDA)
            struct.pack_into("<QQ", bad, 40, offset, size)
            self.assertMdaError(fix_mda_crc(bad), "raw_locn")
        bad = bytearray(REAL_MDA)
        struct.pack_into("<QQ", bad, 40, 0, 10)
        self.assertMdaError(fix_mda_crc(bad), "raw_locn[0]")

    @FUZZ
    @given(st.binary(min_size=0, max_size=600), st.integers(0, 1 << 40))
    def test_fuzz_random(self, data, start):
        try:
            lvm.parse_mda_header(data, start)
        except exception.FormatError:
            pass

    @FUZZ
    @given(st.lists(st.tuples(st.integers(4, 511), st.integers(0, 255)),
                    max_size=8), st.booleans())
    def test_fuzz_mutated_real(self, edits, fix_crc):
        buf = bytearray(REAL_MDA)
        for pos, value in edits:
            buf[pos] = value
        buf = fix_mda_crc(buf) if fix_crc else bytes(buf)
        try:
            h = lvm.parse_mda_header(buf, 4096)
        except exception.FormatError:
            return
        self.assertEqual(h, lvm.parse_mda_header(lvm.render_mda_header(h),
                                                 4096))
        if any(rl.size > (1 << 20) for rl in h.raw_locns):
            return

        def zeros(offset, length):
            return bytes(length)
        try:
            lvm.read_text(h, zeros)
        except exception.FormatError:
            pass


def area_with_copy(size, offset, text, start=4096):
    """A FakeArea holding an mda whose slot 0 is ``text`` at ``offset``."""
    data = text + b"\0"
    header = lvm.MdaHeader(start=start, size=size, raw_locns=(
        lvm.RawLocn(offset, len(data), lvm.lvm_crc(data), 0),))
    area = FakeArea(start + size + 4096)
    area.data[start:start + 512] = lvm.render_mda_header(header)
    wrap = max(0, offset + len(data) - size)
    first = len(data) - wrap
    area.data[start + offset:start + offset + first] = data[:first]
    area.data[start + 512:start + 512 + wrap] = data[first:]
    return header, area


def apply(area, plan):
    for offset, data in plan.writes:
        area.write(offset, data)


class TestText(base.TestCase):

    def test_read_simple(self):
        header, area = area_with_copy(8192, 512, b"vg { }\n")
        self.assertEqual(b"vg { }\n", lvm.read_text(header, area.read))

    def test_read_wrapped(self):
        text = bytes(range(65, 91)) * 40  # 1040 bytes
        header, area = area_with_copy(8192, 7680, text)
        self.assertEqual(2, len(lvm.text_extents(header, header.committed)))
        self.assertEqual(text, lvm.read_text(header, area.read))

    def test_checksum_mismatch(self):
        header, area = area_with_copy(8192, 7680, b"x" * 1000)
        area.data[4096 + 512 + 10] ^= 0xFF  # in the wrapped part
        err = self.assertRaises(exception.LvmMetadataError, lvm.read_text,
                                header, area.read)
        self.assertIn("checksum", err.kwargs["structure"])

    def test_empty_slot(self):
        header = lvm.MdaHeader(start=4096, size=8192)
        self.assertRaises(exception.LvmMetadataError, lvm.read_text,
                          header, FakeArea(20000).read)
        self.assertRaises(exception.LvmMetadataError, lvm.read_text,
                          header, FakeArea(20000).read, 1)

    def test_short_read(self):
        header, area = area_with_copy(8192, 512, b"abc")
        self.assertRaises(exception.LvmMetadataError, lvm.read_text,
                          header, lambda o, n: b"")


class TestPlan(base.TestCase):

    def test_fresh_area_starts_at_512(self):
        header = lvm.MdaHeader(start=4096, size=1 << 20)
        plan = lvm.plan_text_write(header, b"abc")
        self.assertEqual(lvm.RawLocn(512, 4, lvm.lvm_crc(b"abc\0"), 0),
                         plan.rlocn)
        self.assertEqual(((4096 + 512, b"abc" + bytes(509)),), plan.writes)
        self.assertEqual(1, len(plan.writes))

    def test_fits_after(self):
        header, area = area_with_copy(1 << 20, 1536, b"x" * 1264)
        plan = lvm.plan_text_write(header, b"y" * 1300)
        # old copy ends at 1536 + 1265 - 1 = 2800 -> next sector 3072
        self.assertEqual(3072, plan.rlocn.offset)
        self.assertEqual(1301, plan.rlocn.size)
        self.assertEqual(((4096 + 3072, b"y" * 1300 + bytes(1536 - 1300)),),
                         plan.writes)
        apply(area, plan)
        new = lvm.commit_header(header, plan.rlocn)
        self.assertEqual(b"y" * 1300, lvm.read_text(new, area.read))
        # the old copy is untouched
        self.assertEqual(b"x" * 1264, lvm.read_text(header, area.read))

    def test_sector_exact_copy_is_followed_directly(self):
        header, _ = area_with_copy(1 << 20, 512, b"x" * 1023)
        self.assertEqual(1536, lvm.plan_text_write(header, b"y").rlocn.offset)

    def test_wraps(self):
        header, area = area_with_copy(8192, 5632, b"x" * 1000)
        plan = lvm.plan_text_write(header, b"z" * 1700)
        # old copy's last byte is 6632 -> next sector 6656; 6656 + 1701
        # passes the end (8192) by 165 bytes, which wrap to offset 512.
        self.assertEqual(6656, plan.rlocn.offset)
        self.assertEqual(2, len(plan.writes))
        self.assertEqual([4096 + 6656, 4096 + 512],
                         [off for off, _ in plan.writes])
        self.assertEqual([1536, 512], [len(d) for _, d in plan.writes])
        apply(area, plan)
        new = lvm.commit_header(header, plan.rlocn)
        self.assertEqual(b"z" * 1700, lvm.read_text(new, area.read))
        self.assertEqual(b"x" * 1000, lvm.read_text(header, area.read))

    def test_restart_near_end(self):
        # old copy ends within a sector of the area end: restart at 512
        header, area = area_with_copy(8192, 6656, b"x" * 1400)
        plan = lvm.plan_text_write(header, b"z" * 100)
        self.assertEqual(512, plan.rlocn.offset)
        # old copy wraps: new starts after its wrapped part
        header, area = area_with_copy(8192, 7168, b"x" * 1500)
        plan = lvm.plan_text_write(header, b"z" * 100)
        self.assertEqual(1024, plan.rlocn.offset)

    def test_too_large(self):
        header, _ = area_with_copy(8192, 512, b"x")
        self.assertEqual(3328, lvm.max_text_size(header))
        lvm.plan_text_write(header, b"y" * 3327)
        err = self.assertRaises(exception.LvmMetadataError,
                                lvm.plan_text_write, header, b"y" * 3328)
        self.assertIn("size", err.kwargs["structure"])

    def test_overlap_refused(self):
        # A (foreign) committed copy larger than lvm2's max leaves no room.
        header, _ = area_with_copy(8192, 1024, b"x" * 6000)
        err = self.assertRaises(exception.LvmMetadataError,
                                lvm.plan_text_write, header, b"y" * 1600)
        self.assertIn("circular buffer", err.kwargs["structure"])

    def test_nul_refused(self):
        header = lvm.MdaHeader(start=4096, size=8192)
        self.assertRaises(exception.LvmMetadataError, lvm.plan_text_write,
                          header, b"a\0b")

    def test_unaligned_area_refused(self):
        header = lvm.MdaHeader(start=4096, size=8192 + 100)
        self.assertRaises(exception.LvmMetadataError, lvm.plan_text_write,
                          header, b"a")

    @FUZZ
    @given(st.integers(4, 64), st.data())
    def test_never_overlaps(self, sectors, data):
        size = sectors * 512
        old_size = data.draw(st.integers(1, size - 1024), "old_size")
        old_offset = data.draw(st.integers(1, sectors - 1), "old_sector") * 512
        if old_offset + old_size - size + 512 > old_offset:
            return  # self-overlapping copy: parse would refuse it
        new_len = data.draw(st.integers(0, size), "new_len")
        header, area = area_with_copy(size, old_offset, b"o" * (old_size - 1))
        try:
            plan = lvm.plan_text_write(header, b"n" * new_len)
        except exception.LvmMetadataError:
            return
        old_ranges = [(header.start + a, header.start + b)
                      for a, b in lvm._ranges(header, old_offset, old_size,
                                              False)]
        for off, chunk in plan.writes:
            self.assertEqual(0, off % 512)
            self.assertEqual(0, len(chunk) % 512)
            self.assertGreaterEqual(off, header.buffer_start)
            self.assertLessEqual(off + len(chunk), header.end)
            for a, b in old_ranges:
                self.assertFalse(off < b and a < off + len(chunk))
        apply(area, plan)
        self.assertEqual(b"o" * (old_size - 1),
                         lvm.read_text(header, area.read))
        new = lvm.commit_header(header, plan.rlocn)
        parsed = lvm.parse_mda_header(lvm.render_mda_header(new), 4096)
        self.assertEqual(b"n" * new_len, lvm.read_text(parsed, area.read))


class TestReadPv(base.TestCase):

    def _pv(self):
        dev_size = 1 << 22
        mda0 = lvm.DiskLocn(4096, 8192)
        mda1 = lvm.DiskLocn(dev_size - 8192, 8192)
        label = lvm.Label(sector=1, pv_id="D" * 32, device_size=dev_size,
                          data_areas=(lvm.DiskLocn(1 << 20, 0),),
                          metadata_areas=(mda0, mda1))
        area = FakeArea(dev_size)
        area.data[512:1024] = lvm.render_label(label)
        for locn, text in ((mda0, b"one"), (mda1, b"two")):
            h = lvm.MdaHeader(start=locn.offset, size=locn.size)
            plan = lvm.plan_text_write(h, text)
            apply(area, plan)
            h = lvm.commit_header(h, plan.rlocn)
            area.write(locn.offset, lvm.render_mda_header(h))
        area.bytes_read = 0
        return label, area

    def test_reads_all_mdas(self):
        label, area = self._pv()
        pv = lvm.read_pv(area)
        self.assertEqual(label, pv.label)
        self.assertEqual([b"one", b"two"],
                         [m.committed_text for m in pv.mdas])
        self.assertEqual(b"one", pv.committed_text)
        self.assertEqual([None, None],
                         [m.precommitted_text for m in pv.mdas])

    def test_precommitted_text(self):
        label, area = self._pv()
        locn = label.metadata_areas[0]
        h = lvm.parse_mda_header(area.read(locn.offset, 512), locn.offset)
        plan = lvm.plan_text_write(h, b"three")
        apply(area, plan)
        area.write(locn.offset,
                   lvm.render_mda_header(lvm.precommit_header(h, plan.rlocn)))
        pv = lvm.read_pv(area)
        self.assertEqual(b"one", pv.mdas[0].committed_text)
        self.assertEqual(b"three", pv.mdas[0].precommitted_text)

    def test_bad_precommitted_text_is_reported(self):
        label, area = self._pv()
        locn = label.metadata_areas[0]
        h = lvm.parse_mda_header(area.read(locn.offset, 512), locn.offset)
        plan = lvm.plan_text_write(h, b"three")
        # slot 1 written, but its text never made it to the disk
        area.write(locn.offset,
                   lvm.render_mda_header(lvm.precommit_header(h, plan.rlocn)))
        pv = lvm.read_pv(area)
        self.assertEqual(b"one", pv.mdas[0].committed_text)
        self.assertIsNone(pv.mdas[0].precommitted_text)
        self.assertIn("checksum", pv.mdas[0].precommit_error)
        self.assertIsNone(pv.mdas[1].precommit_error)

    def test_bad_committed_text_is_fatal(self):
        label, area = self._pv()
        area.data[4096 + 512] ^= 1
        err = self.assertRaises(exception.LvmMetadataError, lvm.read_pv,
                                area)
        self.assertIn("checksum", err.kwargs["structure"])

    @FUZZ
    @given(st.lists(st.tuples(st.integers(0, 16383), st.integers(0, 255)),
                    min_size=1, max_size=6), st.booleans())
    def test_fuzz_mutated_pv(self, edits, fix_crcs):
        label, area = self._pv()
        for pos, value in edits:
            area.data[pos] = value
        if fix_crcs:
            area.data[512:1024] = fix_label_crc(area.data[512:1024])
            area.data[4096:4608] = fix_mda_crc(area.data[4096:4608])

        class Bounded(object):
            path = "<fuzz>"
            size = len(area.data)

            def read(self, offset, length):
                if offset < 0 or offset + length > len(area.data):
                    raise exception.DeviceError(device="<fuzz>",
                                                reason="past end")
                return area.read(offset, length)
        try:
            lvm.read_pv(Bounded())
        except exception.FormatError:
            pass

    def test_mda_outside_device(self):
        label, area = self._pv()
        area.size = len(area.data)
        bad = dataclasses.replace(label, metadata_areas=(
            lvm.DiskLocn(4096, 8192), lvm.DiskLocn(area.size - 4096, 8192)))
        area.data[512:1024] = lvm.render_label(bad)
        err = self.assertRaises(exception.LvmLabelError, lvm.read_pv, area)
        self.assertIn("metadata area", err.kwargs["structure"])

    def test_area_size_mismatch(self):
        label, area = self._pv()
        bad = dataclasses.replace(label, metadata_areas=(
            lvm.DiskLocn(4096, 16384),))
        area.data[512:1024] = lvm.render_label(bad)
        self.assertRaises(exception.LvmMetadataError, lvm.read_pv, area)
