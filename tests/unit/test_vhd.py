"""Unit tests for nova_xenapi_resign.lvhd.vhd (pure VHD structures)."""

import dataclasses
import struct
import uuid

from hypothesis import given, strategies as st

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import vhd
from tests import base
from tests.fuzz import FUZZ


SR = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
NEW_SR = "0f0f0f0f-1111-2222-3333-444444444444"
PARENT_VDI = "12345678-1234-1234-1234-123456789abc"
NEW_PARENT_VDI = "87654321-4321-4321-4321-cba987654321"
PARENT_UID = uuid.UUID("11111111-2222-3333-4444-555555555555")
CHILD_UID = uuid.UUID("66666666-7777-8888-9999-000000000000")
MIB = 1024 * 1024


def child_image(size=8 * MIB, **kw):
    name = naming.lvhd_parent_name(SR, PARENT_VDI)
    return create.build_dynamic_vhd(size, uuid=CHILD_UID,
                                    parent=(name, PARENT_UID), **kw)


def with_checksum(footer):
    """``footer`` with its ``checksum`` field as a renderer computes it."""
    return dataclasses.replace(footer, checksum=vhd.checksum(
        vhd.render_footer(footer), 64))


def set_hidden(footer, hidden):
    """``footer`` with blktap's hidden flag set or cleared, checksum fixed.

    What ``vhd-util set -f hidden`` does to both footer copies.
    """
    changed = dataclasses.replace(footer, hidden=1 if hidden else 0)
    return vhd.parse_footer(vhd.render_footer(changed))


def apply_writes(region, writes):
    """Apply ``(offset, bytes)`` writes to a copy of ``region``.

    The region grows when a write reaches past its end.
    """
    out = bytearray(region)
    for offset, data in writes:
        if offset + len(data) > len(out):
            out.extend(bytes(offset + len(data) - len(out)))
        out[offset:offset + len(data)] = data
    return bytes(out)


class TestChecksum(base.TestCase):

    def test_ones_complement_of_sum_with_field_zeroed(self):
        data = bytes(range(16)) + b"\xff\xff\xff\xff" + bytes(8)
        self.assertEqual((~sum(range(16))) & 0xFFFFFFFF,
                         vhd.checksum(data, 16))

    def test_all_zero(self):
        self.assertEqual(0xFFFFFFFF, vhd.checksum(bytes(512), 64))

    def test_geometry_known_values(self):
        # 8 MiB: 16384 sectors -> spt 17, heads 4, cylinders 240.
        self.assertEqual((240 << 16) | (4 << 8) | 17,
                         vhd.chs_geometry(8 * MIB))
        # Huge disks clamp to 65535/16/255.
        self.assertEqual((65535 << 16) | (16 << 8) | 255,
                         vhd.chs_geometry(2 * 1024 ** 4))


