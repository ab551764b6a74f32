"""LVHD (VDI-per-LUN) volumes: what the wrapper does on an attached LUN.

A volume type with the extra spec ``xenapi_resign:sr_type=lvmoiscsi`` makes
each volume's LUN one XenServer ``lvmoiscsi`` SR holding one VHD VDI that
fills it (:func:`nova_xenapi_resign.lvhd.create.format_volume`), so the SAN
gives every disk its own QoS, snapshots and clones.  What is published for
such a volume (:class:`cinder_backend.cinder_api.Published`) lets stock
Nova introduce that SR with ``SCSIid`` and attach exactly that VDI.

Each function here runs inside :func:`cinder_backend.hook.run_attached`
(the device path, the connection data, os-brick's ``device_info``) and
returns what to publish; the device reads and writes go through
:mod:`cinder_backend.privileged`.

* the SR uuid of a new LVHD SR is always Nova's uuid5 name of the volume's
  target (``sr_naming`` style ``uuid5``, whatever ``[xenapi_resign]
  sr_naming`` says): a host refuses ``FA15E-D15C-`` names for lvmoiscsi;
* the SCSI id is the LUN's page-0x83 id (:func:`cinder_backend.hook.
  scsi_id_of`); without one nothing is written or published;
* a clone's VDI is the resigned image of its source's published VDI, as
  found on the resigned LUN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oslo_log import log as logging
from oslo_utils import strutils

from cinder_backend import cinder_api
from cinder_backend import hook
from cinder_backend import privileged
from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign import resign as resign_mod
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

#: Volume type extra specs.
SR_TYPE_SPEC = "xenapi_resign:sr_type"
RESIGN_ON_IMPORT_SPEC = "xenapi_resign:resign_on_import"
SR_TYPES = (volume_utils.SR_TYPE_LVMOISCSI,)

STEP_SCSI_ID = "SCSI id"
STEP_FORMAT = "LVHD format"
STEP_INSPECT = "LVHD inspection"
STEP_IMPORT = "LVHD import"


def extra_specs(volume: Any) -> Mapping[str, Any]:
    """The extra specs of ``volume``'s type (empty without a type)."""
    vtype = hook.vget(volume, "volume_type")
    specs = hook.vget(vtype, "extra_specs") if vtype is not None else None
    return specs if isinstance(specs, Mapping) else {}


def _spec_value(value: Any) -> str:
    # Cinder's scheduler syntax: "<is> True", "<in> lvmoiscsi".
    text = str(value).strip()
    for op in ("<is>", "<in>", "=="):
        if text.startswith(op):
            return text[len(op):].strip()
    return text


def wants_lvhd(volume: Any) -> bool:
    """True when ``volume``'s type asks for an LVHD SR on its LUN.

    Without the extra spec the volume stays raw.  Any other value than
    ``lvmoiscsi`` is an operator error, refused by name.
    """
    value = extra_specs(volume).get(SR_TYPE_SPEC)
    if value is None:
        return False
    sr_type = _spec_value(value)
    if sr_type not in SR_TYPES:
        raise exception.InvalidInput(
            reason="volume type extra spec %s=%r of volume %s: expected "
            "one of %s" % (SR_TYPE_SPEC, value, hook.vget(volume, "id"),
                           ", ".join(SR_TYPES)))
    return True


def resign_on_import(volume: Any, default: bool) -> bool:
    """The extra spec ``xenapi_resign:resign_on_import``, else ``default``."""
    value = extra_specs(volume).get(RESIGN_ON_IMPORT_SPEC)
    if value is None:
        return default
    try:
        return strutils.bool_from_string(_spec_value(value), strict=True)
    except ValueError as exc:
        raise exception.InvalidInput(
            reason="volume type extra spec %s=%r of volume %s: %s"
            % (RESIGN_ON_IMPORT_SPEC, value, hook.vget(volume, "id"),
               exc)) from exc


def is_lvhd(volume: Any) -> bool:
    """True for a volume published as LVHD, or whose type asks for LVHD."""
    found = cinder_api.published(volume)
    return bool(found and found.is_lvhd) or wants_lvhd(volume)


def refuse(volume: Any, operation: str, reason: str, advice: str
           ) -> exception.LvhdVolumeOperationRefused:
    """The one error for a Cinder operation an LVHD volume cannot take."""
    return exception.LvhdVolumeOperationRefused(
        volume_id=hook.vget(volume, "id"), operation=operation,
        reason=reason, advice=advice)


