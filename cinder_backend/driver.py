"""A Cinder volume driver that wraps any backend driver and resigns clones.

Configure a backend section of ``cinder.conf``::

    [san-1]
    volume_driver = cinder_backend.driver.ResignVolumeDriver
    resign_backend_driver = cinder.volume.drivers.solidfire.SolidFireDriver
    # ... the SolidFire options, unchanged ...

    [xenapi_resign]
    resignature_duplicate_srs = True
    sr_naming = auto
    backup_dir = /var/lib/cinder/xenapi-resign

:class:`ResignVolumeDriver` is constructed like any Cinder driver and builds
the real driver (``resign_backend_driver``) with the same arguments; every
call and attribute goes to it.  These calls do more:

* ``create_volume_from_snapshot`` and ``create_cloned_volume``, and the
  backend's own ``create_group_from_src`` /
  ``create_consistencygroup_from_src`` for every volume of the new group:
  when the backend succeeded and ``[xenapi_resign]
  resignature_duplicate_srs`` is True, the new volume is attached on this
  host and its LVHD SR (if any) resignatured
  (:func:`cinder_backend.hook.resign_volume`).  The SR UUID is published
  in the volume's admin metadata (:mod:`cinder_backend.cinder_api`).  A
  refusal is final (no reschedule, the user gets a message); other
  failures raise ``VolumeBackendAPIException``.  The source is untouched
  either way.
* ``update_migrated_volume`` (after a generic migration, on the
  destination): the SR UUID the copied LUN holds is read (nothing written)
  and published, since the new target makes Nova compute another one; for
  an LVHD volume a copy without its SR, VDI or SCSI id fails the
  migration instead.
* ``initialize_connection``: when the volume has a published SR UUID, the
  connection data gets ``sr_uuid`` and ``introduce_sr_keys`` (with the
  iSCSI device-config values ``target``, ``port``, ``targetIQN``, CHAP and
  ``id``), so Nova introduces the SR under the UUID written on the LUN
  whatever its ``sr_naming`` is; for a VDI-per-LUN volume also
  ``sr_type``, ``SCSIid`` and ``vdi_uuid``
  (:func:`nova_xenapi_resign.xenapi.volume_utils.lvhd_connection_data`).
* VDI-per-LUN volumes (:mod:`cinder_backend.lvhd`; volume type extra spec
  ``xenapi_resign:sr_type=lvmoiscsi``): ``create_volume`` formats the new
  LUN and publishes it; a clone of one is always resigned and published
  with its own VDI; ``manage_existing`` inspects (or, asked, resigns) an
  imported LUN and publishes it; ``extend_volume``, ``retype``,
  ``copy_image_to_volume`` and ``copy_volume_to_image`` are refused before
  anything changes, and the backend's ``clone_image`` is skipped; a
  clone or a migration's new volume whose layout differs from its
  source's is refused before the backend makes it;
  ``initialize_connection`` of an LVHD-typed volume with nothing
  published for it is refused.

Where the options are read, and why:

* ``resign_backend_driver`` and ``resign_attach_timeout`` are per backend:
  they are appended to the backend's ``configuration`` (Cinder's
  ``Configuration.append_config_values``), like any driver option.
* ``[xenapi_resign]`` (``resignature_duplicate_srs``, ``sr_naming``,
  ``backup_dir``) is read from the global ``cfg.CONF``, where
  :func:`nova_xenapi_resign.conf.register_opts` registers it: it is the same
  group Nova's side reads, and the SR name the hook writes on the LUN must be
  the one Nova computes, so one group serves both services and every
  backend.

Why admin metadata: the published UUID makes Nova introduce an SR under it,
and Nova reuses an existing SR of that UUID.  User-editable volume metadata
would let a user point a volume at another tenant's SR; admin metadata is
written only by Cinder.  It is published only for the volume it was
computed for, so metadata a clone inherits never names its source's SR.

Why the wrapper's own methods stay on the wrapper: with ``[profiler]
enabled`` Cinder's manager runs ``osprofiler.trace_cls`` on the driver
object, which sets a traced copy of each of the wrapper's methods as an
instance attribute.  Forwarded to the backend, the backend's method would
become the wrapper's, which calls the backend's: endless recursion.

Cinder is not imported to load this module.
"""

