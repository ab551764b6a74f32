"""A pool: its database, settings and XAPI method dispatch.

:class:`Pool` is the whole of one simulated XAPI pool, independent of any
transport: ``pool.dispatch(method, params)`` takes an XML-RPC method name and
its parameter list (session ref first, as on the wire) and returns XAPI's
response envelope.  :mod:`server` puts it behind XML-RPC.

Methods are either registered explicitly (storage, migration, sessions,
plugins, tasks) or generic per class: ``get_record``, ``get_all``,
``get_all_records``, ``get_all_records_where``, ``get_by_uuid``,
``get_by_name_label``, ``get_<field>``, ``set_<field>``,
``add_to_<map>``/``remove_from_<map>``.  ``Async.<Class>.<method>`` runs any
method in a task and returns the task ref at once.
"""

from __future__ import annotations

import collections
import copy
import datetime
import io
import json
import os
import pickle
import threading
import traceback
import uuid as uuidlib
import xmlrpc.client

from oslo_log import log as logging

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator.errors import XapiError
from nova_xenapi_resign.simulator import lease
from nova_xenapi_resign.simulator import migration
from nova_xenapi_resign.simulator import sm
from nova_xenapi_resign.simulator import storage
from nova_xenapi_resign.simulator import vm

LOG = logging.getLogger(__name__)

# Pools reachable from VM.migrate_send, keyed by their pool id (the
# "sim_pool" key of a migrate_receive token).  Real XAPI talks to the
# destination over the network; an in-process registry is enough here.
REGISTRY = {}
_REGISTRY_LOCK = threading.Lock()

DEFAULT_SETTINGS = {
    # xapi.conf relax-xsm-sr-check: True/False, or None for "not set"
    # (config_file.get_val then answers "" and XAPI's default, true, holds).
    "relax-xsm-sr-check": True,
    # Answer a duplicate SR.introduce with the pre-2013 INTERNAL_ERROR text
    # instead of SR_UUID_EXISTS.
    "legacy_errors": False,
    "plugin_version": "2.1",
    "product_version": "7.1.2",
    "product_brand": "XenServer",
    "platform_name": "XCP",
    "platform_version": "2.2.0",
    # Give every host a local "ext" SR; the master's is the pool default SR.
    "local_sr": True,
    # Seconds this pool's hosts' wall clocks are ahead of this machine's
    # (host.get_servertime, the lease records' operator time).
    "clock_offset": 0.0,
}

_CLASS_BY_LOWER = {c.lower(): c for c in dbmod.CLASSES}


