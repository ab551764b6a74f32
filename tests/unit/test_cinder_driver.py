"""cinder_backend.driver: delegation, the hooked calls, publishing."""

import functools
import inspect
import types
from unittest import mock

from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import importutils

from cinder_backend import driver
from cinder_backend import hook
from cinder_backend import opts
from nova_xenapi_resign import conf as xenapi_conf
from nova_xenapi_resign import exception
from tests import base

VOL = "22222222-2222-4222-8222-222222222222"
SRC = "11111111-1111-4111-8111-111111111111"
TARGET = "ea1c98a1-be7d-5fcb-b4fb-48e3ae2e78a2"
PORTAL = "192.0.2.10:3260"
IQN = "iqn.2010-10.org.openstack:volume-" + VOL


# What the wrapper raises for a bad backend option: Cinder's error when
# Cinder is installed, else InvalidInput.
CONFIG_ERRORS = tuple({exception.InvalidInput, getattr(
    importutils.try_import("cinder.exception"), "VolumeBackendAPIException",
    exception.InvalidInput)})
# What the wrapper raises for a refusal: Cinder's never-rescheduled
# MetadataUpdateFailure when Cinder is installed, else the hook's.
REFUSAL_ERRORS = tuple({exception.VolumeResignRefused, getattr(
    importutils.try_import("cinder.exception"), "MetadataUpdateFailure",
    exception.VolumeResignRefused)})
# What the wrapper raises for a hook error: Cinder's own error when Cinder
# is installed, else the hook's.
DRIVER_ERRORS = tuple({exception.VolumeResignError, getattr(
    importutils.try_import("cinder.exception"), "VolumeBackendAPIException",
    exception.VolumeResignError)})


class Configuration(object):
    """Cinder's Configuration, minimal: a backend group over ConfigOpts."""

    def __init__(self, conf, group="backend"):
        self.conf = conf
        self.group = group
        conf.register_group(cfg.OptGroup(group))
        self.appended = []

    def append_config_values(self, volume_opts):
        self.appended.append(volume_opts)
        self.conf.register_opts(volume_opts, group=self.group)

    def safe_get(self, name):
        try:
            return getattr(self.conf._get(self.group), name)
        except cfg.NoSuchOptError:
            return None


class InnerDriver(object):
    """The wrapped backend driver: records everything."""

    instances = []

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
        self.configuration = kwargs.get("configuration")
        self.calls = []
        self.stats = {"volume_backend_name": "inner"}
        InnerDriver.instances.append(self)

    def do_setup(self, context):
        self.calls.append(("do_setup", context))

    def check_for_setup_error(self):
        self.calls.append(("check_for_setup_error",))

    def get_volume_stats(self, refresh=False):
        return self.stats

    def create_volume(self, volume):
        self.calls.append(("create_volume", volume["id"]))
        return {"provider_location": "loc"}

    def create_cloned_volume(self, volume, src_vref):
        self.calls.append(("create_cloned_volume", volume["id"],
                           src_vref["id"]))
        return {"provider_location": "%s %s 0" % (PORTAL, IQN),
                "provider_auth": "CHAP u p"}

    def create_volume_from_snapshot(self, volume, snapshot):
        self.calls.append(("create_volume_from_snapshot", volume["id"],
                           snapshot["id"]))
        return None

    def initialize_connection(self, volume, connector, **kwargs):
        self.calls.append(("initialize_connection", volume["id"], kwargs))
        return {"driver_volume_type": "iscsi",
                "data": {"target_portal": PORTAL, "target_iqn": IQN,
                         "target_lun": 0, "volume_id": volume["id"],
                         "auth_method": "CHAP", "auth_username": "u",
                         "auth_password": "p"}}


class DriverTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        InnerDriver.instances = []
        self.conf = cfg.ConfigOpts()
        self.conf([])
        self.configuration = Configuration(self.conf)
        self.configuration.append_config_values(
            [cfg.StrOpt("volume_backend_name")])
        xenapi_conf.register_opts(cfg.CONF)
        self.cfg = self.useFixture(config_fixture.Config(cfg.CONF))
        self.cfg.config(group="xenapi_resign", backup_dir=self.tmpdir)
        self.wrapper = self.make()

    def make(self, backend=__name__ + ".InnerDriver", *args, **kwargs):
        self.conf.register_opts(opts.resign_opts, group="backend")
        self.conf.set_override("resign_backend_driver", backend,
                               group="backend")
        kwargs.setdefault("configuration", self.configuration)
        return driver.ResignVolumeDriver(*args, **kwargs)

    def enable(self, value=True):
        self.cfg.config(group="xenapi_resign",
                        resignature_duplicate_srs=value)


class TestConstruction(DriverTestCase):

    def test_inner_built_with_same_arguments(self):
        inner = InnerDriver.instances[-1]
        self.assertIs(inner, self.wrapper.backend)
        self.assertEqual((), inner.args)
        self.assertIs(self.configuration, inner.kwargs["configuration"])
        w = self.make(__name__ + ".InnerDriver", "pos", db="db",
                      host="h@b")
        self.assertEqual(("pos",), w.backend.args)
        self.assertEqual("db", w.backend.kwargs["db"])

    def test_options_appended_to_configuration(self):
        self.assertIn(opts.resign_opts, self.configuration.appended)
        self.assertEqual(120, self.configuration.safe_get(
            "resign_attach_timeout"))

    def test_missing_backend_option(self):
        self.conf.clear_override("resign_backend_driver", group="backend")
        self.assertRaises(CONFIG_ERRORS, driver.ResignVolumeDriver,
                          configuration=self.configuration)

    def test_unimportable_backend(self):
        err = self.assertRaises(CONFIG_ERRORS, self.make,
                                "no.such.Driver")
        self.assertIn("no.such.Driver", str(err))

    def test_wrapping_itself_refused(self):
        self.assertRaises(CONFIG_ERRORS, self.make,
                          "cinder_backend.driver.ResignVolumeDriver")

    def test_cinder_exception_used_when_importable(self):
        class VolumeBackendAPIException(Exception):
            def __init__(self, data):
                super().__init__(data)

        fake = types.SimpleNamespace(
            VolumeBackendAPIException=VolumeBackendAPIException)
        with mock.patch.object(driver.importutils, "try_import",
                               return_value=fake):
            self.assertRaises(VolumeBackendAPIException, self.make,
                              "no.such.Driver")


class TestDelegation(DriverTestCase):

    def test_methods_and_attributes(self):
        self.wrapper.do_setup("ctx")
        self.wrapper.check_for_setup_error()
        self.assertEqual({"volume_backend_name": "inner"},
                         self.wrapper.get_volume_stats(refresh=True))
        self.assertEqual({"provider_location": "loc"},
                         self.wrapper.create_volume({"id": VOL}))
        self.assertEqual([("do_setup", "ctx"), ("check_for_setup_error",),
                          ("create_volume", VOL)], self.wrapper.calls)
        self.assertIs(self.configuration, self.wrapper.configuration)
        self.assertRaises(AttributeError, getattr, self.wrapper, "nope")

    def test_setattr_goes_to_backend(self):
        self.wrapper.stats = {"x": 1}
        self.assertEqual({"x": 1}, self.wrapper.backend.stats)
        self.assertNotIn("stats", vars(self.wrapper))
        del self.wrapper.stats
        self.assertFalse(hasattr(self.wrapper.backend, "stats"))

    def test_repr(self):
        self.assertIn("InnerDriver", repr(self.wrapper))

    def test_traced_methods_stay_on_the_wrapper(self):
        # What osprofiler.trace_cls does to the driver object when Cinder's
        # [profiler] enabled: a traced copy of each method, set on it.
        for name, method in inspect.getmembers(self.wrapper,
                                               inspect.ismethod):
            if not name.startswith("_"):
                setattr(self.wrapper, name, functools.partial(method))
        self.assertIn("create_cloned_volume", vars(self.wrapper))
        self.assertNotIn("create_cloned_volume", vars(self.wrapper.backend))
        # No recursion: the wrapper still reaches the backend's own method.
        self.assertEqual("CHAP u p", self.wrapper.create_cloned_volume(
            {"id": VOL}, {"id": SRC})["provider_auth"])


