"""Nova's XenAPI compute driver with the fix for Launchpad bug 1566622.

``XenAPIDriver`` here is a subclass of Nova's
``nova.virt.xenapi.driver.XenAPIDriver`` (Nova 18.0.0 to 21.x).  Nova is not
imported when this module is: the class is built on first access of the
attribute (a module ``__getattr__``) or by :func:`build_driver_class`.
Operators keep ``compute_driver = xenapi.XenAPIDriver`` and start the
service as ``nova-compute-xenapi-resign``
(:mod:`nova_xenapi_resign.nova_compute`), so Nova's behaviour keyed to that
name (``nova.virt.driver.is_xenapi()``) is unchanged.

What it changes (doc/source/reference/live-migration.rst), and nothing else:

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
    For a block (cross-pool) migration of a VM with volumes prepared by
    this driver's ``check_can_live_migrate_source``, before Nova's code
    calls ``VM.migrate_send``: ``check_sr_uuid_map`` (with the relaxed XSM
    SR check when ``[xenapi_resign] require_relaxed_xsm_sr_check``).  A VM
    without volumes gets no extra XAPI call.  Any failure of the check
    (a refusal, a XAPI error) calls Nova's ``recover_method``
    (``_rollback_live_migration``) and is re-raised, exactly as Nova's
    ``live_migrate`` treats a failure; XAPI is never asked to move anything.
    ``VMOps._generate_vdi_map`` is then answered for the volume SRs from
    what the check read, so XAPI gets the map that was checked; and
    ``VMOps._get_iscsi_srs`` lists an SR shared by several volumes (one
    uuid5 SR per portal+IQN) once, so Nova's clean-up forgets it once
    (Nova lists it per VBD and the second ``SR.forget`` fails), and adds
    the checked ``lvmoiscsi`` SRs of VDI-per-LUN volumes (Nova lists
    ``iscsi`` SRs only and left those plugged on the source).
``rollback_live_migration_at_destination`` (destination)
    Forgets exactly the SRs this destination introduced for the migration
    (never one that existed before, never one in use), then runs Nova's
    rollback without its SR loop (which recomputes uuid5 names and would
    leak a legacy-named SR, or forget one another instance uses).
volume attach (every ``VolumeOps`` of the driver)
    ``_connect_to_volume_provider`` names a new SR per ``[xenapi_resign]
    sr_naming`` (``auto`` reuses the volume's legacy SR if it exists) and
    honours an explicit ``sr_uuid`` with a complete device-config.  An
    integer ``volume_id`` is taken as Nova takes it (``FA15E-D15C-%s``).

The ``VMOps`` and ``VolumeOps`` overrides are subclasses of Nova's with
Nova's signatures; the driver's objects become instances of them right
after Nova's ``__init__`` built them (only objects of exactly Nova's class:
a test's mock stays a mock), so class-level stubs on Nova's classes still
apply wherever the extension defers to Nova.  The driver's public methods
keep Nova's exact signatures, without annotations, as Nova's
``assertPublicAPISignatures`` requires.

Building the class also installs
:func:`~nova_xenapi_resign.xenapi.plugin_compat.install`: os-xenapi 0.3.4's
pickled plugin calls cannot reach a real host from Python 3 otherwise.

The library's XAPI helpers take Nova's session as it is: they recognise
os-xenapi's own ``XenAPI.Failure`` class
(:func:`~nova_xenapi_resign.xenapi.volume_utils.failure_classes`).
"""

from __future__ import annotations

from collections.abc import Mapping
import threading
from typing import Any


from oslo_log import log as logging

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import options as lease_options
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import live_migration
from nova_xenapi_resign.xenapi import volume_lease
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


def _with_str_volume_id(connection_data: Any) -> Any:
    """``connection_data`` with an integer ``volume_id`` as Nova formats it.

    Nova names a legacy SR ``'FA15E-D15C-%s' % volume_id`` and so accepts
    any volume id; the library's naming takes strings.
    """
    if not isinstance(connection_data, Mapping):
        return connection_data
    volume_id = connection_data.get("volume_id")
    if volume_id is None or isinstance(volume_id, str):
        return connection_data
    data = dict(connection_data)
    data["volume_id"] = "%s" % (volume_id,)
    return data


