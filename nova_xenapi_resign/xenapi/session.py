"""A XAPI session with the interface Nova's XenAPI driver code expects.

Nova's volume and migration helpers call ``session.call_xenapi(method,
*args)`` and read ``session.host_ref`` and ``session.product_version``.  This
adapter gives exactly that over the PyPI ``XenAPI`` client, for tools, the
demo and tests that drive a (real or embedded) XAPI without Nova.
"""

from __future__ import annotations

from typing import Any


class XenAPISession(object):
    """``call_xenapi`` over a logged-in PyPI ``XenAPI.Session``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.xenapi = session.xenapi
        self.host_ref = self.xenapi.session.get_this_host(session.handle)
        software = self.xenapi.host.get_software_version(self.host_ref)
        version = software.get("product_version") or software.get(
            "platform_version", "0.0.0")
        self.product_version = tuple(int(p) for p in version.split(".")[:3])

    def call_xenapi(self, method: str, *args: Any) -> Any:
        """Call ``Class.method`` (or ``Async.Class.method``) with ``args``."""
        return self._session.xenapi_request(method, args)

    def logout(self) -> None:
        self.xenapi.session.logout()


def connect(url: str, user: str = "root", password: str = "",
            originator: str = "nova-xenapi-resign") -> XenAPISession:
    """Log in to the XAPI at ``url`` and wrap the session."""
    import XenAPI
    session = XenAPI.Session(url)
    session.xenapi.login_with_password(user, password, "1.0", originator)
    return XenAPISession(session)
