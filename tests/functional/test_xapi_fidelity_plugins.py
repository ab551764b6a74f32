"""The embedded XAPI's ``host.call_plugin`` is as strict as a real host.

Issue 11, rule 7, through the PyPI ``XenAPI`` client over XML-RPC.  Each
test names the real source it reproduces.  The dom0 plugins are those of
os-xenapi 0.3.4 (``os_xenapi/dom0/etc/xapi.d/plugins``) that Nova 21 calls.
"""

import pickle
import xmlrpc.client

import XenAPI

from nova_xenapi_resign.simulator import fixture as simfixture
from tests import base


class PluginFidelityTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=1, san_dir=self.tmpdir + "/san"))
        self.x = self.sim.session(0).xenapi
        self.host = self.x.host.get_all()[0]

    def call(self, plugin, fn, args):
        return self.x.host.call_plugin(self.host, plugin, fn, args)

    def assert_failure(self, details, plugin, fn, args):
        exc = self.assertRaises(XenAPI.Failure, self.call, plugin, fn, args)
        self.assertEqual(details, exc.details)

    # --- the wire: a map of strings in, a string out -----------------------

    def test_base64_argument_is_refused_like_xapis_parser(self):
        # xen-api ocaml/xapi/api_server.ml parses with ocaml-rpc's
        # Xmlrpc.call_of_string (no <base64> before ocaml-rpc 7.1.0;
        # src/lib/rpc.ml string_of_rpc refuses it for a string later); the
        # parse error is re-raised and answered "500 Internal Error".
        # What os-xenapi 0.3.4 on Python 3 sends: pickle.dumps() bytes.
        blob = pickle.dumps({"args": (), "kwargs": {}})
        exc = self.assertRaises(
            xmlrpc.client.ProtocolError, self.call, "dom0_plugin_version.py",
            "get_version", {"params": blob})
        self.assertEqual(500, exc.errcode)
        # Nothing ran: the call was never dispatched.
        counts = self.x.debug.get_call_count()["by_method"]
        self.assertNotIn("host.call_plugin", counts)

    def test_base64_is_refused_for_any_method(self):
        exc = self.assertRaises(xmlrpc.client.ProtocolError,
                                self.x.VM.get_by_name_label, b"\x00vm")
        self.assertEqual(500, exc.errcode)

    def test_non_string_argument_value_is_a_field_type_error(self):
        # xen-api ocaml/xapi/xapi_plugins.ml: args is Map(String, String).
        self.assert_failure(["FIELD_TYPE_ERROR", "args"], "config_file.py",
                            "get_val", {"key": 1})

    def test_pickled_call_takes_and_returns_protocol_0_text(self):
        # os-xenapi dom0 utils.py register_plugin_calls: pickle.loads of
        # params, pickle.dumps of the result, by dom0's Python 2 (protocol
        # 0 by default, text).  The reply is a string (xapi_plugins.ml
        # XMLRPC.From.string).
        params = pickle.dumps({"args": (), "kwargs": {}}, protocol=0)
        reply = self.call("dom0_plugin_version.py", "get_version",
                          {"params": params.decode("ascii")})
        self.assertIsInstance(reply, str)
        # Python 2's pickle.dumps('2.1') is "S'2.1'\np0\n." (protocol 0).
        self.assertTrue(reply.startswith("V2.1\n") or
                        reply.startswith("S'2.1'"), reply)
        self.assertEqual("2.1", pickle.loads(reply.encode("ascii")))

    def test_pickle_with_globals_is_refused(self):
        params = pickle.dumps({"args": (), "kwargs": {"x": object}},
                              protocol=0).decode("ascii")
        exc = self.assertRaises(XenAPI.Failure, self.call,
                                "dom0_plugin_version.py", "get_version",
                                {"params": params})
        self.assertEqual(["XENAPI_PLUGIN_FAILURE", "get_version",
                          "UnpicklingError"], exc.details[:3])

    # --- XenAPIPlugin.dispatch's errors -------------------------------------

    def test_plugin_exception_is_xenapi_plugin_failure(self):
        # xen-api scripts/examples/python/XenAPIPlugin.py dispatch:
        # [XENAPI_PLUGIN_FAILURE, fn, exception class, str(exception)].
        # os-xenapi config_file.py get_val reads args['key'].
        self.assert_failure(
            ["XENAPI_PLUGIN_FAILURE", "get_val", "KeyError", "'key'"],
            "config_file.py", "get_val", {"host_uuid": "x"})

    def test_unknown_function(self):
        # XenAPIPlugin.py dispatch: [UNKNOWN_XENAPI_PLUGIN_FUNCTION, fn].
        self.assert_failure(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "nope"],
                            "config_file.py", "nope", {})

    def test_missing_plugin(self):
        # xen-api xapi_plugins.ml find_plugin: XENAPI_MISSING_PLUGIN [name].
        self.assert_failure(["XENAPI_MISSING_PLUGIN", "nope.py"],
                            "nope.py", "f", {})

    # --- os-xenapi's plugins ------------------------------------------------

    def test_config_file_get_val(self):
        # os-xenapi config_file.py: the xapi.conf value, "" when unset.
        args = {"key": "relax-xsm-sr-check", "host_uuid": "x"}
        self.assertEqual("true", self.call("config_file.py", "get_val",
                                           args))
        self.x.debug.set_setting("relax-xsm-sr-check", "false")
        self.assertEqual("false", self.call("config_file", "get_val", args))

    def test_xenstore_replies_are_json(self):
        # os-xenapi xenstore.py: @jsonify on every function; a missing path
        # with ignore_missing_path reads as the JSON string "None" (which
        # Nova's vmops compares with '"None"').
        path = {"dom_id": "3", "path": "attr/PVAddons/MajorVersion"}
        read = dict(path, ignore_missing_path="True")
        self.assertEqual('"None"', self.call("xenstore.py", "read_record",
                                             read))
        self.assertEqual('"abc"', self.call("xenstore.py", "write_record",
                                            dict(path, value="abc")))
        self.assertEqual('"abc"', self.call("xenstore.py", "read_record",
                                            read))
        # A value already JSON (Nova writes jsonutils.dumps) stays as is.
        self.assertEqual('{"a": 1}', self.call(
            "xenstore.py", "write_record", dict(path, value='{"a": 1}')))
        self.assertEqual('{"a": 1}', self.call("xenstore.py",
                                               "read_record", read))
        self.assertEqual('""', self.call("xenstore.py", "delete_record",
                                         path))
        self.assertEqual('"None"', self.call("xenstore.py", "read_record",
                                             read))

    def test_xenstore_missing_path_without_ignore_fails(self):
        path = {"dom_id": "3", "path": "data/x"}
        self.assert_failure(
            ["XENAPI_PLUGIN_FAILURE", "read_record", "XenstoreError",
             "xenstore-read /local/domain/3/data/x: no such path"],
            "xenstore.py", "read_record", path)
