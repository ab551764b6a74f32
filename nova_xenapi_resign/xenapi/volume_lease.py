"""The on-LUN lease of LVHD volume SRs, driven from the compute host.

The lease itself (doc/source/reference/lease.rst) lives on the LUN and is
read and written in dom0 by the ``xenapi_resign_lease.py`` plugin; this
module is what Nova's side does with it, through ``host.call_plugin`` on
the pool master (the host that, in LVHD, changes VG metadata and runs the
garbage collector):

* attach: the SR is introduced with its GC held off (SR ``other_config``
  ``gc=false``), the lease is acquired, then the GC is let run;
* detach: once no VBD uses the SR, its GC is held off and the lease
  released, then the SR is unplugged and forgotten (dom0 sees the LUN only
  while an SR on its target is plugged);
* a :class:`Renewer` renews every held lease every ``D / 3`` with one
  ``renew_many`` call per host, and holds off the GC of an SR whose renewal
  failed (the lease may be someone else's by now);
* live migration: see :class:`MigrationLeases` and the driver
  (``nova_driver``), in the order of lease.rst "Migration protocol".

An SR without the lease LV (an LVHD SR made elsewhere) has no lease: the
plugin answers ``LeaseNotFound``, and such a volume keeps only XAPI's
per-pool guarantee; its cross-pool migration is refused.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oslo_log import log as logging

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import clock_guard
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.xenapi import live_migration
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

PLUGIN = "xenapi_resign_lease.py"
#: Where dom0 finds a LUN by its SCSI id (udev's link, present once SM
#: logged in to the target).
BY_ID = "/dev/disk/by-id/scsi-"
#: SR other_config key of sm's ``cleanup.py`` ``gcEnabled``.
GC_KEY = "gc"
#: VDI other_config key that stops sm's leaf-coalesce of that VDI.
LEAF_COALESCE_KEY = "leaf-coalesce"
#: migrate_send_data keys by which a destination tells the source who will
#: own the lease and what its clock says; the source removes them before
#: the map reaches ``VM.migrate_send``.
DEST_POOL_KEY = "xenapi_resign_lease_pool"
DEST_HOST_KEY = "xenapi_resign_lease_host"
DEST_TIME_KEY = "xenapi_resign_servertime"
DEST_KEYS = (DEST_POOL_KEY, DEST_HOST_KEY, DEST_TIME_KEY)

#: The plugin's error classes, as this package's exceptions.
_ERRORS = {"LeaseRefused": exception.LeaseHeld,
           "LeaseLost": exception.LeaseLost,
           "LeaseNotFound": exception.LeaseNotFound}


@dataclasses.dataclass(frozen=True)
class VolumeLease:
    """The lease of one volume SR, as dom0 addresses it."""

    sr_uuid: str
    device: str


def lease_for_connection(data: Mapping[str, Any]) -> VolumeLease | None:
    """The lease of an LVHD volume's connection data; None for others.

    ``volume_utils.lvhd_connection_data`` publishes ``sr_type``,
    ``sr_uuid`` and ``SCSIid``: no XAPI call is needed.
    """
    if (data.get("sr_type") != volume_utils.SR_TYPE_LVMOISCSI
            or not data.get("SCSIid") or not data.get("sr_uuid")):
        return None
    return VolumeLease(str(data["sr_uuid"]), BY_ID + str(data["SCSIid"]))


def leases_of(block_device_info: Mapping[str, Any] | None
              ) -> list[VolumeLease]:
    """The leases of every LVHD volume of ``block_device_info``, once each.

    Anything but a mapping (Nova's own unit tests pass placeholders) has
    none.
    """
    if not isinstance(block_device_info, Mapping):
        return []
    found: dict[str, VolumeLease] = {}
    for bdm in live_migration.block_device_mappings(block_device_info):
        data = (bdm.get("connection_info") or {}).get("data") or {}
        lease = lease_for_connection(data)
        if lease is not None:
            found.setdefault(lease.sr_uuid, lease)
    return list(found.values())


def owner_of(latest: Mapping[str, Any] | None) -> rec.Owner | None:
    """The holder named by a plugin record, or None when it is free."""
    if not latest or latest.get("state") != rec.STATE_HELD:
        return None
    return rec.Owner(latest["owner_pool"], latest["owner_host"])


# --- SM's switches -----------------------------------------------------------

def _set_key(session: Any, cls: str, ref: str, key: str, value: str) -> None:
    """Set one other_config key: one ``add_to_other_config`` call.

    Only when the key is already there (``MAP_DUPLICATE_KEY``) is the map
    read and, if the value differs, written whole (never removed
    meanwhile, so it is never absent).
    """
    try:
        session.call_xenapi("%s.add_to_other_config" % cls, ref, key, value)
        return
    except volume_utils.failure_classes(session) as exc:
        if (exc.details or [None])[0] != "MAP_DUPLICATE_KEY":
            raise
    config = dict(session.call_xenapi("%s.get_other_config" % cls, ref))
    if config.get(key) != value:
        config[key] = value
        session.call_xenapi("%s.set_other_config" % cls, ref, config)


def hold_off_gc(session: Any, sr_ref: str) -> None:
    """Stop sm's GC (and so coalesce) on the SR: ``gc=false``."""
    _set_key(session, "SR", sr_ref, GC_KEY, "false")


def hold_off_leaf_coalesce(session: Any, sr_ref: str,
                           vdis: Iterable[str] | None = None) -> None:
    """``leaf-coalesce=false`` on every VDI of the SR (``vdis`` if known)."""
    if vdis is None:
        vdis = session.call_xenapi("SR.get_VDIs", sr_ref)
    for vdi in vdis:
        _set_key(session, "VDI", vdi, LEAF_COALESCE_KEY, "false")


def resume(session: Any, sr_ref: str, vdis: bool = False) -> None:
    """Let sm's GC (and, with ``vdis``, leaf-coalesce) run again."""
    if vdis:
        for vdi in session.call_xenapi("SR.get_VDIs", sr_ref):
            session.call_xenapi("VDI.remove_from_other_config", vdi,
                                LEAF_COALESCE_KEY)
    session.call_xenapi("SR.remove_from_other_config", sr_ref, GC_KEY)


# --- the plugin --------------------------------------------------------------

class LeaseClient(object):
    """The plugin's functions on this pool's master, as typed calls."""

    def __init__(self, session: Any, timing: protocol.Timing) -> None:
        self.session = session
        self.timing = timing
        self._identity: tuple[str, rec.Owner] | None = None

    def identity(self) -> tuple[str, rec.Owner]:
        """(master ref, this pool's owner name); four calls, once."""
        if self._identity is None:
            call = self.session.call_xenapi
            pool = call("pool.get_all")[0]
            master = call("pool.get_master", pool)
            self._identity = (master, rec.Owner(call("pool.get_uuid", pool),
                                                call("host.get_uuid",
                                                     master)))
        return self._identity

    @property
    def me(self) -> rec.Owner:
        return self.identity()[1]

    def call(self, fn: str, lease: VolumeLease | None = None,
             **extra: str) -> Any:
        """One plugin call; its JSON answer, or a typed lease error."""
        master, me = self.identity()
        args = {"pool": me.pool, "host": me.host,
                "duration": repr(self.timing.duration),
                "io_timeout": repr(self.timing.io_timeout)}
        if lease is not None:
            args.update(device=lease.device, sr_uuid=lease.sr_uuid)
        args.update(extra)
        try:
            answer = self.session.call_xenapi("host.call_plugin", master,
                                              PLUGIN, fn, args)
        except volume_utils.failure_classes(self.session) as exc:
            details = list(exc.details or ())
            if details[:1] != ["XENAPI_PLUGIN_FAILURE"] or len(details) < 4:
                raise
            error = _ERRORS.get(details[2], exception.LeaseError)
            raise error("Lease of SR %s on %s (%s on %s): %s: %s" % (
                lease.sr_uuid if lease else "-",
                lease.device if lease else "-", fn, me, details[2],
                details[3]), sr=lease.sr_uuid if lease else None,
                plugin_class=details[2])
        return json.loads(answer)

    def read(self, lease: VolumeLease) -> dict | None:
        """The newest valid record on the LUN (a dict), or None."""
        return self.call("read", lease)["latest"]

    def acquire(self, lease: VolumeLease) -> dict:
        return self.call("acquire", lease)

    def renew(self, lease: VolumeLease) -> dict:
        return self.call("renew", lease)

    def release(self, lease: VolumeLease) -> dict:
        return self.call("release", lease)

    def hand_over(self, lease: VolumeLease, to: rec.Owner) -> dict:
        return self.call("hand_over", lease, next_pool=to.pool,
                         next_host=to.host)

    def renew_many(self, leases: Iterable[VolumeLease]) -> dict:
        return self._many("renew_many", leases)

    def acquire_many(self, leases: Iterable[VolumeLease]) -> dict:
        """Acquire several SRs' leases with one watch and one claim wait."""
        return self._many("acquire_many", leases)

    def _many(self, fn: str, leases: Iterable[VolumeLease]) -> dict:
        """``{sr uuid: record or [error class, message]}``; never per SR."""
        items = [{"device": x.device, "sr_uuid": x.sr_uuid} for x in leases]
        return self.call(fn, leases=json.dumps(items))


# --- what this host holds ----------------------------------------------------

@dataclasses.dataclass
class Held:
    """A lease this host holds, for the SR ``sr_ref`` of this pool."""

    lease: VolumeLease
    sr_ref: str
    renewed_at: float


class Renewer(object):
    """Renews this host's leases every ``D / 3``: one plugin call a round.

    :meth:`tick` is one round (tests call it with an injected ``clock``);
    :meth:`start` runs rounds in a daemon thread until :meth:`stop`.  A
    lease whose renewal fails is dropped and its SR's GC held off at once:
    by the lease's rules someone else may own it by now.
    """

    def __init__(self, client: LeaseClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self.held: dict[str, Held] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, lease: VolumeLease, sr_ref: str) -> None:
        with self.lock:
            self.held[lease.sr_uuid] = Held(lease, sr_ref, self.clock())

    def drop(self, sr_uuid: str) -> Held | None:
        with self.lock:
            return self.held.pop(sr_uuid, None)

    def holds(self, sr_uuid: str) -> bool:
        with self.lock:
            return sr_uuid in self.held

    def tick(self) -> dict[str, Any]:
        """One renewal round; ``{sr uuid: record or [class, message]}``."""
        with self.lock:
            held = list(self.held.values())
        if not held:
            return {}
        answer = self.client.renew_many(h.lease for h in held)
        now = self.clock()
        for h in held:
            result = answer.get(h.lease.sr_uuid)
            if isinstance(result, dict):
                h.renewed_at = now
                continue
            LOG.error("Renewing the lease of SR %s failed (%s): holding "
                      "off its garbage collector; re-attach or migrate to "
                      "take the lease again", h.lease.sr_uuid, result)
            self.drop(h.lease.sr_uuid)
            try:
                hold_off_gc(self.client.session, h.sr_ref)
            except Exception:
                LOG.exception("Could not hold off the GC of SR %s",
                              h.lease.sr_uuid)
        return answer

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="xenapi-resign-lease-renewer")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.client.timing.renew_interval):
            try:
                self.tick()
            except Exception:
                LOG.exception("Lease renewal round failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def take(client: LeaseClient, renewer: Renewer, lease: VolumeLease,
         sr_ref: str, vdis: bool = False) -> None:
    """Acquire the lease of a plugged, held-off SR; then let sm's GC run."""
    client.acquire(lease)
    renewer.add(lease, sr_ref)
    resume(client.session, sr_ref, vdis=vdis)
    LOG.info("Holding the lease of volume SR %s", lease.sr_uuid)