def _with_str_volume_ids(block_device_info: Any) -> Any:
    """``block_device_info`` with every volume id as Nova formats it."""
    if not isinstance(block_device_info, Mapping):
        return block_device_info
    mappings = live_migration.block_device_mappings(block_device_info)
    changed = []
    for bdm in mappings:
        connection_info = bdm.get("connection_info") or {}
        data = connection_info.get("data") or {}
        fixed = _with_str_volume_id(data)
        if fixed is not data:
            bdm = dict(bdm, connection_info=dict(connection_info, data=fixed))
        changed.append(bdm)
    if all(a is b for a, b in zip(mappings, changed)):
        return block_device_info
    return dict(block_device_info, block_device_mapping=changed)


class ResignState(object):
    """What a driver and its ``VMOps``/``VolumeOps`` share."""

    def __init__(self, conf: Any, session: Any, excutils: Any) -> None:
        self.conf = conf
        self.session = session
        self.excutils = excutils
        self.lock = threading.Lock()
        # Per (green)thread: the SRs introduced by the pre_live_migration
        # running in it, and the CheckedVolumes of the live_migration
        # running in it (None outside them).  nova-compute monkey-patches
        # threading, so this is greenthread-local there.
        self.local = threading.local()
        # Destination: instance uuid -> SR uuids its migration introduced.
        self.dest_state: dict[str, set[str]] = {}
        # Source: instance uuid -> volume_sr_uuid_map it computed.
        self.source_maps: dict[str, dict[str, str]] = {}
        # The on-LUN leases of LVHD volume SRs (volume_lease).
        self.leases = volume_lease.LeaseClient(
            session, lease_options.timing(conf))
        self.renewer = volume_lease.Renewer(self.leases)
        # Source: instance uuid -> (its leases, the destination's name).
        self.source_leases: dict[str, tuple[list, Any]] = {}
        # Destination: instance uuid -> the leases it is to take, and the
        # SRs it connected ({SR uuid: ref}).
        self.dest_leases: dict[str, list] = {}
        self.dest_srs: dict[str, dict[str, str]] = {}
        # Source: instance uuid -> its leases, from
        # check_can_live_migrate_source to live_migration.
        self.planned_leases: dict[str, list] = {}

    def options(self) -> tuple[str, str | None, Any, bool]:
        group = self.conf.xenapi_resign
        return (group.sr_naming, self.conf.xenserver.target_host,
                self.conf.xenserver.target_port,
                group.require_relaxed_xsm_sr_check)

    def current(self, name: str) -> Any:
        return getattr(self.local, name, None)


class ResignVolumeOpsMixin(object):
    """Over Nova's ``VolumeOps``: SR naming per ``[xenapi_resign]``."""

    _resign_state: ResignState

    def _connect_to_volume_provider(self, connection_data, instance_name):
        """Nova's method, naming the SR per ``sr_naming``.

        An LVHD volume's SR is plugged with sm's GC held off; on attach the
        lease is then taken and the GC let run, while for a migration's
        destination (inside ``pre_live_migration``) the source still holds
        it: leaf-coalesce is held off too, until
        ``post_live_migration_at_destination`` takes the lease.  An LVHD SR
        already plugged here (a second volume, a re-attach after a
        restart) is used only once this pool holds its lease
        (``volume_lease.ensure_held``; ``LeaseHeld`` otherwise).
        """
        state = self._resign_state
        style, host, port, _ = state.options()
        data = _with_str_volume_id(connection_data)
        lease = volume_lease.lease_for_connection(data)
        sr_ref, sr_uuid, introduced = volume_utils.connect_volume_sr(
            state.session, data, "Disk-for:%s" % instance_name, style, host,
            port, hold_gc=lease is not None)
        LOG.debug("Volume SR %s (%s) %s", sr_uuid,
                  sr_naming.classify(sr_uuid),
                  "introduced" if introduced else "already present")
        collector = state.current("introduced")
        if introduced and collector is not None:
            collector.add(sr_uuid)
        if lease is not None and introduced:
            try:
                if collector is not None:
                    volume_lease.hold_off_leaf_coalesce(state.session,
                                                        sr_ref)
                else:
                    volume_lease.take(state.leases, state.renewer, lease,
                                      sr_ref)
            except Exception:
                with state.excutils.save_and_reraise_exception():
                    volume_utils.forget_sr(state.session, sr_ref)
        elif lease is not None and collector is None:
            volume_lease.ensure_held(state.leases, state.renewer, lease,
                                     sr_ref)
        return sr_ref, sr_uuid

    def _detach_vbds_and_srs(self, vm_ref, vbd_refs):
        """Nova's method; a held SR's lease goes back before SM logs out.

        Nova forgets an SR once no VBD uses it (``purge_sr``), and SM then
        logs out of its target: dom0 no longer sees the LUN, so the lease
        must be released before the forget.  VBDs on SRs whose lease this
        host holds are detached here in Nova's order (unplug unless the VM
        is shut down, destroy, then forget the SR if unused), with the
        release between the last VBD and the forget; the others go to
        Nova's method.
        """
        state = self._resign_state
        held = {h.sr_ref: uuid for uuid, h in
                list(state.renewer.held.items())}
        ours, others = [], []
        for vbd_ref in vbd_refs:
            sr_ref = None
            if held:
                sr_ref = self._session.call_xenapi(
                    "VDI.get_SR", self._session.call_xenapi("VBD.get_VDI",
                                                            vbd_ref))
            (ours if sr_ref in held else others).append((vbd_ref, sr_ref))
        if others or not ours:
            super()._detach_vbds_and_srs(vm_ref, [v for v, _ in others])
        if not ours:
            return
        from nova.virt.xenapi import vm_utils
        shut_down = vm_utils.is_vm_shutdown(self._session, vm_ref)
        for vbd_ref, sr_ref in ours:
            if not shut_down:
                vm_utils.unplug_vbd(self._session, vbd_ref, vm_ref)
            vm_utils.destroy_vbd(self._session, vbd_ref)
            if live_migration.sr_in_use(self._session, sr_ref):
                continue
            try:
                volume_lease.release_before_forget(
                    state.leases, state.renewer, held[sr_ref], sr_ref)
            except exception.LeaseError as exc:
                LOG.error("Could not release the lease of SR %s (%s): it "
                          "expires unrenewed", held[sr_ref], exc)
            volume_utils.forget_sr(self._session, sr_ref)