class TestCloneHook(DriverTestCase):

    def test_disabled_returns_backend_update_untouched(self):
        with mock.patch.object(hook, "resign_volume") as rv:
            update = self.wrapper.create_cloned_volume({"id": VOL},
                                                       {"id": SRC})
        rv.assert_not_called()
        self.assertEqual({"provider_location": "%s %s 0" % (PORTAL, IQN),
                          "provider_auth": "CHAP u p"}, update)

    def test_enabled_resigns_new_volume_and_publishes(self):
        self.enable()
        volume = {"id": VOL, "admin_metadata": {"readonly": "False"}}
        seen = {}

        def fake_hook(backend, vol, **kwargs):
            seen.update(kwargs, backend=backend,
                        location=vol.get("provider_location"))
            return {"sr_uuid": TARGET, "changed": True}

        with mock.patch.object(hook, "resign_volume",
                               side_effect=fake_hook):
            update = self.wrapper.create_cloned_volume(volume, {"id": SRC})
        self.assertIs(self.wrapper.backend, seen["backend"])
        self.assertEqual("%s %s 0" % (PORTAL, IQN), seen["location"])
        self.assertEqual("auto", seen["conf"].sr_naming)
        self.assertEqual(self.tmpdir, seen["conf"].backup_dir)
        self.assertEqual(120, seen["attach_timeout"])
        # Cinder's root helper when Cinder is configured, else sudo.
        self.assertIn(seen["root_helper"], ("sudo", "sudo cinder-rootwrap "
                                            "/etc/cinder/rootwrap.conf"))
        self.assertEqual({"readonly": "False", "xenapi_sr_uuid": TARGET,
                          "xenapi_sr_volume_id": VOL},
                         update["admin_metadata"])
        self.assertEqual("CHAP u p", update["provider_auth"])

    def test_from_snapshot_with_none_update(self):
        self.enable()
        with mock.patch.object(hook, "resign_volume",
                               return_value={"sr_uuid": TARGET}):
            update = self.wrapper.create_volume_from_snapshot(
                {"id": VOL}, {"id": "snap"})
        self.assertEqual({"admin_metadata": {
            "xenapi_sr_uuid": TARGET, "xenapi_sr_volume_id": VOL}}, update)

    def test_plain_volume_drops_inherited_keys(self):
        self.enable()
        volume = {"id": VOL, "admin_metadata": {
            "xenapi_sr_uuid": "source-sr", "xenapi_sr_volume_id": SRC,
            "other": "1"}}
        with mock.patch.object(hook, "resign_volume", return_value=None):
            update = self.wrapper.create_cloned_volume(volume, {"id": SRC})
        self.assertEqual({"other": "1"}, update["admin_metadata"])

    def test_plain_volume_without_metadata(self):
        self.enable()
        with mock.patch.object(hook, "resign_volume", return_value=None):
            update = self.wrapper.create_volume_from_snapshot(
                {"id": VOL}, {"id": "snap"})
        self.assertIsNone(update)

    def test_hook_error_propagates(self):
        # Without Cinder the hook's own error; with it, Cinder's error
        # raised from it.
        self.enable()
        boom = exception.VolumeResignError(volume_id=VOL, step="resignature",
                                           device="/dev/x", reason="r")
        with mock.patch.object(hook, "resign_volume", side_effect=boom):
            err = self.assertRaises(DRIVER_ERRORS,
                                    self.wrapper.create_cloned_volume,
                                    {"id": VOL}, {"id": SRC})
        self.assertIn(boom, (err, err.__cause__))
        self.assertIn("failed at resignature", str(err))

    def test_backend_error_skips_hook(self):
        self.enable()
        with mock.patch.object(self.wrapper.backend, "create_cloned_volume",
                               side_effect=RuntimeError("san")), \
                mock.patch.object(hook, "resign_volume") as rv:
            self.assertRaises(RuntimeError,
                              self.wrapper.create_cloned_volume,
                              {"id": VOL}, {"id": SRC})
        rv.assert_not_called()

    def test_backend_options_passed(self):
        self.enable()
        self.configuration.append_config_values([
            cfg.BoolOpt("use_multipath_for_image_xfer", default=True),
            cfg.IntOpt("num_volume_device_scan_tries", default=7)])
        self.conf.set_override("resign_attach_timeout", 9, group="backend")
        fake_utils = types.SimpleNamespace(get_root_helper=lambda: "rw")
        real = importutils.try_import
        with mock.patch.object(hook, "resign_volume",
                               return_value=None) as rv, \
                mock.patch.object(driver.importutils, "try_import",
                                  side_effect=lambda name: fake_utils
                                  if name == "cinder.utils" else real(name)):
            self.wrapper.create_cloned_volume({"id": VOL}, {"id": SRC})
        kwargs = rv.call_args[1]
        self.assertTrue(kwargs["use_multipath"])
        self.assertFalse(kwargs["enforce_multipath"])
        self.assertEqual(7, kwargs["device_scan_attempts"])
        self.assertEqual(9, kwargs["attach_timeout"])
        self.assertEqual("rw", kwargs["root_helper"])


