"""cinder_backend.hook: attach, detect, resign, always detach (mocked I/O)."""

import os
import types
from unittest import mock
import uuid

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device

from cinder_backend import hook
from cinder_backend import privileged
from tests import base

VOL = "22222222-2222-4222-8222-222222222222"
SR = "7c1a3f0e-1111-4222-8333-444455556666"
PORTAL = "192.0.2.10:3260"
IQN = "iqn.2010-10.org.openstack:volume-" + VOL
MIB = 1024 * 1024


class FakeDriver(object):
    """Records the calls the hook makes; returns iSCSI-like data."""

    def __init__(self, path, fail=None):
        self.path = path
        self.calls = []
        self.fail = fail or {}

    def _call(self, name, *args, **kwargs):
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def create_export(self, context, volume, connector):
        self._call("create_export")
        return {"provider_location": "%s %s 0" % (PORTAL, IQN)}

    def remove_export(self, context, volume):
        self._call("remove_export")

    def initialize_connection(self, volume, connector):
        self._call("initialize_connection")
        return {"driver_volume_type": "iscsi",
                "data": {"target_portal": PORTAL, "target_iqn": IQN,
                         "target_lun": 0, "volume_id": volume["id"],
                         "auth_method": "CHAP", "auth_username": "u",
                         "auth_password": "secret"}}

    def terminate_connection(self, volume, connector, **kwargs):
        self._call("terminate_connection")
        assert kwargs.get("force") is True


class FakeConnector(object):

    def __init__(self, driver, path, fail=None):
        self.driver = driver
        self.path = path
        self.fail = fail or {}

    def connect_volume(self, data):
        self.driver.calls.append("connect_volume")
        if "connect_volume" in self.fail:
            raise self.fail["connect_volume"]
        return {"type": "block", "path": self.path}

    def disconnect_volume(self, data, device_info, force=False,
                          ignore_errors=False):
        self.driver.calls.append("disconnect_volume")
        if "disconnect_volume" in self.fail:
            raise self.fail["disconnect_volume"]


def result(changed=True):
    """What privileged.resign_device returns (plain data over privsep)."""
    return {"changed": changed, "state": "resigned", "message": "resigned",
            "bytes_written": 512, "seconds": 0.01}


class HookTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # The entrypoints run in-process (no privsep daemon in unit tests).
        privileged.default.set_client_mode(False)
        self.addCleanup(privileged.default.set_client_mode, True)
        self.conf = types.SimpleNamespace(sr_naming="auto",
                                          backup_dir=self.tmpdir + "/bk")
        self.volume = {"id": VOL}
        self.props = {"ip": "192.0.2.1", "host": "cinder-1"}

    def image(self, lvhd=True, size=64 * MIB):
        path = os.path.join(self.tmpdir, "lun.img")
        with open(path, "wb") as f:
            f.truncate(size)
        if lvhd:
            with device.open_device(path, writable=True) as dev:
                create.format_sr(dev, SR, [create.VdiSpec(
                    "0f8e1a3c-5555-4666-8777-888899990000", "vhd", 8 * MIB,
                    name_label="disk")])
        return path

    def run_hook(self, path, driver_fail=None, connector_fail=None,
                 resign=None, **kwargs):
        self.driver = FakeDriver(path, driver_fail)
        self.connector = FakeConnector(self.driver, path, connector_fail)
        self.resign = resign or mock.Mock(return_value=result())
        kwargs.setdefault("connector_properties", self.props)
        return hook.resign_volume(self.driver, self.volume, conf=self.conf,
                                  connector=self.connector,
                                  resign=self.resign, attach_timeout=0,
                                  **kwargs)

    def expected_target(self):
        """The SR uuid Nova 21 computes for this volume, by Nova's formula.

        nova/virt/xenapi/volume_utils.py (ussuri) ``parse_sr_info``:
        ``uuid5(3cca4135-a809-5bb3-af62-275fbfe87178, "host/port/iqn")``,
        written out here rather than asked of the project's sr_naming.
        """
        host, port = PORTAL.split(":")
        return str(uuid.uuid5(uuid.UUID(
            "3cca4135-a809-5bb3-af62-275fbfe87178"),
            "%s/%s/%s" % (host, port, IQN)))


