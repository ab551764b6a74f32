"""os-xenapi 0.3.4's pickled plugin calls against a faithful host.

The embedded XAPI refuses ``<base64>`` and answers plugins with strings, as
XAPI does.
"""

import os
import pickle
import xmlrpc.client

from nova_tests import harness
from nova_tests.harness import STOCK_DRIVER
from nova_xenapi_resign import exception
from nova_xenapi_resign.xenapi import plugin_compat
from tests import base


class TestPluginCompat(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pools = self.useFixture(harness.NovaPools(
            os.path.join(self.tmpdir, "san")))
        # Stock Nova's driver: the fix is os-xenapi's, not the driver's.
        self.session = self.pools.driver(0, STOCK_DRIVER)._session
        self.x = self.pools.x[0]
        self.x.debug.reset()

    def test_why_os_xenapi_fails_on_python3(self):
        # What os-xenapi's own call_plugin_serialized sends on Python 3:
        # pickle.dumps() bytes (protocol 4), marshalled as <base64>.
        params = {"params": pickle.dumps(dict(args=(), kwargs={}))}
        self.assertIsInstance(params["params"], bytes)
        exc = self.assertRaises(xmlrpc.client.ProtocolError,
                                self.session.call_plugin,
                                "dom0_plugin_version.py", "get_version",
                                params)
        self.assertEqual(500, exc.errcode)
        # A real plugin's reply is a str, which pickle.loads refuses.
        reply = self.session.call_plugin(
            "dom0_plugin_version.py", "get_version",
            {"params": plugin_compat.dumps("p", "f", (), {})})
        self.assertIsInstance(reply, str)
        self.assertRaises(TypeError, pickle.loads, reply)

    def test_serialized_call_works(self):
        # Nova's session creation already called it (the version check).
        self.assertEqual("2.1", self.session.call_plugin_serialized(
            "dom0_plugin_version.py", "get_version"))
        self.assertEqual(1, self.pools.calls_of(0, "host.call_plugin"))

    def test_non_ascii_argument_is_refused_before_any_call(self):
        exc = self.assertRaises(
            exception.InvalidPluginArguments,
            self.session.call_plugin_serialized, "glance.py",
            "download_vhd2", name="caf\u00e9")
        self.assertIn("glance.py download_vhd2", str(exc))
        self.assertEqual(0, self.pools.calls_of(0, "host.call_plugin"))

    def test_protocol_0_is_text_both_pythons_read(self):
        text = plugin_compat.dumps("p", "f", ("a", 1), {"k": None})
        self.assertTrue(text.isascii())
        self.assertEqual({"args": ("a", 1), "kwargs": {"k": None}},
                         plugin_compat.loads(text))
        # Python 2's pickle.dumps({'k': 'v'}) (protocol 0), as a dom0
        # plugin returns it.
        self.assertEqual({"k": "v"}, plugin_compat.loads(
            "(dp0\nS'k'\np1\nS'v'\np2\ns."))
