"""Nova's XenAPI compute driver with the fix for Launchpad bug 1566622.

``XenAPIDriver`` here is a subclass of Nova's
``nova.virt.xenapi.driver.XenAPIDriver`` (Nova 18.0.0 to 21.x).  Nova is not
imported when this module is: the class is built on first access of the
attribute (a module ``__getattr__``), so ``importutils.import_class(
"nova_xenapi_resign.nova_driver.XenAPIDriver")`` works and merely importing
the library never needs Nova.

What it changes (DESIGN.md section 3), and nothing else:

``check_can_live_migrate_source`` (source)
    After Nova's own checks, records ``volume id -> SR uuid`` of every volume
    as the source really has it (``build_volume_sr_uuid_map``: at most two
    ``SR.get_by_uuid`` per volume) in ``XenapiLiveMigrateData`` 1.5's
    ``volume_sr_uuid_map``.
``pre_live_migration`` (destination)
    Injects the source's SR uuids into a copy of ``block_device_info`` and
    lets Nova connect the volumes with it: every SR is introduced under the
    source's UUID, so ``sr_uuid_map`` has the source's keys.  Which SRs were
    introduced (rather than found) is recorded as they are connected.
    If one volume fails to connect, only the SRs introduced for the
    migration are forgotten (Nova's ``connect_block_device_volumes`` would
    forget every SR it had connected, pre-existing ones included).
``live_migration`` (source)
    For a block (cross-pool) migration, before Nova's code calls
    ``VM.migrate_send``: ``check_sr_uuid_map`` (with the relaxed XSM SR check
    when ``[xenapi_resign] require_relaxed_xsm_sr_check``).  A refusal calls
    Nova's ``recover_method`` (``_rollback_live_migration``), exactly as
    Nova's ``live_migrate`` does on failure, and raises
    :class:`~nova_xenapi_resign.exception.LiveMigrationPreCheckError`; XAPI
    is never asked to move anything.  Nova's ``_generate_vdi_map`` is then
    answered for the volume SRs from what the check read (the same VDIs,
    without Nova's per-SR walk over every VBD): XAPI gets the map that was
    checked.
``rollback_live_migration_at_destination`` (destination)
    Forgets exactly the SRs this destination introduced for the migration
    (never one that existed before, never one in use), then runs Nova's
    rollback without its SR loop (which recomputes uuid5 names and would
    leak a legacy-named SR, or forget one another instance uses).
volume attach (every ``VolumeOps`` of the driver)
    ``_connect_to_volume_provider`` is replaced on the instances by one that
    names a new SR per ``[xenapi_resign] sr_naming`` (``auto`` reuses the
    volume's legacy SR if it exists) and honours an explicit ``sr_uuid``
    with a complete device-config.

The library's XAPI helpers take Nova's session as it is: they recognise
os-xenapi's own ``XenAPI.Failure`` class
(:func:`~nova_xenapi_resign.xenapi.volume_utils.failure_classes`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any


from nova_xenapi_resign import exception
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import live_migration
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

#: The class built by :func:`build_driver_class` (once per process).
_DRIVER_CLASS: type | None = None
_BUILD_LOCK = threading.Lock()


def _instance_uuid(instance: Any) -> str:
    try:
        return str(instance["uuid"])
    except (KeyError, TypeError):
        return str(getattr(instance, "uuid", instance))


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` if that field of a versioned object is set."""
    if obj is None:
        return default
    try:
        if not obj.obj_attr_is_set(name):
            return default
    except (AttributeError, NotImplementedError):
        return getattr(obj, name, default)
    return getattr(obj, name)