from __future__ import annotations

from collections.abc import Mapping
import functools
from typing import Any

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import importutils

from cinder_backend import cinder_api
from cinder_backend import hook
from cinder_backend import lvhd
from cinder_backend import opts as backend_opts
from nova_xenapi_resign import conf as xenapi_conf
from nova_xenapi_resign import exception
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

# Attributes kept on the wrapper itself; everything else is the backend's.
_OWN = frozenset(("_backend", "_backend_class", "_resign_conf",
                  "_backend_configuration", "_attach_overrides"))


def _conf_get(configuration: Any, name: str, default: Any = None) -> Any:
    """An option of a Cinder ``Configuration`` (or any object), or default."""
    if configuration is None:
        return default
    safe_get = getattr(configuration, "safe_get", None)
    try:
        value = (safe_get(name) if callable(safe_get)
                 else getattr(configuration, name))
    except (cfg.NoSuchOptError, AttributeError):
        return default
    return default if value is None else value


def _global_opt(name: str, default: Any = None) -> Any:
    try:
        return getattr(cfg.CONF, name)
    except (cfg.NoSuchOptError, cfg.NotInitializedError, AttributeError):
        return default


def publish_sr_uuid(data: Mapping[str, Any], sr_uuid: str) -> dict:
    """A copy of connection ``data`` that makes Nova use ``sr_uuid``.

    Adds ``sr_uuid`` and ``introduce_sr_keys`` naming the iSCSI
    device-config keys (``target``, ``port``, ``targetIQN``, and
    ``chapuser``/``chappassword`` for CHAP, plus ``id``), whose values are
    copied in: with an explicit ``sr_uuid`` Nova's ``parse_sr_info`` builds
    the device-config from those keys only.
    """
    return volume_utils.with_explicit_sr_uuid(data, sr_uuid)