class TestFooter(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = create.build_dynamic_vhd(8 * MIB, uuid=PARENT_UID,
                                              timestamp=1234)
        self.raw = self.image[:512]

    def test_fields(self):
        f = vhd.parse_footer(self.raw)
        self.assertEqual(b"conectix", f.cookie)
        self.assertEqual(2, f.features)
        self.assertEqual(0x00010000, f.version)
        self.assertEqual(512, f.data_offset)
        self.assertEqual(1234, f.timestamp)
        self.assertEqual(b"tap\x00", f.creator_app)
        self.assertEqual(0x00010003, f.creator_version)
        self.assertEqual(8 * MIB, f.current_size)
        self.assertEqual(8 * MIB, f.original_size)
        self.assertEqual(vhd.DISK_DYNAMIC, f.disk_type)
        self.assertEqual(PARENT_UID, f.uuid)
        self.assertFalse(f.is_hidden)
        self.assertTrue(f.is_dynamic)
        self.assertFalse(f.is_differencing)

    def test_round_trip(self):
        self.assertEqual(self.raw, vhd.render_footer(vhd.parse_footer(
            self.raw)))

    def test_trailing_footer_equals_copy(self):
        self.assertEqual(self.raw, self.image[-512:])

    def test_render_recomputes_checksum(self):
        f = vhd.parse_footer(self.raw)
        changed = dataclasses.replace(f, current_size=16 * MIB, checksum=0)
        again = vhd.parse_footer(vhd.render_footer(changed))
        self.assertEqual(16 * MIB, again.current_size)

    def test_bad_checksum_typed_with_offset(self):
        raw = bytearray(self.raw)
        raw[100] ^= 1
        exc = self.assertRaises(exception.VhdFormatError, vhd.parse_footer,
                                bytes(raw), "/dev/x", 4096)
        self.assertEqual(4096 + 64, exc.kwargs["offset"])
        self.assertEqual("/dev/x", exc.kwargs["device"])
        self.assertIn("checksum", exc.kwargs["structure"])

    def test_bad_cookie(self):
        raw = b"notavhd!" + self.raw[8:]
        exc = self.assertRaises(exception.VhdFormatError, vhd.parse_footer,
                                raw)
        self.assertEqual(0, exc.kwargs["offset"])
        self.assertEqual(b"conectix", exc.kwargs["expected"])

    def test_short_buffer(self):
        self.assertRaises(exception.VhdFormatError, vhd.parse_footer,
                          self.raw[:100])

    def test_bad_disk_type(self):
        f = vhd.parse_footer(self.raw)
        raw = vhd.render_footer(dataclasses.replace(f, disk_type=7))
        exc = self.assertRaises(exception.VhdFormatError, vhd.parse_footer,
                                raw)
        self.assertEqual(60, exc.kwargs["offset"])

    def test_hidden_flag(self):
        f = vhd.parse_footer(self.raw)
        hidden = set_hidden(f, True)
        raw = vhd.render_footer(hidden)
        self.assertEqual(1, raw[85])
        self.assertTrue(vhd.parse_footer(raw).is_hidden)
        self.assertEqual(raw, vhd.render_footer(vhd.parse_footer(raw)))
        # Only byte 85 and the checksum differ.
        diff = [i for i in range(512) if raw[i] != self.raw[i]]
        self.assertTrue(set(diff) <= {64, 65, 66, 67, 85}, diff)
        cleared = vhd.render_footer(set_hidden(hidden, False))
        self.assertEqual(self.raw, cleared)

    def test_build_hidden(self):
        image = create.build_dynamic_vhd(4 * MIB, hidden=True)
        self.assertTrue(vhd.parse_footer(image).is_hidden)
        self.assertTrue(vhd.parse_footer(image[-512:]).is_hidden)

    def test_legacy_hidden_checksum_accepted(self):
        # Old tapdisk (1.1) set hidden without updating the checksum.
        f = dataclasses.replace(vhd.parse_footer(self.raw),
                                creator_version=0x00010001)
        raw = bytearray(vhd.render_footer(f))
        raw[85] = 1
        parsed = vhd.parse_footer(bytes(raw))
        self.assertTrue(parsed.is_hidden)
        # The same trick is refused for a current creator version.
        raw2 = bytearray(self.raw)
        raw2[85] = 1
        self.assertRaises(exception.VhdFormatError, vhd.parse_footer,
                          bytes(raw2))

    def test_uuid_forms(self):
        for form in (PARENT_UID, PARENT_UID.bytes, str(PARENT_UID)):
            image = create.build_dynamic_vhd(4 * MIB, uuid=form)
            self.assertEqual(PARENT_UID, vhd.parse_footer(image).uuid)
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          4 * MIB, uuid="nope")
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          4 * MIB, uuid=b"short")