def _now():
    return xmlrpc.client.DateTime(
        datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y%m%dT%H:%M:%SZ"))


class _SafeUnpickler(pickle.Unpickler):
    """Plugin arguments are pickled by os-xenapi; allow plain data only."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError("global %s.%s is forbidden"
                                     % (module, name))


class Method(object):
    def __init__(self, func, nargs, optional=0, locked=True, counted=True):
        self.func = func
        self.max_args = nargs
        self.min_args = nargs - optional
        self.locked = locked
        self.counted = counted


class Pool(object):
    """One simulated XAPI pool."""

    def __init__(self, san, name="pool", hosts=1, settings=None,
                 credentials=None, lvhd_reader=None, registry=None):
        self.san = san
        self.name = name
        self.pool_id = str(uuidlib.uuid4())
        self.settings = dict(DEFAULT_SETTINGS)
        self.settings.update(settings or {})
        self.credentials = credentials  # (user, password) or None: any
        self.lvhd_reader = lvhd_reader
        self.registry = REGISTRY if registry is None else registry
        # Where relvmoiscsi keeps its pre-write backups (dom0's disk).
        self.backup_dir = os.path.join(san.root, ".resign-backups", name)
        self.lock_dir = os.path.join(san.root, ".locks")
        self.url = None
        self.lock = threading.RLock()
        self.db = dbmod.Database()
        self.methods = {}
        self.hazards = []
        self.migrations = []
        #: os-xenapi's xenstore.py plugin: {(dom_id, path): value}.
        self.xenstore = {}
        self.call_total = 0
        self.calls_by_method = collections.Counter()
        self.calls_by_session = collections.Counter()
        self._count_lock = threading.Lock()
        self._task_threads = []

        self._register_core()
        storage.register(self)
        vm.register(self)
        migration.register(self)
        lease.register(self)
        self._bootstrap(hosts)
        with _REGISTRY_LOCK:
            self.registry[self.pool_id] = self

    # --- setup -----------------------------------------------------------

    def _bootstrap(self, nhosts):
        db = self.db
        net = db.create("network",
                        name_label="Pool-wide network associated with eth0",
                        bridge="xenbr0")
        self.master = None
        for i in range(max(1, int(nhosts))):
            host = db.create(
                "host", name_label="%s-host%d" % (self.name, i),
                hostname="%s-host%d" % (self.name, i),
                address="127.0.0.1",
                software_version={
                    "product_version": self.settings["product_version"],
                    "product_brand": self.settings["product_brand"],
                    "platform_name": self.settings["platform_name"],
                    "platform_version": self.settings["platform_version"],
                    "xapi": "1.20"})
            if self.master is None:
                self.master = host
            db.create("PIF", host=host, network=net, device="eth0",
                      management=True, IP="192.0.2.%d" % (i + 10),
                      netmask="255.255.255.0",
                      MAC="02:00:00:00:00:%02x" % i)
            db.create("VM", name_label="Control domain on host: %s"
                      % db.get("host", host, "name_label"),
                      is_control_domain=True, power_state="Running",
                      resident_on=host, domid=0)
        self.pool_ref = db.create("pool", name_label=self.name,
                                  master=self.master)
        self.network = net
        if self.settings.get("local_sr"):
            for host in db.all_refs("host"):
                sr = sm.create_local_sr(self, host)
                if host == self.master:
                    db.set("pool", self.pool_ref, "default_SR", sr)

    def unregister(self):
        with _REGISTRY_LOCK:
            if self.registry.get(self.pool_id) is self:
                del self.registry[self.pool_id]

    def wait_tasks(self, timeout=10):
        for t in list(self._task_threads):
            t.join(timeout)

    # --- registration ----------------------------------------------------

    def register(self, name, func, nargs, optional=0, locked=True,
                 counted=True):
        """``func(pool, session, *args)``; ``nargs`` excludes the session."""
        self.methods[name] = Method(func, nargs, optional, locked, counted)

    def _register_core(self):
        reg = self.register
        reg("session.login_with_password", _login, 4, optional=2)
        reg("session.slave_local_login_with_password", _login, 2)
        reg("session.logout", _logout, 0)
        reg("session.local_logout", _logout, 0)
        reg("session.get_this_host", _get_this_host, 1)
        # Unlocked, as XAPI runs plugins: a lease acquire waits D + T in
        # dom0 while the pool goes on (the plugins lock what they touch).
        reg("host.call_plugin", _call_plugin, 4, locked=False)
        reg("task.create", _task_create, 2)
        reg("task.destroy", _task_destroy, 1)
        reg("task.cancel", _task_cancel, 1)
        reg("debug.get_call_count", _debug_call_count, 0, counted=False)
        reg("debug.reset", _debug_reset, 0, counted=False)
        reg("debug.get_hazards", _debug_hazards, 0, counted=False)
        reg("debug.clear_hazards", _debug_clear_hazards, 0, counted=False)
        reg("debug.get_migrations", _debug_migrations, 0, counted=False)
        reg("debug.get_settings", _debug_settings, 0, counted=False)
        reg("debug.set_setting", _debug_set_setting, 2, counted=False)

    # --- dispatch --------------------------------------------------------

    def dispatch(self, name, params):
        """Run one XAPI call; return the response envelope."""
        params = list(params)
        try:
            value = self._call(name, params)
        except XapiError as exc:
            return {"Status": "Failure", "ErrorDescription": exc.details}
        except Exception as exc:  # a simulator bug: show it as XAPI would
            LOG.error("simulator error in %s: %s", name,
                      traceback.format_exc())
            return {"Status": "Failure",
                    "ErrorDescription": ["INTERNAL_ERROR",
                                         "%s: %s" % (type(exc).__name__,
                                                     exc)]}
        return {"Status": "Success", "Value": dbmod.marshal(value)}

    def _resolve(self, name):
        method = self.methods.get(name)
        if method is not None:
            return method
        cls, _, op = name.partition(".")
        canon = _CLASS_BY_LOWER.get(cls.lower())
        if canon is None or not op:
            raise errors.message_method_unknown(name)
        method = self.methods.get("%s.%s" % (canon, op))
        if method is not None:
            return method
        return _generic(canon, op, name)

    def _count(self, name, session):
        with self._count_lock:
            self.call_total += 1
            self.calls_by_method[name] += 1
            if session:
                self.calls_by_session[session] += 1

    def _call(self, name, params):
        is_async = name.startswith("Async.")
        inner = name[len("Async."):] if is_async else name
        method = self._resolve(inner)
        login = inner.startswith("session.") and "login" in inner \
            and "logout" not in inner
        session = None if login else (params[0] if params else "")
        if method.counted:
            self._count(name, session)
        expected = method.max_args + (0 if login else 1)
        low = method.min_args + (0 if login else 1)
        if not low <= len(params) <= expected:
            raise errors.parameter_count_mismatch(name, expected,
                                                  len(params))
        if not login:
            with self.lock:
                self.check_session(session)
        if is_async:
            return self._start_task(inner, method, params)
        value = self._invoke(method, params, login)
        if inner.startswith(lease.CHECKED_PREFIXES):
            with self.lock:
                lease.check_hazards(self)
        return value

    def _invoke(self, method, params, login=False):
        args = [None] + params if login else params
        if method.locked:
            with self.lock:
                return method.func(self, *args)
        return method.func(self, *args)

    def check_session(self, ref):
        if not isinstance(ref, str) or not self.db.exists("session", ref):
            raise errors.session_invalid(ref)
        return ref

    # --- tasks -----------------------------------------------------------

    def _start_task(self, inner, method, params):
        with self.lock:
            task = self.db.create("task", name_label="Async.%s" % inner,
                                  status="pending", created=_now(),
                                  resident_on=self.master)

        def run():
            try:
                value = self._invoke(method, params)
                result = _task_result_xml(dbmod.marshal(value))
                fields = dict(status="success", result=result,
                              progress=1.0, error_info=[])
            except XapiError as exc:
                fields = dict(status="failure", error_info=exc.details,
                              progress=1.0)
            except Exception as exc:
                LOG.error("simulator error in task %s: %s", inner,
                          traceback.format_exc())
                fields = dict(status="failure", progress=1.0,
                              error_info=["INTERNAL_ERROR", str(exc)])
            with self.lock:
                if self.db.exists("task", task):
                    rec = self.db.raw("task", task)
                    if rec["status"] == "pending":
                        rec.update(fields)
                    rec["finished"] = _now()

        thread = threading.Thread(target=run, name="task-%s" % inner,
                                  daemon=True)
        self._task_threads = [t for t in self._task_threads
                              if t.is_alive()] + [thread]
        thread.start()
        return task

    # --- helpers for the method modules ----------------------------------

    def failure_for_duplicate_sr(self, uuid):
        if self.settings.get("legacy_errors"):
            return errors.uniqueness_violation("SR", "uuid", uuid)
        return errors.sr_uuid_exists(uuid)

    def record_hazard(self, hazard):
        with self.lock:
            self.hazards.append(dict(hazard))

    def relaxed(self):
        value = self.settings.get("relax-xsm-sr-check")
        return True if value is None else bool(value)


def _task_result_xml(value):
    if value == "":
        return ""
    if isinstance(value, str):
        from xml.sax.saxutils import escape
        return "<value>%s</value>" % escape(value)
    text = xmlrpc.client.dumps((value,))
    start = text.index("<value>")
    end = text.rindex("</value>") + len("</value>")
    return text[start:end].replace("\n", "")


# --- generic per-class methods ---------------------------------------------

def _generic(cls, op, name):
    fields = dbmod.fields_of(cls)
    stored = dbmod.DEFAULTS[cls]

    if op == "get_record":
        return Method(lambda p, s, ref: p.db.record(cls, ref), 1)
    if op == "get_all":
        return Method(lambda p, s: p.db.all_refs(cls), 0)
    if op == "get_all_records":
        return Method(lambda p, s: p.db.all_records(cls), 0)
    if op == "get_all_records_where":
        def where(p, s, expr):
            try:
                return p.db.where(cls, expr)
            except dbmod.QueryError as exc:
                raise errors.internal_error(str(exc))
        return Method(where, 1)
    if op == "get_by_uuid":
        return Method(lambda p, s, uuid: p.db.by_uuid(cls, uuid), 1)
    if op == "get_by_name_label" and "name_label" in stored:
        return Method(lambda p, s, label: p.db.find(cls, name_label=label), 1)
    if op.startswith("get_") and op[4:] in fields:
        field = op[4:]
        return Method(lambda p, s, ref: copy.deepcopy(
            p.db.get(cls, ref, field)), 1)
    if op.startswith("set_") and op[4:] in stored and op[4:] != "uuid":
        field = op[4:]

        def setter(p, s, ref, value):
            p.db.raw(cls, ref)
            p.db.set(cls, ref, field, dbmod.coerce(cls, field, value))
            return ""
        return Method(setter, 2)
    for prefix in ("add_to_", "remove_from_"):
        if op.startswith(prefix):
            field = op[len(prefix):]
            if not isinstance(stored.get(field), dict):
                break
            if prefix == "add_to_":
                def add(p, s, ref, key, value):
                    mapping = p.db.raw(cls, ref)[field]
                    if key in mapping:
                        raise errors.map_duplicate_key(cls, field, ref, key)
                    mapping[str(key)] = value
                    return ""
                return Method(add, 3)

            def remove(p, s, ref, key):
                p.db.raw(cls, ref)[field].pop(key, None)
                return ""
            return Method(remove, 2)
    raise errors.message_method_unknown(name)


# --- sessions, plugins, tasks, debug ----------------------------------------

def _login(pool, _none, user, password, version="1.0", originator=""):
    if pool.credentials is not None and \
            (user, password) != tuple(pool.credentials):
        raise errors.session_authentication_failed(user)
    return pool.db.create("session", this_host=pool.master,
                          originator=str(originator), auth_user_name=user,
                          last_active=_now(), validation_time=_now())


def _logout(pool, session):
    pool.db.destroy("session", session)
    return ""


def _get_this_host(pool, session, self_ref):
    return pool.db.get("session", pool.check_session(self_ref), "this_host")


def _call_plugin(pool, session, host, plugin, fn, args):
    """``host.call_plugin``: ``args`` a map of strings, the result a string.

    xen-api ``ocaml/xapi/xapi_plugins.ml``: the args are a
    ``Map(String, String)`` marshalled into the plugin's XML-RPC call, and
    the plugin's XML-RPC reply must be one string (``XMLRPC.From.string``).
    A ``<base64>`` never gets here: the server refuses the request as
    XAPI's parser does (:mod:`.server`).  Errors are those of the plugin
    side's ``XenAPIPlugin.dispatch`` (xen-api
    ``scripts/examples/python/XenAPIPlugin.py``): ``XENAPI_PLUGIN_FAILURE
    [fn, class, message]`` for an exception, ``UNKNOWN_XENAPI_PLUGIN_FUNCTION
    [fn]``; a plugin not installed is ``XENAPI_MISSING_PLUGIN [name]``.
    """
    with pool.lock:
        pool.db.raw("host", host)
    if not isinstance(args, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in args.items()):
        raise errors.field_type_error("args")
    name = plugin[:-3] if plugin.endswith(".py") else plugin
    if name == lease.NAME:
        serialized, functions = False, lease.functions(pool, host)
    elif name in _PLUGINS:
        serialized, functions = _PLUGINS[name]
    else:
        functions = None
    if functions is None:
        raise errors.xenapi_missing_plugin(plugin)
    func = functions.get(fn)
    if func is None:
        raise errors.unknown_xenapi_plugin_function(fn)
    try:
        if serialized:
            params = _py2_unpickle(args["params"])
            result = _py2_pickle(func(pool, *params["args"],
                                      **params["kwargs"]))
        else:
            result = func(pool, args)
    except XapiError:
        raise
    except Exception as exc:
        raise errors.xenapi_plugin_failure(fn, type(exc).__name__, str(exc))
    if not isinstance(result, str):
        raise errors.internal_error("plugin %s.%s returned %s, not a string"
                                    % (name, fn, type(result).__name__))
    return result


def _py2_unpickle(text):
    """``pickle.loads`` as dom0's plugins run it (plain data only).

    os-xenapi's ``dom0/etc/xapi.d/plugins/utils.py`` unpickles ``params``
    with Python 2 on XenServer up to 8.2; the plugin gets the string's
    UTF-8 bytes.  (A pickle of protocol 2 or more is binary: it cannot
    reach a plugin as XML-RPC text at all.)
    """
    return _SafeUnpickler(io.BytesIO(text.encode("utf-8"))).load()


def _py2_pickle(value):
    """What a Python 2 plugin returns: ``pickle.dumps`` (protocol 0, text)."""
    return pickle.dumps(value, protocol=0).decode("ascii")


def _get_version(pool):
    with pool.lock:
        return pool.settings["plugin_version"]


def _config_get(pool, args):
    """os-xenapi's config_file.get_val: the xapi.conf value, else ""."""
    with pool.lock:
        value = pool.settings.get(args["key"])
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _jsonify(value):
    """os-xenapi xenstore.py's ``jsonify``: JSON text stays, else dumps."""
    try:
        json.loads(value)
    except ValueError:
        return json.dumps(value)
    return value