class ResignDriverMixin(object):
    """The overrides; mixed into Nova's ``XenAPIDriver`` by the builder.

    Needs ``self._session``, ``self._vmops`` and ``self._volumeops`` (set by
    Nova's ``__init__``) and the class attributes ``_nova_conf`` and
    ``_excutils``.
    """

    _nova_conf: Any = None

    def _resign_setup(self) -> None:
        self._resign_lock = threading.Lock()
        # Per (green)thread: the SRs introduced by the pre_live_migration
        # running in it, and the CheckedVolumes of the live_migration
        # running in it (None outside them).  nova-compute monkey-patches
        # threading, so this is greenthread-local there.
        self._resign_local = threading.local()
        # Destination: instance uuid -> SR uuids its migration introduced.
        self._resign_dest_state: dict[str, set[str]] = {}
        # Source: instance uuid -> volume_sr_uuid_map it computed.
        self._resign_source_maps: dict[str, dict[str, str]] = {}
        volumeops_seen = []
        for volumeops in (getattr(self, "_volumeops", None),
                          getattr(getattr(self, "_vmops", None),
                                  "_volumeops", None)):
            if volumeops is None or any(v is volumeops
                                        for v in volumeops_seen):
                continue
            volumeops_seen.append(volumeops)
            volumeops._connect_to_volume_provider = (
                self._resign_connect_to_volume_provider)
        vmops = getattr(self, "_vmops", None)
        if vmops is not None:
            self._resign_nova_vdi_map = vmops._generate_vdi_map
            vmops._generate_vdi_map = self._resign_generate_vdi_map
            vmops.connect_block_device_volumes = (
                self._resign_connect_block_device_volumes)

    # --- options ----------------------------------------------------------

    def _resign_options(self) -> tuple[str, str | None, Any, bool]:
        conf = self._nova_conf
        group = conf.xenapi_resign
        return (group.sr_naming, conf.xenserver.target_host,
                conf.xenserver.target_port,
                group.require_relaxed_xsm_sr_check)

    # --- volume attach ----------------------------------------------------

    def _resign_connect_to_volume_provider(self, connection_data: Any,
                                           instance_name: Any
                                           ) -> tuple[str, str]:
        """Nova's ``VolumeOps._connect_to_volume_provider``, per sr_naming."""
        style, host, port, _ = self._resign_options()
        sr_ref, sr_uuid, introduced = volume_utils.connect_volume_sr(
            self._session, connection_data,
            "Disk-for:%s" % instance_name, style, host, port)
        LOG.debug("Volume SR %s (%s) %s", sr_uuid,
                  sr_naming.classify(sr_uuid),
                  "introduced" if introduced else "already present")
        collector = getattr(self._resign_local, "introduced", None)
        if introduced and collector is not None:
            collector.add(sr_uuid)
        return sr_ref, sr_uuid

    # --- source -----------------------------------------------------------

    def _resign_with_map(self, migrate_data: Any,
                         volume_map: dict[str, str]) -> Any:
        cls = md.register_with_nova()
        if not isinstance(migrate_data, cls):
            # Nova's plain 1.4 object: copy it into ours.
            copy = cls()
            for name in migrate_data.fields:
                if migrate_data.obj_attr_is_set(name):
                    setattr(copy, name, getattr(migrate_data, name))
            migrate_data = copy
        setattr(migrate_data, md.VOLUME_SR_UUID_MAP, dict(volume_map))
        return migrate_data

    def check_can_live_migrate_source(self, context: Any, instance: Any,
                                      dest_check_data: Any,
                                      block_device_info: Any = None) -> Any:
        result = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        style, host, port, _ = self._resign_options()
        volume_map = live_migration.build_volume_sr_uuid_map(
            self._session, block_device_info, style, host, port)
        with self._resign_lock:
            self._resign_source_maps[_instance_uuid(instance)] = volume_map
        LOG.debug("Source volume SRs for live migration: %s", volume_map)
        return self._resign_with_map(result, volume_map)

    def live_migration(self, context: Any, instance: Any, dest: Any,
                       post_method: Any, recover_method: Any,
                       block_migration: bool = False,
                       migrate_data: Any = None) -> None:
        uuid = _instance_uuid(instance)
        with self._resign_lock:
            remembered = self._resign_source_maps.pop(uuid, None)
        checked = None
        if migrate_data is not None and _field(migrate_data,
                                               "block_migration"):
            try:
                checked = self._resign_check_source(instance, migrate_data,
                                                    remembered)
            except exception.LiveMigrationPreCheckError as exc:
                LOG.error("%s", exc)
                with self._excutils.save_and_reraise_exception():
                    recover_method(context, instance, dest, migrate_data)
        self._resign_local.checked = checked
        try:
            super().live_migration(context, instance, dest, post_method,
                                   recover_method, block_migration,
                                   migrate_data)
        finally:
            self._resign_local.checked = None

    def _resign_generate_vdi_map(self, destination_sr_ref: str, vm_ref: str,
                                 sr_ref: str | None = None
                                 ) -> dict[str, str]:
        """Nova's ``VMOps._generate_vdi_map``, answered from the pre-check.

        Inside this thread's ``live_migration``, a volume SR's VDIs are
        those ``check_sr_uuid_map`` verified (read with two queries for all
        volumes).  Nova's own version walks every VBD of the VM for each SR,
        for ``VM.assert_can_migrate`` and again for ``VM.migrate_send``:
        O(volumes^2) calls.  The answer is the same, and XAPI receives
        exactly the map that was checked.  Anything else (the local disks'
        default SR, another VM) goes to Nova's method.
        """
        checked = getattr(self._resign_local, "checked", None)
        if checked is not None and sr_ref is not None:
            vdi_map = checked.vdi_map(vm_ref, sr_ref, destination_sr_ref)
            if vdi_map is not None:
                return vdi_map
        return self._resign_nova_vdi_map(destination_sr_ref, vm_ref, sr_ref)

    def _resign_check_source(self, instance: Any, migrate_data: Any,
                             remembered: dict[str, str] | None
                             ) -> live_migration.CheckedVolumes:
        _, _, _, require_relaxed = self._resign_options()
        volume_map = md.get_volume_sr_uuid_map(migrate_data)
        if not volume_map and remembered:
            # The map did not survive the trip (an old destination, or a
            # pinned RPC version): what this host computed still holds.
            LOG.warning("The migrate data came back without %s; using the "
                        "map computed by check_can_live_migrate_source",
                        md.VOLUME_SR_UUID_MAP)
            volume_map = remembered
        vm_ref = self._vmops._get_vm_opaque_ref(instance)
        relaxed = True
        if require_relaxed:
            relaxed = bool(self._session.is_xsm_sr_check_relaxed())
        return live_migration.check_sr_uuid_map(
            self._session, vm_ref,
            _field(migrate_data, "sr_uuid_map", {}),
            volume_map, relaxed, require_relaxed)

    # --- destination ------------------------------------------------------

    def pre_live_migration(self, context: Any, instance: Any,
                           block_device_info: Any, network_info: Any,
                           disk_info: Any, migrate_data: Any) -> Any:
        _, host, port, _ = self._resign_options()
        volume_map = md.get_volume_sr_uuid_map(migrate_data)
        injected = live_migration.inject_source_sr_uuids(
            block_device_info, volume_map, host, port)
        uuid = _instance_uuid(instance)
        # Which SRs this migration introduces (the others pre-existed) is
        # recorded as Nova connects the volumes: no extra XAPI call.
        introduced: set[str] = set()
        self._resign_local.introduced = introduced
        try:
            result = super().pre_live_migration(context, instance, injected,
                                                network_info, disk_info,
                                                migrate_data)
        finally:
            self._resign_local.introduced = None
            with self._resign_lock:
                self._resign_dest_state[uuid] = introduced
        LOG.debug("pre_live_migration: SRs %s, introduced %s",
                  sorted(_field(result, "sr_uuid_map", {}) or {}),
                  sorted(introduced))
        return result

    def _resign_connect_block_device_volumes(self, block_device_info: Any
                                             ) -> dict[str, str]:
        """Nova's ``VMOps.connect_block_device_volumes``, safe on failure.

        Connects every volume (``{SR uuid: SR ref}``, as Nova returns it).
        When one fails, Nova's version forgets every SR connected so far,
        including SRs that were here before (another instance's multiattach
        volume, a leftover of an earlier attempt); this one forgets only the
        SRs introduced during this ``pre_live_migration``.
        """
        sr_uuid_map = {}
        try:
            for bdm in live_migration.block_device_mappings(
                    block_device_info):
                sr_uuid, _ = self._vmops._volumeops.connect_volume(
                    bdm["connection_info"])
                sr_uuid_map[sr_uuid] = self._session.call_xenapi(
                    "SR.get_by_uuid", sr_uuid)
        except Exception:
            with self._excutils.save_and_reraise_exception():
                introduced = getattr(self._resign_local, "introduced", None)
                forgotten = live_migration.forget_introduced_srs(
                    self._session, {u: u for u in introduced or ()}, ())
                LOG.warning("Connecting the volumes failed; forgot the SRs "
                            "introduced for the migration (%s), kept %s",
                            ", ".join(forgotten) or "none",
                            ", ".join(sorted(set(sr_uuid_map)
                                             - set(forgotten))) or "none")
        return sr_uuid_map

    def rollback_live_migration_at_destination(self, context: Any,
                                               instance: Any,
                                               network_info: Any,
                                               block_device_info: Any,
                                               destroy_disks: bool = True,
                                               migrate_data: Any = None
                                               ) -> None:
        uuid = _instance_uuid(instance)
        with self._resign_lock:
            state = self._resign_dest_state.pop(uuid, None)
        if state is None and migrate_data is None:
            # Nothing known about this migration: Nova's own behaviour.
            return super().rollback_live_migration_at_destination(
                context, instance, network_info, block_device_info,
                destroy_disks, migrate_data)
        if state is not None:
            srs = {"sr:%s" % u: u for u in state}
        else:
            # A restart lost the state: the SRs the migration named; those
            # in use (another instance) are kept by forget_introduced_srs.
            srs = {"sr:%s" % u: u for u in
                   (_field(migrate_data, "sr_uuid_map", {}) or {})}
            srs.update(md.get_volume_sr_uuid_map(migrate_data))
        forgotten = live_migration.forget_introduced_srs(
            self._session, srs, ())
        LOG.info("Live migration rollback: forgot SRs %s", forgotten)
        without_volumes = dict(block_device_info or {})
        without_volumes["block_device_mapping"] = []
        return super().rollback_live_migration_at_destination(
            context, instance, network_info, without_volumes, destroy_disks,
            migrate_data)

    def post_live_migration_at_destination(self, context: Any, instance: Any,
                                           network_info: Any,
                                           block_migration: bool = False,
                                           block_device_info: Any = None
                                           ) -> None:
        with self._resign_lock:
            self._resign_dest_state.pop(_instance_uuid(instance), None)
        return super().post_live_migration_at_destination(
            context, instance, network_info, block_migration,
            block_device_info)


def build_driver_class() -> type:
    """Build (once) and return the driver class.  Imports Nova."""
    global _DRIVER_CLASS
    with _BUILD_LOCK:
        if _DRIVER_CLASS is not None:
            return _DRIVER_CLASS
        import nova.conf
        from nova.virt.xenapi import driver as nova_driver
        from oslo_utils import excutils

        from nova_xenapi_resign import conf as resign_conf

        resign_conf.register_opts(nova.conf.CONF)
        md.register_with_nova()

        class XenAPIDriver(ResignDriverMixin, nova_driver.XenAPIDriver):
            """Nova's XenAPI driver + nova-xenapi-resign (bug 1566622)."""

            _nova_conf = nova.conf.CONF
            _excutils = excutils

            def __init__(self, virtapi: Any, read_only: bool = False):
                super().__init__(virtapi, read_only=read_only)
                self._resign_setup()

        XenAPIDriver.__module__ = __name__
        XenAPIDriver.__qualname__ = "XenAPIDriver"
        _DRIVER_CLASS = XenAPIDriver
        return XenAPIDriver


def __getattr__(name: str) -> Any:
    if name == "XenAPIDriver":
        return build_driver_class()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
