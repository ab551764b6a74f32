"""The dom0 lease plugin on simulated hosts, and the lease hazards.

``host.call_plugin(host, "xenapi_resign_lease.py", fn, args)`` runs the
project's real dom0 plugin (``dom0/etc/xapi.d/plugins/
xenapi_resign_lease.py``), one module instance per simulated host, each
with what a dom0 has of its own:

* ``/run`` (the plugin's state directory): a directory per host;
* a monotonic clock, :class:`HostClock`: virtual time, a sleep advances it
  at once (tests hook into sleeps to act "meanwhile"); every host's clock
  is its own, so nothing can rely on two hosts agreeing;
* the wall clock, shifted by the pool's ``clock_offset`` setting (which
  ``host.get_servertime`` reports too);
* its view of the SAN: ``/dev/disk/by-id/scsi-<SCSIid>`` opens the LUN
  image of a target the host logged in to (an ``lvmoiscsi`` PBD.plug on it,
  as dom0's udev links appear after SM's iSCSI login); any other path does
  not exist there.  When the host's last plugged PBD on a target (portal
  and IQN, any iSCSI SR type) is unplugged, SM logs out of it (sm
  ``ISCSISR.detach`` with the target's refcount at zero) and its LUNs'
  links are gone: a plugin call naming them fails as on a real dom0.

A plugin missing from the checkout is ``XENAPI_MISSING_PLUGIN``, as on a
host where it was never installed.

**Hazards** (:func:`check_hazards`): a volume SR whose LUN has a lease LV,
plugged in a pool with SM's garbage collector on (SR ``other_config:gc`` is
not ``false``) while the record on the LUN is not held by that pool.  Two
pools with the SR plugged and writable is always one of these (at most one
holds the lease).  The check runs after every ``SR.*``, ``PBD.*`` and lease
plugin call, in every pool that has the SR.

``host.call_plugin`` runs without the pool lock, as XAPI runs plugins
concurrently: while one host's acquire waits, the pool goes on.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import threading
import time
import xmlrpc.client

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.simulator import san as sanmod

NAME = "xenapi_resign_lease"
PLUGIN_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), "dom0", "etc", "xapi.d", "plugins", NAME + ".py")
BY_ID = "/dev/disk/by-id/scsi-"
LVHD_TYPES = ("lvmoiscsi", "relvmoiscsi")
#: SR types whose PBDs hold an iSCSI session in dom0.
ISCSI_TYPES = ("iscsi",) + LVHD_TYPES
#: Methods after which the hazards are checked (they plug, unplug, scan,
#: forget an SR or change its other_config).
CHECKED_PREFIXES = ("SR.", "PBD.")


class HostClock(object):
    """A host's monotonic clock, in virtual seconds.

    ``sleep`` advances it at once, then runs ``hooks`` (callables taking
    the seconds slept): a test's way to let another host act while this
    one waits.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.hooks: list = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, float(seconds))

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        for hook in list(self.hooks):
            hook(seconds)


def wall_time(pool) -> float:
    """The pool's wall clock: this machine's, shifted by ``clock_offset``."""
    return time.time() + float(pool.settings.get("clock_offset") or 0.0)


def servertime(pool, session, host):
    """``host.get_servertime``: the host's wall clock (XML-RPC dateTime)."""
    pool.db.raw("host", host)
    now = datetime.datetime.fromtimestamp(wall_time(pool),
                                          datetime.timezone.utc)
    return xmlrpc.client.DateTime(now.strftime("%Y%m%dT%H:%M:%SZ"))


