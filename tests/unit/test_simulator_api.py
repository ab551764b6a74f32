"""Unit tests: dispatch, sessions, plugins and tasks, in-process."""

import os
import pickle
import subprocess
import sys
import time
import urllib.request

from nova_xenapi_resign.simulator import api
from nova_xenapi_resign.simulator import fixture
from nova_xenapi_resign.simulator import san as sanmod
from tests import base


class DispatchTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.pool = api.Pool(sanmod.San(os.path.join(self.tmpdir, "san")),
                             hosts=2, registry={})
        env = self.pool.dispatch("session.login_with_password",
                                 ["root", "pw", "2.1", "unit"])
        self.session = env["Value"]

    def call(self, method, *params):
        return self.pool.dispatch(method, [self.session] + list(params))

    def test_hosts_and_bootstrap(self):
        hosts = self.call("host.get_all")["Value"]
        self.assertEqual(2, len(hosts))
        master = self.call("pool.get_master",
                           self.call("pool.get_all")["Value"][0])["Value"]
        self.assertEqual(self.pool.master, master)
        pifs = self.call("PIF.get_all_records_where",
                         'field "management"="true"')["Value"]
        self.assertEqual(2, len(pifs))
        dom0s = self.call("VM.get_all_records_where",
                          'field "is_control_domain"="true"')["Value"]
        self.assertEqual(2, len(dom0s))

    def test_class_names_case_insensitive(self):
        self.assertEqual("Success", self.call("vm.get_all")["Status"])

    def test_field_type_error(self):
        env = self.call("SR.introduce", "u", "l", "d", "iscsi", "", False,
                        "not-a-map")
        self.assertEqual(["FIELD_TYPE_ERROR", "sm_config"],
                         env["ErrorDescription"])

    def test_optional_arguments(self):
        env = self.call("SR.introduce", "u", "l", "d", "iscsi", "", False)
        self.assertEqual("Success", env["Status"])

    def test_plugin_pickled_text(self):
        # A serialized plugin (os-xenapi utils.register_plugin_calls) takes
        # and returns protocol-0 pickles as strings.
        host = self.pool.master
        params = pickle.dumps({"args": (), "kwargs": {}}, protocol=0)
        env = self.call("host.call_plugin", host, "dom0_plugin_version.py",
                        "get_version", {"params": params.decode("ascii")})
        self.assertEqual("2.1", pickle.loads(env["Value"].encode("ascii")))

    def test_async_task(self):
        env = self.call("Async.SR.introduce", "t", "l", "d", "iscsi", "",
                        False, {})
        task = env["Value"]
        self.pool.wait_tasks()
        rec = self.call("task.get_record", task)["Value"]
        self.assertEqual("success", rec["status"])
        self.assertIn("OpaqueRef:", rec["result"])

    def test_async_unknown_method(self):
        env = self.call("Async.SR.nope")
        self.assertEqual(["MESSAGE_METHOD_UNKNOWN", "SR.nope"],
                         env["ErrorDescription"])

    def test_registry(self):
        registry = {}
        pool = api.Pool(self.pool.san, registry=registry)
        self.assertIs(pool, registry[pool.pool_id])
        pool.unregister()
        self.assertEqual({}, registry)

    def test_task_cancel(self):
        task = self.call("task.create", "x", "y")["Value"]
        self.call("task.cancel", task)
        self.assertEqual("cancelled",
                         self.call("task.get_status", task)["Value"])
        time.sleep(0)


class FixtureTest(base.TestCase):
    """The shipped SimulatorFixture needs no test-only package."""

    def test_imports_without_the_fixtures_package(self):
        code = ("import sys; sys.modules['fixtures'] = None; "
                "from nova_xenapi_resign.simulator import fixture; "
                "print(fixture.SimulatorFixture.__mro__[1].__name__)")
        out = subprocess.run([sys.executable, "-c", code], check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual("object\n", out)

    def test_context_manager_starts_and_stops_everything(self):
        san_dir = os.path.join(self.tmpdir, "san")
        os.mkdir(san_dir)
        with fixture.SimulatorFixture(pools=1, san_dir=san_dir) as sim:
            x = sim.session(0).xenapi
            self.assertEqual(1, len(x.pool.get_all()))
            url = sim.urls[0]
        self.assertRaises(OSError, urllib.request.urlopen, url, timeout=5)
        self.assertTrue(os.path.isdir(san_dir))     # not ours: kept