class TestResignVolume(HookTestCase):

    def test_lvhd_volume_is_resigned_to_nova_uuid_and_detached(self):
        path = self.image()
        out = self.run_hook(path)
        target = self.expected_target()
        self.resign.assert_called_once_with(
            path, target, backup_dir=self.conf.backup_dir, lock_path=None)
        self.assertEqual(target, out["sr_uuid"])
        self.assertTrue(out["changed"])
        self.assertEqual(VOL, out["volume_id"])
        self.assertEqual(path, out["device"])
        self.assertEqual("VG_XenStorage-" + SR, out["source_vg_name"])
        self.assertEqual(
            ["create_export", "initialize_connection", "connect_volume",
             "disconnect_volume", "terminate_connection", "remove_export"],
            self.driver.calls)
        # The export's model update reached the volume before connecting.
        self.assertIn("provider_location", self.volume)

    def test_legacy_naming(self):
        self.conf.sr_naming = "legacy"
        out = self.run_hook(self.image())
        self.assertEqual("FA15E-D15C-" + VOL, out["sr_uuid"])

    def test_plain_volume_untouched(self):
        path = self.image(lvhd=False)
        self.assertIsNone(self.run_hook(path))
        self.resign.assert_not_called()
        self.assertEqual(["create_export", "initialize_connection",
                          "connect_volume", "disconnect_volume",
                          "terminate_connection", "remove_export"],
                         self.driver.calls)

    def test_tiny_device_is_plain(self):
        self.assertIsNone(self.run_hook(self.image(lvhd=False, size=1024)))

    def test_resign_refusal_is_precise_and_detaches(self):
        refuse = mock.Mock(side_effect=exception.UnsafeOperation(
            device="/dev/x", reason="target present"))
        path = self.image()
        err = self.assertRaises(exception.VolumeResignRefused,
                                self.run_hook, path, resign=refuse)
        self.assertEqual(VOL, err.kwargs["volume_id"])
        self.assertEqual(hook.STEP_RESIGN, err.kwargs["step"])
        self.assertEqual(path, err.kwargs["device"])
        self.assertIn("nothing written", str(err))
        self.assertIn("target present", str(err))
        self.assertEqual(["disconnect_volume", "terminate_connection",
                          "remove_export"], self.driver.calls[-3:])

    def test_resign_error(self):
        boom = mock.Mock(side_effect=exception.DeviceError(
            device="/dev/x", reason="EIO"))
        err = self.assertRaises(exception.VolumeResignError, self.run_hook,
                                self.image(), resign=boom)
        self.assertIn("DeviceError", str(err))
        self.assertIn(VOL, str(err))
        self.assertEqual("remove_export", self.driver.calls[-1])

    def test_initialize_connection_failure(self):
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            driver_fail={"initialize_connection": RuntimeError("no target")})
        self.assertEqual(hook.STEP_INITIALIZE, err.kwargs["step"])
        self.assertEqual("<not attached>", err.kwargs["device"])
        self.assertEqual(["create_export", "initialize_connection",
                          "remove_export"], self.driver.calls)

    def test_create_export_failure_cleans_nothing(self):
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            driver_fail={"create_export": RuntimeError("no")})
        self.assertEqual(hook.STEP_EXPORT, err.kwargs["step"])
        self.assertEqual(["create_export"], self.driver.calls)

    def test_connect_failure_terminates(self):
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            connector_fail={"connect_volume": RuntimeError("login")})
        self.assertEqual(hook.STEP_CONNECT, err.kwargs["step"])
        self.assertNotIn("secret", str(err))
        self.assertEqual(["create_export", "initialize_connection",
                          "connect_volume", "terminate_connection",
                          "remove_export"], self.driver.calls)

    def test_missing_device_times_out(self):
        err = self.assertRaises(exception.VolumeResignError, self.run_hook,
                                os.path.join(self.tmpdir, "nope"))
        self.assertEqual(hook.STEP_DETECT, err.kwargs["step"])
        self.assertIn("did not appear", str(err))
        self.assertEqual("remove_export", self.driver.calls[-1])

    def test_cleanup_failure_after_success_raises(self):
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            connector_fail={"disconnect_volume": OSError("busy")})
        self.assertEqual(hook.STEP_DISCONNECT, err.kwargs["step"])
        # Later cleanups still ran.
        self.assertEqual(["terminate_connection", "remove_export"],
                         self.driver.calls[-2:])

    def test_cleanup_failure_after_failure_keeps_first_error(self):
        boom = mock.Mock(side_effect=exception.DeviceError(
            device="/dev/x", reason="EIO"))
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            resign=boom,
            driver_fail={"terminate_connection": OSError("gone")})
        self.assertEqual(hook.STEP_RESIGN, err.kwargs["step"])
        self.assertEqual("remove_export", self.driver.calls[-1])

    def test_naming_failure(self):
        self.conf.sr_naming = "bogus"
        err = self.assertRaises(exception.VolumeResignError, self.run_hook,
                                self.image())
        self.assertEqual(hook.STEP_NAMING, err.kwargs["step"])
        self.resign.assert_not_called()

    def test_connector_properties_gathered_with_os_brick(self):
        with mock.patch("os_brick.initiator.connector."
                        "get_connector_properties",
                        return_value={"ip": "x"}) as gcp:
            self.run_hook(self.image(), connector_properties=None,
                          root_helper="rh", my_ip="192.0.2.7",
                          use_multipath=True, enforce_multipath=True)
        gcp.assert_called_once_with("rh", "192.0.2.7", True, True)

    def test_connector_properties_failure(self):
        with mock.patch("os_brick.initiator.connector."
                        "get_connector_properties",
                        side_effect=RuntimeError("privsep")):
            err = self.assertRaises(exception.VolumeResignError, self.run_hook,
                                    self.image(), connector_properties=None)
        self.assertEqual(hook.STEP_CONNECTOR, err.kwargs["step"])
        self.assertEqual([], self.driver.calls)

    def test_connector_from_os_brick_factory(self):
        path = self.image()
        driver = FakeDriver(path)
        fake = FakeConnector(driver, path)
        with mock.patch("os_brick.initiator.connector.InitiatorConnector."
                        "factory", return_value=fake) as factory:
            hook.resign_volume(driver, self.volume, conf=self.conf,
                               connector_properties=self.props,
                               root_helper="rh", device_scan_attempts=5,
                               resign=mock.Mock(return_value=result()))
        factory.assert_called_once_with("iscsi", "rh", use_multipath=False,
                                        device_scan_attempts=5)

    def test_error_is_the_hooks_own_with_or_without_cinder(self):
        err = self.assertRaises(
            exception.VolumeResignError, self.run_hook, self.image(),
            driver_fail={"initialize_connection": RuntimeError("x")})
        self.assertNotIsInstance(err, exception.VolumeResignRefused)
        self.assertIn(VOL, str(err))
        self.assertEqual(hook.STEP_INITIALIZE, err.kwargs["step"])