class HostState(object):
    """One simulated dom0: its plugin instance, clock and logged-in LUNs."""

    def __init__(self, pool, host: str) -> None:
        self.pool = pool
        self.host = host
        self.clock = HostClock()
        self.luns: dict[str, str] = {}  # SCSIid -> LUN image path
        #: SCSIid -> (portal, IQN) of the session it came through.
        self.targets: dict[str, tuple[str, str]] = {}
        spec = importlib.util.spec_from_file_location(
            "%s_%s_%s" % (NAME, pool.name, host.replace(":", "_")),
            PLUGIN_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.STATE_DIR = os.path.join(pool.san.root, ".dom0", pool.name,
                                        pool.db.get("host", host, "uuid"),
                                        "run")
        module.monotonic = self.clock.monotonic
        module.sleep = self.clock.sleep
        module.wall_clock = lambda: wall_time(pool)
        module.Device = self._device_class(module.Device)
        self.module = module

    def _device_class(self, base):
        luns = self.luns

        class HostDevice(base):
            """The plugin's Device, opening dom0 paths on this host."""

            def __init__(self, path):
                image = (luns.get(path[len(BY_ID):])
                         if path.startswith(BY_ID) else None)
                if image is None:
                    raise OSError(2, "No such file or directory: %r" % path)
                super().__init__(image)
                self.path = path
        return HostDevice


def _plugin_exists() -> bool:
    return os.path.isfile(PLUGIN_PATH)


def host_state(pool, host: str) -> HostState:
    """The dom0 of ``host`` (made on first use)."""
    with pool.lock:
        states = pool.__dict__.setdefault("dom0", {})
        if host not in states:
            states[host] = HostState(pool, host)
        return states[host]


def functions(pool, host: str) -> dict | None:
    """``{fn: func(pool, args)}`` of the plugin on ``host``, or None."""
    if not _plugin_exists():
        return None
    module = host_state(pool, host).module

    def bind(fn):
        def call(pool_, args):
            try:
                return module.FUNCTIONS[fn](None, args)
            finally:
                check_everywhere(pool)
        return call
    return {fn: bind(fn) for fn in module.FUNCTIONS}


def note_plug(pool, pbd: dict) -> None:
    """An lvmoiscsi PBD plugged: its host now sees the LUN by SCSI id."""
    config = pbd["device_config"]
    scsi_id = config.get("SCSIid")
    if pool.db.get("SR", pbd["SR"], "type") not in LVHD_TYPES or not scsi_id:
        return
    image = lun_image(pool, config)
    if image is not None:
        state = host_state(pool, pbd["host"])
        state.luns[scsi_id] = image
        state.targets[scsi_id] = _target(config)


def _target(config) -> tuple[str, str]:
    return (sanmod.normalize_portal(config.get("target", ""),
                                    config.get("port") or None),
            config.get("targetIQN", ""))


def note_unplug(pool, pbd: dict) -> None:
    """A PBD unplugged: the last one on its target logs the host out."""
    db = pool.db
    if db.get("SR", pbd["SR"], "type") not in ISCSI_TYPES:
        return
    target = _target(pbd["device_config"])
    for other in db.all_refs("PBD"):
        rec_ = db.raw("PBD", other)
        if (rec_["currently_attached"] and rec_["host"] == pbd["host"]
                and db.get("SR", rec_["SR"], "type") in ISCSI_TYPES
                and _target(rec_["device_config"]) == target):
            return
    state = host_state(pool, pbd["host"])
    for scsi_id in [s for s, t in state.targets.items() if t == target]:
        del state.targets[scsi_id]
        del state.luns[scsi_id]


def lun_image(pool, config) -> str | None:
    """The LUN image a device-config's SCSIid names, if it exists."""
    portal = sanmod.normalize_portal(config.get("target", ""),
                                     config.get("port") or None)
    lun = pool.san.find_scsi_id(portal, config.get("targetIQN", ""),
                                config.get("SCSIid"))
    return None if lun is None else pool.san.path(portal,
                                                  config["targetIQN"], lun)


def read_lease(image: str):
    """``(sr uuid, newest record or None)`` of a LUN image, or None.

    None: the LUN has no lease LV (an SR made elsewhere) or no LVHD SR.
    """
    try:
        with device_mod.open_device(image) as dev:
            where = locator.locate(dev)
            raw = locator.DeviceStore(dev, where).read_slots()
    except (exception.FormatError, exception.LeaseNotFound,
            exception.InvalidInput, OSError):
        return None
    return where.sr_uuid, rec.snapshot(raw, image).latest


def _pool_uuid(pool) -> str:
    return pool.db.get("pool", pool.pool_ref, "uuid")


def check_hazards(pool) -> None:
    """Record a hazard for each SR plugged writable without the lease."""
    db = pool.db
    active = pool.__dict__.setdefault("lease_hazards", set())
    now = set()
    for sr in db.all_refs("SR"):
        sr_rec = db.raw("SR", sr)
        if sr_rec["type"] not in LVHD_TYPES:
            continue
        if db.get("SR", sr, "other_config").get("gc") == "false":
            continue
        for pbd in db.get("SR", sr, "PBDs"):
            pbd_rec = db.raw("PBD", pbd)
            if not pbd_rec["currently_attached"]:
                continue
            image = lun_image(pool, pbd_rec["device_config"])
            found = read_lease(image) if image else None
            if found is None:
                continue
            latest = found[1]
            if latest is not None and latest.held and (
                    latest.owner.pool == _pool_uuid(pool)):
                continue
            key = (sr_rec["uuid"], pbd_rec["host"])
            now.add(key)
            if key not in active:
                pool.record_hazard({
                    "kind": "lease", "sr_uuid": sr_rec["uuid"],
                    "pool": pool.name,
                    "host": db.get("host", pbd_rec["host"], "uuid"),
                    "lease_owner": str(latest.owner) if latest is not None
                    and latest.held else "nobody",
                    "reason": "SR plugged with its garbage collector on "
                    "in a pool that does not hold the lease"})
    active.clear()
    active.update(now)


def check_everywhere(pool) -> None:
    """:func:`check_hazards` in every pool of ``pool``'s registry."""
    for other in list(pool.registry.values()):
        with other.lock:
            check_hazards(other)


def register(pool) -> None:
    pool.register("host.get_servertime", servertime, 1)