class ResignVolumeDriver(object):
    """Delegates to ``resign_backend_driver``; resigns cloned LVHD SRs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        configuration = kwargs.get("configuration")
        append = getattr(configuration, "append_config_values", None)
        if callable(append):
            append(backend_opts.resign_opts)
        object.__setattr__(self, "_backend_configuration", configuration)
        object.__setattr__(self, "_attach_overrides", {})
        path = _conf_get(configuration, "resign_backend_driver")
        if not path:
            raise self._error("the backend option resign_backend_driver is "
                              "not set: name the volume driver to wrap")
        try:
            cls = importutils.import_class(path)
        except Exception as exc:
            raise self._error("cannot import resign_backend_driver %s: %s"
                              % (path, exc)) from exc
        if cls is type(self) or issubclass(cls, ResignVolumeDriver):
            raise self._error("resign_backend_driver %s is the wrapper "
                              "itself" % path)
        xenapi_conf.register_opts(cfg.CONF)
        object.__setattr__(self, "_backend_class", cls)
        object.__setattr__(self, "_backend", cls(*args, **kwargs))
        LOG.info("Resignature wrapper around %s", path)

    @staticmethod
    def _error(reason: str) -> Exception:
        cinder_exception = importutils.try_import("cinder.exception")
        cls = getattr(cinder_exception, "VolumeBackendAPIException", None)
        if cls is not None:
            return cls(data=reason)
        return exception.InvalidInput(reason=reason)

    # --- delegation ---

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: everything not defined
        # here is the backend driver's.
        backend = self.__dict__.get("_backend")
        if backend is None:
            raise AttributeError(name)
        return getattr(backend, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # A name the wrapper's class defines (a hooked method) stays here:
        # see the module docstring on osprofiler.
        if name in _OWN or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            setattr(self._backend, name, value)

    def __delattr__(self, name: str) -> None:
        if name in _OWN or name in self.__dict__:
            object.__delattr__(self, name)
        else:
            delattr(self._backend, name)

    def __repr__(self) -> str:
        backend = self.__dict__.get("_backend")
        return "<%s wrapping %r>" % (type(self).__name__, backend)

    @property
    def backend(self) -> Any:
        """The wrapped backend driver."""
        return self._backend

    # --- options ---

    @property
    def resign_conf(self) -> Any:
        """The ``[xenapi_resign]`` group of the global configuration."""
        return getattr(cfg.CONF, xenapi_conf.GROUP_NAME)

    def resign_enabled(self) -> bool:
        try:
            return bool(self.resign_conf.resignature_duplicate_srs)
        except cfg.NotInitializedError:
            return False

    # --- the hooked calls ---

    def create_volume(self, volume: Any) -> dict | None:
        """The backend's LUN; for an LVHD volume type, formatted and published.

        The extra spec is checked before the backend makes anything, and
        so is the layout of a generic migration's (or a migrating
        retype's) new volume: Cinder copies the source LUN's bytes over
        it, so both must be LVHD or both raw.  A
        failure after the LUN exists is final (no reschedule: the LUN is
        still there), the volume goes to ``error`` with Cinder's user
        message, and the LUN is detached; nothing is published.
        """
        try:
            wanted = lvhd.wants_lvhd(volume)
            lvhd.check_same_layout(
                volume, cinder_api.migration_source(volume), wanted,
                "retype or migration")
        except exception.InvalidInput as err:
            raise self._error(err.msg) from err
        update = self._backend.create_volume(volume)
        if not wanted:
            return update
        update = dict(update or {})
        hook.apply_update(volume, update)
        try:
            what = self.run_attached(
                volume, functools.partial(lvhd.format_attached, volume),
                lvhd.STEP_FORMAT)
        except exception.VolumeResignError as err:
            # Cinder's create flow records the user message of a failed
            # create_volume itself (unlike its clone paths).
            raise cinder_api.driver_error(err, final=True) from err
        cinder_api.publish(volume, update, what)
        return update or None

    def create_volume_from_snapshot(self, volume: Any, snapshot: Any
                                    ) -> dict | None:
        self._check_clone(volume, hook.vget(snapshot, "volume"))
        update = self._backend.create_volume_from_snapshot(volume, snapshot)
        return self._after_clone(volume, update, "snapshot %s"
                                 % hook.vget(snapshot, "id"),
                                 hook.vget(snapshot, "volume"))

    def create_cloned_volume(self, volume: Any, src_vref: Any
                             ) -> dict | None:
        self._check_clone(volume, src_vref)
        update = self._backend.create_cloned_volume(volume, src_vref)
        return self._after_clone(volume, update, "volume %s"
                                 % hook.vget(src_vref, "id"), src_vref)

    def manage_existing(self, volume: Any, existing_ref: Any
                        ) -> dict | None:
        """The backend's import, then the LUN's LVHD SR inspected, published.

        Read only (:func:`cinder_backend.lvhd.import_attached`) unless the
        volume type's ``xenapi_resign:resign_on_import`` (else the
        backend option ``resign_on_import``) asks for a resignature.  A
        refusal hands the LUN back to the backend (``unmanage``), so that
        deleting the ``error_managing`` record never deletes the LUN.
        """
        try:
            resign = lvhd.resign_on_import(volume, bool(_conf_get(
                self._backend_configuration, "resign_on_import", False)))
            required = lvhd.wants_lvhd(volume)
        except exception.InvalidInput as err:
            raise self._error(err.msg) from err
        update = dict(self._backend.manage_existing(volume, existing_ref)
                      or {})
        hook.apply_update(volume, update)
        try:
            what = self.run_attached(
                volume, lambda path, data, info: lvhd.import_attached(
                    volume, path, data, info, conf=self.resign_conf,
                    resign=resign, required=required), lvhd.STEP_IMPORT)
        except exception.VolumeResignError as err:
            LOG.error("Volume %s: import refused, handing the LUN back to "
                      "the backend: %s", hook.vget(volume, "id"), err)
            try:
                self._backend.unmanage(volume)
            except Exception:
                LOG.exception("Volume %s: the backend cannot unmanage the "
                              "LUN; do not delete this volume record, "
                              "unmanage it", hook.vget(volume, "id"))
            raise cinder_api.driver_error(err, final=True) from err
        cinder_api.publish(volume, update, what)
        return update or None

    # --- operations an LVHD volume refuses ---

    def extend_volume(self, volume: Any, new_size: int) -> Any:
        if lvhd.is_lvhd(volume):
            raise lvhd.refuse(
                volume, "extend", "its VDI fills the SR on the LUN, and a "
                "larger LUN leaves the SR and the VDI at their old size "
                "(XenServer reads only what the LVHD metadata says)",
                "create a larger LVHD volume and copy the data across "
                "inside the guest")
        return self._backend.extend_volume(volume, new_size)

    def retype(self, context: Any, volume: Any, new_type: Any, diff: Any,
               host: Any) -> Any:
        if lvhd.is_lvhd(volume) or lvhd.wants_lvhd(
                {"id": hook.vget(volume, "id"), "volume_type": new_type}):
            raise lvhd.refuse(
                volume, "retype", "the LUN's layout (LVHD SR or raw) is "
                "fixed when it is created; a retype would change what "
                "Nova attaches without changing the bytes",
                "create a volume of the new type and copy the data across "
                "inside the guest")
        return self._backend.retype(context, volume, new_type, diff, host)

    def clone_image(self, context: Any, volume: Any, image_location: Any,
                    image_meta: Any, image_service: Any) -> Any:
        """Not for an LVHD volume: a backend's image clone is raw bytes."""
        if lvhd.is_lvhd(volume):
            return None, False
        return self._backend.clone_image(context, volume, image_location,
                                         image_meta, image_service)

    def copy_image_to_volume(self, context: Any, volume: Any,
                             image_service: Any, image_id: Any,
                             *args: Any, **kwargs: Any) -> Any:
        if lvhd.is_lvhd(volume):
            raise lvhd.refuse(
                volume, "copy_image_to_volume", "the image's bytes would "
                "be written raw over the LVHD SR",
                "create a blank LVHD volume, attach it to a VM and write "
                "the image inside the guest (or import the image into the "
                "VDI with XenServer tools)")
        return self._backend.copy_image_to_volume(
            context, volume, image_service, image_id, *args, **kwargs)

    def copy_volume_to_image(self, context: Any, volume: Any,
                             image_service: Any, image_meta: Any) -> Any:
        if lvhd.is_lvhd(volume):
            raise lvhd.refuse(
                volume, "copy_volume_to_image", "the image would hold the "
                "LUN's LVM metadata and VHD, not the disk a guest sees",
                "export the VDI with XenServer (e.g. xe vdi-export) or "
                "snapshot the server with Nova")
        return self._backend.copy_volume_to_image(context, volume,
                                                  image_service, image_meta)

    def create_group_from_src(self, context: Any, group: Any, volumes: list,
                              group_snapshot: Any = None,
                              snapshots: Any = None, source_group: Any = None,
                              source_vols: Any = None) -> tuple:
        """The backend's native group copy, then each volume resigned.

        A backend without one raises ``NotImplementedError``, and Cinder
        makes the group volume by volume through the hooked clone calls.
        """
        return self._after_group(
            "create_group_from_src", volumes, context, group, volumes,
            group_snapshot, snapshots, source_group, source_vols)

    def create_consistencygroup_from_src(
            self, context: Any, group: Any, volumes: list,
            cgsnapshot: Any = None, snapshots: Any = None,
            source_cg: Any = None, source_vols: Any = None) -> tuple:
        """The consistency-group form of :meth:`create_group_from_src`."""
        return self._after_group(
            "create_consistencygroup_from_src", volumes, context, group,
            volumes, cgsnapshot, snapshots, source_cg, source_vols)

    def update_migrated_volume(self, ctxt: Any, volume: Any, new_volume: Any,
                               original_volume_status: str) -> Any:
        """After a generic migration, publish the SR uuid the new LUN holds.

        Cinder copied the LUN's bytes to ``new_volume`` (a new target, so
        Nova would compute a new SR uuid that no VG on the LUN has).  The
        SR uuid read from the copy is published for ``volume``, whose id
        survives; on both records, since Cinder swaps them afterwards.
        Runs on the destination backend, whether or not its driver
        implements the call.
        """
        call = getattr(self._backend, "update_migrated_volume", None)
        try:
            if call is None:
                raise NotImplementedError("update_migrated_volume")
            update = call(ctxt, volume, new_volume, original_volume_status)
        except NotImplementedError:
            self._publish_migrated(volume, new_volume)
            raise
        self._publish_migrated(volume, new_volume)
        return update

    def initialize_connection(self, volume: Any, connector: Any,
                              *args: Any, **kwargs: Any) -> Any:
        found = cinder_api.published(volume)
        if lvhd.wants_lvhd(volume) and not (found and found.is_lvhd):
            raise lvhd.refuse(
                volume, "attach", "nothing is published for it (a failed "
                "create, or the copy a refused migration left), and "
                "without its SR, VDI and SCSI id Nova would attach the "
                "LUN as a raw iscsi SR: the guest would get the LVM "
                "metadata, not its disk", "delete this volume; a LUN that "
                "holds an LVHD SR can be imported again with cinder manage")
        info = self._backend.initialize_connection(volume, connector,
                                                   *args, **kwargs)
        if not (isinstance(info, Mapping)
                and isinstance(info.get("data"), Mapping)) or found is None:
            return info
        info = dict(info)
        if found.is_lvhd:
            info["data"] = volume_utils.lvhd_connection_data(
                info["data"], found.sr_uuid, found.vdi_uuid, found.scsi_id)
        else:
            info["data"] = publish_sr_uuid(info["data"], found.sr_uuid)
        return info

    def attach_options(self, volume: Any) -> dict:
        """This backend's :func:`cinder_backend.hook.run_attached` options."""
        configuration = self._backend_configuration
        root_helper = "sudo"
        cinder_utils = importutils.try_import("cinder.utils")
        try:
            root_helper = cinder_utils.get_root_helper()
        except (AttributeError, cfg.NoSuchOptError):
            # Not inside a configured Cinder (tests, the hook alone).
            pass
        return dict(
            root_helper=root_helper, my_ip=_global_opt("my_ip"),
            use_multipath=bool(_conf_get(
                configuration, "use_multipath_for_image_xfer", False)),
            enforce_multipath=bool(_conf_get(
                configuration, "enforce_multipath_for_image_xfer", False)),
            device_scan_attempts=int(_conf_get(
                configuration, "num_volume_device_scan_tries", 3)),
            attach_timeout=int(_conf_get(
                configuration, "resign_attach_timeout", 120)),
            context=hook.vget(volume, "_context"), **self._attach_overrides)

    def attach_with(self, connector_properties: Mapping[str, Any],
                    connector: Any) -> None:
        """Attach LUNs with ``connector`` and these properties, not os-brick.

        For a host that reaches the backend's LUNs by other means than an
        os-brick initiator: the demo's simulated SAN.  ``connector`` has
        os-brick's ``connect_volume``/``disconnect_volume``.
        """
        self._attach_overrides.update(
            connector_properties=dict(connector_properties),
            connector=connector)

    def run_attached(self, volume: Any, action, step: str) -> Any:
        """``action(path, data, device_info)`` on ``volume`` attached here."""
        return hook.run_attached(self._backend, volume, action, step=step,
                                 **self.attach_options(volume))

    def resign_volume(self, volume: Any, write: bool = True) -> dict | None:
        """Run the hook on ``volume`` with this backend's settings."""
        return hook.resign_volume(self._backend, volume,
                                  conf=self.resign_conf, write=write,
                                  **self.attach_options(volume))

    def _check_clone(self, volume: Any, source_volume: Any) -> None:
        """Refuse, before the backend, a clone of the other layout; final."""
        try:
            lvhd.check_same_layout(volume, source_volume,
                                   lvhd.wants_lvhd(volume), "clone")
        except exception.InvalidInput as err:
            raise self._error(err.msg) from err
        except exception.LvhdVolumeOperationRefused as err:
            raise cinder_api.driver_error(err, final=True) from err

    def _after_clone(self, volume: Any, update: Any, source: str,
                     source_volume: Any = None) -> dict | None:
        """Resign a new volume made from ``source_volume``; publish it.

        A clone of an LVHD volume is always resigned (its type opted in,
        and two volumes must never name one SR); other clones only when
        ``resignature_duplicate_srs`` is on.
        """
        origin = (cinder_api.published(source_volume)
                  if source_volume is not None else None)
        from_lvhd = origin is not None and origin.is_lvhd
        if not (from_lvhd or self.resign_enabled()):
            return update
        update = dict(update or {})
        hook.apply_update(volume, update)
        LOG.debug("Volume %s created from %s: checking for an LVHD SR",
                  hook.vget(volume, "id"), source)
        try:
            if from_lvhd:
                what = self.run_attached(
                    volume, lambda path, data, info: lvhd.clone_attached(
                        volume, origin, path, data, info,
                        conf=self.resign_conf), hook.STEP_RESIGN)
            else:
                result = self.resign_volume(volume)
                what = (cinder_api.Published(result["sr_uuid"]) if result
                        else None)
        except exception.VolumeResignError as err:
            cinder_api.tell_user(volume, err)
            raise cinder_api.driver_error(err) from err
        cinder_api.publish(volume, update, what)
        return update or None

    def _publish_migrated(self, volume: Any, new_volume: Any) -> None:
        origin = cinder_api.published(volume)
        from_lvhd = origin is not None and origin.is_lvhd
        if not (from_lvhd or self.resign_enabled()):
            return
        volume_id = str(hook.vget(volume, "id"))
        try:
            if from_lvhd:
                what = self.run_attached(
                    new_volume, functools.partial(
                        lvhd.migrated_attached, volume_id, origin),
                    lvhd.STEP_INSPECT)
            else:
                found = self.resign_volume(new_volume, write=False)
                what = (cinder_api.Published(found["sr_uuid"]) if found
                        else None)
        except exception.VolumeResignError as err:
            if from_lvhd:
                # Fail the migration before Cinder swaps the records: the
                # volume keeps its LUN and what is published for it; the
                # copy keeps nothing, so its attach is refused.
                LOG.error("Volume %s: migration refused, the volume stays "
                          "on its LUN; the copy %s publishes nothing "
                          "(delete it): %s", volume_id,
                          hook.vget(new_volume, "id"), err)
                cinder_api.publish(new_volume, {}, None)
                raise cinder_api.driver_error(err) from err
            # A raw volume's data moved; only the published uuid is
            # missing.  Nova then finds no SR of its computed uuid and
            # says so.
            LOG.error("Volume %s migrated, but its SR uuid cannot be read "
                      "from the new LUN: %s", volume_id, err)
            return
        for record in (volume, new_volume):
            cinder_api.publish(record, {}, what,
                               owner_id=str(hook.vget(volume, "id")))

    def _after_group(self, method: str, volumes: list, *args: Any) -> tuple:
        call = getattr(self._backend, method, None)
        if call is None:
            raise NotImplementedError(method)
        model_update, volume_updates = call(*args)
        sources = _group_sources(volumes, snapshots=args[4],
                                 source_vols=args[6])
        if not (self.resign_enabled() or any(
                found is not None and found.is_lvhd for found in map(
                    cinder_api.published, sources.values()))):
            return model_update, volume_updates
        by_id = {str(u["id"]): u for u in volume_updates or ()}
        updates = []
        for volume in volumes:
            volume_id = hook.vget(volume, "id")
            update = dict(by_id.get(str(volume_id)) or {"id": volume_id})
            if update.get("status") != "error":
                update = self._after_clone(
                    volume, update, "group %s" % hook.vget(args[1], "id"),
                    sources.get(str(volume_id))) or update
            updates.append(update)
        return model_update, updates


def _group_sources(volumes: list, snapshots: Any, source_vols: Any) -> dict:
    """Each new group volume's source volume, by the new volume's id.

    Cinder sets ``source_volid`` or ``snapshot_id`` on every volume of a
    group made from a source group or a group snapshot.
    """
    by_id = {str(hook.vget(v, "id")): v for v in source_vols or ()}
    by_id.update({str(hook.vget(s, "id")): hook.vget(s, "volume")
                  for s in snapshots or ()})
    sources = {}
    for volume in volumes:
        origin = (hook.vget(volume, "source_volid")
                  or hook.vget(volume, "snapshot_id"))
        if origin is not None and str(origin) in by_id:
            sources[str(hook.vget(volume, "id"))] = by_id[str(origin)]
    return sources
