"""The delta-lease state machine (see doc/source/reference/lease.rst).

Correctness rests on local monotonic time only: a host that wants a lease
someone may hold reads it, waits one full duration plus a margin by *its
own* monotonic clock, and takes it only if the bytes on disk did not change
meanwhile; then it writes its claim, waits for any racing claim to land and
reads again.  No host ever compares its clock with another host's, so wall
clock jumps and skew between pools change nothing.

The clock, the sleeper and the wall clock (written into records for
operators only) are injected, so tests run in virtual time; the store is
anything with ``name``, ``read_slots()`` and ``write_slot(slot, data)``.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import time
from typing import Any, Callable, Optional, Protocol

from oslo_log import log as logging

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import record as rec

LOG = logging.getLogger(__name__)


class Store(Protocol):
    """The two lease slots of one SR."""

    name: str

    def read_slots(self) -> tuple[bytes, ...]:
        """The raw sectors of every slot, read in one I/O."""

    def write_slot(self, slot: int, data: bytes) -> None:
        """Write (and flush) one whole slot."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """Lease timing, in seconds of the local monotonic clock.

    ``io_timeout`` bounds how long one sector write may take to land (and
    the work between a read and the write that depends on it).
    """

    duration: float
    io_timeout: float

    def __post_init__(self) -> None:
        if self.io_timeout <= 0 or self.duration <= 4 * self.io_timeout:
            raise exception.InvalidInput(
                reason="lease duration %.3f s must exceed 4 x io_timeout "
                "(%.3f s), and io_timeout must be positive"
                % (self.duration, self.io_timeout))

    @property
    def takeover_wait(self) -> float:
        """How long a lease must be seen unchanged before it is taken."""
        return self.duration + self.io_timeout

    @property
    def claim_wait(self) -> float:
        """How long a claim waits for a racing claim to land."""
        return 3 * self.io_timeout

    @property
    def renew_interval(self) -> float:
        """Renew this often: three chances before the lease runs out."""
        return self.duration / 3


@dataclasses.dataclass(frozen=True)
class Held:
    """What the owner knows: its last record and when it started writing it.

    The lease is valid until ``since + duration`` on the owner's clock.
    """

    record: rec.LeaseRecord
    since: float


class DeltaLease:
    """One host's view of one SR's lease."""

    def __init__(self, store: Store, sr_uuid: str, me: rec.Owner,
                 timing: Timing, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sr_uuid = sr_uuid
        self.me = me
        self.timing = timing
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        self.held: Optional[Held] = None

    # --- helpers -------------------------------------------------------------

    def read(self) -> rec.Snapshot:
        """Both slots, decoded; a record of another SR is an error."""
        snap = rec.snapshot(self.store.read_slots(), self.store.name)
        latest = snap.latest
        if latest is not None and latest.sr_uuid != self.sr_uuid:
            raise exception.LeaseRecordError(
                device=self.store.name, structure="lease SR uuid",
                offset=rec.SLOT_STRIDE * snap.latest_slot + 40,
                expected=self.sr_uuid, found=latest.sr_uuid)
        return snap

    def _wait(self, seconds: float) -> None:
        """Sleep until ``seconds`` have passed on the local clock."""
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return
            self.sleep(left)

    def _write(self, snap: rec.Snapshot, new: rec.LeaseRecord) -> float:
        """Write ``new`` to the free slot; returns when the write started."""
        started = self.clock()
        self.store.write_slot(snap.write_slot, rec.slot_bytes(new))
        return started

    def _record(self, state: int, generation: int, counter: int,
                owner: Optional[rec.Owner] = None,
                next_owner: Optional[rec.Owner] = None) -> rec.LeaseRecord:
        return rec.LeaseRecord(
            sr_uuid=self.sr_uuid, state=state, generation=generation,
            counter=counter,
            duration_ms=int(round(self.timing.duration * 1000)),
            written_at_ms=int(self.wall_clock() * 1000), owner=owner,
            next_owner=next_owner)

    def _refuse(self, latest: Optional[rec.LeaseRecord],
                reason: str) -> exception.LeaseHeld:
        owner = latest.owner if latest is not None else None
        return exception.LeaseHeld(
            sr=self.sr_uuid, device=self.store.name,
            owner=owner or "nobody (a write was seen)",
            generation=latest.generation if latest else "?", reason=reason)

    def _lost(self, latest: Optional[rec.LeaseRecord],
              reason: str) -> exception.LeaseLost:
        self.held = None
        return exception.LeaseLost(
            sr=self.sr_uuid, device=self.store.name, me=self.me,
            owner=(latest.owner if latest and latest.owner else "nobody"),
            generation=latest.generation if latest else "?", reason=reason)

    def _may_skip_wait(self, latest: Optional[rec.LeaseRecord]) -> bool:
        """A released lease reserved for nobody or for us needs no wait."""
        return (latest is not None and not latest.held and
                latest.next_owner in (None, self.me))

    # --- the protocol -------------------------------------------------------

    def acquire(self) -> Held:
        """Take the lease, or raise :class:`LeaseHeld`.

        Refused before the claim, nothing was written; refused after it,
        another host's claim landed later and won.  The three steps are
        :meth:`begin`, :meth:`claim` and :meth:`confirm`, each preceded by
        the wait the previous one asked for (:func:`acquire_many` runs
        them for several SRs with one wait each).
        """
        first, wait = self.begin()
        self._wait(wait)
        claim, since, wait = self.claim(first)
        self._wait(wait)
        return self.confirm(claim, since)

    def begin(self) -> tuple[rec.Snapshot, float]:
        """First read; the seconds to watch it before :meth:`claim`."""
        first = self.read()
        if self._may_skip_wait(first.latest):
            return first, 0.0
        LOG.info("Lease of SR %s: waiting %.1f s to see whether %s "
                 "renews it", self.sr_uuid, self.timing.takeover_wait,
                 first.latest.owner if first.latest else "anyone")
        return first, self.timing.takeover_wait

    def claim(self, first: rec.Snapshot
              ) -> tuple[rec.LeaseRecord, float, float]:
        """Refuse if it changed since ``first``, else write our claim.

        Returns the claim, when its write started, and the seconds to wait
        before :meth:`confirm`: none when the record was handed over to us
        by name (every other claimant must watch it ``D + T`` and sees our
        claim), the claim wait ``3T`` otherwise.
        """
        last = self.read()
        if last.raw != first.raw:
            raise self._refuse(last.latest, "it was written while we "
                               "watched it")
        latest = first.latest
        generation = latest.generation + 1 if latest else 1
        claim = self._record(rec.STATE_HELD, generation, 0, owner=self.me)
        since = self._write(last, claim)
        reserved = latest is not None and latest.next_owner == self.me
        return claim, since, 0.0 if reserved else self.timing.claim_wait

    def confirm(self, claim: rec.LeaseRecord, since: float) -> Held:
        """Ours if the newest record is still exactly our claim."""
        check = self.read()
        if check.latest != claim:
            raise self._refuse(check.latest, "another host claimed it at "
                               "the same time and won")
        self.held = Held(claim, since)
        LOG.info("Lease of SR %s acquired by %s (generation %d)",
                 self.sr_uuid, self.me, claim.generation)
        return self.held

    def valid(self) -> bool:
        """True while the owner may still change the SR (local clock)."""
        return (self.held is not None and
                self.clock() < self.held.since + self.timing.duration)

    def _check_owner(self) -> rec.Snapshot:
        """The current snapshot, if it still shows our last record."""
        if self.held is None:
            raise self._lost(None, "this host does not hold it")
        age = self.clock() - self.held.since
        if age >= self.timing.duration:
            self.held = None
            raise exception.LeaseExpired(
                sr=self.sr_uuid, device=self.store.name, me=self.me, age=age,
                duration=self.timing.duration)
        snap = self.read()
        if snap.latest != self.held.record:
            raise self._lost(snap.latest, "stop changing the SR now")
        return snap

    def renew(self) -> Held:
        """Bump the renewal counter; only within the lease's duration."""
        snap = self._check_owner()
        old = self.held.record
        new = self._record(rec.STATE_HELD, old.generation, old.counter + 1,
                           owner=self.me)
        since = self._write(snap, new)
        if self.clock() - self.held.since >= self.timing.duration:
            # The write itself outlived the lease: someone may own it now.
            raise self._lost(None, "the renewal write took longer than "
                             "the lease duration")
        self.held = Held(new, since)
        return self.held

    def release(self, next_owner: Optional[rec.Owner] = None
                ) -> rec.LeaseRecord:
        """Give the lease up, optionally reserving it for ``next_owner``.

        Call only after this pool stopped changing the SR (for a migration:
        after it forgot the SR).  A reservation lets ``next_owner`` take the
        lease at once; anyone else must still wait a full duration, so a
        destination that dies never blocks the SR for longer than that.
        """
        snap = self._check_owner()
        old = self.held.record
        new = self._record(rec.STATE_FREE, old.generation, old.counter + 1,
                           next_owner=next_owner)
        self._write(snap, new)
        self.held = None
        LOG.info("Lease of SR %s released by %s (next owner: %s)",
                 self.sr_uuid, self.me, next_owner or "anyone")
        return new

    def hand_over(self, destination: rec.Owner) -> rec.LeaseRecord:
        """Release reserved for the migration's destination."""
        return self.release(next_owner=destination)