# --- live migration ----------------------------------------------------------

def servertime(session: Any, host_ref: str) -> str:
    """``host.get_servertime`` in XAPI's own text form (UTC)."""
    return clock_guard.parse_servertime(session.call_xenapi(
        "host.get_servertime", host_ref)).strftime("%Y%m%dT%H:%M:%SZ")


def destination_offer(client: LeaseClient) -> dict[str, str]:
    """What a destination adds to ``migrate_send_data`` for the source."""
    master, me = client.identity()
    return {DEST_POOL_KEY: me.pool, DEST_HOST_KEY: me.host,
            DEST_TIME_KEY: servertime(client.session, master)}


def _refuse(lease: VolumeLease, reason: str, action: str) -> Exception:
    return exception.LiveMigrationPreCheckError(
        volume_id="on SR %s" % lease.sr_uuid, reason=reason,
        source_sr_uuid=lease.sr_uuid, dest_sr_uuid=lease.sr_uuid,
        action=action)


def check_source(client: LeaseClient, renewer: Renewer, vm_ref: str,
                 leases: Iterable[VolumeLease],
                 offer: Mapping[str, str], max_skew: float,
                 ignore_skew: bool, in_flight: Iterable[str],
                 sr_vdis: Mapping[str, Iterable[str]]) -> rec.Owner:
    """The source's lease pre-check; returns the destination's owner name.

    Refuses (``LiveMigrationPreCheckError``, ``ClockSkewTooLarge``) when the
    destination does not take leases, the clocks differ too much, an SR is
    not held by this pool, is shared with another VM (``sr_vdis``: {SR
    uuid: every VDI on it}, as the SR pre-check read them), or another
    migration of it is under way.  Changes nothing but a renewal: one
    ``renew_many`` proves every lease is still this host's on the LUN, and
    one VBD query covers every SR's VDIs.
    """
    leases = list(leases)
    in_flight = set(in_flight)
    if not all(offer.get(k) for k in DEST_KEYS):
        raise _refuse(leases[0], "the destination did not offer to take "
                      "the LVHD volume leases (nova-xenapi-resign not "
                      "active there)", "Run nova-compute-xenapi-resign on "
                      "the destination.")
    master, me = client.identity()
    # The destination read its clock one RPC round ago: that time counts
    # as skew here, which errs on the side of refusing.
    clock_guard.check_clock_skew(
        "%s (pool %s)" % (me.host, me.pool),
        servertime(client.session, master),
        "%s (pool %s)" % (offer[DEST_HOST_KEY], offer[DEST_POOL_KEY]),
        offer[DEST_TIME_KEY], max_skew, override=ignore_skew)
    for lease in leases:
        if lease.sr_uuid in in_flight:
            raise _refuse(lease, "another live migration of a VM on this SR "
                          "is under way", "Migrate one VM at a time.")
        if not renewer.holds(lease.sr_uuid):
            raise _refuse(lease, "the SR's lease: this host (%s) renews "
                          "it no longer" % (me,), "Detach and re-attach the "
                          "volume here first.")
    renewed = client.renew_many(leases)
    for lease in leases:
        if not isinstance(renewed.get(lease.sr_uuid), dict):
            raise _refuse(lease, "this host (%s) does not hold the SR's "
                          "lease on the LUN (%s)" % (
                              me, renewed.get(lease.sr_uuid)),
                          "Detach and re-attach the volume here first.")
    vdis = {v: lease for lease in leases
            for v in sr_vdis.get(lease.sr_uuid, ())}
    vbds = client.session.call_xenapi(
        "VBD.get_all_records_where",
        live_migration.any_of("VDI", vdis)) if vdis else {}
    for lease in leases:
        others = sorted({r["VM"] for r in vbds.values()
                         if vdis[r["VDI"]] is lease} - {vm_ref})
        if others:
            raise _refuse(lease, "the SR is used by other VMs too (%s)"
                          % ", ".join(others), "Only an SR used by the "
                          "migrating VM alone can change pools.")
    return rec.Owner(offer[DEST_POOL_KEY], offer[DEST_HOST_KEY])


