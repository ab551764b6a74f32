"""Resign-after-clone: attach the new volume, resignature its SR, detach.

A SAN snapshot or clone of a LUN that holds a XenServer LVHD SR is a byte
copy of it, and XAPI refuses to introduce it beside its source.  After a
backend driver has made such a volume, :func:`resign_volume` does what
Cinder's own ``_attach_volume``/``_detach_volume`` do for a data copy, with
a resignature in the middle.  The attach and detach are
:func:`run_attached`, which every step of the wrapper that needs a LUN uses
(the resignature, the read-only probe after a migration, and the format and
import of VDI-per-LUN volumes in :mod:`cinder_backend.lvhd`):

1. this host's os-brick connector properties
   (``get_connector_properties``);
2. ``driver.create_export`` and ``driver.initialize_connection`` for the
   **new** volume (the source volume or snapshot is never exported, attached
   or opened);
3. ``InitiatorConnector.factory(driver_volume_type).connect_volume`` and a
   wait until the device path exists;
4. the action; for :func:`resign_volume` (:func:`resign_attached`): a
   cheap check that the LUN holds an LVHD SR (the LVM2 label in the first
   2 KiB, then the VG name of the committed metadata must start with
   ``VG_XenStorage-``; anything else, a plain data volume or a guest's own
   LVM, is left untouched and ``None`` is returned), then
   :func:`nova_xenapi_resign.resign.resign_device` to the SR UUID Nova will
   compute for the new volume
   (:func:`nova_xenapi_resign.sr_naming.preferred_sr_uuid` of the new
   volume's connection data under ``[xenapi_resign] sr_naming``);
5. ``disconnect_volume``, ``driver.terminate_connection`` and
   ``driver.remove_export``, each in a ``finally`` block, so a failure at
   any step never leaves the volume attached or exported.

A failure raises :class:`~nova_xenapi_resign.exception.VolumeResignError`
(:class:`~nova_xenapi_resign.exception.VolumeResignRefused` when the
resignature refused, nothing written), naming the volume, the step, the
device and the reason; the wrapper driver turns it into the Cinder error
that fits.  The device reads and writes run in the privsep daemon
(:mod:`cinder_backend.privileged`), so an unprivileged cinder-volume can
run the hook.  Running the hook again is safe: the resignature is idempotent
(a resigned device is left as it is) and resumable (an interrupted one is
finished from its backup).
"""

from __future__ import annotations

from collections.abc import Mapping
import os
import time
from typing import Any

from oslo_log import log as logging

from cinder_backend import privileged
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign import sr_naming

LOG = logging.getLogger(__name__)

#: Steps of the hook, as named in error messages.
STEP_CONNECTOR = "connector properties"
STEP_EXPORT = "create_export"
STEP_INITIALIZE = "initialize_connection"
STEP_CONNECT = "connect_volume"
STEP_DETECT = "LVHD detection"
STEP_NAMING = "SR naming"
STEP_RESIGN = "resignature"
STEP_DISCONNECT = "disconnect_volume"
STEP_TERMINATE = "terminate_connection"
STEP_REMOVE_EXPORT = "remove_export"

DEVICE_POLL_INTERVAL = 0.25
#: os-brick's ``device_info`` key (and a backend's connection data key) of
#: the LUN's page-0x83 SCSI id.
SCSI_WWN_KEY = "scsi_wwn"


def hook_error(volume_id: str, step: str, device: str | None,
               reason: str, refused: bool = False
               ) -> exception.VolumeResignError:
    """The hook's error for ``step``, naming the volume and the device."""
    cls = (exception.VolumeResignRefused if refused
           else exception.VolumeResignError)
    return cls(volume_id=volume_id, step=step,
               device=device or "<not attached>", reason=reason)


def vget(volume: Any, key: str, default: Any = None) -> Any:
    """``volume[key]`` for a dict or a Cinder object, else ``default``."""
    if isinstance(volume, Mapping):
        return volume.get(key, default)
    try:
        return getattr(volume, key)
    except Exception:  # Cinder objects raise on unset/lazy fields
        return default


def host_connector_properties(root_helper: str, my_ip: str | None,
                              multipath: bool = False,
                              enforce_multipath: bool = False) -> dict:
    """This host's os-brick connector properties (as Cinder gathers them)."""
    from os_brick.initiator import connector as brick_connector
    return brick_connector.get_connector_properties(
        root_helper, my_ip, multipath, enforce_multipath)


def get_connector(protocol: str, root_helper: str, use_multipath: bool,
                  device_scan_attempts: int):
    """The os-brick connector for a ``driver_volume_type``."""
    from os_brick.initiator import connector as brick_connector
    return brick_connector.InitiatorConnector.factory(
        protocol, root_helper, use_multipath=use_multipath,
        device_scan_attempts=device_scan_attempts)


