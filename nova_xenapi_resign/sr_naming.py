"""The single source of truth for the UUIDs Nova gives volume SRs.

Nova's XenAPI driver never asks XAPI for an SR UUID: it *computes* one from
the Cinder connection data and introduces the SR under it.  Two schemes have
been used, and both still name SRs in running clouds:

* ``legacy`` (Nova up to Liberty): ``"FA15E-D15C-" + volume_id``.  Not an
  RFC 4122 UUID, but XAPI accepts any string.
* ``uuid5`` (Mitaka to Ussuri, Nova commit 5bd222e8):
  ``uuid5(SR_NAMESPACE, "<host>/<port>/<iqn>")``, so every LUN behind one
  target shares one SR.

An explicit ``sr_uuid`` in the connection data always wins over both.

Anything that must agree with an SR Nova made in the past - the live-migration
map, the Cinder hook, the CLI - derives names here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any
import uuid

from oslo_utils import strutils

from nova_xenapi_resign import exception

SR_NAMESPACE = uuid.UUID("3cca4135-a809-5bb3-af62-275fbfe87178")
LEGACY_PREFIX = "FA15E-D15C-"
DEFAULT_PORT = 3260

STYLE_AUTO = "auto"
STYLE_UUID5 = "uuid5"
STYLE_LEGACY = "legacy"
STYLES = (STYLE_AUTO, STYLE_UUID5, STYLE_LEGACY)

# The order in which existing SRs are looked for, per deployer style.  Every
# style looks for both names (an SR attached before an upgrade keeps its old
# name); the style only decides which is tried first.
_LOOKUP_ORDER = {
    STYLE_AUTO: (STYLE_LEGACY, STYLE_UUID5),
    STYLE_LEGACY: (STYLE_LEGACY, STYLE_UUID5),
    STYLE_UUID5: (STYLE_UUID5, STYLE_LEGACY),
}


MASK = "***"


def _is_secret_key(key: object) -> bool:
    """Does oslo's ``mask_dict_password`` treat ``key`` as a secret?"""
    return (isinstance(key, str)
            and strutils.mask_dict_password({key: "x"})[key] != "x")