def report_stale(client: LeaseClient, renewer: Renewer) -> list[str]:
    """SRs plugged here with the GC on although this pool lacks the lease.

    Each is reported (an error in the log) and, when no VM uses it,
    forgotten: it can do harm only through sm's GC.  Returns their uuids.
    """
    session = client.session
    records = session.call_xenapi(
        "SR.get_all_records_where",
        'field "type"="%s"' % volume_utils.SR_TYPE_LVMOISCSI)
    stale = []
    for sr_ref, sr in records.items():
        if (sr.get("other_config") or {}).get(GC_KEY) == "false":
            continue
        if renewer.holds(sr["uuid"]):
            continue
        scsi_id = None
        for pbd in sr.get("PBDs") or ():
            scsi_id = session.call_xenapi("PBD.get_device_config",
                                          pbd).get("SCSIid")
        if not scsi_id:
            continue
        lease = VolumeLease(sr["uuid"], BY_ID + scsi_id)
        try:
            holder = owner_of(client.read(lease))
        except exception.LeaseNotFound:
            continue
        if holder == client.me:
            continue
        in_use = any(session.call_xenapi("VDI.get_VBDs", vdi)
                     for vdi in session.call_xenapi("SR.get_VDIs", sr_ref))
        LOG.error("Volume SR %s is plugged in this pool with its GC on, "
                  "but the lease is held by %s: %s", sr["uuid"],
                  holder or "nobody", "in use, holding off its GC" if in_use
                  else "forgetting it")
        if in_use:
            hold_off_gc(session, sr_ref)
        else:
            volume_utils.forget_sr(session, sr_ref)
        stale.append(sr["uuid"])
    return stale