class TestInitializeConnection(DriverTestCase):

    def test_publishes_sr_uuid_and_keys(self):
        volume = {"id": VOL, "admin_metadata": {
            "xenapi_sr_uuid": TARGET, "xenapi_sr_volume_id": VOL}}
        info = self.wrapper.initialize_connection(volume, {"ip": "x"},
                                                  extra=1)
        data = info["data"]
        self.assertEqual(TARGET, data["sr_uuid"])
        self.assertEqual(["target", "port", "targetIQN", "chapuser",
                          "chappassword", "id"], data["introduce_sr_keys"])
        self.assertEqual("192.0.2.10", data["target"])
        self.assertEqual("3260", data["port"])
        self.assertEqual(IQN, data["targetIQN"])
        self.assertEqual("u", data["chapuser"])
        self.assertEqual("p", data["chappassword"])
        self.assertEqual(VOL, data["id"])
        self.assertEqual({"extra": 1}, self.wrapper.calls[-1][2])

    def test_nothing_published_without_metadata(self):
        info = self.wrapper.initialize_connection({"id": VOL}, {})
        self.assertNotIn("sr_uuid", info["data"])
        self.assertNotIn("introduce_sr_keys", info["data"])

    def test_inherited_metadata_not_published(self):
        volume = {"id": VOL, "admin_metadata": {
            "xenapi_sr_uuid": TARGET, "xenapi_sr_volume_id": SRC}}
        info = self.wrapper.initialize_connection(volume, {})
        self.assertNotIn("sr_uuid", info["data"])

    def test_object_volume(self):
        volume = types.SimpleNamespace(id=VOL, admin_metadata={
            "xenapi_sr_uuid": TARGET, "xenapi_sr_volume_id": VOL})
        with mock.patch.object(self.wrapper.backend, "initialize_connection",
                               return_value={"driver_volume_type": "iscsi",
                                             "data": {"target_iqn": IQN,
                                                      "target_portal":
                                                      PORTAL}}):
            info = self.wrapper.initialize_connection(volume, {})
        self.assertEqual(TARGET, info["data"]["sr_uuid"])
        self.assertEqual(["target", "port", "targetIQN"],
                         info["data"]["introduce_sr_keys"])

    def test_keeps_existing_introduce_keys(self):
        data = driver.publish_sr_uuid({"introduce_sr_keys": ["x"], "x": 1},
                                      TARGET)
        self.assertEqual(["x"], data["introduce_sr_keys"])
        self.assertEqual(TARGET, data["sr_uuid"])


