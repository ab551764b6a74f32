"""Live migration of volume-backed instances across SR naming styles.

The protocol (doc/source/reference/live-migration.rst, Launchpad bug 1566622):

1. Source, ``check_can_live_migrate_source``: :func:`build_volume_sr_uuid_map`
   finds the SR each volume really uses and records ``volume id -> SR uuid``
   in ``XenapiLiveMigrateData.volume_sr_uuid_map``.
2. Destination, ``pre_live_migration``: :func:`inject_source_sr_uuids` puts
   each UUID (and the iSCSI device-config, CHAP included) into a copy of
   ``block_device_info``; Nova's ``connect_block_device_volumes`` then
   introduces every SR under the source's UUID, so the returned
   ``sr_uuid_map`` ({SR uuid: destination SR ref}) has the source's keys.
   :func:`forget_introduced_srs` (on rollback) forgets exactly the SRs the
   migration introduced.
3. Source, before ``VM.assert_can_migrate`` / ``VM.migrate_send``:
   :func:`check_sr_uuid_map` refuses, with :class:`LiveMigrationPreCheckError`,
   anything that would make Nova's ``_call_live_migrate_command`` fail
   (``UUID_INVALID``) or make XAPI want to mirror a volume: XenServer 7.1
   and later refuse that for raw iSCSI SRs (``SR_DOES_NOT_SUPPORT_MIGRATION``,
   no ``VDI_MIRROR``), older releases and SR types that can mirror (LVHD)
   would mirror the LUN onto itself.

Shapes are Nova's: ``block_device_info['block_device_mapping']`` is a list of
mappings each with ``connection_info = {'driver_volume_type': ..., 'data':
{...}, 'serial': <volume id>}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import dataclasses
from typing import Any

from oslo_log import log as logging

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import volume_utils

LOG = logging.getLogger(__name__)

#: At most this many ``SR.get_by_uuid`` calls are made per volume.
MAX_LOOKUPS_PER_VOLUME = 2

ACTION_NOT_FOUND = (
    "Check that the volume is attached on this host (xe sr-list, "
    "xe pbd-list); if its SR was introduced under another UUID, publish it "
    "as sr_uuid in the volume's connection data, then retry")
ACTION_UPGRADE_DESTINATION = (
    "The destination did not introduce the SR under the source's UUID: "
    "install nova-xenapi-resign (with the same [xenapi_resign] sr_naming) on "
    "the destination compute, restart it, and retry. Do not force the "
    "migration: with different SR UUIDs XAPI refuses to move the volume "
    "(SR_DOES_NOT_SUPPORT_MIGRATION) or, before XenServer 7.1, mirrors its "
    "LUN onto itself")
ACTION_RELAX = (
    "Enable XAPI's relaxed storage check on the source pool "
    "(relax-xsm-sr-check=true in /etc/xapi.conf on every host, then restart "
    "xapi; XenServer 7.0 and later default to it), or set [xenapi_resign] "
    "require_relaxed_xsm_sr_check = False only if the pools share no storage")

_UNKNOWN = "unknown"


# --- Helpers ----------------------------------------------------------------

def block_device_mappings(block_device_info: Mapping[str, Any] | None
                          ) -> list[Any]:
    """``block_device_info['block_device_mapping']``, or [] without one."""
    if not block_device_info:
        return []
    return list(block_device_info.get("block_device_mapping") or [])


def _connection_data(bdm: Mapping[str, Any]) -> Mapping[str, Any]:
    connection_info = bdm.get("connection_info") or {}
    return connection_info.get("data") or {}


def volume_id_of(bdm: Mapping[str, Any]) -> str | None:
    """The Cinder volume id of a block device mapping, or None.

    ``connection_info['data']['volume_id']`` (what Nova's ``parse_sr_info``
    reads), else ``connection_info['serial']``, else the mapping's own
    ``volume_id``.
    """
    connection_info = bdm.get("connection_info") or {}
    for value in (_connection_data(bdm).get("volume_id"),
                  connection_info.get("serial"), bdm.get("volume_id")):
        if value:
            return str(value)
    return None


def _volumes_on(volume_sr_uuid_map: Mapping[str, str], sr_uuid: str) -> str:
    volumes = sorted(v for v, s in volume_sr_uuid_map.items() if s == sr_uuid)
    return ", ".join(volumes) if volumes else _UNKNOWN


# --- 1. Source: which SR each volume uses -----------------------------------

def lookup_candidates(connection_data: Mapping[str, Any], style: str,
                      default_host: str | None = None,
                      default_port: str | int = sr_naming.DEFAULT_PORT
                      ) -> list[str]:
    """The SR UUIDs to try for one volume, best first, at most two.

    An explicit ``sr_uuid`` is the only candidate (Nova always introduced
    the SR under it); otherwise the legacy and uuid5 names in the order
    ``style`` implies.
    """
    explicit = sr_naming.explicit_sr_uuid(connection_data)
    if explicit is not None:
        return [explicit]
    candidates = sr_naming.sr_uuid_candidates(connection_data, style,
                                              default_host, default_port)
    return candidates[:MAX_LOOKUPS_PER_VOLUME]


def build_volume_sr_uuid_map(session: Any,
                             block_device_info: Mapping[str, Any] | None,
                             style: str = sr_naming.STYLE_AUTO,
                             default_host: str | None = None,
                             default_port: str | int = sr_naming.DEFAULT_PORT
                             ) -> dict[str, str]:
    """``{volume id: SR uuid}`` of every volume, as the source sees them.

    One ``SR.get_by_uuid`` per candidate of :func:`lookup_candidates`,
    stopping at the first hit: at most two XAPI calls per volume.  A volume
    whose SR cannot be found, or that has no volume id, refuses the
    migration with :class:`LiveMigrationPreCheckError`.
    """
    result: dict[str, str] = {}
    for bdm in block_device_mappings(block_device_info):
        volume_id = volume_id_of(bdm)
        data = _connection_data(bdm)
        if volume_id is not None and not data.get("volume_id"):
            # The legacy name is derived from the volume id; take it from
            # the mapping when the connection data lacks it.
            data = dict(data, volume_id=volume_id)
        if volume_id is None:
            raise exception.LiveMigrationPreCheckError(
                volume_id=_UNKNOWN, source_sr_uuid=_UNKNOWN,
                dest_sr_uuid="not yet known",
                reason="a block device mapping (%s) has no volume id"
                % bdm.get("mount_device", "?"),
                action=ACTION_NOT_FOUND)
        try:
            candidates = lookup_candidates(data, style, default_host,
                                           default_port)
        except exception.InvalidConnectionData as exc:
            raise exception.LiveMigrationPreCheckError(
                volume_id=volume_id, source_sr_uuid=_UNKNOWN,
                dest_sr_uuid="not yet known",
                reason="no SR name can be derived from its connection data "
                "(%s)" % exc, action=ACTION_NOT_FOUND) from exc
        for sr_uuid in candidates:
            if volume_utils.find_sr_by_uuid(session, sr_uuid) is not None:
                LOG.debug("Volume %s uses SR %s (%s)", volume_id, sr_uuid,
                          sr_naming.classify(sr_uuid))
                result[volume_id] = sr_uuid
                break
        else:
            raise exception.LiveMigrationPreCheckError(
                volume_id=volume_id,
                source_sr_uuid="none found (tried %s)" % ", ".join(candidates),
                dest_sr_uuid="not yet known",
                reason="no SR of this volume exists on the source host",
                action=ACTION_NOT_FOUND)
    return result


# --- 2. Destination: introduce under the source's UUIDs ---------------------

def inject_source_sr_uuids(block_device_info: Mapping[str, Any] | None,
                           volume_sr_uuid_map: Mapping[str, str] | None,
                           default_host: str | None = None,
                           default_port: str | int = sr_naming.DEFAULT_PORT
                           ) -> Mapping[str, Any] | None:
    """A copy of ``block_device_info`` naming each mapped volume's SR.

    For every block device whose volume is in ``volume_sr_uuid_map``, its
    ``connection_info['data']`` (a copy) gets ``sr_uuid`` and the iSCSI
    device-config values (``target``, ``port``, ``targetIQN``, and
    ``chapuser``/``chappassword`` for CHAP) with ``introduce_sr_keys`` naming
    them, so both this library's and Nova's unmodified ``parse_sr_info``
    introduce the SR under the source's UUID with a complete device-config.

    The input is never modified.  Mapped block devices become plain dicts
    (Nova only reads ``bdm['connection_info']`` from them); the others are
    passed through as they are.  With an empty map (an old source) the
    input itself is returned.
    """
    if not block_device_info or not volume_sr_uuid_map:
        return block_device_info
    new_mappings = []
    for bdm in block_device_mappings(block_device_info):
        volume_id = volume_id_of(bdm)
        if volume_id is None or volume_id not in volume_sr_uuid_map:
            new_mappings.append(bdm)
            continue
        connection_info = dict(bdm.get("connection_info") or {})
        data = dict(connection_info.get("data") or {})
        sr_uuid = volume_sr_uuid_map[volume_id]
        if data.get("sr_uuid") not in (None, sr_uuid):
            LOG.warning("Volume %s: replacing sr_uuid %s from the connection "
                        "data by %s, the SR the source uses", volume_id,
                        data["sr_uuid"], sr_uuid)
        connection_info["data"] = volume_utils.with_explicit_sr_uuid(
            data, sr_uuid, include_id=False, default_host=default_host,
            default_port=default_port)
        new_bdm = dict(bdm)
        new_bdm["connection_info"] = connection_info
        new_mappings.append(new_bdm)
    new_info = dict(block_device_info)
    new_info["block_device_mapping"] = new_mappings
    return new_info


def sr_in_use(session: Any, sr_ref: str) -> bool:
    """Whether a VBD (plugged or not) uses a VDI of the SR."""
    for vdi_ref in session.call_xenapi("SR.get_VDIs", sr_ref):
        if session.call_xenapi("VDI.get_VBDs", vdi_ref):
            return True
    return False


def forget_introduced_srs(session: Any,
                          volume_sr_uuid_map: Mapping[str, str] | None,
                          preexisting: Iterable[str]) -> list[str]:
    """Rollback at the destination: forget the SRs this migration introduced.

    Every SR of the map that was not in ``preexisting`` (the SRs that
    existed before the volumes were connected) and exists now is forgotten;
    pre-existing SRs (other instances may use them) are left alone, and so
    is an SR that meanwhile got a VBD (another instance attached a volume of
    the same target to it), as Nova's ``purge_sr`` does.  Best effort: a
    failure is logged and the others are still forgotten.  Returns the UUIDs
    forgotten.
    """
    keep = set(preexisting)
    forgotten = []
    for sr_uuid in sorted(set((volume_sr_uuid_map or {}).values()) - keep):
        try:
            sr_ref = volume_utils.find_sr_by_uuid(session, sr_uuid)
            if sr_ref is None:
                continue
            if sr_in_use(session, sr_ref):
                LOG.warning("Rollback: SR %s is in use by a VBD; not "
                            "forgetting it", sr_uuid)
                continue
            volume_utils.forget_sr(session, sr_ref)
            forgotten.append(sr_uuid)
        except Exception:
            LOG.exception("Rollback: could not forget SR %s (volumes %s)",
                          sr_uuid, _volumes_on(volume_sr_uuid_map or {},
                                               sr_uuid))
    return forgotten


# --- 3. Source: refuse before XAPI moves anything ---------------------------

def any_of(field: str, values: Iterable[str]) -> str:
    """An XAPI ``get_all_records_where`` filter: ``field`` is any value."""
    return " or ".join('field "%s"="%s"' % (field, v) for v in values)


@dataclasses.dataclass(frozen=True)
class CheckedVolumes:
    """What :func:`check_sr_uuid_map` verified on the source.

    ``srs`` maps each SR uuid of the destination's ``sr_uuid_map`` to the
    local SR ref (``lvhd_srs``: those of type ``lvmoiscsi``); ``vdis`` maps
    each of those SR refs to the VM's VDIs on it (every VBD of the VM, as
    Nova's ``get_instance_vdis_for_sr`` counts them).  Enough to build the
    volume part of XAPI's ``vdi_map`` without asking XAPI again, so XAPI
    receives exactly the map that was checked.
    """

    vm_ref: str
    srs: Mapping[str, str]
    vdis: Mapping[str, tuple[str, ...]]
    #: The refs of ``srs`` that are ``lvmoiscsi`` (VDI-per-LUN volumes).
    lvhd_srs: tuple[str, ...] = ()
    #: Every VDI of each SR ref of ``srs`` (the VM's and any other), as
    #: its record said: the lease steps need no ``SR.get_VDIs``.
    sr_vdis: Mapping[str, tuple[str, ...]] = dataclasses.field(
        default_factory=dict)

    def lvhd_vdis(self) -> dict[str, tuple[str, ...]]:
        """``{SR uuid: every VDI ref on it}`` of the ``lvmoiscsi`` SRs."""
        return {uuid: self.sr_vdis.get(ref, ()) for uuid, ref in
                self.srs.items() if ref in self.lvhd_srs}

    def vdi_map(self, vm_ref: str, sr_ref: str,
                destination_sr_ref: str) -> dict[str, str] | None:
        """Nova's ``_generate_vdi_map`` for a checked SR; None otherwise."""
        if vm_ref != self.vm_ref or sr_ref not in self.vdis:
            return None
        return {vdi: destination_sr_ref for vdi in self.vdis[sr_ref]}