def ensure_held(client: LeaseClient, renewer: Renewer, lease: VolumeLease,
                sr_ref: str) -> str:
    """An SR already plugged here: make sure this pool holds its lease.

    A second volume on the SR, or a re-attach after nova-compute restarted
    (its renewer forgot what it held).  Renewed when dom0 still holds it
    (``renew`` checks its record on the LUN and its own clock), else the
    GC is held off and the lease acquired (``LeaseHeld`` when another pool
    has it; the SR then stays with its GC off and is not forgotten, since
    this pool's other VMs may use it).  Returns "held", "renewed" or
    "acquired".
    """
    if renewer.holds(lease.sr_uuid):
        return "held"
    try:
        client.renew(lease)
    except exception.LeaseError:
        hold_off_gc(client.session, sr_ref)
        take(client, renewer, lease, sr_ref)
        return "acquired"
    renewer.add(lease, sr_ref)
    LOG.info("Holding the lease of volume SR %s again", lease.sr_uuid)
    return "renewed"


def hand_over_before_forget(client: LeaseClient, renewer: Renewer,
                            leases: Iterable[VolumeLease], to: rec.Owner,
                            sr_refs: Mapping[str, str],
                            sr_vdis: Mapping[str, Iterable[str]]
                            ) -> list[str]:
    """Source, after ``VM.migrate_send``, before Nova forgets its SRs.

    The SR is still plugged, so dom0 still sees the LUN (SM logs out of the
    target when its last SR detaches).  Once one query shows no VBD on any
    of the SRs' VDIs (``sr_vdis``: {SR uuid: every VDI}, ``sr_refs``: {SR
    uuid: ref}, both as the pre-check read them), each SR gets ``gc=false``
    and its VDIs ``leaf-coalesce=false``, then its lease is handed over,
    reserved for ``to``.  Never raises: an SR that cannot be quiesced or
    handed over is only dropped from the renewer (its lease expires after
    ``D``; the destination takes it after ``D + T``).
    """
    leases = list(leases)
    session = client.session
    for lease in leases:
        renewer.drop(lease.sr_uuid)
    try:
        vdis = [v for x in leases for v in sr_vdis.get(x.sr_uuid, ())]
        used = {r["VDI"] for r in session.call_xenapi(
            "VBD.get_all_records_where",
            live_migration.any_of("VDI", vdis)).values()} if vdis else set()
    except Exception as exc:
        LOG.error("Could not list the VBDs of SRs %s (%s): no hand-over; "
                  "the destination takes the leases after they expired",
                  [x.sr_uuid for x in leases], exc)
        return []
    handed = []
    for lease in leases:
        try:
            sr_ref = sr_refs[lease.sr_uuid]
            in_use = used & set(sr_vdis.get(lease.sr_uuid, ()))
            if in_use:
                raise exception.LeaseError(
                    sr=lease.sr_uuid, device=lease.device,
                    reason="VDIs %s still have VBDs" % sorted(in_use))
            hold_off_gc(session, sr_ref)
            hold_off_leaf_coalesce(session, sr_ref,
                                   sr_vdis.get(lease.sr_uuid, ()))
            client.hand_over(lease, to)
        except Exception as exc:
            LOG.error("Could not hand the lease of SR %s over to %s (%s): "
                      "it is no longer renewed here; the destination takes "
                      "it after it expired", lease.sr_uuid, to, exc)
            continue
        handed.append(lease.sr_uuid)
        LOG.info("Handed the lease of SR %s over to %s", lease.sr_uuid, to)
    return handed