class NativeGroupDriver(InnerDriver):
    """A backend with its own group-from-source."""

    def create_group_from_src(self, context, group, volumes, *args):
        self.calls.append(("create_group_from_src", group["id"]))
        return {"status": "available"}, [
            {"id": v["id"], "status": "available"} for v in volumes]


class TestGroups(DriverTestCase):

    def test_native_group_volumes_resigned(self):
        self.enable()
        wrapper = self.make(__name__ + ".NativeGroupDriver")
        volumes = [{"id": VOL}, {"id": SRC}]
        with mock.patch.object(hook, "resign_volume",
                               return_value={"sr_uuid": TARGET}) as rv:
            model, updates = wrapper.create_group_from_src(
                "ctx", {"id": "g"}, volumes, None, None, {"id": "g0"},
                [{"id": "a"}, {"id": "b"}])
        self.assertEqual({"status": "available"}, model)
        self.assertEqual([VOL, SRC], [c[0][1]["id"]
                                      for c in rv.call_args_list])
        self.assertEqual([{"id": VOL, "status": "available",
                           "admin_metadata": {"xenapi_sr_uuid": TARGET,
                                              "xenapi_sr_volume_id": VOL}},
                          {"id": SRC, "status": "available",
                           "admin_metadata": {"xenapi_sr_uuid": TARGET,
                                              "xenapi_sr_volume_id": SRC}}],
                         updates)

    def test_without_native_group_cinder_goes_generic(self):
        self.enable()
        self.assertRaises(NotImplementedError,
                          self.wrapper.create_group_from_src, "ctx",
                          {"id": "g"}, [])
        self.assertRaises(NotImplementedError,
                          self.wrapper.create_consistencygroup_from_src,
                          "ctx", {"id": "g"}, [])

    def test_failed_native_volume_not_touched(self):
        self.enable()
        wrapper = self.make(__name__ + ".NativeGroupDriver")
        with mock.patch.object(wrapper.backend, "create_group_from_src",
                               return_value=(None, [{"id": VOL,
                                                     "status": "error"}])), \
                mock.patch.object(hook, "resign_volume") as rv:
            _, updates = wrapper.create_group_from_src(
                "ctx", {"id": "g"}, [{"id": VOL}])
        rv.assert_not_called()
        self.assertEqual([{"id": VOL, "status": "error"}], updates)


class TestRefusal(DriverTestCase):

    def test_refusal_is_final_for_cinder(self):
        self.enable()
        refused = exception.VolumeResignRefused(
            volume_id=VOL, step="resignature", device="/dev/x",
            reason="refused, nothing written: journal")
        with mock.patch.object(hook, "resign_volume", side_effect=refused):
            err = self.assertRaises(REFUSAL_ERRORS,
                                    self.wrapper.create_cloned_volume,
                                    {"id": VOL}, {"id": SRC})
        self.assertIn(refused, (err, err.__cause__))
        self.assertIn("journal", str(err))


class TestMigration(DriverTestCase):

    def test_update_migrated_volume_reads_without_writing(self):
        self.enable()
        with mock.patch.object(hook, "resign_volume",
                               return_value={"sr_uuid": TARGET}) as rv:
            self.assertRaises(NotImplementedError,
                              self.wrapper.update_migrated_volume, "ctx",
                              {"id": VOL}, {"id": SRC}, "available")
        self.assertEqual(SRC, rv.call_args[0][1]["id"])
        self.assertFalse(rv.call_args[1]["write"])