class XenstoreError(Exception):
    """os-xenapi xenstore.py's error for a failing xenstore command."""


def _xenstore_key(args):
    return (args["dom_id"], args["path"])


def _xenstore_read(pool, args):
    """The plugin's read_record: JSON; ``'"None"'`` for a missing path.

    A missing path is an error unless ``ignore_missing_path`` is given
    (any non-empty string: the plugin tests its truth).
    """
    with pool.lock:
        value = pool.xenstore.get(_xenstore_key(args))
    if value is not None:
        return _jsonify(value.strip())
    if not args.get("ignore_missing_path"):
        raise XenstoreError("xenstore-read /local/domain/%s/%s: no such "
                            "path" % _xenstore_key(args))
    return _jsonify("None")


def _xenstore_write(pool, args):
    with pool.lock:
        pool.xenstore[_xenstore_key(args)] = args["value"]
    return _jsonify(args["value"])


def _xenstore_delete(pool, args):
    with pool.lock:
        pool.xenstore.pop(_xenstore_key(args), None)
    return _jsonify("")


#: The dom0 plugins of os-xenapi 0.3.4 (``os_xenapi/dom0/etc/xapi.d/
#: plugins``) Nova's XenAPI driver calls here: ``{name: (serialized,
#: {fn: func})}``.  ``serialized`` plugins go through ``utils.
#: register_plugin_calls`` (pickled ``params`` in, pickled result out,
#: ``func(pool, *args, **kwargs)``); the others take the args map
#: (``func(pool, args)``).
_PLUGINS = {
    "dom0_plugin_version": (True, {"get_version": _get_version}),
    "config_file": (False, {"get_val": _config_get}),
    "xenstore": (False, {"read_record": _xenstore_read,
                         "write_record": _xenstore_write,
                         "delete_record": _xenstore_delete}),
}