#: The timing of the defaults of ``lease_duration`` and ``lease_io_timeout``.
DEFAULT_TIMING = Timing(duration=120.0, io_timeout=10.0)


def initial_record(sr_uuid: str, timing: Timing = DEFAULT_TIMING,
                   wall_clock: Callable[[], float] = time.time
                   ) -> rec.LeaseRecord:
    """The record a freshly formatted lease volume starts with (free)."""
    return rec.LeaseRecord(
        sr_uuid=sr_uuid, state=rec.STATE_FREE, generation=0, counter=0,
        duration_ms=int(round(timing.duration * 1000)),
        written_at_ms=int(wall_clock() * 1000))


def initial_area(sr_uuid: str, timing: Timing = DEFAULT_TIMING,
                 wall_clock: Callable[[], float] = time.time) -> bytes:
    """The whole lease area of a new (or resignatured) SR: both slots.

    Slot 0 holds a free record of ``sr_uuid``; slot 1 is blank, so any
    record an earlier owner (or the original of a SAN clone) left there is
    gone and nobody can mistake it for the newest.
    """
    return (rec.slot_bytes(initial_record(sr_uuid, timing, wall_clock))
            + bytes(rec.SLOT_STRIDE))


def acquire_many(leases: Sequence[DeltaLease]
                 ) -> dict[str, Held | exception.LeaseError]:
    """Acquire several SRs' leases of one host, waiting once per step.

    :meth:`DeltaLease.acquire` for each, the steps interleaved: every first
    read, the longest watch any needs, every claim, the longest claim wait,
    every check.  N volumes cost one ``D + T`` and one ``3T`` at most, not
    N of each.  Never raises for one SR: ``{sr uuid: Held or the error}``.
    """
    out: dict[str, Held | exception.LeaseError] = {}
    steps: list[tuple[DeltaLease, Any]] = [(x, None) for x in leases]
    for step in ("begin", "claim", "confirm"):
        results, wait = [], 0.0
        for lease, arg in steps:
            try:
                if step == "begin":
                    first, seconds = lease.begin()
                    results.append((lease, first))
                elif step == "claim":
                    claim, since, seconds = lease.claim(arg)
                    results.append((lease, (claim, since)))
                else:
                    out[lease.sr_uuid] = lease.confirm(*arg)
                    seconds = 0.0
            except exception.LeaseError as exc:
                out[lease.sr_uuid] = exc
                continue
            wait = max(wait, seconds)
        if results:
            results[0][0]._wait(wait)
        steps = results
    return out