class ResignVMOpsMixin(object):
    """Over Nova's ``VMOps``: the live-migration parts of the fix."""

    _resign_state: ResignState

    def _generate_vdi_map(self, destination_sr_ref, vm_ref, sr_ref=None):
        """Nova's method, answered from the pre-check for volume SRs.

        Inside this thread's ``live_migration``, a volume SR's VDIs are
        those ``check_sr_uuid_map`` verified (read with two queries for all
        volumes).  Nova's own version walks every VBD of the VM for each SR,
        for ``VM.assert_can_migrate`` and again for ``VM.migrate_send``:
        O(volumes^2) calls.  The answer is the same, and XAPI receives
        exactly the map that was checked.  Anything else (the local disks'
        default SR, another VM) goes to Nova's method, called as it was
        called here.
        """
        checked = self._resign_state.current("checked")
        if checked is not None and sr_ref is not None:
            vdi_map = checked.vdi_map(vm_ref, sr_ref, destination_sr_ref)
            if vdi_map is not None:
                return vdi_map
        if sr_ref is None:
            return super()._generate_vdi_map(destination_sr_ref, vm_ref)
        return super()._generate_vdi_map(destination_sr_ref, vm_ref, sr_ref)

    def _call_live_migrate_command(self, command_name, vm_ref,
                                   migrate_data):
        """Nova's method; after ``VM.migrate_send`` the leases go over.

        The VM has left, Nova has not yet forgotten the source's SRs:
        while they are still plugged (dom0 still sees the LUNs) this
        thread's ``live_migration`` hands their leases to the destination
        (``volume_lease.hand_over_before_forget``).
        """
        super()._call_live_migrate_command(command_name, vm_ref,
                                           migrate_data)
        hand_over = self._resign_state.current("hand_over")
        if command_name == "VM.migrate_send" and hand_over is not None:
            hand_over()

    def _get_iscsi_srs(self, ctxt, instance_ref):
        """Nova's list of the VM's iSCSI SRs, each SR once, LVHD volumes too.

        Nova appends an SR per VBD: two volumes behind one portal+IQN share
        one uuid5 SR, which ``live_migrate``'s clean-up would then forget
        twice (the second ``SR.forget`` fails with ``HANDLE_INVALID`` after
        the VM has moved, and Nova runs ``recover`` instead of ``post``).
        Nova also lists only ``iscsi`` SRs, so the ``lvmoiscsi`` SR of a
        VDI-per-LUN volume stayed plugged on the source after the VM left:
        inside this thread's ``live_migration`` the volume SRs the
        pre-check found to be ``lvmoiscsi`` are added (no XAPI call; never
        an SR holding the VM's own disks, which is no volume SR).
        """
        srs = list(dict.fromkeys(super()._get_iscsi_srs(ctxt, instance_ref)))
        checked = self._resign_state.current("checked")
        if checked is not None:
            srs += [ref for ref in checked.lvhd_srs if ref not in srs]
        return srs

    def connect_block_device_volumes(self, block_device_info):
        """Nova's method, forgetting only introduced SRs on failure.

        Connects every volume (``{SR uuid: SR ref}``, as Nova returns it).
        When one fails, Nova's version forgets every SR connected so far,
        including SRs that were here before (another instance's multiattach
        volume, a leftover of an earlier attempt); this one forgets only the
        SRs introduced during this ``pre_live_migration``.
        """
        state = self._resign_state
        sr_uuid_map = {}
        try:
            for bdm in live_migration.block_device_mappings(
                    block_device_info):
                sr_uuid, _ = self._volumeops.connect_volume(
                    bdm["connection_info"])
                sr_uuid_map[sr_uuid] = self._session.call_xenapi(
                    "SR.get_by_uuid", sr_uuid)
        except Exception:
            with state.excutils.save_and_reraise_exception():
                introduced = state.current("introduced")
                forgotten = live_migration.forget_introduced_srs(
                    self._session, {u: u for u in introduced or ()}, ())
                LOG.warning("Connecting the volumes failed; forgot the SRs "
                            "introduced for the migration (%s), kept %s",
                            ", ".join(forgotten) or "none",
                            ", ".join(sorted(set(sr_uuid_map)
                                             - set(forgotten))) or "none")
        return sr_uuid_map