def _vm_vbds(session: Any, vm_ref: str) -> list[Mapping[str, Any]]:
    """The VM's non-empty VBD records, by userdevice: one call."""
    vbds = session.call_xenapi("VBD.get_all_records_where",
                               'field "VM"="%s"' % vm_ref)
    return sorted((rec for rec in vbds.values() if not rec.get("empty")),
                  key=lambda rec: str(rec.get("userdevice", "?")))


def _is_volume(vbd: Mapping[str, Any]) -> bool:
    """A volume VBD is one Nova attached with ``osvol`` in other_config."""
    return "osvol" in (vbd.get("other_config") or {})


def _sr_uuid_of_vdi(session: Any, vdi_ref: str) -> str:
    return session.call_xenapi("SR.get_uuid",
                               session.call_xenapi("VDI.get_SR", vdi_ref))


def _dest_uuids(sr_uuid_map: Mapping[str, str]) -> str:
    """The destination's SR UUIDs, for an error message."""
    return ", ".join(sorted(sr_uuid_map)) or "none"


def _refuse_strict_check(sr_uuid_map: Mapping[str, str],
                         volume_sr_uuid_map: Mapping[str, str]) -> None:
    """Refuse: the source pool's XSM SR check is strict."""
    raise exception.LiveMigrationPreCheckError(
        volume_id=", ".join(sorted(volume_sr_uuid_map)) or _UNKNOWN,
        source_sr_uuid=", ".join(sorted(set(
            volume_sr_uuid_map.values()))) or _UNKNOWN,
        dest_sr_uuid=_dest_uuids(sr_uuid_map),
        reason="XAPI's relax-xsm-sr-check is off on the source pool, so "
        "XAPI would mirror every volume even between equal SR UUIDs",
        action=ACTION_RELAX)