def _wait_for_device(path: str, timeout: float) -> None:
    deadline = time.monotonic() + max(0.0, timeout)
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise exception.DeviceError(
                device=path, reason="did not appear within %s seconds"
                % timeout)
        time.sleep(DEVICE_POLL_INTERVAL)


class _Cleanup(object):
    """Run cleanups in reverse order; keep the first error."""

    def __init__(self, volume_id: str) -> None:
        self.volume_id = volume_id
        self.steps: list = []
        self.device: str | None = None

    def push(self, step: str, func, *args, **kwargs) -> None:
        self.steps.append((step, func, args, kwargs))

    def run(self, failed: bool) -> Exception | None:
        first = None
        while self.steps:
            step, func, args, kwargs = self.steps.pop()
            try:
                func(*args, **kwargs)
            except Exception as exc:
                LOG.error("Volume %s: %s failed during cleanup: %s",
                          self.volume_id, step, exc, exc_info=not failed)
                if first is None:
                    first = hook_error(self.volume_id, step, self.device,
                                       "%s: %s" % (type(exc).__name__, exc))
        return first


def scsi_id_of(data: Mapping[str, Any], device_info: Mapping[str, Any]
               ) -> str | None:
    """The LUN's page-0x83 id as this host sees it, else as the backend says.

    os-brick's ``device_info["scsi_wwn"]`` (read from the attached device)
    first; else the connection data's ``scsi_wwn``, which a backend whose
    connector does not read it (e.g. os-brick's ``LOCAL``) reports.  None
    when neither has one: the caller refuses rather than invent one.
    """
    for source in (device_info, data):
        value = source.get(SCSI_WWN_KEY) if isinstance(source, Mapping) \
            else None
        if isinstance(value, str) and value:
            return value
    return None


def run_attached(driver: Any, volume: Any, action, *, step: str,
                 connector_properties: Mapping[str, Any] | None = None,
                 root_helper: str = "sudo", my_ip: str | None = None,
                 use_multipath: bool = False,
                 enforce_multipath: bool = False,
                 device_scan_attempts: int = 3,
                 attach_timeout: float = 120, context: Any = None,
                 connector=None) -> Any:
    """``action(path, connection_data, device_info)`` with ``volume`` attached.

    ``driver`` is the backend driver that made ``volume`` (a Cinder volume
    object or a dict with ``id`` and the driver's ``provider_*`` fields).
    The volume is exported, its connection initialized and connected with
    os-brick on this host, and the device waited for; then ``action`` runs;
    then, in ``finally`` blocks whatever happened, it is disconnected,
    terminated and unexported.  ``connector_properties`` skips gathering
    this host's; ``connector`` replaces the os-brick connector (tests).

    Returns what ``action`` returned.  A
    :class:`~nova_xenapi_resign.exception.VolumeResignError` from ``action``
    passes unchanged; any other exception becomes one at ``step``.  A
    cleanup failure after a success raises too.
    """
    volume_id = str(vget(volume, "id"))
    cleanup = _Cleanup(volume_id)

    def fail(step, exc, reason=None):
        return hook_error(volume_id, step, cleanup.device,
                          reason or "%s: %s" % (type(exc).__name__, exc))

    if connector_properties is None:
        try:
            props = host_connector_properties(
                root_helper, my_ip, use_multipath, enforce_multipath)
        except Exception as exc:
            raise fail(STEP_CONNECTOR, exc) from exc
    else:
        props = dict(connector_properties)

    failed = True
    try:
        try:
            export = driver.create_export(context, volume, props)
        except Exception as exc:
            raise fail(STEP_EXPORT, exc) from exc
        if export:
            apply_update(volume, export)
        cleanup.push(STEP_REMOVE_EXPORT, driver.remove_export, context,
                     volume)
        try:
            conn = driver.initialize_connection(volume, props)
            protocol = conn["driver_volume_type"]
            data = conn["data"]
        except Exception as exc:
            raise fail(STEP_INITIALIZE, exc) from exc
        cleanup.push(STEP_TERMINATE, driver.terminate_connection, volume,
                     props, force=True)
        try:
            brick = connector or get_connector(
                protocol, root_helper, use_multipath, device_scan_attempts)
            device_info = brick.connect_volume(data)
            path = device_info["path"]
        except Exception as exc:
            raise fail(STEP_CONNECT, exc, "%s: %s (protocol %s, connection "
                       "data %s)" % (type(exc).__name__, exc, protocol,
                                     sr_naming.masked(data))) from exc
        cleanup.device = path
        cleanup.push(STEP_DISCONNECT, brick.disconnect_volume, data,
                     device_info, force=True, ignore_errors=False)
        try:
            _wait_for_device(path, attach_timeout)
        except Exception as exc:
            raise fail(STEP_DETECT, exc) from exc
        try:
            result = action(path, data, device_info)
        except exception.VolumeResignError:
            raise
        except Exception as exc:
            raise fail(step, exc) from exc
        failed = False
    finally:
        error = cleanup.run(failed)
        if error is not None and not failed:
            raise error
    return result


