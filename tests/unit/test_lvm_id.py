"""Unit tests for nova_xenapi_resign.lvhd.lvm_id (lvm2's id and name rules)."""

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import lvm_id
from tests import base

#: The pv_uuid of a label sector ``pvcreate`` wrote (tests/unit/test_lvm.py
#: REAL_LABEL), and its dashed form as lvm2 prints ids (6-4-4-4-4-4-6,
#: ``lib/id/id.c`` ``id_write_format``).
REAL_PV_ID = "2ixx0dmsqs1VQjrKeLDXB57ld2PuhsML"
REAL_PV_ID_DASHED = "2ixx0d-msqs-1VQj-rKeL-DXB5-7ld2-PuhsML"


class TestFormatAndParse(base.TestCase):

    def test_round_trip(self):
        self.assertEqual(REAL_PV_ID_DASHED, lvm_id.format_lvm_id(REAL_PV_ID))
        self.assertEqual(REAL_PV_ID, lvm_id.parse_lvm_id(REAL_PV_ID_DASHED))
        self.assertEqual(REAL_PV_ID, lvm_id.parse_lvm_id(REAL_PV_ID))
        self.assertEqual(REAL_PV_ID,
                         lvm_id.parse_lvm_id(REAL_PV_ID_DASHED.encode()))
        self.assertEqual(REAL_PV_ID_DASHED,
                         lvm_id.format_lvm_id(REAL_PV_ID.encode()))

    def test_one_error_type_for_every_malformed_id(self):
        for bad in ("", "abc", REAL_PV_ID[:-1], REAL_PV_ID + "a",
                    REAL_PV_ID[:-1] + "$", REAL_PV_ID[:-1] + "_",
                    REAL_PV_ID[:-1] + "\u00e9", b"\xff" * 32):
            self.assertRaises(exception.InvalidInput, lvm_id.parse_lvm_id,
                              bad)
            self.assertRaises(exception.InvalidInput, lvm_id.format_lvm_id,
                              bad)
        self.assertRaises(exception.InvalidInput, lvm_id.parse_lvm_id,
                          REAL_PV_ID_DASHED + "x")

    def test_undashed(self):
        self.assertTrue(lvm_id.is_undashed_lvm_id("!#" + REAL_PV_ID[2:]))
        self.assertTrue(lvm_id.is_undashed_lvm_id(REAL_PV_ID.encode()))
        for bad in (REAL_PV_ID_DASHED, REAL_PV_ID[:-1], b"\xff" * 32):
            self.assertFalse(lvm_id.is_undashed_lvm_id(bad), bad)

    def test_is_lvm_id(self):
        self.assertTrue(lvm_id.is_lvm_id(REAL_PV_ID_DASHED))
        self.assertTrue(lvm_id.is_lvm_id("!#" + REAL_PV_ID_DASHED[2:]))
        for bad in (REAL_PV_ID,
                    "2ixx0-dmsqs-1VQj-rKeL-DXB5-7ld2-PuhsML",
                    "2i_x0d-msqs-1VQj-rKeL-DXB5-7ld2-PuhsML",
                    REAL_PV_ID_DASHED + "\n", None, 5):
            self.assertFalse(lvm_id.is_lvm_id(bad), bad)


class TestDerive(base.TestCase):

    def test_alphabet_is_lvm2s(self):
        # lib/id/id.c _c[] without its last two characters.
        self.assertEqual("0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ", lvm_id.LVM_ID_ALPHABET)

    def test_derive_is_deterministic_and_pinned(self):
        a = lvm_id.derive_lvm_id("sr-uuid", "vg", "old")
        self.assertEqual(a, lvm_id.derive_lvm_id("sr-uuid", "vg", "old"))
        self.assertTrue(lvm_id.is_lvm_id(a))
        self.assertEqual(set(), set(lvm_id.parse_lvm_id(a))
                         - set(lvm_id.LVM_ID_ALPHABET))
        # A change detector on purpose: a resumed or repeated resign must
        # derive the ids an earlier release derived, so this value (produced
        # by the code when the scheme was fixed) must never change.
        self.assertEqual("e78rq4-E0pq-02iz-It0p-W0Nt-xORw-RXVeAy",
                         lvm_id.derive_lvm_id("a", "b"))

    def test_derive_separates_parts(self):
        self.assertNotEqual(lvm_id.derive_lvm_id("ab", "c"),
                            lvm_id.derive_lvm_id("a", "bc"))
        self.assertNotEqual(lvm_id.derive_lvm_id("a"),
                            lvm_id.derive_lvm_id("a", ""))
        self.assertRaises(ValueError, lvm_id.derive_lvm_id)
        self.assertRaises(TypeError, lvm_id.derive_lvm_id, b"x")


class TestNames(base.TestCase):

    def test_names(self):
        for good in ("MGT", "VG_XenStorage-1111aaaa-2222-3333-4444-5555666",
                     "a+b_c.d-e", "x" * 127):
            self.assertTrue(lvm_id.is_valid_lvm_name(good), good)
        for bad in ("", "-x", ".", "..", "a b", "a/b", "x" * 128, None):
            self.assertFalse(lvm_id.is_valid_lvm_name(bad), bad)
