"""Acquiring several SRs' leases at once: one wait per step, not per SR.

Both implementations (``protocol.acquire_many`` and the dom0 plugin's
``acquire_leases``) run the same scenario on four image files, one SR
each: free, handed over to us by name, held by a live owner who renews
while we wait, held by a dead owner.  The expected waits come from the
protocol's rules (lease.rst "Acquire"): one ``D + T`` watch because two
records are held, one ``3T`` claim wait because a claim was not reserved
for us; a batch of only reserved records waits nothing.
"""

import os

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import device as device_mod
from tests import base
from tests.unit import test_lease_protocol as harness

PLUGIN = harness.PLUGIN
TIMING = harness.TIMING
ME = rec.Owner("pool-b", "host-b")
OTHER = rec.Owner("pool-a", "host-a")
SRS = {name: "6f1e2d3c-4b5a-4968-8776-65544332211%d" % i
       for i, name in enumerate(("free", "reserved", "live", "dead"))}


class Clock(object):
    """One host's monotonic clock; a sleep advances it and runs hooks."""

    def __init__(self):
        self.now = 100.0
        self.hooks = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        for hook in self.hooks:
            hook()


class PackageSide(object):
    refused = exception.LeaseHeld

    @staticmethod
    def lease(image, sr_uuid, owner, clock):
        dev = device_mod.Device(image, writable=True)
        where = locator.LeaseLocation(image, sr_uuid, harness.AREA_OFFSET,
                                      4 * 1024 ** 2)
        return protocol.DeltaLease(locator.DeviceStore(dev, where), sr_uuid,
                                   owner, TIMING, clock=clock,
                                   sleep=clock.sleep, wall_clock=lambda: 0.0)

    @staticmethod
    def acquire_many(leases):
        return protocol.acquire_many(leases)

    @staticmethod
    def owner(result):
        return result.record.owner


class PluginSide(object):
    refused = PLUGIN.LeaseRefused

    @staticmethod
    def lease(image, sr_uuid, owner, clock):
        store = PLUGIN.Store(PLUGIN.Device(image), harness.AREA_OFFSET)
        return PLUGIN.Lease(store, sr_uuid, owner.pool, owner.host,
                            harness.DURATION, harness.IO_TIMEOUT,
                            PLUGIN.MemoryState(), clock=clock,
                            sleep=clock.sleep, wall_clock=lambda: 0.0)

    @staticmethod
    def acquire_many(leases):
        return PLUGIN.acquire_leases(leases)

    @staticmethod
    def owner(result):
        return rec.Owner(result["owner_pool"], result["owner_host"])


class AcquireManyBase(object):
    side = None

    def setUp(self):
        super().setUp()
        self.mine, self.theirs = Clock(), Clock()
        self.images = {}
        for name, sr_uuid in SRS.items():
            image = os.path.join(self.tmpdir, name + ".img")
            with open(image, "wb") as f:
                f.truncate(harness.AREA_OFFSET + rec.AREA_SIZE + 4096)
            with device_mod.Device(image, writable=True) as dev:
                dev.write(harness.AREA_OFFSET, rec.slot_bytes(
                    protocol.initial_record(sr_uuid, TIMING)))
            self.images[name] = image

    def lease(self, name, owner, clock):
        return self.side.lease(self.images[name], SRS[name], owner, clock)

    def prepare(self, names):
        """The other host takes every record but "free"; hands one over."""
        for name in names:
            if name == "free":
                continue
            theirs = self.lease(name, OTHER, self.theirs)
            theirs.acquire()
            if name == "reserved":
                theirs.release((ME.pool, ME.host)
                               if self.side is PluginSide else ME)
            elif name == "live":
                # It renews whenever our host sleeps.
                self.mine.hooks.append(theirs.renew)
        return [self.lease(name, ME, self.mine) for name in names]

    def test_one_watch_and_one_claim_wait_for_all(self):
        names = ["free", "reserved", "live", "dead"]
        leases = self.prepare(names)
        start = self.mine()
        out = self.side.acquire_many(leases)
        # Serial acquires would wait (D + T) x 2 + 3T x 3.
        self.assertEqual(TIMING.takeover_wait + TIMING.claim_wait,
                         self.mine() - start)
        self.assertEqual({SRS[n]: ME for n in ("free", "reserved", "dead")},
                         {k: self.side.owner(v) for k, v in out.items()
                          if k != SRS["live"]})
        self.assertIsInstance(out[SRS["live"]], self.side.refused)

    def test_handed_over_to_us_waits_nothing(self):
        leases = self.prepare(["reserved"])
        start = self.mine()
        out = self.side.acquire_many(leases)
        self.assertEqual(0.0, self.mine() - start)
        self.assertEqual(ME, self.side.owner(out[SRS["reserved"]]))

    def test_single_acquire_of_a_reserved_record_waits_nothing(self):
        (lease,) = self.prepare(["reserved"])
        start = self.mine()
        lease.acquire()
        self.assertEqual(0.0, self.mine() - start)

    def test_a_third_host_watching_a_reserved_record_is_refused(self):
        (lease,) = self.prepare(["reserved"])
        third = self.lease("reserved", rec.Owner("pool-c", "host-c"),
                           Clock())
        first, wait = third.begin()
        self.assertEqual(TIMING.takeover_wait, wait)
        lease.acquire()   # the named destination, meanwhile
        self.assertRaises(self.side.refused, third.claim, first)


class TestPackage(AcquireManyBase, base.TestCase):
    side = PackageSide


class TestPlugin(AcquireManyBase, base.TestCase):
    side = PluginSide