class ResignDriverMixin(object):
    """The driver overrides; mixed into Nova's ``XenAPIDriver``.

    Needs ``self._session``, ``self._vmops`` and ``self._volumeops`` (set by
    Nova's ``__init__``) and the class attributes ``_nova_conf``,
    ``_excutils`` and ``_resign_ops_classes`` (``{Nova's class: subclass}``).
    The public methods have Nova's signatures exactly, without annotations.
    """

    _nova_conf: Any = None
    _excutils: Any = None
    _resign_ops_classes: dict[type, type] = {}

    def _resign_setup(self) -> None:
        self._resign_state = ResignState(self._nova_conf, self._session,
                                         self._excutils)
        vmops = getattr(self, "_vmops", None)
        for ops in (getattr(self, "_volumeops", None), vmops,
                    getattr(vmops, "_volumeops", None)):
            subclass = self._resign_ops_classes.get(type(ops))
            if subclass is not None:
                ops.__class__ = subclass
                ops._resign_state = self._resign_state

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

    def init_host(self, host):
        super().init_host(host)
        self._resign_state.renewer.start()

    def cleanup_host(self, host):
        self._resign_state.renewer.stop()
        super().cleanup_host(host)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data, block_device_info=None):
        result = super().check_can_live_migrate_source(
            context, instance, dest_check_data, block_device_info)
        state = self._resign_state
        style, host, port, _ = state.options()
        volume_map = live_migration.build_volume_sr_uuid_map(
            self._session, _with_str_volume_ids(block_device_info), style,
            host, port)
        with state.lock:
            state.source_maps[_instance_uuid(instance)] = volume_map
            state.planned_leases[_instance_uuid(instance)] = (
                volume_lease.leases_of(block_device_info))
        LOG.debug("Source volume SRs for live migration: %s", volume_map)
        return self._resign_with_map(result, volume_map)

    def _resign_check_leases(self, instance: Any, migrate_data: Any,
                             leases: list,
                             checked: live_migration.CheckedVolumes | None
                             ) -> None:
        """The lease pre-check of a cross-pool migration (volume_lease).

        Takes the destination's lease offer out of ``migrate_send_data``
        (it never reaches ``VM.migrate_send``), reports and where safe
        forgets SRs plugged here without the lease, then refuses unless
        this pool holds every LVHD volume's lease, the SR is the VM's
        alone and the clocks agree (``max_clock_skew``, unless the operator
        set ``ignore_clock_skew``).  No XAPI call without LVHD volumes.
        """
        state = self._resign_state
        send = dict(_field(migrate_data, "migrate_send_data", None) or {})
        offer = {k: send.pop(k) for k in volume_lease.DEST_KEYS
                 if k in send}
        if offer:
            migrate_data.migrate_send_data = send
        if not leases:
            return
        volume_lease.report_stale(state.leases, state.renewer)
        group = self._nova_conf.xenapi_resign
        with state.lock:
            in_flight = {x.sr_uuid for pending, _ in
                         state.source_leases.values() for x in pending}
        dest = volume_lease.check_source(
            state.leases, state.renewer,
            self._vmops._get_vm_opaque_ref(instance), leases, offer,
            group.max_clock_skew, group.ignore_clock_skew, in_flight,
            checked.lvhd_vdis() if checked is not None else {})
        with state.lock:
            state.source_leases[_instance_uuid(instance)] = (leases, dest)

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        state = self._resign_state
        with state.lock:
            remembered = state.source_maps.pop(_instance_uuid(instance), None)
            leases = state.planned_leases.pop(_instance_uuid(instance), [])
        checked = None

        def recover(ctxt, inst, dest_host, data):
            self._resign_rollback_leases(inst)
            recover_method(ctxt, inst, dest_host, data)

        if migrate_data is not None and _field(migrate_data,
                                               "block_migration"):
            try:
                checked = self._resign_check_source(instance, migrate_data,
                                                    remembered)
                self._resign_check_leases(instance, migrate_data, leases,
                                          checked)
            except Exception as exc:
                # Nova's live_migrate: any failure runs recover_method
                # (_rollback_live_migration) and is re-raised.
                with state.excutils.save_and_reraise_exception():
                    LOG.error("Live migration pre-check failed: %s", exc)
                    recover(context, instance, dest, migrate_data)
        state.local.checked = checked
        state.local.hand_over = lambda: self._resign_hand_over(instance,
                                                               checked)
        try:
            super().live_migration(context, instance, dest, post_method,
                                   recover, block_migration, migrate_data)
        finally:
            state.local.checked = None
            state.local.hand_over = None

    def _resign_hand_over(self, instance: Any,
                          checked: live_migration.CheckedVolumes | None
                          ) -> None:
        """Source, right after ``VM.migrate_send``: hand the leases over."""
        state = self._resign_state
        with state.lock:
            leases, dest = state.source_leases.pop(
                _instance_uuid(instance), ([], None))
        if leases:
            volume_lease.hand_over_before_forget(
                state.leases, state.renewer, leases, dest,
                checked.srs if checked is not None else {},
                checked.lvhd_vdis() if checked is not None else {})

    def _resign_rollback_leases(self, instance: Any) -> None:
        """Source rollback: while the VM is still here, hold its leases."""
        state = self._resign_state
        with state.lock:
            leases, _ = state.source_leases.pop(_instance_uuid(instance),
                                                ([], None))
        if not leases:
            return
        try:
            self._vmops._get_vm_opaque_ref(instance)
        except Exception:
            LOG.error("Rollback of %s: the VM is no longer on the source; "
                      "its volume leases stay with the destination",
                      _instance_uuid(instance))
            return
        regained = volume_lease.reacquire_at_source(
            state.leases, state.renewer, leases)
        LOG.info("Live migration rollback: source holds the leases of %s "
                 "(re-acquired: %s)", sorted(x.sr_uuid for x in leases),
                 regained or "none")

    def _resign_check_source(self, instance: Any, migrate_data: Any,
                             remembered: dict[str, str] | None
                             ) -> live_migration.CheckedVolumes | None:
        """The pre-check, or None (no XAPI call) when there is none to make.

        No check for a VM without volumes (the source recorded an empty
        ``volume_sr_uuid_map`` and the destination connected no SR), and
        none when this host never computed the volumes' SRs (neither the
        migrate data nor this process has the map: the migration was not
        prepared by this driver's ``check_can_live_migrate_source``), which
        is Nova's own live migration.
        """
        _, _, _, require_relaxed = self._resign_state.options()
        sr_uuid_map = _field(migrate_data, "sr_uuid_map", {}) or {}
        in_data = _field(migrate_data, md.VOLUME_SR_UUID_MAP) is not None
        volume_map = md.get_volume_sr_uuid_map(migrate_data)
        if not in_data and remembered is None:
            LOG.warning("Live migration of %s was not prepared by this "
                        "host's check_can_live_migrate_source (no %s): "
                        "Nova's own live migration, without the SR check",
                        _instance_uuid(instance), md.VOLUME_SR_UUID_MAP)
            return None
        if not volume_map and remembered:
            # The map did not survive the trip (an old destination, or a
            # pinned RPC version): what this host computed still holds.
            LOG.warning("The migrate data came back without %s; using the "
                        "map computed by check_can_live_migrate_source",
                        md.VOLUME_SR_UUID_MAP)
            volume_map = remembered
        if not volume_map and not sr_uuid_map:
            return None
        vm_ref = self._vmops._get_vm_opaque_ref(instance)
        relaxed = True
        if require_relaxed:
            relaxed = bool(self._session.is_xsm_sr_check_relaxed())
        return live_migration.check_sr_uuid_map(
            self._session, vm_ref, sr_uuid_map, volume_map, relaxed,
            require_relaxed)

    # --- destination ------------------------------------------------------

    def pre_live_migration(self, context, instance, block_device_info,
                           network_info, disk_info, migrate_data):
        state = self._resign_state
        _, host, port, _ = state.options()
        volume_map = md.get_volume_sr_uuid_map(migrate_data)
        injected = live_migration.inject_source_sr_uuids(
            _with_str_volume_ids(block_device_info), volume_map, host, port)
        uuid = _instance_uuid(instance)
        # Which SRs this migration introduces (the others pre-existed) is
        # recorded as Nova connects the volumes: no extra XAPI call.
        introduced: set[str] = set()
        state.local.introduced = introduced
        try:
            result = super().pre_live_migration(context, instance, injected,
                                                network_info, disk_info,
                                                migrate_data)
        finally:
            state.local.introduced = None
            with state.lock:
                state.dest_state[uuid] = introduced
                state.dest_leases[uuid] = volume_lease.leases_of(injected)
        with state.lock:
            state.dest_srs[uuid] = dict(_field(result, "sr_uuid_map", {})
                                        or {})
        send = _field(result, "migrate_send_data", None)
        if send and state.dest_leases[uuid]:
            # Who takes the LVHD volumes' leases, and its clock, for the
            # source's pre-check (which takes these keys out again).
            result.migrate_send_data = dict(
                send, **volume_lease.destination_offer(state.leases))
        LOG.debug("pre_live_migration: SRs %s, introduced %s",
                  sorted(_field(result, "sr_uuid_map", {}) or {}),
                  sorted(introduced))
        return result

    def rollback_live_migration_at_destination(self, context, instance,
                                               network_info,
                                               block_device_info,
                                               destroy_disks=True,
                                               migrate_data=None):
        state = self._resign_state
        with state.lock:
            introduced = state.dest_state.pop(_instance_uuid(instance), None)
            state.dest_leases.pop(_instance_uuid(instance), None)
            state.dest_srs.pop(_instance_uuid(instance), None)
        if introduced is None and migrate_data is None:
            # Nothing known about this migration: Nova's own behaviour.
            return super().rollback_live_migration_at_destination(
                context, instance, network_info, block_device_info,
                destroy_disks, migrate_data)
        if introduced is not None:
            srs = {"sr:%s" % u: u for u in introduced}
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

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        state = self._resign_state
        with state.lock:
            state.dest_state.pop(_instance_uuid(instance), None)
            leases = state.dest_leases.pop(_instance_uuid(instance), [])
            sr_refs = state.dest_srs.pop(_instance_uuid(instance), {})
        if leases:
            volume_lease.acquire_at_destination(state.leases, state.renewer,
                                                leases, sr_refs)
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
        from nova.virt.xenapi import vmops
        from nova.virt.xenapi import volumeops
        from oslo_utils import excutils

        from nova_xenapi_resign import conf as resign_conf
        from nova_xenapi_resign.xenapi import plugin_compat

        resign_conf.register_opts(nova.conf.CONF)
        md.register_with_nova()
        plugin_compat.install()

        class VMOps(ResignVMOpsMixin, vmops.VMOps):
            """Nova's VMOps + nova-xenapi-resign."""

        class VolumeOps(ResignVolumeOpsMixin, volumeops.VolumeOps):
            """Nova's VolumeOps + nova-xenapi-resign."""

        class XenAPIDriver(ResignDriverMixin, nova_driver.XenAPIDriver):
            """Nova's XenAPI driver + nova-xenapi-resign (bug 1566622)."""

            _nova_conf = nova.conf.CONF
            _excutils = excutils
            _resign_ops_classes = {vmops.VMOps: VMOps,
                                   volumeops.VolumeOps: VolumeOps}

            def __init__(self, virtapi, read_only=False):
                super().__init__(virtapi, read_only=read_only)
                self._resign_setup()

        for cls in (VMOps, VolumeOps, XenAPIDriver):
            cls.__module__ = __name__
        XenAPIDriver.__qualname__ = "XenAPIDriver"
        _DRIVER_CLASS = XenAPIDriver
        return XenAPIDriver


def __getattr__(name: str) -> Any:
    if name == "XenAPIDriver":
        return build_driver_class()
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