class TestHeader(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = child_image()
        self.raw = self.image[512:1536]

    def test_fields(self):
        h = vhd.parse_header(self.raw, offset=512)
        self.assertEqual(b"cxsparse", h.cookie)
        self.assertEqual(vhd.NO_DATA_OFFSET, h.data_offset)
        self.assertEqual(1536, h.table_offset)
        self.assertEqual(4, h.max_table_entries)
        self.assertEqual(2 * MIB, h.block_size)
        self.assertEqual(PARENT_UID, h.parent_uuid)
        self.assertFalse(h.parent_is_raw)
        self.assertEqual(naming.lvhd_parent_name(SR, PARENT_VDI),
                         h.parent_name)
        codes = [loc.platform for loc in h.locators]
        self.assertEqual(["MacX", "W2ku", "W2ru"] + ["none"] * 5, codes)
        # blktap's layout: locators after the batmap, one sector each.
        self.assertEqual([3072, 3584, 4096],
                         [loc.data_offset for loc in h.locators[:3]])
        self.assertEqual([512] * 3,
                         [loc.data_space for loc in h.locators[:3]])
        self.assertEqual([110, 206, 206],
                         [loc.data_length for loc in h.locators[:3]])

    def test_parent_name_is_utf16be(self):
        name = naming.lvhd_parent_name(SR, PARENT_VDI)
        self.assertEqual(name.encode("utf-16-be"),
                         self.raw[64:64 + 2 * len(name)])
        self.assertEqual(bytes(512 - 2 * len(name)),
                         self.raw[64 + 2 * len(name):576])

    def test_round_trip(self):
        self.assertEqual(self.raw, vhd.render_header(vhd.parse_header(
            self.raw)))

    def test_dynamic_has_no_locators(self):
        image = create.build_dynamic_vhd(8 * MIB)
        h = vhd.parse_header(image[512:1536])
        self.assertEqual((), h.locator_slots())
        self.assertTrue(h.parent_is_raw)
        self.assertEqual("", h.parent_name)
        self.assertEqual(3584, len(image))

    def test_bad_checksum(self):
        raw = bytearray(self.raw)
        raw[70] ^= 0x40
        exc = self.assertRaises(exception.VhdFormatError, vhd.parse_header,
                                bytes(raw), "/dev/y", 512)
        self.assertEqual(512 + 36, exc.kwargs["offset"])

    def test_bad_cookie_version_offset_code(self):
        h = vhd.parse_header(self.raw)
        for changes, offset in (({"cookie": b"xxsparse"}, 512),
                                ({"version": 0x00020000}, 512 + 24),
                                ({"data_offset": 0}, 512 + 8)):
            raw = vhd.render_header(dataclasses.replace(h, **changes))
            exc = self.assertRaises(exception.VhdFormatError,
                                    vhd.parse_header, raw, offset=512)
            self.assertEqual(offset, exc.kwargs["offset"], changes)
        locs = list(h.locators)
        locs[5] = vhd.ParentLocator(code=0x12345678)
        raw = vhd.render_header(dataclasses.replace(h, locators=tuple(locs)))
        exc = self.assertRaises(exception.VhdFormatError, vhd.parse_header,
                                raw, offset=512)
        self.assertEqual(512 + 576 + 5 * 24, exc.kwargs["offset"])

    def test_bad_block_size(self):
        h = vhd.parse_header(self.raw)
        raw = vhd.render_header(dataclasses.replace(h, block_size=3000))
        self.assertRaises(exception.VhdFormatError, vhd.parse_header, raw)

    def test_batmap_written(self):
        # tap 1.3 VHDs need a batmap right after the BAT.
        header = self.image[2048:2560]
        self.assertEqual(b"tdbatmap", header[:8])
        offset, secs, version, csum = struct.unpack(">QIII", header[8:28])
        self.assertEqual((2560, 1, 0x00010002), (offset, secs, version))
        # blktap's vhd_checksum_batmap: ones' complement of the byte sum,
        # 0xFFFFFFFF for the all-zero map of an empty VHD.
        self.assertEqual(bytes(512), self.image[2560:3072])
        self.assertEqual(0xFFFFFFFF, csum)

    def test_bat_unused(self):
        bat = self.image[1536:2048]
        self.assertEqual(b"\xff" * 16, bat[:16])
        self.assertEqual(bytes(512 - 16), bat[16:])


class TestLocators(base.TestCase):

    def test_encodings(self):
        path = "./VG_XenStorage--a-VHD--b"
        self.assertEqual(b"file://./VG_XenStorage--a-VHD--b",
                         vhd.encode_locator(vhd.PLAT_CODE_MACX, path))
        for code in (vhd.PLAT_CODE_W2KU, vhd.PLAT_CODE_W2RU):
            self.assertEqual(".\\VG_XenStorage--a-VHD--b".encode(
                "utf-16-le"), vhd.encode_locator(code, path))
        self.assertEqual("/dev/x".replace("/", "\\").encode("utf-16-le"),
                         vhd.encode_locator(vhd.PLAT_CODE_W2KU, "/dev/x"))
        self.assertEqual(".\\..\\up".encode("utf-16-le"),
                         vhd.encode_locator(vhd.PLAT_CODE_W2RU, "../up"))
        self.assertRaises(exception.InvalidInput, vhd.encode_locator,
                          vhd.PLAT_CODE_MAC, path)
        self.assertRaises(exception.InvalidInput, vhd.encode_locator,
                          vhd.PLAT_CODE_MACX, "caf\u00e9")

    def test_lengths_match_formats_md(self):
        name = naming.lvhd_parent_name(SR, PARENT_VDI)
        self.assertEqual(101, len(name))
        self.assertEqual(110, len(vhd.encode_locator(vhd.PLAT_CODE_MACX,
                                                     "./" + name)))
        self.assertEqual(206, len(vhd.encode_locator(vhd.PLAT_CODE_W2KU,
                                                     "./" + name)))
        self.assertEqual(100, len(naming.lvhd_parent_name(SR, PARENT_VDI,
                                                          raw=True)))

    def test_decode(self):
        for code in vhd.PATH_LOCATOR_CODES:
            payload = vhd.encode_locator(code, "./p")
            loc = vhd.ParentLocator(code=code, data_space=512,
                                    data_length=len(payload))
            self.assertEqual("./p", vhd.decode_locator(
                loc, payload + bytes(512 - len(payload))))

    def test_decode_strips_drive_letter(self):
        payload = "C:\\dir\\p".encode("utf-16-le")
        loc = vhd.ParentLocator(code=vhd.PLAT_CODE_W2KU, data_space=1,
                                data_length=len(payload))
        self.assertEqual("/dir/p", vhd.decode_locator(loc, payload))

    def test_data_space_in_sectors_or_bytes(self):
        self.assertEqual(512, vhd.ParentLocator(data_space=1).space)
        self.assertEqual(1024, vhd.ParentLocator(data_space=2).space)
        self.assertEqual(1024, vhd.ParentLocator(data_space=1024).space)
        self.assertEqual(0, vhd.ParentLocator(data_space=1000).space)

    def test_decode_errors(self):
        macx = vhd.PLAT_CODE_MACX
        cases = [
            (vhd.ParentLocator(code=macx, data_space=1, data_length=5),
             b"http:"),
            (vhd.ParentLocator(code=macx, data_space=1, data_length=600),
             bytes(600)),
            (vhd.ParentLocator(code=macx, data_space=1000, data_length=5),
             b"file:"),
            (vhd.ParentLocator(code=macx, data_space=1, data_length=0), b""),
            (vhd.ParentLocator(code=macx, data_space=1, data_length=8),
             b"file://"),
            (vhd.ParentLocator(code=macx, data_space=1, data_length=9),
             b"file://\xff\xfe"),
            (vhd.ParentLocator(code=vhd.PLAT_CODE_W2KU, data_space=1,
                               data_length=3), b"abc"),
            (vhd.ParentLocator(code=vhd.PLAT_CODE_W2KU, data_space=1,
                               data_length=2), b"\x00\xd8"),
            (vhd.ParentLocator(code=vhd.PLAT_CODE_WI2K, data_space=1,
                               data_length=2), b"ab"),
        ]
        for loc, payload in cases:
            self.assertRaises(exception.VhdFormatError, vhd.decode_locator,
                              loc, payload)

    def test_read_parent_locators_from_region_and_callable(self):
        image = child_image()
        lv = vhd.parse_lv_start(image)
        region = image[:lv.region_end]
        paths = vhd.read_parent_locators(lv.header, region)
        expected = "./" + naming.lvhd_parent_name(SR, PARENT_VDI)
        self.assertEqual([0, 1, 2], [p.index for p in paths])
        self.assertEqual([expected] * 3, [p.path for p in paths])
        self.assertEqual(naming.lvhd_parent_name(SR, PARENT_VDI),
                         lv.header.parent_name)
        calls = []

        def read(offset, length):
            calls.append((offset, length))
            return image[offset:offset + length]
        self.assertEqual(paths, vhd.read_parent_locators(lv.header, read))
        self.assertEqual([(3072, 512), (3584, 512), (4096, 512)], calls)

    def test_read_past_region_is_typed(self):
        image = child_image()
        lv = vhd.parse_lv_start(image)
        self.assertRaises(exception.VhdFormatError,
                          vhd.read_parent_locators, lv.header, image[:3500])


class TestLvStart(base.TestCase):

    def test_header_region(self):
        image = child_image()
        lv = vhd.parse_lv_start(image[:vhd.INITIAL_READ])
        self.assertEqual(4608, vhd.header_region(lv.footer, lv.header))
        dyn = create.build_dynamic_vhd(8 * MIB)
        lv = vhd.parse_lv_start(dyn)
        self.assertEqual(1536, lv.region_end)

    def test_lv_larger_than_vhd(self):
        image = child_image()
        # A deflated LV: VHD data, then zeroes up to the LV end.
        lv_bytes = image + bytes(4 * MIB - len(image))
        lv = vhd.parse_lv_start(lv_bytes, trailing=lv_bytes[-512:])
        self.assertFalse(lv.trailing_footer_ok)
        self.assertEqual(CHILD_UID, lv.footer.uuid)
        # blktap on a block device: footer at the LV end.
        padded = child_image(lv_size=4 * MIB)
        self.assertEqual(4 * MIB, len(padded))
        lv = vhd.parse_lv_start(padded, trailing=padded[-512:])
        self.assertTrue(lv.trailing_footer_ok)

    def test_trailing_footer_mismatch(self):
        image = child_image()
        other = create.build_dynamic_vhd(8 * MIB)[-512:]
        exc = self.assertRaises(exception.VhdFormatError,
                                vhd.parse_lv_start, image, "/dev/lv",
                                trailing=other, trailing_offset=99)
        self.assertEqual(99, exc.kwargs["offset"])
        corrupt = bytearray(image[-512:])
        corrupt[200] ^= 1
        self.assertRaises(exception.VhdFormatError, vhd.parse_lv_start,
                          image, trailing=bytes(corrupt))

    def test_not_a_vhd(self):
        self.assertRaises(exception.VhdFormatError, vhd.parse_lv_start,
                          bytes(4096))

    def test_short_for_header(self):
        image = child_image()
        exc = self.assertRaises(exception.VhdFormatError,
                                vhd.parse_lv_start, image[:1000])
        self.assertEqual(512, exc.kwargs["offset"])

    def test_fixed_disk_refused(self):
        f = dataclasses.replace(vhd.parse_footer(child_image()),
                                disk_type=vhd.DISK_FIXED,
                                data_offset=vhd.NO_DATA_OFFSET)
        self.assertRaises(exception.VhdFormatError, vhd.parse_lv_start,
                          vhd.render_footer(f) + bytes(1024))


class TestNames(base.TestCase):

    def test_lvhd_parent_name(self):
        self.assertEqual(
            "VG_XenStorage--aaaaaaaa--bbbb--cccc--dddd--eeeeeeeeeeee-VHD--"
            "12345678--1234--1234--1234--123456789abc",
            naming.lvhd_parent_name(SR, PARENT_VDI))
        self.assertTrue(naming.lvhd_parent_name(SR, PARENT_VDI, raw=True)
                        .endswith("-LV--12345678--1234--1234--1234--"
                                  "123456789abc"))

    def test_round_trip(self):
        for raw in (False, True):
            name = naming.lvhd_parent_name(SR, PARENT_VDI, raw=raw)
            self.assertEqual((SR, PARENT_VDI, raw),
                             naming.parse_lvhd_parent_name(name))
            self.assertEqual((SR, PARENT_VDI, raw),
                             naming.parse_lvhd_parent_name("./" + name))

    def test_split_dm_name(self):
        self.assertEqual(("vg-a", "lv-b"), naming.split_dm_name("vg--a-lv--b"))
        self.assertRaises(exception.InvalidInput, naming.split_dm_name,
                          "no--dash")
        self.assertRaises(exception.InvalidInput,
                          naming.parse_lvhd_parent_name, "vg-lv")
        self.assertRaises(exception.InvalidInput,
                          naming.parse_lvhd_parent_name,
                          "VG_XenStorage--x-MGT")


class TestPlanParentChange(base.TestCase):

    def setUp(self):
        super().setUp()
        self.image = child_image()
        self.lv = vhd.parse_lv_start(self.image)
        self.region = self.image[:self.lv.region_end]
        self.new_name = naming.lvhd_parent_name(NEW_SR, NEW_PARENT_VDI)

    def plan(self, **kw):
        return vhd.plan_parent_change(self.lv.footer, self.lv.header,
                                      self.region, self.new_name, **kw)

    def test_writes_sector_aligned_header_last(self):
        writes = self.plan()
        for offset, data in writes:
            self.assertEqual(0, offset % 512)
            self.assertEqual(0, len(data) % 512)
        self.assertEqual([3072, 3584, 4096, 512], [o for o, _ in writes])
        self.assertEqual(1024, len(writes[-1][1]))

    def test_result_reparses(self):
        new = apply_writes(self.image, self.plan())
        lv = vhd.parse_lv_start(new, trailing=new[-512:])
        self.assertTrue(lv.trailing_footer_ok)
        self.assertEqual(self.new_name, lv.header.parent_name)
        self.assertEqual(PARENT_UID, lv.header.parent_uuid)
        paths = vhd.read_parent_locators(lv.header, new)
        self.assertEqual(["./" + self.new_name] * 3, [p.path for p in paths])
        # Same-length UUIDs: lengths and spaces are unchanged.
        self.assertEqual(self.lv.header.locators, lv.header.locators)
        # Footers untouched, BAT and batmap untouched.
        self.assertEqual(self.image[:512], new[:512])
        self.assertEqual(self.image[-512:], new[-512:])
        self.assertEqual(self.image[1536:3072], new[1536:3072])
        self.assertEqual(len(self.image), len(new))

    def test_exact_payload_bytes(self):
        new = apply_writes(self.image, self.plan())
        macx = ("file://./" + self.new_name).encode()
        self.assertEqual(macx + bytes(512 - len(macx)), new[3072:3584])
        w2 = (".\\" + self.new_name).encode("utf-16-le")
        self.assertEqual(w2 + bytes(512 - len(w2)), new[3584:4096])
        self.assertEqual(w2 + bytes(512 - len(w2)), new[4096:4608])

    def test_new_parent_uuid(self):
        new_uid = uuid.UUID("99999999-8888-7777-6666-555555555555")
        new = apply_writes(self.image, self.plan(new_parent_uuid=new_uid))
        self.assertEqual(new_uid, vhd.parse_lv_start(new).header.parent_uuid)
        new = apply_writes(self.image,
                           self.plan(new_parent_uuid=str(new_uid)))
        self.assertEqual(new_uid, vhd.parse_lv_start(new).header.parent_uuid)

    def test_idempotent(self):
        once = apply_writes(self.image, self.plan())
        lv = vhd.parse_lv_start(once)
        again = vhd.plan_parent_change(lv.footer, lv.header, once,
                                       self.new_name)
        self.assertEqual(once, apply_writes(once, again))

    def test_callable_source(self):
        read = lambda o, n: self.image[o:o + n]  # noqa: E731
        self.assertEqual(self.plan(), vhd.plan_parent_change(
            self.lv.footer, self.lv.header, read, self.new_name))

    def test_shorter_name_zero_fills_space(self):
        new = apply_writes(self.image, vhd.plan_parent_change(
            self.lv.footer, self.lv.header, self.region, "short"))
        lv = vhd.parse_lv_start(new)
        self.assertEqual([14, 14, 14],
                         [loc.data_length for loc in lv.header.locators[:3]])
        self.assertEqual(["./short"] * 3, [p.path for p in
                                           vhd.read_parent_locators(
                                               lv.header, new)])
        # No stale bytes of the old name remain in the slots.
        self.assertEqual(bytes(512 - 14), new[3072 + 14:3584])

    def test_name_too_long_for_space(self):
        exc = self.assertRaises(exception.VhdFormatError,
                                vhd.plan_parent_change, self.lv.footer,
                                self.lv.header, self.region, "x" * 256)
        self.assertEqual(3584, exc.kwargs["offset"])  # W2ku: 516 > 512

    def test_name_too_long_for_header(self):
        self.assertRaises(exception.InvalidInput, vhd.plan_parent_change,
                          self.lv.footer, self.lv.header, self.region,
                          "./" + "y" * 257)

    def test_requires_differencing(self):
        dyn = create.build_dynamic_vhd(8 * MIB)
        lv = vhd.parse_lv_start(dyn)
        self.assertRaises(exception.VhdFormatError, vhd.plan_parent_change,
                          lv.footer, lv.header, dyn, "p")

    def test_overlapping_locator_refused(self):
        locs = list(self.lv.header.locators)
        locs[1] = dataclasses.replace(locs[1], data_offset=1024)
        header = dataclasses.replace(self.lv.header, locators=tuple(locs))
        self.assertRaises(exception.VhdFormatError, vhd.plan_parent_change,
                          self.lv.footer, header, self.region, "p")

    def test_sector_counted_space_and_unaligned_offset(self):
        # A locator whose data_space counts sectors (spec style) and
        # whose payload is not sector-aligned: read-modify-write.
        locs = list(self.lv.header.locators)
        locs[0] = dataclasses.replace(locs[0], data_space=1)
        locs[2] = dataclasses.replace(locs[2], data_offset=4096 + 100,
                                      data_space=1)
        header = dataclasses.replace(self.lv.header, locators=tuple(locs))
        region = bytearray(self.image) + bytes(1024)
        region[4096:4196] = b"\xaa" * 100
        writes = vhd.plan_parent_change(self.lv.footer, header, bytes(region),
                                        self.new_name)
        for offset, data in writes:
            self.assertEqual(0, offset % 512)
            self.assertEqual(0, len(data) % 512)
        new = apply_writes(bytes(region), writes)
        self.assertEqual(b"\xaa" * 100, new[4096:4196])
        lv = vhd.parse_lv_start(new)
        self.assertEqual(1, lv.header.locators[0].data_space)
        self.assertEqual(["./" + self.new_name] * 3,
                         [p.path for p in vhd.read_parent_locators(
                             lv.header, new)])

    def test_unknown_locator_codes_left_alone(self):
        locs = list(self.lv.header.locators)
        locs[4] = vhd.ParentLocator(code=vhd.PLAT_CODE_WI2K, data_space=1,
                                    data_length=3, data_offset=8192)
        header = dataclasses.replace(self.lv.header, locators=tuple(locs))
        writes = vhd.plan_parent_change(self.lv.footer, header,
                                        self.image + bytes(8192),
                                        self.new_name)
        self.assertEqual([3072, 3584, 4096, 512], [o for o, _ in writes])


class TestBuild(base.TestCase):

    def test_sizes_and_layout(self):
        image = create.build_dynamic_vhd(8 * MIB)
        self.assertEqual(3584, len(image))
        image = child_image()
        self.assertEqual(5120, len(image))
        big = create.build_dynamic_vhd(1024 * MIB)   # 512 BAT entries
        h = vhd.parse_lv_start(big).header
        self.assertEqual(512, h.max_table_entries)
        self.assertEqual(b"tdbatmap", big[1536 + 2048:1536 + 2048 + 8])

    def test_custom_locators_and_raw_parent(self):
        image = create.build_dynamic_vhd(
            4 * MIB, parent=("LV-x", None, ("W2ru",)))
        lv = vhd.parse_lv_start(image)
        self.assertTrue(lv.header.parent_is_raw)
        self.assertEqual(["W2ru"], [loc.platform for _, loc in
                                    lv.header.locator_slots()])

    def test_invalid_arguments(self):
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          100)
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          4 * MIB, block_size=1000)
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          4 * MIB, lv_size=1024)
        self.assertRaises(exception.InvalidInput, create.build_dynamic_vhd,
                          4 * MIB, parent=("p", None, ("Nope",)))