def release_before_forget(client: LeaseClient, renewer: Renewer,
                          sr_uuid: str, sr_ref: str) -> bool:
    """Detach: release a held SR's lease while it is still plugged.

    Called once no VBD uses the SR, before it is unplugged and forgotten
    (afterwards dom0 no longer sees the LUN).  False when this host does
    not hold it.
    """
    held = renewer.drop(sr_uuid)
    if held is None:
        return False
    hold_off_gc(client.session, sr_ref)
    client.release(held.lease)
    LOG.info("Released the lease of volume SR %s before forgetting it",
             sr_uuid)
    return True


def acquire_at_destination(client: LeaseClient, renewer: Renewer,
                           leases: Iterable[VolumeLease],
                           sr_refs: Mapping[str, str] | None = None
                           ) -> list[str]:
    """Destination, after the migration: take every lease, then run GC.

    One ``acquire_many`` call for all the VM's SRs: immediate for those the
    source handed over by name; one ``D + T`` for all when the source died
    before it could (the leases expire first).  A refusal leaves the SR
    with its GC off and is logged for the operator.  ``sr_refs`` ({SR
    uuid: ref}, what ``pre_live_migration`` connected) spares a lookup.
    """
    known = sr_refs or {}
    refs = {x.sr_uuid: known.get(x.sr_uuid) or volume_utils.find_sr_by_uuid(
        client.session, x.sr_uuid) for x in leases}
    wanted = [x for x in leases if refs[x.sr_uuid] is not None]
    if not wanted:
        return []
    answer = client.acquire_many(wanted)
    taken = []
    for lease in wanted:
        result = answer.get(lease.sr_uuid)
        if not isinstance(result, dict):
            LOG.error("Could not take the lease of migrated volume SR %s; "
                      "its garbage collector stays off: %s", lease.sr_uuid,
                      result)
            continue
        renewer.add(lease, refs[lease.sr_uuid])
        resume(client.session, refs[lease.sr_uuid], vdis=True)
        LOG.info("Holding the lease of volume SR %s", lease.sr_uuid)
        taken.append(lease.sr_uuid)
    return taken


