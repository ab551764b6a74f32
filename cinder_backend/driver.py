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
call and attribute goes to it.  Three calls do more:

* ``create_volume_from_snapshot`` and ``create_cloned_volume``: when the
  backend succeeded and ``[xenapi_resign] resignature_duplicate_srs`` is
  True, the new volume is attached on this host and its LVHD SR (if any)
  resignatured (:func:`cinder_backend.hook.resign_volume`).  The SR UUID is
  returned in the model update as the volume's admin metadata
  ``xenapi_sr_uuid`` (with ``xenapi_sr_volume_id``, the volume it was
  computed for).  A failure raises ``VolumeBackendAPIException``: the volume
  goes to ``error`` with the reason, the source is untouched.
* ``initialize_connection``: when the volume has a published SR UUID, the
  connection data gets ``sr_uuid`` and ``introduce_sr_keys`` (with the
  iSCSI device-config values ``target``, ``port``, ``targetIQN``, CHAP and
  ``id``), so Nova introduces the SR under the UUID written on the LUN
  whatever its ``sr_naming`` is.

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

Cinder is not imported to load this module.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any

from oslo_config import cfg
from oslo_utils import importutils

from cinder_backend import hook
from cinder_backend import opts as backend_opts
from nova_xenapi_resign import conf as xenapi_conf
from nova_xenapi_resign import exception
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

#: Admin metadata keys of a resigned volume.
SR_UUID_KEY = "xenapi_sr_uuid"
SR_VOLUME_KEY = "xenapi_sr_volume_id"

# Attributes kept on the wrapper itself; everything else is the backend's.
_OWN = frozenset(("_backend", "_backend_class", "_resign_conf",
                  "_backend_configuration"))


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


def published_sr_uuid(volume: Any) -> str | None:
    """The SR UUID the hook published for ``volume``, if any."""
    admin = hook._vget(volume, "admin_metadata") or {}
    if not isinstance(admin, Mapping):
        return None
    sr_uuid = admin.get(SR_UUID_KEY)
    if not sr_uuid:
        return None
    if str(admin.get(SR_VOLUME_KEY)) != str(hook._vget(volume, "id")):
        LOG.debug("Volume %s: ignoring %s=%s published for volume %s",
                  hook._vget(volume, "id"), SR_UUID_KEY, sr_uuid,
                  admin.get(SR_VOLUME_KEY))
        return None
    return sr_uuid


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
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._backend, name, value)

    def __delattr__(self, name: str) -> None:
        if name in _OWN:
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

    def create_volume_from_snapshot(self, volume: Any, snapshot: Any
                                    ) -> dict | None:
        update = self._backend.create_volume_from_snapshot(volume, snapshot)
        return self._after_clone(volume, update, "snapshot %s"
                                 % hook._vget(snapshot, "id"))

    def create_cloned_volume(self, volume: Any, src_vref: Any
                             ) -> dict | None:
        update = self._backend.create_cloned_volume(volume, src_vref)
        return self._after_clone(volume, update, "volume %s"
                                 % hook._vget(src_vref, "id"))

    def initialize_connection(self, volume: Any, connector: Any,
                              *args: Any, **kwargs: Any) -> Any:
        info = self._backend.initialize_connection(volume, connector,
                                                   *args, **kwargs)
        sr_uuid = published_sr_uuid(volume)
        if (sr_uuid and isinstance(info, Mapping)
                and isinstance(info.get("data"), Mapping)):
            info = dict(info)
            info["data"] = publish_sr_uuid(info["data"], sr_uuid)
        return info

    def resign_volume(self, volume: Any) -> dict | None:
        """Run the hook on ``volume`` with this backend's settings."""
        conf = self.resign_conf
        configuration = self._backend_configuration
        root_helper = "sudo"
        cinder_utils = importutils.try_import("cinder.utils")
        if cinder_utils is not None and hasattr(cinder_utils,
                                                "get_root_helper"):
            root_helper = cinder_utils.get_root_helper()
        return hook.resign_volume(
            self._backend, volume, conf=conf, root_helper=root_helper,
            my_ip=_global_opt("my_ip"),
            use_multipath=bool(_conf_get(
                configuration, "use_multipath_for_image_xfer", False)),
            enforce_multipath=bool(_conf_get(
                configuration, "enforce_multipath_for_image_xfer", False)),
            device_scan_attempts=int(_conf_get(
                configuration, "num_volume_device_scan_tries", 3)),
            attach_timeout=int(_conf_get(
                configuration, "resign_attach_timeout", 120)),
            context=hook._vget(volume, "_context"))

    def _after_clone(self, volume: Any, update: Any, source: str
                     ) -> dict | None:
        if not self.resign_enabled():
            return update
        update = dict(update or {})
        hook._apply(volume, update)
        LOG.debug("Volume %s created from %s: checking for an LVHD SR",
                  hook._vget(volume, "id"), source)
        result = self.resign_volume(volume)
        admin = dict(hook._vget(volume, "admin_metadata") or {})
        admin.update(update.get("admin_metadata") or {})
        stale = SR_UUID_KEY in admin or SR_VOLUME_KEY in admin
        admin.pop(SR_UUID_KEY, None)
        admin.pop(SR_VOLUME_KEY, None)
        if result is not None:
            admin[SR_UUID_KEY] = result["sr_uuid"]
            admin[SR_VOLUME_KEY] = str(hook._vget(volume, "id"))
        if result is not None or stale:
            update["admin_metadata"] = admin
        return update or None