def _local_srs(session: Any, sr_uuid_map: Mapping[str, str],
               volume_sr_uuid_map: Mapping[str, str]
               ) -> dict[str, Mapping[str, Any]]:
    """``{SR ref: record}`` here of every destination key: one call.

    Refuses if a key does not exist on the source.
    """
    if not sr_uuid_map:
        return {}
    found = session.call_xenapi("SR.get_all_records_where",
                                any_of("uuid", sorted(sr_uuid_map)))
    missing = sorted(set(sr_uuid_map) - {r["uuid"] for r in found.values()})
    if missing:
        dest_uuid = missing[0]
        raise exception.LiveMigrationPreCheckError(
            volume_id=_volumes_on(volume_sr_uuid_map, dest_uuid),
            source_sr_uuid="none under that UUID (source SRs: %s)"
            % (", ".join(sorted(set(volume_sr_uuid_map.values())))
               or "not recorded"),
            dest_sr_uuid=dest_uuid,
            reason="the destination introduced an SR whose UUID does not "
            "exist on the source",
            action=ACTION_UPGRADE_DESTINATION)
    return dict(found)


def check_sr_uuid_map(session: Any, vm_ref: str,
                      sr_uuid_map: Mapping[str, str] | None,
                      volume_sr_uuid_map: Mapping[str, str] | None,
                      relaxed_xsm_sr_check: bool,
                      require_relaxed: bool = True) -> CheckedVolumes:
    """Refuse a live migration that would fail or mirror a LUN onto itself.

    Call on the source before ``VM.assert_can_migrate`` / ``VM.migrate_send``
    with the destination's ``sr_uuid_map`` ({SR uuid: destination SR ref})
    and this host's ``volume_sr_uuid_map``.  Refuses
    (:class:`LiveMigrationPreCheckError`, naming the volume, both SR UUIDs
    and the operator's action) unless:

    * the relaxed XSM SR check is on when ``require_relaxed`` and the VM has
      volumes;
    * every volume of ``volume_sr_uuid_map`` has its SR UUID as a key of
      ``sr_uuid_map`` (equal UUID on both sides);
    * every key of ``sr_uuid_map`` exists here;
    * every volume VDI of the VM is on a local SR whose UUID is a key of
      ``sr_uuid_map``.

    Two XAPI queries per migration, whatever the number of volumes (the SRs
    under the destination's UUIDs, with their VDIs; the VM's VBDs); the
    first refusals need none.  Returns the :class:`CheckedVolumes`.
    """
    sr_uuid_map = dict(sr_uuid_map or {})
    volume_sr_uuid_map = dict(volume_sr_uuid_map or {})
    if require_relaxed and not relaxed_xsm_sr_check and (
            volume_sr_uuid_map or sr_uuid_map):
        _refuse_strict_check(sr_uuid_map, volume_sr_uuid_map)
    for volume_id, source_uuid in sorted(volume_sr_uuid_map.items()):
        if source_uuid not in sr_uuid_map:
            raise exception.LiveMigrationPreCheckError(
                volume_id=volume_id, source_sr_uuid=source_uuid,
                dest_sr_uuid=_dest_uuids(sr_uuid_map),
                reason="the destination reported no SR under the UUID the "
                "source uses for this volume",
                action=ACTION_UPGRADE_DESTINATION)

    local = _local_srs(session, sr_uuid_map, volume_sr_uuid_map)
    sr_of_vdi = {vdi: ref for ref, rec in local.items()
                 for vdi in rec.get("VDIs") or ()}
    vdis: dict[str, list[str]] = {ref: [] for ref in local}
    for vbd in _vm_vbds(session, vm_ref):
        sr_ref = sr_of_vdi.get(vbd["VDI"])
        if sr_ref is not None:
            vdis[sr_ref].append(vbd["VDI"])
        elif _is_volume(vbd):
            source_uuid = _sr_uuid_of_vdi(session, vbd["VDI"])
            raise exception.LiveMigrationPreCheckError(
                volume_id="%s (VBD %s, VDI %s)" % (
                    _volumes_on(volume_sr_uuid_map, source_uuid),
                    vbd.get("userdevice", "?"), vbd["VDI"]),
                source_sr_uuid=source_uuid,
                dest_sr_uuid=_dest_uuids(sr_uuid_map),
                reason="the VM has a volume on a source SR the destination "
                "did not connect under the same UUID",
                action=ACTION_UPGRADE_DESTINATION)
    return CheckedVolumes(
        vm_ref=vm_ref,
        srs={rec["uuid"]: ref for ref, rec in local.items()},
        vdis={ref: tuple(found) for ref, found in vdis.items()},
        lvhd_srs=tuple(ref for ref, rec in local.items()
                       if rec.get("type") == volume_utils.SR_TYPE_LVMOISCSI),
        sr_vdis={ref: tuple(rec.get("VDIs") or ()) for ref, rec in
                 local.items()})
