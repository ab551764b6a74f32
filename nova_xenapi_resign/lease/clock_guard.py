"""The clock guard before a cross-pool migration of an LVHD volume.

The lease never compares clocks; what does (VM and tapdisk timeouts, an
operator lining up two pools' logs) is protected by refusing a migration
when the two hosts' clocks, as ``host.get_servertime`` reports them, differ
by more than ``[xenapi_resign] max_clock_skew`` seconds.
"""

from __future__ import annotations

import datetime
from typing import Union
import xmlrpc.client

from oslo_log import log as logging

from nova_xenapi_resign import exception

LOG = logging.getLogger(__name__)

ServerTime = Union[str, datetime.datetime, xmlrpc.client.DateTime]
_XAPI_FORMATS = ("%Y%m%dT%H:%M:%SZ", "%Y%m%dT%H:%M:%S")


def parse_servertime(value: ServerTime) -> datetime.datetime:
    """``host.get_servertime``'s answer as an aware UTC datetime.

    XAPI sends an XML-RPC dateTime (``20261201T22:13:15Z``); the XenAPI
    client hands it over as ``xmlrpc.client.DateTime`` or a string.
    """
    if isinstance(value, datetime.datetime):
        parsed = value
    else:
        text = str(value.value if isinstance(value, xmlrpc.client.DateTime)
                   else value)
        for fmt in _XAPI_FORMATS:
            try:
                parsed = datetime.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise exception.InvalidInput(
                reason="host.get_servertime returned %r; expected an "
                "XML-RPC dateTime like 20261201T22:13:15Z" % (text,))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def check_clock_skew(source: str, source_time: ServerTime, dest: str,
                     dest_time: ServerTime, max_skew: float,
                     elapsed: float = 0.0, override: bool = False) -> float:
    """Return the skew in seconds, or raise :class:`ClockSkewTooLarge`.

    ``elapsed`` is the local monotonic time between the two
    ``get_servertime`` calls; it is allowed on top of ``max_skew``.
    ``max_skew`` 0 disables the check; ``override`` turns a refusal into a
    logged warning (the operator's explicit choice).
    """
    a, b = parse_servertime(source_time), parse_servertime(dest_time)
    skew = max(0.0, abs((b - a).total_seconds()) - max(0.0, elapsed))
    if not max_skew or skew <= max_skew:
        return skew
    error = exception.ClockSkewTooLarge(
        source=source, source_time=a.isoformat(), dest=dest,
        dest_time=b.isoformat(), skew=skew, max_skew=max_skew)
    if override:
        LOG.warning("Operator override: %s", error.msg)
        return skew
    raise error
