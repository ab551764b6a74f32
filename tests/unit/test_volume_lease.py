"""volume_lease's renewer and helpers, without XAPI.

The renewer's XAPI side is proven against the embedded XAPI and the real
plugin (tests/functional/test_simulator_lease.py, nova_tests); here: its
schedule (one ``renew_many`` per round for every held SR, stopped cleanly),
what it does with a failed SR, and the connection-data rules.
"""

import threading

from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.xenapi import volume_lease
from tests import base

A = volume_lease.VolumeLease("a" * 8 + "-0000-4000-8000-000000000001",
                             volume_lease.BY_ID + "36a")
B = volume_lease.VolumeLease("b" * 8 + "-0000-4000-8000-000000000002",
                             volume_lease.BY_ID + "36b")


class FakeSession(object):
    def __init__(self):
        self.calls = []
        self.other_config = {}

    def call_xenapi(self, method, *args):
        self.calls.append((method,) + args)
        if method == "SR.get_other_config":
            return dict(self.other_config)
        if method == "SR.set_other_config":
            self.other_config = dict(args[1])
        return ""


class FakeClient(object):
    """renew_many answers per SR as ``answers`` says (default: a record)."""

    def __init__(self, timing):
        self.timing = timing
        self.session = FakeSession()
        self.rounds = []
        self.answers = {}
        self.event = threading.Event()

    def renew_many(self, leases):
        leases = list(leases)
        self.rounds.append(sorted(x.sr_uuid for x in leases))
        self.event.set()
        return {x.sr_uuid: self.answers.get(x.sr_uuid, {"counter": 1})
                for x in leases}


class TestRenewer(base.TestCase):

    def setUp(self):
        super().setUp()
        self.now = [100.0]
        self.client = FakeClient(protocol.Timing(duration=0.3,
                                                 io_timeout=0.05))
        self.renewer = volume_lease.Renewer(self.client,
                                            clock=lambda: self.now[0])

    def test_one_call_per_round_for_every_held_sr(self):
        self.assertEqual({}, self.renewer.tick())
        self.assertEqual([], self.client.rounds)  # nothing held, no call
        self.renewer.add(A, "OpaqueRef:a")
        self.renewer.add(B, "OpaqueRef:b")
        self.now[0] = 110.0
        self.renewer.tick()
        self.assertEqual([sorted([A.sr_uuid, B.sr_uuid])],
                         self.client.rounds)
        self.assertEqual(110.0, self.renewer.held[A.sr_uuid].renewed_at)

    def test_a_failed_sr_is_dropped_and_its_gc_held_off(self):
        self.renewer.add(A, "OpaqueRef:a")
        self.renewer.add(B, "OpaqueRef:b")
        self.client.answers[A.sr_uuid] = ["LeaseLost", "the disk names x"]
        self.renewer.tick()
        self.assertFalse(self.renewer.holds(A.sr_uuid))
        self.assertTrue(self.renewer.holds(B.sr_uuid))
        # One call: the key was not there (add_to_other_config).
        self.assertIn(("SR.add_to_other_config", "OpaqueRef:a", "gc",
                       "false"), self.client.session.calls)
        self.renewer.tick()
        self.assertEqual([B.sr_uuid], self.client.rounds[-1])

    def test_thread_renews_every_third_of_the_duration_and_stops(self):
        self.renewer.add(A, "OpaqueRef:a")
        self.renewer.start()
        self.addCleanup(self.renewer.stop)
        self.assertTrue(self.client.event.wait(5))
        self.renewer.stop()
        done = len(self.client.rounds)
        self.assertGreaterEqual(done, 1)
        self.client.event.clear()
        self.assertFalse(self.client.event.wait(
            3 * self.client.timing.renew_interval))
        self.assertEqual(done, len(self.client.rounds))


class TestConnectionData(base.TestCase):

    def test_only_lvhd_volumes_have_a_lease(self):
        data = {"sr_type": "lvmoiscsi", "sr_uuid": A.sr_uuid,
                "SCSIid": "36a"}
        self.assertEqual(A, volume_lease.lease_for_connection(data))
        for missing in ("sr_type", "sr_uuid", "SCSIid"):
            self.assertIsNone(volume_lease.lease_for_connection(
                {k: v for k, v in data.items() if k != missing}))
        self.assertIsNone(volume_lease.lease_for_connection(
            dict(data, sr_type="iscsi")))
        bdi = {"block_device_mapping": [
            {"connection_info": {"data": data}},
            {"connection_info": {"data": dict(data)}},
            {"connection_info": {"data": {"target_iqn": "x"}}}]}
        self.assertEqual([A], volume_lease.leases_of(bdi))
        for nothing in (None, {}, "bdi"):
            self.assertEqual([], volume_lease.leases_of(nothing))