def reacquire_at_source(client: LeaseClient, renewer: Renewer,
                        leases: Iterable[VolumeLease]) -> list[str]:
    """Source rollback: hold every lease of the VM's SRs again.

    A lease the renewer still holds needs nothing.  The others: one
    ``renew_many`` keeps those dom0 still holds; the rest (handed over,
    lost) get their SR's GC held off and are taken with one
    ``acquire_many``, which waits ``D + T`` once unless they are free for
    anyone; only then may their GC run here.  A refusal leaves that SR's GC
    off and is logged.  Returns the SRs acquired anew.
    """
    missing = [x for x in leases if not renewer.holds(x.sr_uuid)]
    if not missing:
        return []
    session = client.session
    refs = {x.sr_uuid: volume_utils.find_sr_by_uuid(session, x.sr_uuid)
            for x in missing}
    renewed = client.renew_many(missing)
    lost = [x for x in missing
            if not isinstance(renewed.get(x.sr_uuid), dict)]
    for lease in lost:
        if refs[lease.sr_uuid] is not None:
            hold_off_gc(session, refs[lease.sr_uuid])
    acquired = client.acquire_many(lost) if lost else {}
    regained = []
    for lease in missing:
        sr_ref = refs[lease.sr_uuid]
        if lease in lost and not isinstance(acquired.get(lease.sr_uuid),
                                            dict):
            LOG.error("Rollback: could not take the lease of SR %s back; "
                      "its garbage collector stays off: %s", lease.sr_uuid,
                      acquired.get(lease.sr_uuid))
            continue
        if sr_ref is not None:
            renewer.add(lease, sr_ref)
            if lease in lost:
                resume(session, sr_ref)
        if lease in lost:
            regained.append(lease.sr_uuid)
    return regained