def _task_create(pool, session, label, description):
    return pool.db.create("task", name_label=label,
                          name_description=description, created=_now(),
                          resident_on=pool.master)


def _task_destroy(pool, session, task):
    pool.db.destroy("task", task)
    return ""


def _task_cancel(pool, session, task):
    rec = pool.db.raw("task", task)
    if rec["status"] == "pending":
        rec["status"] = "cancelled"
        rec["finished"] = _now()
    return ""


def _debug_call_count(pool, session):
    with pool._count_lock:
        return {"total": pool.call_total,
                "by_method": dict(pool.calls_by_method),
                "by_session": dict(pool.calls_by_session),
                "this_session": pool.calls_by_session.get(session, 0)}


def _debug_reset(pool, session):
    with pool._count_lock:
        pool.call_total = 0
        pool.calls_by_method.clear()
        pool.calls_by_session.clear()
    return ""


def _debug_hazards(pool, session):
    return [dict(h) for h in pool.hazards]


def _debug_clear_hazards(pool, session):
    del pool.hazards[:]
    return ""


def _debug_migrations(pool, session):
    return [dict(m) for m in pool.migrations]


def _debug_settings(pool, session):
    return {k: ("" if v is None else v) for k, v in pool.settings.items()}


def _debug_set_setting(pool, session, key, value):
    if key not in DEFAULT_SETTINGS:
        raise errors.internal_error("unknown setting %s" % key)
    if isinstance(DEFAULT_SETTINGS[key], bool) and isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower(), None)
    pool.settings[key] = value
    return ""
