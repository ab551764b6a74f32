"""XML-RPC transport for simulated pools.

Each pool is served by its own threaded ``SimpleXMLRPCServer`` on
127.0.0.1 (port 0 = any free port).  Requests are decoded with
``use_builtin_types=True``; a request with a ``<base64>`` value is refused
with HTTP 500, as real XAPI refuses it.

``serve(san_dir, pools=2)`` starts a SAN and N pools and returns a
:class:`Simulation` (``.urls``, ``.pools``, ``.san``, ``.stop()``).
"""

from __future__ import annotations

import socketserver
import threading
from xmlrpc.server import SimpleXMLRPCRequestHandler
from xmlrpc.server import SimpleXMLRPCServer

from nova_xenapi_resign.simulator import api
from nova_xenapi_resign.simulator import san as sanmod


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ()  # any path: XAPI answers on "/" and clients vary

    def log_message(self, format, *args):  # quiet
        pass


class _ThreadedServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def _marshaled_dispatch(self, data, dispatch_method=None, path=None):
        # XAPI parses a request with ocaml-rpc's Xmlrpc.call_of_string
        # (xen-api ocaml/xapi/api_server.ml), whose parser has no <base64>
        # (mirage/ocaml-rpc src/lib/xmlrpc.ml before 7.1.0; later versions
        # parse it, but Rpc.string_of_rpc in src/lib/rpc.ml still refuses
        # it where XAPI wants a string, and no XAPI parameter is binary).
        # The parse error is no Server_error: api_server.ml re-raises it
        # and the HTTP server answers "500 Internal Error".  Raising here
        # makes SimpleXMLRPCRequestHandler.do_POST answer 500 likewise.
        if b"<base64>" in data:
            raise ValueError("XML-RPC <base64> is not accepted by XAPI")
        return super()._marshaled_dispatch(data, dispatch_method, path)


class _Dispatcher(object):
    def __init__(self, pool):
        self.pool = pool

    def _dispatch(self, method, params):
        return self.pool.dispatch(method, params)


class PoolServer(object):
    """One pool behind one XML-RPC server."""

    def __init__(self, pool, host="127.0.0.1", port=0):
        self.pool = pool
        self._server = _ThreadedServer((host, port), requestHandler=_Handler,
                                       logRequests=False, allow_none=True,
                                       use_builtin_types=True)
        self._server.register_instance(_Dispatcher(pool))
        addr, port = self._server.server_address[:2]
        self.url = "http://%s:%d" % (addr, port)
        pool.url = self.url
        self._thread = None

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="xapi-sim-%s" % self.pool.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        self.pool.wait_tasks(5)
        self.pool.unregister()


class Simulation(object):
    """A SAN and the pools started on it."""

    def __init__(self, san, servers):
        self.san = san
        self.servers = servers

    @property
    def pools(self):
        return [s.pool for s in self.servers]

    @property
    def urls(self):
        return [s.url for s in self.servers]

    def stop(self):
        for server in self.servers:
            server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve(san_dir, pools=2, hosts=1, host="127.0.0.1", port=0,
          settings=None, credentials=None, lvhd_reader=None, names=None):
    """Start ``pools`` pools over the SAN in ``san_dir``.

    ``port`` 0 picks free ports; any other value is the first of
    consecutive ports.  ``settings`` (a dict, or a list of dicts, one per
    pool) overrides :data:`api.DEFAULT_SETTINGS`.
    """
    san = sanmod.San(san_dir)
    servers = []
    try:
        for i in range(int(pools)):
            pool_settings = settings
            if isinstance(settings, (list, tuple)):
                pool_settings = settings[i]
            name = names[i] if names else "pool%d" % i
            pool = api.Pool(san, name=name, hosts=hosts,
                            settings=pool_settings, credentials=credentials,
                            lvhd_reader=lvhd_reader)
            servers.append(PoolServer(pool, host,
                                      port + i if port else 0).start())
    except Exception:
        for server in servers:
            server.stop()
        raise
    return Simulation(san, servers)


def run(san_dir, pools=2, out=None, **kwargs):
    """Serve until interrupted, printing one ``name url`` line per pool."""
    import sys
    import time
    out = out or sys.stdout
    sim = serve(san_dir, pools, **kwargs)
    try:
        for pool in sim.pools:
            out.write("%s %s\n" % (pool.name, pool.url))
        out.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0