def resign_attached(volume_id: str, path: str, data: Mapping[str, Any], *,
                    conf: Any, style: str | None = None, write: bool = True,
                    resign=None, lock_path: str | None = None
                    ) -> dict | None:
    """Detect and resignature the LVHD SR on the attached ``path``.

    The middle of :func:`resign_volume`, for callers that run more on the
    same attachment.  ``style`` overrides ``conf.sr_naming`` (an LVHD
    volume's SR is always uuid5-named: a host refuses ``FA15E-D15C-``
    names for ``lvmoiscsi``).  Returns None when ``path`` holds no LVHD SR.
    """
    def fail(step, exc, reason=None, refused=False):
        return hook_error(volume_id, step, path,
                          reason or "%s: %s" % (type(exc).__name__, exc),
                          refused)

    try:
        vg_name = privileged.detect_lvhd(path)
    except Exception as exc:
        raise fail(STEP_DETECT, exc) from exc
    if vg_name is None:
        LOG.info("Volume %s (%s) holds no LVHD SR: left untouched",
                 volume_id, path)
        return None
    if not write:
        return {"sr_uuid": vg_name[len(naming.VG_PREFIX):],
                "changed": False, "state": "read",
                "volume_id": volume_id, "device": path,
                "source_vg_name": vg_name, "bytes_written": 0,
                "message": "holds %s (read only)" % vg_name,
                "resign_seconds": 0.0}
    try:
        target = sr_naming.preferred_sr_uuid(data, style or conf.sr_naming)
    except Exception as exc:
        raise fail(STEP_NAMING, exc) from exc
    LOG.info("Volume %s (%s) holds %s: resigning it to SR %s",
             volume_id, path, vg_name, target)
    try:
        res = (resign or privileged.resign_device)(
            path, target, backup_dir=conf.backup_dir, lock_path=lock_path)
    except exception.UnsafeOperation as exc:
        raise fail(STEP_RESIGN, exc, "refused, nothing written: %s" % exc,
                   refused=True) from exc
    except Exception as exc:
        raise fail(STEP_RESIGN, exc) from exc
    return {"sr_uuid": target, "changed": res["changed"],
            "state": res["state"], "volume_id": volume_id, "device": path,
            "source_vg_name": vg_name, "message": res["message"],
            "bytes_written": res["bytes_written"],
            "resign_seconds": res["seconds"]}


def resign_volume(driver: Any, volume: Any, *, conf: Any,
                  lock_path: str | None = None, write: bool = True,
                  resign=None, **attach: Any) -> dict | None:
    """Resignature the LVHD SR on a newly created volume, if it holds one.

    ``conf`` is the ``[xenapi_resign]`` group (``sr_naming``,
    ``backup_dir``); ``attach`` are :func:`run_attached`'s options.
    ``write=False`` only reads the SR uuid the LUN holds (after a
    migration copied it): nothing is written and ``sr_uuid`` is that uuid.
    ``resign`` replaces :func:`cinder_backend.privileged.resign_device`
    (same arguments, same dict result; tests, fault injection).

    Returns None when the volume is not an LVHD SR (nothing written), else
    ``{"sr_uuid", "changed", "state", "volume_id", "device",
    "source_vg_name", "message", "bytes_written", "resign_seconds",
    "seconds"}``.  Raises the hook's error (see :func:`hook_error`) when
    anything fails; the volume is detached and unexported whatever
    happened.
    """
    volume_id = str(vget(volume, "id"))
    started = time.monotonic()
    result = run_attached(
        driver, volume, lambda path, data, _info: resign_attached(
            volume_id, path, data, conf=conf, write=write, resign=resign,
            lock_path=lock_path), step=STEP_RESIGN, **attach)
    if result is None:
        return None
    result["seconds"] = time.monotonic() - started
    LOG.info("Volume %s: %s", volume_id, result["message"])
    return result


def apply_update(volume: Any, update: Mapping[str, Any]) -> None:
    """Apply a driver model update to ``volume`` in memory (not saved)."""
    for key, value in update.items():
        if key in ("metadata", "admin_metadata"):
            continue
        try:
            volume[key] = value
        except Exception:
            try:
                setattr(volume, key, value)
            except Exception:
                LOG.debug("Cannot apply %s to the volume in memory", key)