class TestFuzz(base.TestCase):
    """Arbitrary bytes make the parsers raise FormatError or succeed."""

    @FUZZ
    @given(st.binary(min_size=0, max_size=600))
    def test_footer(self, data):
        try:
            f = vhd.parse_footer(data)
        except exception.FormatError:
            return
        self.assertEqual(vhd.parse_footer(vhd.render_footer(f)).unique_id,
                         f.unique_id)

    @FUZZ
    @given(st.binary(min_size=0, max_size=1100))
    def test_header(self, data):
        try:
            h = vhd.parse_header(data)
            h.parent_name
        except exception.FormatError:
            return

    @FUZZ
    @given(st.integers(0, 2 ** 32 - 1), st.integers(0, 2 ** 32 - 1),
           st.integers(0, 2 ** 32 - 1), st.binary(max_size=1200))
    def test_locator(self, code, space, length, payload):
        loc = vhd.ParentLocator(code=code, data_space=space,
                                data_length=length)
        try:
            vhd.decode_locator(loc, payload)
        except exception.FormatError:
            return

    @FUZZ
    @given(st.data())
    def test_mutated_child(self, data):
        """Flip bytes of a valid child, fix the checksums, parse it all."""
        image = bytearray(child_image())
        n = data.draw(st.integers(1, 8))
        for _ in range(n):
            pos = data.draw(st.integers(0, len(image) - 1))
            image[pos] = data.draw(st.integers(0, 255))
        if data.draw(st.booleans()):
            struct.pack_into(">I", image, 64, vhd.checksum(image[:512], 64))
            struct.pack_into(">I", image, 512 + 36,
                             vhd.checksum(image[512:1536], 36))
        image = bytes(image)
        try:
            lv = vhd.parse_lv_start(image, trailing=image[-512:])
            lv.header.parent_name
            end = vhd.header_region(lv.footer, lv.header)
            region = image[:min(end, 1 << 20)]
            vhd.read_parent_locators(lv.header, region)
            vhd.plan_parent_change(lv.footer, lv.header, region, "p")
        except exception.FormatError:
            return

    @FUZZ
    @given(st.integers(0, 2 ** 64 - 1), st.integers(0, 2 ** 32 - 1),
           st.binary(min_size=4, max_size=4), st.integers(0, 2 ** 64 - 1),
           st.sampled_from([2, 3, 4]), st.binary(min_size=16, max_size=16),
           st.integers(0, 255), st.integers(0, 255),
           st.binary(min_size=426, max_size=426))
    def test_footer_round_trip(self, data_offset, timestamp, app, size,
                               disk_type, uid, saved, hidden, reserved):
        if disk_type != vhd.DISK_FIXED:
            data_offset -= data_offset % 512
        f = with_checksum(vhd.Footer(
            data_offset=data_offset, current_size=size, disk_type=disk_type,
            unique_id=uid, timestamp=timestamp, creator_app=app,
            saved_state=saved, hidden=hidden, reserved=reserved))
        raw = vhd.render_footer(f)
        self.assertEqual(f, vhd.parse_footer(raw))
        self.assertEqual(raw, vhd.render_footer(vhd.parse_footer(raw)))

    @FUZZ
    @given(st.lists(st.tuples(st.sampled_from(sorted(vhd.PLATFORM_NAMES)),
                              st.integers(0, 2 ** 32 - 1),
                              st.integers(0, 2 ** 32 - 1),
                              st.integers(0, 2 ** 64 - 1)),
                    min_size=8, max_size=8),
           st.text(max_size=120), st.integers(0, 2 ** 20))
    def test_header_round_trip(self, locs, name, entries):
        h = vhd.DynamicHeader(
            table_offset=1536, max_table_entries=entries,
            parent_name_raw=vhd.encode_parent_name(name),
            locators=tuple(vhd.ParentLocator(code=c, data_space=s,
                                             data_length=n, data_offset=o)
                           for c, s, n, o in locs))
        raw = vhd.render_header(h)
        parsed = vhd.parse_header(raw)
        self.assertEqual(raw, vhd.render_header(parsed))
        self.assertEqual(name.split("\x00")[0], parsed.parent_name)
