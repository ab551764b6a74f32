"""os-xenapi 0.3.4's pickled plugin calls, made to work from Python 3.

os-xenapi's ``XenAPISession.call_plugin_serialized`` is what Nova 21 uses
for every dom0 plugin with arguments (``dom0_plugin_version.get_version``,
checked while the session is created, glance, partition, agent,
bandwidth...)::

    params = {'params': pickle.dumps(dict(args=args, kwargs=kwargs))}
    return pickle.loads(self.call_plugin(plugin, fn, params))

It was written for Python 2, where ``pickle.dumps`` returns a ``str``
(protocol 0, text).  On Python 3 it fails against a real host, three ways:

1. ``pickle.dumps`` returns ``bytes`` (protocol 3; 4 from Python 3.8), which
   ``xmlrpc.client`` marshals as ``<base64>``.  ``host.call_plugin`` takes
   ``args`` as a map of strings: XAPI's XML-RPC parser has no ``<base64>``
   (xen-api ``ocaml/xapi/api_server.ml`` parses with ocaml-rpc's
   ``Xmlrpc.call_of_string``; before ocaml-rpc 7.1.0 a ``<base64>`` is a
   parse error, since then ``Rpc.string_of_rpc`` in ``src/lib/rpc.ml``
   still refuses the value for a string parameter), so the call fails.
2. Even as a string, protocol 3 or 4 cannot be read by the dom0 plugins of
   XenServer up to 8.2, which run Python 2 (highest protocol 2, and 2 is
   binary, not text an XML string can carry).
3. The plugin answers ``pickle.dumps(result)`` (Python 2, protocol 0) as
   the string ``host.call_plugin`` returns (xen-api
   ``ocaml/xapi/xapi_plugins.ml``); Python 3's ``pickle.loads`` refuses a
   ``str``.

:func:`install` replaces that one method: arguments are pickled with
protocol 0 (ASCII text both Pythons read) and sent as a string; a string
reply is turned back into the bytes it stands for before unpickling.  A
session that is not XML-RPC (Nova's unit tests' in-process fake, which
pickles with Python 3 itself) keeps os-xenapi's behaviour.  Nothing else of
os-xenapi changes.
"""

from __future__ import annotations

import pickle
from typing import Any

from nova_xenapi_resign import exception

#: The pickle protocol dom0's Python 2 plugins read and XML can carry.
PROTOCOL = 0

_ORIGINAL = "_nova_xenapi_resign_original_call_plugin_serialized"


def dumps(plugin: str, fn: str, args: tuple, kwargs: dict) -> str:
    """The ``params`` string of a plugin call (protocol 0, ASCII)."""
    blob = pickle.dumps(dict(args=args, kwargs=kwargs), protocol=PROTOCOL)
    try:
        return blob.decode("ascii")
    except UnicodeDecodeError:
        raise exception.InvalidPluginArguments(
            plugin=plugin, fn=fn,
            reason="non-ASCII text cannot be passed to a dom0 plugin "
            "as a protocol-0 pickle") from None


def loads(reply: Any) -> Any:
    """Unpickle a plugin's reply: a string (real XAPI) or bytes."""
    if isinstance(reply, str):
        reply = reply.encode("latin-1")
    return pickle.loads(reply)


def _is_xmlrpc(session: Any, xenapi_module: Any) -> bool:
    return isinstance(session, xenapi_module.Session)


def install() -> None:
    """Patch ``os_xenapi.client.session.XenAPISession`` (idempotent)."""
    from os_xenapi.client import session as xenapi_session

    cls = xenapi_session.XenAPISession
    if hasattr(cls, _ORIGINAL):
        return
    original = cls.call_plugin_serialized

    def call_plugin_serialized(self, plugin, fn, *args, **kwargs):
        with self._get_session() as session:
            wire = _is_xmlrpc(session, xenapi_session.XenAPI)
        if not wire:
            return original(self, plugin, fn, *args, **kwargs)
        params = {"params": dumps(plugin, fn, args, kwargs)}
        return loads(self.call_plugin(plugin, fn, params))

    call_plugin_serialized.__doc__ = original.__doc__
    setattr(cls, _ORIGINAL, original)
    cls.call_plugin_serialized = call_plugin_serialized
