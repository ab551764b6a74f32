"""What the wrapper driver asks of Cinder itself, with plain dicts without it.

* **The published SR UUID** lives in the volume's admin metadata
  (``xenapi_sr_uuid`` with ``xenapi_sr_volume_id``, the volume it was
  computed for).  Users can neither write nor read admin metadata, and
  Cinder loads it on a volume object only for admin contexts, while Nova
  attaches with the user's token and the manager saves a driver's model
  update with the caller's context (which rejects ``admin_metadata`` for
  a user).  So for a Cinder volume object both the write and the read go
  to Cinder's database with an admin context, whoever the caller is.  A
  plain mapping (the hook used without Cinder) keeps the keys in its
  ``admin_metadata`` and the caller saves the model update.
* **A refused resignature** becomes ``MetadataUpdateFailure`` (the LUN's SR
  metadata could not be updated), one of the errors Cinder's create flow
  never reschedules: a refusal is final, and a reschedule would delete and
  re-clone the LUN only to be refused again.  The user sees the volume in
  ``error`` and a Cinder user message on it.  Other failures stay
  ``VolumeBackendAPIException``, which Cinder handles as any driver error.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from typing import Any

from oslo_log import log as logging
from oslo_utils import importutils

from cinder_backend import hook
from nova_xenapi_resign import exception
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

#: Admin metadata keys of a resigned volume.
SR_UUID_KEY = "xenapi_sr_uuid"
SR_VOLUME_KEY = "xenapi_sr_volume_id"
#: ... and of an LVHD (VDI-per-LUN) volume, besides ``SR_UUID_KEY``.
SR_TYPE_KEY = "xenapi_sr_type"
VDI_UUID_KEY = "xenapi_vdi_uuid"
SCSI_ID_KEY = "xenapi_scsi_id"
_KEYS = {"sr_uuid": SR_UUID_KEY, "sr_type": SR_TYPE_KEY,
         "vdi_uuid": VDI_UUID_KEY, "scsi_id": SCSI_ID_KEY}
#: Every admin metadata key the wrapper owns.
PUBLISHED_KEYS = tuple(_KEYS.values()) + (SR_VOLUME_KEY,)


@dataclasses.dataclass(frozen=True)
class Published:
    """What is published for a volume: its SR, and for LVHD its one VDI."""

    sr_uuid: str
    sr_type: str | None = None
    vdi_uuid: str | None = None
    scsi_id: str | None = None

    @property
    def is_lvhd(self) -> bool:
        return self.sr_type == volume_utils.SR_TYPE_LVMOISCSI

    def admin_metadata(self, volume_id: str) -> dict:
        keys = {_KEYS[f]: v for f, v in dataclasses.asdict(self).items()
                if v}
        keys[SR_VOLUME_KEY] = volume_id
        return keys


def _cinder(module: str) -> Any:
    return importutils.try_import("cinder." + module)


def is_cinder_volume(volume: Any) -> bool:
    """True for a Cinder ``Volume`` object (admin metadata in its DB)."""
    objects = _cinder("objects.volume")
    return objects is not None and isinstance(volume, objects.Volume)


def _admin_context() -> Any:
    return _cinder("context").get_admin_context()


def _admin_metadata(volume: Any) -> Mapping[str, Any]:
    if is_cinder_volume(volume):
        return _cinder("db").volume_admin_metadata_get(_admin_context(),
                                                       volume.id)
    admin = hook.vget(volume, "admin_metadata") or {}
    return admin if isinstance(admin, Mapping) else {}


def published(volume: Any) -> Published | None:
    """What is published for ``volume``, whoever asks; else None.

    Keys published for another volume (a clone inherits its source's
    record in some paths) are ignored.
    """
    admin = _admin_metadata(volume)
    sr_uuid = admin.get(SR_UUID_KEY)
    if not sr_uuid:
        return None
    if str(admin.get(SR_VOLUME_KEY)) != str(hook.vget(volume, "id")):
        LOG.debug("Volume %s: ignoring %s=%s published for volume %s",
                  hook.vget(volume, "id"), SR_UUID_KEY, sr_uuid,
                  admin.get(SR_VOLUME_KEY))
        return None
    return Published(**{f: admin.get(k) for f, k in _KEYS.items()})


def published_sr_uuid(volume: Any) -> str | None:
    """The SR UUID published for ``volume``, whoever asks; else None."""
    found = published(volume)
    return found.sr_uuid if found else None


def migration_source(volume: Any) -> Any | None:
    """The volume a generic migration makes ``volume`` for, else None.

    Cinder creates the new volume of a generic migration (and of a retype
    that migrates) with ``migration_status = "target:<volume id>"``, then
    copies the source LUN's bytes over it.  Without Cinder: None.
    """
    status = hook.vget(volume, "migration_status") or ""
    if not (status.startswith("target:") and is_cinder_volume(volume)):
        return None
    return _cinder("objects").Volume.get_by_id(
        _admin_context(), status[len("target:"):])


def volumes_publishing(sr_uuid: str) -> list[str]:
    """Ids of the volumes Cinder has published ``sr_uuid`` for.

    Asked of Cinder's database (admin context; a ``metadata`` filter
    matches user or admin metadata, so each hit is checked against its
    admin metadata).  Without Cinder there is no database: empty.
    """
    db = _cinder("db")
    if db is None:
        return []
    ctxt = _admin_context()
    hits = db.volume_get_all(ctxt, filters={"metadata": {
        SR_UUID_KEY: sr_uuid}})
    return [str(v.id) for v in hits
            if published_sr_uuid(_cinder("objects").Volume.get_by_id(
                ctxt, v.id)) == sr_uuid]


def publish(volume: Any, update: dict, what: Published | None,
            owner_id: str | None = None) -> None:
    """Publish ``what`` for ``volume`` (None: withdraw an inherited record).

    A Cinder volume's admin metadata is written now, with an admin
    context; a mapping's goes into the model ``update``.  ``owner_id`` is
    the volume id it is published for, when it is not ``volume``'s own (a
    migration's temporary volume whose record becomes the volume's).
    Every key of :data:`PUBLISHED_KEYS` not in ``what`` is removed.
    """
    volume_id = owner_id or str(hook.vget(volume, "id"))
    keys = what.admin_metadata(volume_id) if what else {}
    if is_cinder_volume(volume):
        db = _cinder("db")
        ctxt = _admin_context()
        current = db.volume_admin_metadata_get(ctxt, volume.id)
        for key in PUBLISHED_KEYS:
            if key in current and key not in keys:
                db.volume_admin_metadata_delete(ctxt, volume.id, key)
        if keys:
            db.volume_admin_metadata_update(ctxt, volume.id, keys, False)
        return
    admin = dict(hook.vget(volume, "admin_metadata") or {})
    admin.update(update.get("admin_metadata") or {})
    stale = any(key in admin for key in PUBLISHED_KEYS)
    for key in PUBLISHED_KEYS:
        admin.pop(key, None)
    admin.update(keys)
    if keys or stale:
        update["admin_metadata"] = admin


def driver_error(err: exception.ResignException, final: bool = False
                 ) -> Exception:
    """The Cinder error for a hook error (the hook error without Cinder).

    ``final``: never rescheduled, refusal or not (the backend's LUN of a
    blank LVHD volume exists already; a reschedule would make another).
    """
    cinder_exception = _cinder("exception")
    if cinder_exception is None:
        return err
    if final or isinstance(err, exception.VolumeResignRefused):
        return cinder_exception.MetadataUpdateFailure(reason=err.msg)
    return cinder_exception.VolumeBackendAPIException(data=err.msg)


def tell_user(volume: Any, err: exception.VolumeResignError) -> None:
    """A Cinder user message on ``volume``'s project for a refusal.

    Cinder's clone and snapshot paths record no user message for a driver
    failure, so without this the user would see only ``error``.  Cinder's
    message catalogue has fixed texts: the message says the driver failed
    to create the volume; the precise reason is in the cinder-volume log.
    """
    if not (is_cinder_volume(volume)
            and isinstance(err, exception.VolumeResignRefused)):
        return
    context = _cinder("context")
    message_api = importutils.import_module("cinder.message.api")
    fields = importutils.import_module("cinder.message.message_field")
    ctxt = context.RequestContext(user_id=volume.user_id,
                                  project_id=volume.project_id,
                                  is_admin=True)
    try:
        message_api.API().create(
            ctxt, fields.Action.CREATE_VOLUME_FROM_BACKEND,
            resource_uuid=volume.id,
            detail=fields.Detail.DRIVER_FAILED_CREATE)
    except Exception:
        # The refusal itself must still reach the create flow.
        LOG.exception("Volume %s: cannot record the user message",
                      volume.id)
