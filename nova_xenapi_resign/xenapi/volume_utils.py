"""SR helpers for Cinder volumes, as Nova's ``xenapi/volume_utils``, fixed.

Every function takes a ``session`` with ``call_xenapi(method, *args)`` (Nova's
or os-xenapi's ``XenAPISession``, or the simulator's client); failures are
``XenAPI.Failure`` with ``.details``.  Differences from Nova 13 to 21:

* :func:`parse_sr_info` keeps the iSCSI device-config values (``target``,
  ``port``, ``targetIQN``, ``chapuser``, ``chappassword``) when an explicit
  ``sr_uuid`` is given (Nova dropped them unless ``introduce_sr_keys`` named
  them), honours ``introduce_sr_keys`` on top, names new SRs per the
  ``[xenapi_resign] sr_naming`` style, and never mutates the caller's dict;
* :func:`introduce_sr` forgets the SR again when creating or plugging the
  PBD, or the first scan, fails (Nova left a half-introduced SR behind);
* :func:`choose_sr_uuid` implements ``auto``: reuse the volume's legacy SR if
  it exists (one ``SR.get_by_uuid``), else uuid5;
* :func:`lvmoiscsi_device_config` finds the ``SCSIid`` an LVHD SR on a LUN
  must be attached with, the way XenServer's tools do (probe without it,
  read the LUN list of ``SR_BACKEND_FAILURE_107``);
* :func:`lvhd_connection_data` is the connection data of a VDI-per-LUN
  volume (an LVHD SR holding one VDI): stock Nova and the extension both
  introduce it as an ``lvmoiscsi`` SR plugged by ``SCSIid`` and attach
  exactly that VDI; :func:`parse_sr_info` takes its ``sr_type`` even when
  ``introduce_sr_keys`` does not name it.

Names come from :mod:`nova_xenapi_resign.sr_naming` and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

from oslo_log import log as logging
import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming

LOG = logging.getLogger(__name__)

#: product_version from which Nova adds ``backend-kind=vbd`` (bug 1502929).
BACKEND_KIND_MIN_VERSION = (6, 5)


def iscsi_device_config(connection_data: Mapping[str, Any],
                        default_host: str | None = None,
                        default_port: str | int = sr_naming.DEFAULT_PORT
                        ) -> dict[str, str]:
    """The ``iscsi`` SR device-config of a volume's connection data.

    ``target``, ``port`` (a string: device-config is a string map),
    ``targetIQN`` and, for ``auth_method == 'CHAP'``, ``chapuser`` and
    ``chappassword`` -- the keys Nova's ``_parse_volume_info`` builds --
    plus ``id`` (the volume id) when the data has one.
    """
    host, port, iqn = sr_naming.parse_target(connection_data, default_host,
                                             default_port)
    params = {"target": host, "port": str(port), "targetIQN": iqn}
    if connection_data.get("auth_method") == "CHAP":
        params["chapuser"] = connection_data.get("auth_username")
        params["chappassword"] = connection_data.get("auth_password")
    if connection_data.get("volume_id"):
        params["id"] = str(connection_data["volume_id"])
    return params


def with_explicit_sr_uuid(connection_data: Mapping[str, Any], sr_uuid: str,
                          include_id: bool = True,
                          default_host: str | None = None,
                          default_port: str | int = sr_naming.DEFAULT_PORT
                          ) -> dict[str, Any]:
    """A copy of ``connection_data`` that makes Nova use ``sr_uuid``.

    With an explicit ``sr_uuid`` Nova's ``parse_sr_info`` builds the SR's
    device-config only from the keys named in ``introduce_sr_keys``; so the
    iSCSI values (:func:`iscsi_device_config`; ``id`` only with
    ``include_id``) are copied in and named there, keeping any keys the
    data already named.  Used by live migration (the source's uuid) and by
    the Cinder hook (the uuid a clone was resigned to).
    """
    data = dict(connection_data)
    keys = list(data.get("introduce_sr_keys") or [])
    if data.get("target_iqn"):
        device_config = iscsi_device_config(data, default_host, default_port)
        if not include_id:
            device_config.pop("id", None)
        for key, value in device_config.items():
            if value is None:
                continue
            data[key] = value
            if key not in keys:
                keys.append(key)
    data["sr_uuid"] = sr_uuid
    data["introduce_sr_keys"] = keys
    return data


def parse_volume_info(connection_data: Mapping[str, Any],
                      default_host: str | None = None,
                      default_port: str | int = sr_naming.DEFAULT_PORT
                      ) -> dict[str, str]:
    """The device-config of an iSCSI volume, as Nova's ``_parse_volume_info``.

    :func:`iscsi_device_config`, but the volume id, the target host and the
    IQN are all required.
    """
    if not connection_data.get("volume_id"):
        raise exception.InvalidConnectionData(
            field="volume_id", reason="is missing or empty",
            data=sr_naming.masked(connection_data))
    return iscsi_device_config(connection_data, default_host, default_port)


def _has_iscsi_target(connection_data: Mapping[str, Any]) -> bool:
    return bool(connection_data.get("target_iqn"))


def parse_sr_info(connection_data: Mapping[str, Any], description: str = "",
                  style: str = sr_naming.STYLE_UUID5,
                  default_host: str | None = None,
                  default_port: str | int = sr_naming.DEFAULT_PORT
                  ) -> tuple[str, str, dict[str, str]]:
    """``(sr_uuid, label, params)`` for the SR of one volume.

    * Explicit ``sr_uuid`` in the data: that UUID; params are the iSCSI
      device-config values when the data names a target (volume id, portal,
      IQN, CHAP), overlaid by every key ``introduce_sr_keys`` names, and
      the data's ``sr_type`` (an LVHD volume's ``lvmoiscsi``; Nova takes
      it only when named, and introduces ``iscsi`` otherwise).
    * Otherwise: the iSCSI params, and the UUID ``style`` gives a *new* SR
      (``legacy``: ``FA15E-D15C-<volume id>``; ``uuid5`` and ``auto``: the
      uuid5 name -- ``auto``'s reuse of an existing legacy SR needs a
      session, see :func:`choose_sr_uuid`).

    ``label`` is ``name_label`` or ``tempSR-<sr uuid>``; ``params`` also get
    ``name_description`` (the data's, else ``description``).  The caller's
    dict is not modified.
    """
    if not isinstance(connection_data, Mapping):
        raise exception.InvalidConnectionData(
            field="connection_data", reason="must be a mapping, found %s"
            % type(connection_data).__name__, data="<not a mapping>")
    data = dict(connection_data)
    explicit = sr_naming.explicit_sr_uuid(data)
    if explicit is not None:
        sr_uuid = explicit
        params: dict[str, Any] = {}
        if _has_iscsi_target(data):
            params.update(iscsi_device_config(data, default_host,
                                              default_port))
        for key in data.get("introduce_sr_keys") or ():
            if key not in data:
                raise exception.InvalidConnectionData(
                    field=key, reason="is named in introduce_sr_keys but "
                    "missing", data=sr_naming.masked(data))
            params[key] = data[key]
        if data.get("sr_type"):
            params["sr_type"] = data["sr_type"]
    else:
        params = parse_volume_info(data, default_host, default_port)
        sr_uuid = sr_naming.preferred_sr_uuid(data, style, default_host,
                                              default_port)
    label = data.get("name_label", "tempSR-%s" % sr_uuid)
    params["name_description"] = data.get("name_description", description)
    return sr_uuid, label, params


def failure_classes(session: Any) -> tuple[type, ...]:
    """The XAPI failure classes a session may raise.

    The PyPI client's ``XenAPI.Failure``, and the session's own when it has
    one: os-xenapi (Nova's session) raises its vendored
    ``os_xenapi.client.XenAPI.Failure``, a different class with the same
    ``details``.
    """
    own = getattr(getattr(session, "XenAPI", None), "Failure", None)
    if isinstance(own, type) and own is not XenAPI.Failure:
        return (XenAPI.Failure, own)
    return (XenAPI.Failure,)


def find_sr_by_uuid(session: Any, sr_uuid: str) -> str | None:
    """The ref of the SR with this UUID, or None if XAPI has none.

    Only ``UUID_INVALID`` means "absent"; any other failure is re-raised.
    """
    try:
        return session.call_xenapi("SR.get_by_uuid", sr_uuid)
    except failure_classes(session) as exc:
        if exc.details and exc.details[0] == "UUID_INVALID":
            return None
        raise


def requires_backend_kind(product_version: Any) -> bool:
    """Whether Nova would add ``backend-kind=vbd`` on this XenServer.

    Nova (bug 1502929) used ``versionutils.is_compatible('6.5', version)``,
    whose default ``same_major=True`` makes it true for 6.5 <= version < 7
    only.  Kept exactly: an SR introduced here must look like one Nova
    introduced on the same pool.
    """
    if not product_version:
        return False
    try:
        version = tuple(int(part) for part in product_version)
    except (TypeError, ValueError):
        return False
    return (len(version) >= 1 and version[0] == BACKEND_KIND_MIN_VERSION[0]
            and version[:2] >= BACKEND_KIND_MIN_VERSION)


def introduce_sr(session: Any, sr_uuid: str, label: str,
                 params: Mapping[str, Any], hold_gc: bool = False) -> str:
    """Introduce, connect and scan an SR; return its ref.

    As Nova: ``SR.introduce(uuid, label, description, type, '', False,
    params)`` (Nova passes the device-config as sm_config too), then
    ``PBD.create`` on ``session.host_ref``, ``PBD.plug`` and ``SR.scan``.
    ``id``, ``sr_type`` (default ``iscsi``) and ``name_description`` are
    taken out of the device-config.  If anything after the introduce fails
    the SR is forgotten again and the original error re-raised.  ``params``
    is not modified.  With ``hold_gc`` the SR gets ``other_config:gc=false``
    before it is plugged, so sm's garbage collector never runs on it here
    until the caller lets it (an LVHD volume whose lease is not ours yet).
    """
    device_config = {k: v for k, v in params.items() if v is not None}
    device_config.pop("id", None)
    sr_type = device_config.pop("sr_type", "iscsi")
    sr_desc = device_config.pop("name_description", "")
    if (sr_type == "iscsi"
            and requires_backend_kind(getattr(session, "product_version",
                                              None))):
        device_config["backend-kind"] = "vbd"

    LOG.debug("Introducing SR %s (%s)", sr_uuid, label)
    sr_ref = session.call_xenapi("SR.introduce", sr_uuid, label, sr_desc,
                                 sr_type, "", False, device_config)
    try:
        if hold_gc:
            session.call_xenapi("SR.add_to_other_config", sr_ref, "gc",
                                "false")
        pbd_ref = session.call_xenapi(
            "PBD.create", {"host": session.host_ref, "SR": sr_ref,
                           "device_config": device_config})
        session.call_xenapi("PBD.plug", pbd_ref)
        session.call_xenapi("SR.scan", sr_ref)
    except Exception:
        LOG.warning("Connecting SR %s failed; forgetting it again", sr_uuid)
        try:
            forget_sr(session, sr_ref)
        except Exception:
            LOG.exception("Could not forget SR %s (%s) after a failed "
                          "introduce", sr_uuid, sr_ref)
        raise
    return sr_ref


def forget_sr(session: Any, sr_ref: str) -> None:
    """Unplug every PBD of the SR (failures ignored), then ``SR.forget``.

    Nothing on the storage is touched.
    """
    LOG.debug("Forgetting SR %s", sr_ref)
    try:
        pbds = session.call_xenapi("SR.get_PBDs", sr_ref)
    except failure_classes(session) as exc:
        LOG.warning("Ignoring %s while listing the PBDs of SR %s",
                    exc.details, sr_ref)
        pbds = []
    for pbd in pbds:
        try:
            session.call_xenapi("PBD.unplug", pbd)
        except failure_classes(session) as exc:
            LOG.warning("Ignoring %s while unplugging PBD %s of SR %s",
                        exc.details, pbd, sr_ref)
    session.call_xenapi("SR.forget", sr_ref)


def choose_sr_uuid(session: Any, connection_data: Mapping[str, Any],
                   style: str = sr_naming.STYLE_AUTO,
                   default_host: str | None = None,
                   default_port: str | int = sr_naming.DEFAULT_PORT
                   ) -> tuple[str, str | None]:
    """``(sr_uuid, sr_ref or None)``: the SR a new attachment should use.

    Explicit ``sr_uuid`` first (no XAPI call).  ``legacy`` and ``uuid5``
    name it outright.  ``auto`` reuses the volume's legacy SR if it exists
    (exactly one ``SR.get_by_uuid``; its ref is returned so the caller need
    not look it up again), else the uuid5 name.
    """
    explicit = sr_naming.explicit_sr_uuid(connection_data)
    if explicit is not None:
        return explicit, None
    if style == sr_naming.STYLE_AUTO and connection_data.get("volume_id"):
        legacy = sr_naming.legacy_sr_uuid(connection_data["volume_id"])
        sr_ref = find_sr_by_uuid(session, legacy)
        if sr_ref is not None:
            return legacy, sr_ref
    return sr_naming.preferred_sr_uuid(connection_data, style, default_host,
                                       default_port), None


def connect_volume_sr(session: Any, connection_data: Mapping[str, Any],
                      description: str = "",
                      style: str = sr_naming.STYLE_AUTO,
                      default_host: str | None = None,
                      default_port: str | int = sr_naming.DEFAULT_PORT,
                      hold_gc: bool = False) -> tuple[str, str, bool]:
    """Find or introduce the SR of a volume: ``(sr_ref, sr_uuid, introduced)``.

    Nova's ``VolumeOps._connect_to_volume_provider`` with the naming of
    :func:`choose_sr_uuid` and the fixed :func:`parse_sr_info`;
    ``hold_gc`` is :func:`introduce_sr`'s.
    """
    sr_uuid, sr_ref = choose_sr_uuid(session, connection_data, style,
                                     default_host, default_port)
    data = dict(connection_data)
    data["sr_uuid"] = sr_uuid
    sr_uuid, label, params = parse_sr_info(data, description, style,
                                           default_host, default_port)
    if sr_ref is None:
        sr_ref = find_sr_by_uuid(session, sr_uuid)
    if sr_ref is not None:
        return sr_ref, sr_uuid, False
    return (introduce_sr(session, sr_uuid, label, params, hold_gc),
            sr_uuid, True)


#: The SM failure of an lvmoiscsi call without ``SCSIid`` (xapi-project/sm
#: drivers/LVHDoISCSISR.py ``load``, ConfigSCSIid); its third parameter is
#: the target's LUN list as XML.
SCSI_ID_MISSING = "SR_BACKEND_FAILURE_107"


def _scsi_id_of_lun(lun_xml: str, lun_id: str) -> str | None:
    """The ``SCSIid`` of LUN ``lun_id`` in an ``<iscsi-target>`` list."""
    root = ElementTree.fromstring(lun_xml.strip())
    for lun in root.iter("LUN"):
        if (lun.findtext("LUNid") or "").strip() == lun_id:
            return (lun.findtext("SCSIid") or "").strip() or None
    return None


def lvmoiscsi_device_config(session: Any, device_config: Mapping[str, Any],
                            lun_id: int | str) -> dict[str, str]:
    """``device_config`` plus the ``SCSIid`` of LUN ``lun_id``.

    XenServer's ``lvmoiscsi`` driver picks its LUN by ``SCSIid`` only
    (``LUNid`` is ignored): ``SR.probe`` without one fails with
    ``SR_BACKEND_FAILURE_107`` listing the target's LUNs, each with its
    ``LUNid`` and ``SCSIid``.  One ``SR.probe``; any other failure is
    re-raised; a LUN the target does not list is a
    :class:`~nova_xenapi_resign.exception.StorageError`.  The caller's
    mapping is not modified.
    """
    config = {k: str(v) for k, v in device_config.items()
              if k not in ("SCSIid", "LUNid") and v is not None}
    try:
        session.call_xenapi("SR.probe", session.host_ref, config,
                            "lvmoiscsi", {})
    except failure_classes(session) as exc:
        details = list(exc.details or ())
        if details[:1] != [SCSI_ID_MISSING] or len(details) < 4:
            raise
        scsi_id = _scsi_id_of_lun(details[3], str(lun_id))
    else:
        raise exception.StorageError(
            reason="SR.probe of lvmoiscsi target %s at %s without a SCSIid "
            "did not answer %s with the LUN list" % (
                config.get("targetIQN"), config.get("target"),
                SCSI_ID_MISSING))
    if scsi_id is None:
        raise exception.StorageError(
            reason="target %s at %s lists no LUN %s" % (
                config.get("targetIQN"), config.get("target"), lun_id))
    config["SCSIid"] = scsi_id
    return config


#: The SR type of a VDI-per-LUN volume (an LVHD SR on the LUN).
SR_TYPE_LVMOISCSI = "lvmoiscsi"
#: The keys of :func:`lvhd_connection_data` Nova's ``parse_sr_info`` needs
#: named in ``introduce_sr_keys`` besides the iSCSI ones: without
#: ``sr_type`` Nova's ``_handle_sr_params`` introduces an ``iscsi`` SR.
LVHD_INTRODUCE_KEYS = ("sr_type", "SCSIid")


def lvhd_connection_data(connection_data: Mapping[str, Any], sr_uuid: str,
                         vdi_uuid: str, scsi_id: str,
                         default_host: str | None = None,
                         default_port: str | int = sr_naming.DEFAULT_PORT
                         ) -> dict[str, Any]:
    """A copy of an iSCSI volume's connection data for its LVHD SR.

    ``sr_uuid`` is the SR on the LUN, ``vdi_uuid`` the one VDI to attach,
    ``scsi_id`` the LUN's page-0x83 id as the host sees it (lvmoiscsi picks
    its LUN by ``SCSIid`` only).  The result carries ``sr_uuid``,
    ``sr_type=lvmoiscsi``, ``vdi_uuid`` and the device-config values
    (``SCSIid``, ``target``, ``port``, ``targetIQN``, CHAP) named in
    ``introduce_sr_keys``: Nova 21's ``parse_sr_info``/``introduce_sr``
    build the SR from exactly those, and its ``_connect_hypervisor_to_volume``
    looks the VDI up by ``vdi_uuid`` after the scan.  The volume id is not
    a device-config key (Nova drops ``id``; so does :func:`introduce_sr`).
    """
    for field, value in (("sr_uuid", sr_uuid), ("vdi_uuid", vdi_uuid),
                         ("SCSIid", scsi_id)):
        if not isinstance(value, str) or not value:
            raise exception.InvalidConnectionData(
                field=field, reason="must be a non-empty string, found %r"
                % (value,), data=sr_naming.masked(connection_data))
    if not _has_iscsi_target(connection_data):
        raise exception.InvalidConnectionData(
            field="target_iqn", reason="is missing: an lvmoiscsi SR needs "
            "the iSCSI target", data=sr_naming.masked(connection_data))
    data = with_explicit_sr_uuid(connection_data, sr_uuid, include_id=False,
                                 default_host=default_host,
                                 default_port=default_port)
    data["sr_type"] = SR_TYPE_LVMOISCSI
    data["SCSIid"] = scsi_id
    data["vdi_uuid"] = vdi_uuid
    keys = data["introduce_sr_keys"]
    data["introduce_sr_keys"] = keys + [k for k in LVHD_INTRODUCE_KEYS
                                        if k not in keys]
    return data