def _mask(value: Any) -> Any:
    """A copy of ``value`` with every secret-named key's value replaced.

    Like oslo's ``mask_dict_password`` but the whole value of a secret key
    goes, whatever its type (a nested ``{"auth_password": {...}}`` too),
    lists are walked as well as dicts, and other strings get oslo's
    ``mask_password`` (``password=...`` inside a value).
    """
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_key(k) else _mask(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return strutils.mask_password(value, secret=MASK)
    return value


def masked(connection_data: Any) -> str:
    """Connection data for a message or log, secrets masked, as JSON.

    Masking works on the structure, never on a printed string, so no key
    or value is dropped or shifted.
    """
    return json.dumps(_mask(connection_data), sort_keys=True, default=repr)


def _invalid(connection_data: Mapping[str, Any], field: str,
             reason: str) -> exception.InvalidConnectionData:
    return exception.InvalidConnectionData(
        field=field, reason=reason, data=masked(connection_data))


def legacy_sr_uuid(volume_id: str) -> str:
    """The pre-Mitaka SR name of a volume: ``FA15E-D15C-<volume id>``."""
    if not isinstance(volume_id, str) or not volume_id:
        raise exception.InvalidConnectionData(
            field="volume_id", reason="must be a non-empty string, found %r"
            % (volume_id,), data="{'volume_id': %r}" % (volume_id,))
    return LEGACY_PREFIX + volume_id


def uuid5_sr_uuid(host: str, port: str | int, iqn: str) -> str:
    """The Mitaka-to-Ussuri SR name of an iSCSI target.

    The name string is formatted with ``%s`` exactly as Nova did, so an int
    port 3260 and a string port ``"3260"`` give the same UUID.
    """
    for field, value in (("target host", host), ("target_iqn", iqn)):
        if not isinstance(value, str) or not value:
            raise exception.InvalidConnectionData(
                field=field, reason="must be a non-empty string, found %r"
                % (value,), data="(host=%r, port=%r, iqn=%r)"
                % (host, port, iqn))
    name = "%s/%s/%s" % (host, port, iqn)
    return str(uuid.uuid5(SR_NAMESPACE, name))


def parse_target(connection_data: Mapping[str, Any],
                 default_host: str | None = None,
                 default_port: str | int = DEFAULT_PORT
                 ) -> tuple[str, str | int, str]:
    """Split ``target_portal`` into host and port exactly as Nova 13-21 did.

    Nova took the host as ``portal.split(':')[0]`` (falling back to
    ``[xenserver] target_host`` when that is empty) and the port as
    ``portal.split(':')[1]`` whenever the portal contains a ``:`` (else
    ``[xenserver] target_port``).  That is wrong for IPv6: ``[fe80::1]:3260``
    gives host ``[fe80`` and port ``""``.  Existing SRs were named with that
    split, so it is kept on purpose - compatibility beats elegance here.
    """
    if not isinstance(connection_data, Mapping):
        raise exception.InvalidConnectionData(
            field="connection_data", reason="must be a mapping, found %s"
            % type(connection_data).__name__, data="<not a mapping>")
    portal = connection_data.get("target_portal")
    if portal is not None and not isinstance(portal, str):
        raise _invalid(connection_data, "target_portal",
                       "must be a string, found %r" % (portal,))
    iqn = connection_data.get("target_iqn")
    if not iqn:
        raise _invalid(connection_data, "target_iqn", "is missing or empty")
    if not isinstance(iqn, str):
        raise _invalid(connection_data, "target_iqn",
                       "must be a string, found %r" % (iqn,))
    host = portal.split(":")[0] if portal else ""
    if not host:
        host = default_host or ""
    if not host:
        raise _invalid(connection_data, "target_portal",
                       "gives no host and no default target host is set")
    port = portal.split(":")[1] if portal and ":" in portal else default_port
    return host, port, iqn


def _style_name(connection_data: Mapping[str, Any], style: str,
                default_host: str | None,
                default_port: str | int) -> str | None:
    """The SR name one style gives, or None if the data cannot give it."""
    if style == STYLE_LEGACY:
        volume_id = connection_data.get("volume_id")
        return None if volume_id is None else legacy_sr_uuid(volume_id)
    if not connection_data.get("target_iqn"):
        return None
    return uuid5_sr_uuid(*parse_target(connection_data, default_host,
                                       default_port))


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise exception.InvalidInput(
            reason="SR naming style %r is not one of %s"
            % (style, ", ".join(STYLES)))


def explicit_sr_uuid(connection_data: Mapping[str, Any]) -> str | None:
    """The ``sr_uuid`` given in the connection data, if any."""
    value = connection_data.get("sr_uuid")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(connection_data, "sr_uuid",
                       "must be a non-empty string, found %r" % (value,))
    return value


def sr_uuid_candidates(connection_data: Mapping[str, Any],
                       style: str = STYLE_AUTO,
                       default_host: str | None = None,
                       default_port: str | int = DEFAULT_PORT) -> list[str]:
    """Every name an existing SR of this volume may have, best first.

    The explicit ``sr_uuid`` comes first; then the legacy and uuid5 names in
    the order ``style`` implies (``auto``: legacy, then uuid5, because a
    legacy SR can only exist if it was attached before the upgrade and must
    then be reused).  Names the data cannot give are left out; if none can
    be given at all the data is invalid.
    """
    _check_style(style)
    if not isinstance(connection_data, Mapping):
        raise exception.InvalidConnectionData(
            field="connection_data", reason="must be a mapping, found %s"
            % type(connection_data).__name__, data="<not a mapping>")
    candidates = []
    explicit = explicit_sr_uuid(connection_data)
    if explicit is not None:
        candidates.append(explicit)
    for each in _LOOKUP_ORDER[style]:
        name = _style_name(connection_data, each, default_host, default_port)
        if name is not None and name not in candidates:
            candidates.append(name)
    if not candidates:
        raise _invalid(connection_data, "volume_id/target_iqn",
                       "are both missing: no SR name can be derived")
    return candidates


def preferred_sr_uuid(connection_data: Mapping[str, Any],
                      style: str = STYLE_AUTO,
                      default_host: str | None = None,
                      default_port: str | int = DEFAULT_PORT) -> str:
    """The name a *new* SR for this volume gets.

    Explicit ``sr_uuid`` first; otherwise ``legacy`` style gives the legacy
    name and ``auto``/``uuid5`` give the uuid5 name (``auto`` reuses a legacy
    SR only when one already exists, which is the caller's look-up to make).
    """
    _check_style(style)
    explicit = explicit_sr_uuid(connection_data)
    if explicit is not None:
        return explicit
    if style == STYLE_LEGACY:
        return legacy_sr_uuid(connection_data.get("volume_id"))
    return uuid5_sr_uuid(*parse_target(connection_data, default_host,
                                       default_port))


def classify(sr_uuid: str) -> str:
    """Tell which scheme made an SR name: ``legacy``, ``uuid5`` or ``other``.

    A uuid5 name cannot be checked against its inputs here, so any RFC 4122
    version-5 UUID counts as ``uuid5``.
    """
    if not isinstance(sr_uuid, str):
        return "other"
    if sr_uuid.startswith(LEGACY_PREFIX):
        return STYLE_LEGACY
    try:
        parsed = uuid.UUID(sr_uuid)
    except ValueError:
        return "other"
    if parsed.version == 5 and str(parsed) == sr_uuid.lower():
        return STYLE_UUID5
    return "other"