def check_same_layout(volume: Any, source: Any, wanted: bool,
                      operation: str) -> None:
    """Refuse a new volume whose type's layout differs from its source's.

    The new volume gets the source LUN's bytes as they are (a SAN clone
    is them, a generic migration copies them): raw bytes on an LVHD-typed
    volume are no SR Nova can attach (a migration would even write them
    over the LVHD SR its create made), and an LVHD SR on a raw-typed
    volume would be attached as LVHD under a type that says raw.  Raised
    before the backend makes the LUN.
    """
    if source is None or is_lvhd(source) == wanted:
        return
    vtype = hook.vget(volume, "volume_type")
    raise refuse(
        volume if wanted else source, "%s to volume type %s" % (
            operation, hook.vget(vtype, "name")
            or hook.vget(volume, "volume_type_id")),
        "the new volume gets the source LUN's bytes as they are, so "
        + ("raw bytes would be where the LVHD SR belongs" if wanted
           else "the LVHD SR would land on a volume whose type says raw"),
        "create a volume of the new type and copy the data across inside "
        "the guest")


def _error(volume_id: str, step: str, path: str, reason: str,
           refused: bool = False) -> exception.LvhdVolumeError:
    cls = (exception.LvhdVolumeRefused if refused
           else exception.LvhdVolumeError)
    return cls(volume_id=volume_id, step=step, device=path, reason=reason)


def _scsi_id(volume_id: str, path: str, data: Mapping[str, Any],
             device_info: Mapping[str, Any]) -> str:
    scsi_id = hook.scsi_id_of(data, device_info)
    if scsi_id is None:
        raise _error(volume_id, STEP_SCSI_ID, path,
                     "neither os-brick (device_info %s) nor the backend "
                     "(connection data %s) gives the LUN's SCSI id, which "
                     "an lvmoiscsi SR is plugged with; nothing written"
                     % (hook.SCSI_WWN_KEY, hook.SCSI_WWN_KEY), refused=True)
    return scsi_id


def _volume_vdi(volume_id: str, path: str, sr: Mapping[str, Any],
                vdi_uuid: str | None = None) -> str:
    """``vdi_uuid`` if the SR holds it, else its one visible VDI."""
    visible = [v["uuid"] for v in sr["vdis"] if not v["hidden"]]
    if vdi_uuid is not None:
        if vdi_uuid in visible:
            return vdi_uuid
        reason = "holds no VDI %s (found %s)" % (vdi_uuid, visible)
    elif len(visible) == 1:
        return visible[0]
    else:
        reason = ("holds %d visible VDIs (%s), a VDI-per-LUN volume one"
                  % (len(visible), ", ".join(visible) or "none"))
    raise _error(volume_id, STEP_INSPECT, path, "SR %s %s"
                 % (sr["sr_uuid"], reason), refused=True)


def format_attached(volume: Any, path: str, data: Mapping[str, Any],
                    device_info: Mapping[str, Any]) -> cinder_api.Published:
    """Format a blank volume's LUN as its LVHD SR; what to publish."""
    volume_id = str(hook.vget(volume, "id"))
    sr_uuid = sr_naming.preferred_sr_uuid(data, sr_naming.STYLE_UUID5)
    scsi_id = _scsi_id(volume_id, path, data, device_info)
    name = hook.vget(volume, "display_name") or hook.vget(volume, "name") \
        or volume_id
    try:
        sr = privileged.format_volume(path, sr_uuid, volume_id, name)
    except (exception.UnsafeOperation, exception.InvalidInput) as exc:
        raise _error(volume_id, STEP_FORMAT, path, "refused, nothing "
                     "written: %s" % exc, refused=True) from exc
    vdi_uuid = _volume_vdi(volume_id, path, sr,
                           create.volume_vdi_uuid(volume_id))
    LOG.info("Volume %s: LVHD SR %s with VDI %s on %s", volume_id, sr_uuid,
             vdi_uuid, path)
    return cinder_api.Published(sr_uuid, volume_utils.SR_TYPE_LVMOISCSI,
                                vdi_uuid, scsi_id)


def clone_attached(volume: Any, source: cinder_api.Published, path: str,
                   data: Mapping[str, Any], device_info: Mapping[str, Any],
                   *, conf: Any, resign=None,
                   lock_path: str | None = None) -> cinder_api.Published:
    """Resign a clone of the LVHD volume ``source``; what to publish.

    The clone's VDI is the resigned image of ``source.vdi_uuid``, and it
    must be on the LUN after the resignature (read back, read only).
    """
    volume_id = str(hook.vget(volume, "id"))
    scsi_id = _scsi_id(volume_id, path, data, device_info)
    result = hook.resign_attached(volume_id, path, data, conf=conf,
                                  style=sr_naming.STYLE_UUID5,
                                  resign=resign, lock_path=lock_path)
    if result is None:
        raise _error(volume_id, STEP_INSPECT, path, "the clone of LVHD SR "
                     "%s holds no LVHD SR" % source.sr_uuid)
    sr = privileged.inspect_lvhd(path)
    vdi_uuid = _volume_vdi(volume_id, path, sr, resign_mod.new_vdi_uuid(
        result["sr_uuid"], source.vdi_uuid))
    return cinder_api.Published(result["sr_uuid"],
                                volume_utils.SR_TYPE_LVMOISCSI, vdi_uuid,
                                scsi_id)


