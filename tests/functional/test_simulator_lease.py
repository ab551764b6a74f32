"""The lease through the embedded XAPI: the real dom0 plugin per host.

Two simulated pools on one SAN, driven over XML-RPC with the PyPI XenAPI
client; a LUN formatted as a volume (``lvhd.create.format_volume``, with its
lease LV); ``xenapi.volume_lease`` calls ``host.call_plugin`` as the compute
host does.  Every host's monotonic clock is virtual (a sleep advances it at
once); the on-LUN record is read back with the package's own codec after
each step, never through the code under test.
"""

import datetime

import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import clock_guard
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device
from nova_xenapi_resign.simulator import fixture as simfixture
from nova_xenapi_resign.simulator import lease as simlease
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign.xenapi import session as xapi_session
from nova_xenapi_resign.xenapi import volume_lease
from nova_xenapi_resign.xenapi import volume_utils
from tests import base

PORTAL = "192.0.2.7:3260"
IQN = "iqn.2010-01.com.example:lease"
SR = "7a1b2c3d-4e5f-4061-8273-9485a6b7c8d9"
MiB = 1024 * 1024
TIMING = protocol.Timing(duration=30.0, io_timeout=2.0)


def on_lun(path):
    """The newest valid lease record on a LUN image (package codec)."""
    with device.open_device(path) as dev:
        where = locator.locate(dev)
        return rec.snapshot(locator.DeviceStore(dev, where)
                            .read_slots()).latest


class SimulatorLeaseTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(simfixture.SimulatorFixture(pools=2))
        self.path = self.sim.san.create_lun(PORTAL, IQN, 0, 32 * MiB)
        with device.open_device(self.path, writable=True) as dev:
            create.format_volume(dev, SR, "vol-1", "data")
        self.scsi_id = sanmod.scsi_id(PORTAL, IQN, 0)
        self.lease = volume_lease.VolumeLease(
            SR, volume_lease.BY_ID + self.scsi_id)
        self.sessions = [xapi_session.XenAPISession(self.sim.session(i))
                         for i in range(2)]
        self.clients = [volume_lease.LeaseClient(s, TIMING)
                        for s in self.sessions]
        self.renewers = [volume_lease.Renewer(c) for c in self.clients]

    def clock(self, index):
        pool = self.sim.pools[index]
        return simlease.host_state(pool, pool.master).clock

    def plug(self, index, hold_gc=True):
        host, port = PORTAL.split(":")
        return volume_utils.introduce_sr(
            self.sessions[index], SR, "volume", {
                "sr_type": "lvmoiscsi", "target": host, "port": port,
                "targetIQN": IQN, "SCSIid": self.scsi_id}, hold_gc=hold_gc)

    def hazards(self):
        return [h for x in self.sim.pools for h in x.hazards]

    def owner(self, index):
        return self.clients[index].me

    def test_plugged_with_gc_on_and_no_lease_is_a_hazard(self):
        self.plug(0, hold_gc=False)
        (hazard,) = self.hazards()
        self.assertEqual(("lease", SR, "nobody"),
                         (hazard["kind"], hazard["sr_uuid"],
                          hazard["lease_owner"]))

    def test_attach_takes_the_lease_without_a_hazard(self):
        sr_ref = self.plug(0)
        self.assertEqual((None, "free"), (on_lun(self.path).owner,
                                          on_lun(self.path).state_name))
        volume_lease.take(self.clients[0], self.renewers[0], self.lease,
                          sr_ref)
        latest = on_lun(self.path)
        self.assertEqual((self.owner(0), 1, 0), (latest.owner,
                                                 latest.generation,
                                                 latest.counter))
        self.assertNotIn("gc", self.sessions[0].xenapi.SR.get_other_config(
            sr_ref))
        self.renewers[0].tick()
        self.assertEqual(1, on_lun(self.path).counter)
        self.assertEqual([], self.hazards())

    def test_a_renewing_owner_keeps_it(self):
        volume_lease.take(self.clients[0], self.renewers[0], self.lease,
                          self.plug(0))
        self.plug(1)  # held off: the destination of a migration
        waited = []

        def meanwhile(seconds):
            waited.append(seconds)
            self.renewers[0].tick()
        self.clock(1).hooks.append(meanwhile)
        before = self.clock(1).monotonic()
        self.assertRaises(exception.LeaseHeld, self.clients[1].acquire,
                          self.lease)
        self.assertEqual(TIMING.takeover_wait,
                         self.clock(1).monotonic() - before)
        self.assertEqual(self.owner(0), on_lun(self.path).owner)
        self.assertEqual([], self.hazards())

    def test_stalled_renewal_taken_over_only_after_the_full_duration(self):
        sr0 = self.plug(0)
        volume_lease.take(self.clients[0], self.renewers[0], self.lease, sr0)
        self.plug(1)
        # Host 0 stalls past its duration; its next round finds the lease
        # expired by its own clock and holds the GC off.
        self.clock(0).advance(TIMING.duration + 1)
        answer = self.renewers[0].tick()
        self.assertEqual("LeaseLost", answer[SR][0])
        self.assertEqual("false", self.sessions[0].xenapi.SR.get_other_config(
            sr0)["gc"])
        before = self.clock(1).monotonic()
        self.clients[1].acquire(self.lease)
        self.assertGreaterEqual(self.clock(1).monotonic() - before,
                                TIMING.takeover_wait + TIMING.claim_wait)
        latest = on_lun(self.path)
        self.assertEqual((self.owner(1), 2), (latest.owner,
                                              latest.generation))
        self.assertEqual([], self.hazards())

    def test_hand_over_is_taken_at_once_by_the_named_pool_only(self):
        sr0 = self.plug(0)
        volume_lease.take(self.clients[0], self.renewers[0], self.lease, sr0)
        self.plug(1)
        # Handed over while still plugged: after the forget, SM has logged
        # out of the target and dom0 no longer sees the LUN.  Its GC is
        # held off first: plugged with the GC on and no lease is a hazard.
        volume_lease.hold_off_gc(self.sessions[0], sr0)
        self.clients[0].hand_over(self.lease, self.owner(1))
        volume_utils.forget_sr(self.sessions[0], sr0)
        exc = self.assertRaises(exception.LeaseError, self.clients[0].read,
                                self.lease)
        self.assertEqual("FileNotFoundError", exc.kwargs["plugin_class"])
        latest = on_lun(self.path)
        self.assertEqual((None, self.owner(1)),
                         (latest.owner, latest.next_owner))
        # Reserved for it by name: no watch, no claim wait.
        before = self.clock(1).monotonic()
        self.clients[1].acquire(self.lease)
        self.assertEqual(0.0, self.clock(1).monotonic() - before)
        self.assertEqual(self.owner(1), on_lun(self.path).owner)
        self.assertEqual([], self.hazards())

    def test_strict_like_a_host(self):
        x = self.sessions[0].xenapi
        master = self.clients[0].identity()[0]
        exc = self.assertRaises(XenAPI.Failure, x.host.call_plugin, master,
                                volume_lease.PLUGIN, "no_such_fn", {})
        self.assertEqual(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "no_such_fn"],
                         exc.details)
        # The LUN is not visible on a host that never logged in to it.
        exc = self.assertRaises(exception.LeaseError, self.clients[0].read,
                                self.lease)
        self.assertEqual("FileNotFoundError", exc.kwargs["plugin_class"])
        exc = self.assertRaises(XenAPI.Failure, x.host.call_plugin, master,
                                volume_lease.PLUGIN, "read", {"x": 1})
        self.assertEqual("FIELD_TYPE_ERROR", exc.details[0])

    def test_servertime_follows_the_pool_clock_offset(self):
        self.sim.pools[1].settings["clock_offset"] = 3600.0
        times = [clock_guard.parse_servertime(
            c.session.call_xenapi("host.get_servertime", c.identity()[0]))
            for c in self.clients]
        skew = (times[1] - times[0]).total_seconds()
        self.assertLess(abs(skew - 3600), 2)
        self.assertIsInstance(times[0], datetime.datetime)
        self.assertRaises(exception.ClockSkewTooLarge,
                          clock_guard.check_clock_skew, "a", times[0], "b",
                          times[1], 5)
