"""The delta-lease protocol under contention, stalls, clock jumps and torn
writes, in virtual time, on a real image file.

Every scenario runs twice: against ``nova_xenapi_resign.lease.protocol``
and against the dom0 plugin's own state machine (loaded from its path), so
the two implementations are proven to behave the same.  Hosts are threads;
each has its own monotonic clock origin and its own wall clock, all driven
by one :class:`VirtualTime` that advances only when every host sleeps.
"""

import importlib.util
import os
import random
import threading

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import device as device_mod
from tests import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PLUGIN_PATH = os.path.join(ROOT, "dom0", "etc", "xapi.d", "plugins",
                           "xenapi_resign_lease.py")
SR = "6f1e2d3c-4b5a-4968-8776-655443322110"
DURATION = 60.0
IO_TIMEOUT = 2.0
TIMING = protocol.Timing(duration=DURATION, io_timeout=IO_TIMEOUT)
#: Where the lease area starts in the test images (not at 0, so an offset
#: mistake would read zeros, never the record).
AREA_OFFSET = 8 * 4096


def load_plugin():
    """The dom0 plugin as a module, loaded from its file like dom0 would."""
    spec = importlib.util.spec_from_file_location("xenapi_resign_lease",
                                                  PLUGIN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLUGIN = load_plugin()


class VirtualTime(object):
    """A global virtual time that jumps when every live host sleeps."""

    def __init__(self):
        self.now = 0.0
        self.cond = threading.Condition()
        self.active = 0
        self.sleepers = {}

    def _advance(self):
        waiting = [w for w in self.sleepers.values() if w > self.now]
        if (self.sleepers and len(self.sleepers) == self.active and
                len(waiting) == len(self.sleepers)):
            self.now = min(waiting)
            self.cond.notify_all()

    def enter(self):
        with self.cond:
            self.active += 1

    def leave(self):
        with self.cond:
            self.active -= 1
            self._advance()

    def sleep(self, seconds):
        with self.cond:
            if not self.active:
                raise AssertionError("virtual sleep outside run_hosts")
            token = object()
            wake = self.now + seconds
            self.sleepers[token] = wake
            self._advance()
            while self.now < wake:
                self.cond.wait()
            del self.sleepers[token]


class Host(object):
    """One host: its clocks, its lease object and what it believed when.

    ``history`` holds (global start, global end) of every period in which
    this host believed it could change the SR.
    """

    def __init__(self, impl, vt, image, n, wall_offset=0.0):
        self.impl = impl
        self.vt = vt
        self.name = "host-%d" % n
        self.pool = "pool-%d" % n
        self.origin = 1000.0 * (n + 1)       # monotonic origins differ
        self.wall_offset = wall_offset
        self.history = []
        self._since = None
        self.lease = impl.make(image, self)

    def clock(self):
        return self.vt.now + self.origin

    def wall(self):
        return 1.7e9 + self.vt.now + self.wall_offset

    def sleep(self, seconds):
        self.vt.sleep(seconds)

    def _believe(self, since_local):
        if self._since is not None:
            self.history.append((self._since, self.vt.now))
        self._since = since_local - self.origin

    def _stop(self):
        if self._since is not None:
            self.history.append((self._since, self.vt.now))
        self._since = None

    def acquire(self):
        self._believe(self.impl.acquire(self.lease))

    def renew(self):
        try:
            self._believe(self.impl.renew(self.lease))
        except self.impl.lost:
            # It may have believed until its duration ran out, no longer.
            self._since_expired()
            raise

    def _since_expired(self):
        if self._since is not None:
            end = min(self.vt.now, self._since + DURATION)
            self.history.append((self._since, end))
        self._since = None

    def release(self, next_owner=None):
        self.impl.release(self.lease, next_owner)
        self._stop()

    def crash(self):
        """Stop without a word: believed until its lease ran out."""
        self._since_expired()


class PackageImpl(object):
    refused = exception.LeaseHeld
    lost = (exception.LeaseLost, exception.LeaseExpired)

    @staticmethod
    def make(image, host):
        dev = device_mod.Device(image, writable=True)
        where = locator.LeaseLocation(image, SR, AREA_OFFSET, 4 * 1024 ** 2)
        return protocol.DeltaLease(
            locator.DeviceStore(dev, where), SR,
            rec.Owner(host.pool, host.name), TIMING, clock=host.clock,
            sleep=host.sleep, wall_clock=host.wall)

    @staticmethod
    def acquire(lease):
        return lease.acquire().since

    @staticmethod
    def renew(lease):
        return lease.renew().since

    @staticmethod
    def release(lease, next_owner):
        lease.release(next_owner and rec.Owner(*next_owner))

    @staticmethod
    def latest(lease):
        latest = lease.read().latest
        return latest and (latest.generation, latest.counter,
                           latest.owner and latest.owner.host)


class PluginImpl(object):
    refused = PLUGIN.LeaseRefused
    lost = PLUGIN.LeaseLost

    @staticmethod
    def make(image, host):
        store = PLUGIN.Store(PLUGIN.Device(image), AREA_OFFSET)
        return PLUGIN.Lease(store, SR, host.pool, host.name, DURATION,
                            IO_TIMEOUT, PLUGIN.MemoryState(),
                            clock=host.clock, sleep=host.sleep,
                            wall_clock=host.wall)

    @staticmethod
    def acquire(lease):
        lease.acquire()
        return lease.state.load()["since"]

    @staticmethod
    def renew(lease):
        lease.renew()
        return lease.state.load()["since"]

    @staticmethod
    def release(lease, next_owner):
        lease.release(next_owner or ("", ""))

    @staticmethod
    def latest(lease):
        latest = lease.read()["latest"]
        return latest and (latest["generation"], latest["counter"],
                           latest["owner_host"] or None)


IMPLS = (("Package", PackageImpl), ("Plugin", PluginImpl))


def check_history(hosts):
    """Two hosts never believed they held the lease at the same time."""
    periods = sorted((start, end, h.name) for h in hosts
                     for start, end in h.history)
    for i, (s1, e1, n1) in enumerate(periods):
        for s2, e2, n2 in periods[i + 1:]:
            if s2 < e1 and n1 != n2:
                raise AssertionError(
                    "%s (%.1f-%.1f) and %s (%.1f-%.1f) both held the lease"
                    % (n1, s1, e1, n2, s2, e2))
    return periods


class LeaseTestBase(object):
    """Scenarios for both implementations; see :func:`for_both`."""

    impl = None

    def setUp(self):
        super().setUp()
        self.vt = VirtualTime()
        self.image = os.path.join(self.tmpdir, "lun.img")
        with open(self.image, "wb") as f:
            f.truncate(AREA_OFFSET + rec.AREA_SIZE + 4096)
        self.hosts = []

    def host(self, wall_offset=0.0):
        h = Host(self.impl, self.vt, self.image, len(self.hosts),
                 wall_offset)
        self.hosts.append(h)
        return h

    def format_free(self):
        """What the wrapper writes when it makes the lease volume."""
        with device_mod.Device(self.image, writable=True) as dev:
            dev.write(AREA_OFFSET, rec.slot_bytes(
                protocol.initial_record(SR, TIMING)))

    def run_hosts(self, *bodies):
        """Run one body per host in threads on the virtual time."""
        errors = []

        def runner(body):
            try:
                body()
            except BaseException as exc:  # reported to the test
                errors.append(exc)
            finally:
                self.vt.leave()

        threads = []
        for body in bodies:
            self.vt.enter()
            threads.append(threading.Thread(target=runner, args=(body,)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def latest(self):
        return self.impl.latest(self.hosts[0].lease)


class TestContention(LeaseTestBase):

    def _contend(self, delays):
        outcome = {}

        def body_of(h, delay):
            def body():
                if delay:
                    h.sleep(delay)
                try:
                    h.acquire()
                except self.impl.refused:
                    outcome[h.name] = "refused"
                    return
                outcome[h.name] = "won"
                # Keep the lease alive past every loser's wait, then stop.
                for _ in range(5):
                    h.sleep(TIMING.renew_interval)
                    h.renew()
                h.release()
            return body

        hosts = [self.host() for _ in delays]
        self.run_hosts(*[body_of(h, d) for h, d in zip(hosts, delays)])
        return hosts, outcome

    def test_eight_hosts_free_lease_one_winner(self):
        self.format_free()
        hosts, outcome = self._contend([0.0] * 8)
        winners = [n for n, o in outcome.items() if o == "won"]
        self.assertEqual(1, len(winners), outcome)
        self.assertEqual(7, list(outcome.values()).count("refused"))
        self.assertEqual((1, 6, None), self.latest())
        check_history(hosts)

    def test_eight_hosts_unformatted_lease_one_winner(self):
        # Garbage in the LV (never formatted): everyone must wait a full
        # duration first, then exactly one wins.
        with open(self.image, "r+b") as f:
            f.seek(AREA_OFFSET)
            f.write(os.urandom(rec.AREA_SIZE))
        hosts, outcome = self._contend([0.0] * 8)
        self.assertEqual(1, list(outcome.values()).count("won"), outcome)
        self.assertGreaterEqual(self.vt.now, DURATION + IO_TIMEOUT)
        check_history(hosts)

    def test_eight_hosts_staggered_start_one_winner(self):
        self.format_free()
        rnd = random.Random(18)
        delays = [rnd.choice([0.0, 0.5, 1.0, 3.0, 7.0]) for _ in range(8)]
        hosts, outcome = self._contend(delays)
        self.assertEqual(1, list(outcome.values()).count("won"), outcome)
        check_history(hosts)


class TestTakeover(LeaseTestBase):

    def test_stalled_renewal_taken_only_after_full_duration(self):
        self.format_free()
        a, b = self.host(), self.host()
        self.run_hosts(a.acquire)
        a_since = a._since
        taken = {}

        def stalled_owner():
            a.sleep(2.5 * DURATION)          # renewal stalled
            self.assertRaises(self.impl.lost, a.renew)

        def taker():
            b.sleep(DURATION / 2)
            start = self.vt.now
            b.acquire()
            taken["claim"] = b._since
            taken["waited"] = self.vt.now - start

        self.run_hosts(stalled_owner, taker)
        # b waited a whole duration + margin by its own clock, and its claim
        # started after a's lease had run out.
        self.assertGreaterEqual(taken["waited"], DURATION + IO_TIMEOUT)
        self.assertGreaterEqual(taken["claim"], a_since + DURATION)
        self.assertEqual((2, 0, b.name), self.latest())
        check_history(self.hosts)

    def test_renewing_owner_refuses_takeover(self):
        self.format_free()
        a, b = self.host(), self.host()
        self.run_hosts(a.acquire)

        def owner():
            for _ in range(6):
                a.sleep(TIMING.renew_interval)
                a.renew()

        def taker():
            b.sleep(1.0)
            self.assertRaises(self.impl.refused, b.acquire)

        self.run_hosts(owner, taker)
        self.assertEqual((1, 6, a.name), self.latest())
        check_history(self.hosts)

    def test_hand_over_then_destination_dies_source_takes_back(self):
        self.format_free()
        src, dst, other = self.host(), self.host(), self.host()
        self.run_hosts(src.acquire)
        src.release(next_owner=(dst.pool, dst.name))
        # The reservation holds others off for a full duration ...
        start = self.vt.now

        def rollback():
            src.acquire()

        self.run_hosts(rollback)
        self.assertGreaterEqual(self.vt.now - start, DURATION + IO_TIMEOUT)
        self.assertEqual((2, 0, src.name), self.latest())
        # ... while the named destination takes it at once.
        src.release(next_owner=(other.pool, other.name))
        start = self.vt.now
        self.run_hosts(other.acquire)
        self.assertLess(self.vt.now - start, DURATION)
        self.assertEqual((3, 0, other.name), self.latest())
        check_history(self.hosts)

    def test_wall_clock_jumps_change_nothing(self):
        def scenario(jumps):
            self.vt = VirtualTime()
            with open(self.image, "wb") as f:
                f.truncate(AREA_OFFSET + rec.AREA_SIZE + 4096)
            self.format_free()
            self.hosts = []
            a, b = self.host(jumps[0]), self.host(jumps[1])
            self.run_hosts(a.acquire)
            trace = []

            def owner():
                for _ in range(3):
                    a.sleep(TIMING.renew_interval)
                    a.renew()
                    trace.append(("renew", self.vt.now, self.latest()))
                a.crash()

            def taker():
                b.sleep(5.0)
                b.wall_offset = -jumps[1]    # b's wall clock jumps back
                while True:
                    try:
                        b.acquire()
                        break
                    except self.impl.refused:
                        trace.append(("refused", self.vt.now))
                trace.append(("won", self.vt.now, self.latest()))

            self.run_hosts(owner, taker)
            check_history(self.hosts)
            return trace

        base_trace = scenario((0.0, 0.0))
        self.assertEqual(base_trace, scenario((3600.0, -3600.0)))
        self.assertEqual(base_trace, scenario((-3600.0, 3600.0)))
        self.assertEqual("won", base_trace[-1][0])


class TornWriteStore(object):
    """Wraps a store: write number ``tear_at`` lands only ``keep`` bytes."""

    def __init__(self, inner, image, tear_at, keep):
        self.inner = inner
        self.name = inner.name
        self.image = image
        self.tear_at = tear_at
        self.keep = keep
        self.writes = 0

    def read_slots(self):
        return self.inner.read_slots()

    def write_slot(self, slot, data):
        self.writes += 1
        if self.writes != self.tear_at:
            return self.inner.write_slot(slot, data)
        fd = os.open(self.image, os.O_WRONLY)
        try:
            os.pwrite(fd, data[:self.keep],
                      AREA_OFFSET + slot * rec.SLOT_STRIDE)
        finally:
            os.close(fd)
        raise IOError("power cut after %d bytes" % self.keep)


class TestTornWrites(LeaseTestBase):

    def test_torn_writes_never_accepted_last_state_kept(self):
        rnd = random.Random(3)
        keeps = sorted({1, 9, 100, 300, 507, 508, 511} |
                       {rnd.randrange(1, rec.CRC_OFFSET) for _ in range(6)})
        for keep in keeps:
            for tear_at in (2, 3):   # a renewal, then a release
                self.vt = VirtualTime()
                with open(self.image, "wb") as f:
                    f.truncate(AREA_OFFSET + rec.AREA_SIZE + 4096)
                self.format_free()
                self.hosts = []
                a = self.host()
                a.lease.store = TornWriteStore(a.lease.store, self.image,
                                               tear_at, keep)
                self.run_hosts(a.acquire)            # write 1
                if tear_at == 3:
                    self.run_hosts(a.renew)
                before, area_before = self.latest(), self.area()
                action = a.renew if tear_at == 2 else a.release
                self.assertRaises(IOError, self.run_hosts, action)
                area = self.area()
                snap = rec.snapshot(area)
                for slot in range(rec.SLOT_COUNT):
                    if area[slot] != area_before[slot]:
                        # The torn slot: never read as a record.
                        self.assertIsNone(snap.records[slot], (keep, slot))
                self.assertEqual(before, self.latest(), (keep, tear_at))
                self.assertEqual(a.name, snap.latest.owner.host)
                # And the owner carries on from the last valid state.
                self.run_hosts(action)

    def area(self):
        with device_mod.Device(self.image) as dev:
            data = dev.read(AREA_OFFSET, rec.AREA_SIZE)
        return (data[:rec.RECORD_SIZE],
                data[rec.SLOT_STRIDE:rec.SLOT_STRIDE + rec.RECORD_SIZE])


def for_both(*mixins):
    """One TestCase per implementation and scenario mixin."""
    made = {}
    for mixin in mixins:
        for suffix, impl in IMPLS:
            name = mixin.__name__ + suffix
            made[name] = type(name, (mixin, base.TestCase), {"impl": impl})
    return made


globals().update(for_both(TestContention, TestTakeover, TestTornWrites))