def import_attached(volume: Any, path: str, data: Mapping[str, Any],
                    device_info: Mapping[str, Any], *, conf: Any,
                    resign: bool, required: bool = False, resign_call=None,
                    lock_path: str | None = None
                    ) -> cinder_api.Published | None:
    """An imported LUN's LVHD SR (None: it holds none); what to publish.

    Read only unless ``resign``: the SR must hold one visible VDI; it is
    refused, nothing written, when another volume has its SR uuid
    published (two volumes would then name one SR and Nova would attach
    the wrong LUN) or when the uuid cannot name an lvmoiscsi SR.  With
    ``resign`` the SR is resigned to the uuid5 name of the new volume's
    target first, which is how a copy of a known SR gets imported.
    ``required`` (the volume type asks for LVHD) refuses a LUN without one.
    """
    volume_id = str(hook.vget(volume, "id"))
    sr = privileged.inspect_lvhd(path)
    if sr is None:
        if required:
            raise _error(volume_id, STEP_IMPORT, path, "the volume type "
                         "has %s=lvmoiscsi but the LUN holds no LVHD SR; "
                         "import it with a raw volume type" % SR_TYPE_SPEC,
                         refused=True)
        return None
    scsi_id = _scsi_id(volume_id, path, data, device_info)
    vdi_uuid = _volume_vdi(volume_id, path, sr)
    if resign:
        result = hook.resign_attached(volume_id, path, data, conf=conf,
                                      style=sr_naming.STYLE_UUID5,
                                      resign=resign_call,
                                      lock_path=lock_path)
        sr_uuid = result["sr_uuid"]
        vdi_uuid = _volume_vdi(volume_id, path, privileged.inspect_lvhd(path),
                               resign_mod.new_vdi_uuid(sr_uuid, vdi_uuid))
        return cinder_api.Published(sr_uuid, volume_utils.SR_TYPE_LVMOISCSI,
                                    vdi_uuid, scsi_id)
    sr_uuid = sr["sr_uuid"]
    try:
        create.check_volume_sr_uuid(sr_uuid)
    except exception.InvalidInput as exc:
        raise _error(volume_id, STEP_IMPORT, path, "%s; import it with %s"
                     "=True to rename it" % (exc, RESIGN_ON_IMPORT_SPEC),
                     refused=True) from exc
    others = [v for v in cinder_api.volumes_publishing(sr_uuid)
              if v != volume_id]
    if others:
        raise _error(volume_id, STEP_IMPORT, path, "SR %s is already "
                     "published for volume %s: refused, nothing written or "
                     "published; import it with %s=True to give it its own "
                     "SR uuid" % (sr_uuid, ", ".join(others),
                                  RESIGN_ON_IMPORT_SPEC), refused=True)
    return cinder_api.Published(sr_uuid, volume_utils.SR_TYPE_LVMOISCSI,
                                vdi_uuid, scsi_id)


def migrated_attached(volume_id: str, origin: cinder_api.Published,
                      path: str, data: Mapping[str, Any],
                      device_info: Mapping[str, Any]) -> cinder_api.Published:
    """What a generic migration's copy of LVHD volume ``origin`` publishes.

    Read only: the same SR and VDI (the bytes were copied), the new LUN's
    SCSI id.  A copy without that SR, that VDI or a SCSI id is refused:
    its SR uuid alone would make Nova introduce a raw ``iscsi`` SR (an
    ``lvmoiscsi`` SR is plugged by ``SCSIid``) and hand the guest the
    LUN's LVM metadata instead of its disk.
    """
    sr = privileged.inspect_lvhd(path)
    found = sr["sr_uuid"] if sr else None
    if found != origin.sr_uuid:
        raise _error(volume_id, STEP_INSPECT, path, "the migrated copy of "
                     "LVHD SR %s holds %s" % (origin.sr_uuid, "SR %s" % found
                                              if found else "no LVHD SR"),
                     refused=True)
    scsi_id = _scsi_id(volume_id, path, data, device_info)
    _volume_vdi(volume_id, path, sr, origin.vdi_uuid)
    return cinder_api.Published(origin.sr_uuid, origin.sr_type,
                                origin.vdi_uuid, scsi_id)