class TestDetect(HookTestCase):

    def test_lvhd(self):
        self.assertEqual("VG_XenStorage-" + SR,
                         privileged.detect_lvhd(self.image()))

    def test_zeroes(self):
        self.assertIsNone(privileged.detect_lvhd(self.image(lvhd=False)))

    def test_label_with_torn_metadata_is_not_lvhd(self):
        path = self.image()
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(bytes(512))      # the mda header
        self.assertIsNone(privileged.detect_lvhd(path))

    def test_reads_are_small(self):
        path = self.image()
        reads = []
        real = device.Device.read

        def counting(dev, offset, length):
            reads.append(length)
            return real(dev, offset, length)

        with mock.patch.object(device.Device, "read", counting):
            privileged.detect_lvhd(path)
        self.assertLess(sum(reads), 64 * 1024)


class TestRunAttached(HookTestCase):

    def run_attached(self, action, path=None):
        path = path or self.image()
        self.driver = FakeDriver(path)
        self.connector = FakeConnector(self.driver, path)
        return hook.run_attached(self.driver, self.volume, action,
                                 step="my step", connector=self.connector,
                                 connector_properties=self.props,
                                 attach_timeout=0)

    def test_action_gets_the_attached_device_and_its_result_returned(self):
        seen = []

        def action(path, data, device_info):
            seen.append((path, data["target_iqn"], device_info["type"],
                         list(self.driver.calls)))
            return "result"

        self.assertEqual("result", self.run_attached(action))
        self.assertEqual([(self.driver.path, IQN, "block",
                           ["create_export", "initialize_connection",
                            "connect_volume"])], seen)
        self.assertEqual(["disconnect_volume", "terminate_connection",
                          "remove_export"], self.driver.calls[3:])

    def test_other_errors_become_the_hook_error_at_step(self):
        def action(path, data, device_info):
            raise OSError("EIO")

        err = self.assertRaises(exception.VolumeResignError,
                                self.run_attached, action)
        self.assertEqual(("my step", self.driver.path),
                         (err.kwargs["step"], err.kwargs["device"]))
        self.assertIn("OSError: EIO", str(err))
        self.assertEqual("remove_export", self.driver.calls[-1])

    def test_hook_errors_pass_unchanged(self):
        refused = hook.hook_error(VOL, "inner", "/dev/x", "no", refused=True)

        def action(path, data, device_info):
            raise refused

        err = self.assertRaises(exception.VolumeResignRefused,
                                self.run_attached, action)
        self.assertIs(refused, err)
        self.assertEqual("remove_export", self.driver.calls[-1])

    def test_scsi_id_from_device_info_first(self):
        self.assertEqual("36a", hook.scsi_id_of({"scsi_wwn": "36b"},
                                                {"scsi_wwn": "36a"}))
        self.assertEqual("36b", hook.scsi_id_of({"scsi_wwn": "36b"},
                                                {"path": "/dev/sdb"}))
        self.assertIsNone(hook.scsi_id_of({}, {"scsi_wwn": ""}))
