"""The lease sector codec and the choice between the two slots."""

import struct
import zlib

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from tests import base

SR = "0c4f3f8e-0e7b-4b9e-9d6a-1f2e3d4c5b6a"
HELD = rec.LeaseRecord(
    sr_uuid=SR, state=rec.STATE_HELD, generation=7, counter=41,
    duration_ms=120000, written_at_ms=1700000000123,
    owner=rec.Owner("pool-a", "host-a1"),
    next_owner=rec.Owner("pool-b", "host-b1"))


def hand_made_sector():
    """HELD laid out byte by byte, without the codec.

    The offsets are the table in record.py's docstring and in
    doc/source/reference/lease.rst.
    """
    buf = bytearray(512)
    buf[0:8] = b"XRSLEASE"
    buf[8:10] = (1).to_bytes(2, "little")
    buf[10] = 2
    buf[12:16] = (120000).to_bytes(4, "little")
    buf[16:24] = (7).to_bytes(8, "little")
    buf[24:32] = (41).to_bytes(8, "little")
    buf[32:40] = (1700000000123).to_bytes(8, "little")
    buf[40:76] = SR.encode()
    buf[76:82] = b"pool-a"
    buf[140:147] = b"host-a1"
    buf[204:210] = b"pool-b"
    buf[268:275] = b"host-b1"
    buf[508:512] = (zlib.crc32(bytes(buf[:508])) & 0xFFFFFFFF).to_bytes(
        4, "little")
    return bytes(buf)


class TestCodec(base.TestCase):

    def test_encode_matches_documented_layout(self):
        self.assertEqual(hand_made_sector(), rec.encode(HELD))

    def test_decode_of_documented_layout(self):
        self.assertEqual(HELD, rec.decode(hand_made_sector()))

    def test_slot_bytes_pad_to_4k(self):
        data = rec.slot_bytes(HELD)
        self.assertEqual(4096, len(data))
        self.assertEqual(b"\0" * (4096 - 512), data[512:])

    def test_every_truncation_is_rejected(self):
        good = rec.encode(HELD)
        old = rec.encode(protocol.initial_record(
            SR, protocol.Timing(120.0, 10.0), wall_clock=lambda: 5.0))
        rejected = 0
        for keep in range(0, 512):
            torn = good[:keep] + old[keep:]
            try:
                decoded = rec.decode(torn)
            except exception.LeaseRecordError:
                rejected += 1
                continue
            # Only a "tear" that changed no byte reads as valid: the old one.
            self.assertEqual(old, torn, keep)
            self.assertEqual(rec.decode(old), decoded)
        # Identical leading bytes (magic, version) are the only such cases.
        self.assertGreaterEqual(rejected, 500)

    def test_every_bit_flip_is_rejected(self):
        good = bytearray(rec.encode(HELD))
        for bit in range(0, 512 * 8, 13):
            flipped = bytearray(good)
            flipped[bit // 8] ^= 1 << (bit % 8)
            self.assertRaises(exception.LeaseRecordError, rec.decode,
                              bytes(flipped))

    def test_zero_sector_is_invalid_not_free(self):
        exc = self.assertRaises(exception.LeaseRecordError, rec.decode,
                                b"\0" * 512)
        self.assertEqual("lease magic", exc.kwargs["structure"])

    def test_unknown_version_is_rejected_naming_field(self):
        buf = bytearray(hand_made_sector())
        buf[8] = 2
        buf[508:512] = struct.pack("<I", zlib.crc32(bytes(buf[:508])))
        exc = self.assertRaises(exception.LeaseRecordError, rec.decode,
                                bytes(buf), "/dev/sdq", 4096)
        self.assertEqual((4104, 1, 2), (exc.kwargs["offset"],
                                        exc.kwargs["expected"],
                                        exc.kwargs["found"]))
        self.assertIn("/dev/sdq", str(exc))

    def test_held_without_owner_cannot_be_encoded(self):
        import dataclasses
        bad = dataclasses.replace(HELD, owner=None)
        self.assertRaises(exception.InvalidInput, rec.encode, bad)

    def test_name_too_long_is_invalid_input(self):
        import dataclasses
        bad = dataclasses.replace(HELD, owner=rec.Owner("p" * 65, "h"))
        exc = self.assertRaises(exception.InvalidInput, rec.encode, bad)
        self.assertIn("owner pool", str(exc))


class TestSnapshot(base.TestCase):

    def _rec(self, generation, counter):
        return rec.encode(rec.LeaseRecord(
            sr_uuid=SR, state=rec.STATE_HELD, generation=generation,
            counter=counter, duration_ms=1000, written_at_ms=0,
            owner=rec.Owner("p", "h")))

    def test_newest_valid_slot_wins_and_next_write_avoids_it(self):
        snap = rec.snapshot((self._rec(3, 9), self._rec(4, 0)))
        self.assertEqual((1, (4, 0), 0),
                         (snap.latest_slot, snap.latest.key,
                          snap.write_slot))
        snap = rec.snapshot((self._rec(4, 2), self._rec(4, 1)))
        self.assertEqual((0, 1), (snap.latest_slot, snap.write_slot))

    def test_torn_slot_leaves_the_other(self):
        torn = self._rec(5, 0)[:200] + b"\xff" * 312
        snap = rec.snapshot((torn, self._rec(4, 7)))
        self.assertIsNone(snap.records[0])
        self.assertIn("checksum", snap.errors[0])
        self.assertEqual((4, 7), snap.latest.key)
        self.assertEqual(0, snap.write_slot)

    def test_both_invalid_has_no_latest(self):
        snap = rec.snapshot((b"\0" * 512, b"\x55" * 512))
        self.assertIsNone(snap.latest)
        self.assertEqual(0, snap.write_slot)
