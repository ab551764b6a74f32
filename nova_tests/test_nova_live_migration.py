"""Nova 21.2.4's real XenAPI live-migration code against two simulated pools.

The drivers are built as nova-compute builds them (``XenAPIDriver(virtapi)``
reading ``[xenserver] connection_url``), so Nova's own ``VMOps`` /
``VolumeOps`` / ``volume_utils`` and os-xenapi's ``XenAPISession`` run
unmodified.  The session gets the two py3 adjustments of the research notes
(a URL with a port; plugin replies as bytes).  The compute manager's part is
played by :meth:`LiveMigrationTestCase.migrate`, which calls the driver
methods in Nova's order and carries the migrate data between hosts as RPC
would (``obj_to_primitive`` / ``obj_from_primitive``, optionally pinned to
an older object version).
"""

import socket
import urllib.parse
import uuid
import xmlrpc.client

import fixtures
import nova.conf
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.objects import base as nova_base
from nova import rpc
from nova.virt import driver as virt_driver
from os_xenapi.client import session as xenapi_session
import oslo_messaging
from oslo_utils import importutils
import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign.simulator import fixture as simfixture
from tests import base
from tests.functional.test_live_migration_sim import iqn
from tests.functional.test_live_migration_sim import legacy
from tests.functional.test_live_migration_sim import PORTAL
from tests.functional.test_live_migration_sim import uuid5

CONF = nova.conf.CONF
OUR_DRIVER = "nova_xenapi_resign.nova_driver.XenAPIDriver"
#: Nova's own name for its driver (``compute_driver = xenapi.XenAPIDriver``).
STOCK_DRIVER = "xenapi.XenAPIDriver"
MiB = 1024 * 1024
VOL_A = "11111111-2222-4333-8444-555555555555"
VOL_B = "22222222-3333-4444-8555-666666666666"
VOL_C = "33333333-4444-4555-8666-777777777777"

_NOVA_READY = False


def setup_nova():
    """What nova-compute's startup does, once per process."""
    global _NOVA_READY
    if _NOVA_READY:
        return
    CONF([], project="nova")
    oslo_messaging.set_transport_defaults("nova")
    oslo_messaging.get_rpc_transport(CONF)  # registers transport_url
    CONF.set_override("transport_url", "fake:/")
    rpc.init(CONF)
    objects.register_all()
    _NOVA_READY = True


def _builtin(value):
    if isinstance(value, xmlrpc.client.Binary):
        return value.data
    if isinstance(value, dict):
        return {k: _builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_builtin(v) for v in value)
    return value


class BytesTransport(xmlrpc.client.Transport):
    """XML-RPC transport giving ``<base64>`` as bytes, dates as strings.

    os-xenapi unpickles plugin replies, which needs bytes; the stock
    ``use_builtin_types=True`` would also parse XAPI's ``...Z`` dateTimes,
    which Python's client cannot.
    """

    def parse_response(self, response):
        return _builtin(super().parse_response(response))


def _get_ip_from_url(self, url):
    return socket.gethostbyname(urllib.parse.urlparse(url).hostname)


def _create_session(self, url):
    self.is_local_connection = False
    return xenapi_session.XenAPI.Session(url, transport=BytesTransport())


class LiveMigrationTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        setup_nova()
        cls = "os_xenapi.client.session.XenAPISession."
        self.useFixture(fixtures.MonkeyPatch(cls + "_get_ip_from_url",
                                             _get_ip_from_url))
        self.useFixture(fixtures.MonkeyPatch(cls + "_create_session",
                                             _create_session))
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=2, san_dir=self.tmpdir + "/san"))
        self.x = [self.sim.session(i).xenapi for i in range(2)]
        self.ctx = nova_context.get_admin_context()
        self.calls = []

    # --- building hosts, volumes and an instance --------------------------

    def driver(self, index, class_path):
        CONF.set_override("connection_url", self.sim.urls[index],
                          "xenserver")
        CONF.set_override("connection_password", "password", "xenserver")
        try:
            if class_path == STOCK_DRIVER:
                # Exactly how nova-compute loads its driver.
                return virt_driver.load_compute_driver(object(), class_path)
            return importutils.import_class(class_path)(object())
        finally:
            CONF.clear_override("connection_url", "xenserver")
            CONF.clear_override("connection_password", "xenserver")

    def volume(self, volume_id, mount):
        self.sim.san.create_lun(PORTAL, iqn(volume_id), 0, 8 * MiB)
        data = {"volume_id": volume_id, "target_portal": PORTAL,
                "target_iqn": iqn(volume_id), "target_lun": 0,
                "target_discovered": False, "auth_method": "CHAP",
                "auth_username": "user", "auth_password": "secret"}
        return {"connection_info": {"driver_volume_type": "iscsi",
                                    "data": data, "serial": volume_id},
                "mount_device": mount, "delete_on_termination": False}

    def introduce(self, x, sr_uuid, bdm):
        """An SR as an older Nova introduced it (any name)."""
        data = bdm["connection_info"]["data"]
        host, port = data["target_portal"].split(":")
        config = {"target": host, "port": port,
                  "targetIQN": data["target_iqn"],
                  "chapuser": "user", "chappassword": "secret"}
        sr = x.SR.introduce(sr_uuid, "tempSR-%s" % sr_uuid, "", "iscsi", "",
                            False, config)
        pbd = x.PBD.create({"host": x.pool.get_master(x.pool.get_all()[0]),
                            "SR": sr, "device_config": config})
        x.PBD.plug(pbd)
        x.SR.scan(sr)
        return sr

    def boot(self, instance, volumes):
        """A running VM with each (bdm, SR uuid) attached as a volume."""
        x = self.x[0]
        vm = x.VM.create({"name_label": instance.name,
                          "other_config": {"nova_uuid": instance.uuid}})
        for number, (bdm, sr_uuid) in enumerate(volumes, 1):
            sr = self.introduce(x, sr_uuid, bdm)
            x.VBD.create({"VM": vm, "VDI": x.SR.get_VDIs(sr)[0],
                          "userdevice": str(number), "bootable": False,
                          "mode": "RW", "type": "Disk", "unpluggable": True,
                          "empty": False, "other_config": {"osvol": "True"},
                          "qos_algorithm_type": "",
                          "qos_algorithm_params": {}})
        x.VM.start(vm, False, False)
        return x.VM.get_uuid(vm)

    def instance(self, number=1):
        return objects.Instance(
            id=number, uuid=str(uuid.UUID(int=number)), host="pool0-host0",
            node="pool0-host0", kernel_id=None, ramdisk_id=None)

    # --- the compute manager's part ----------------------------------------

    @staticmethod
    def hop(migrate_data, version=None):
        """Migrate data over RPC to a peer that understands ``version``."""
        primitive = migrate_data.obj_to_primitive(target_version=version)
        return nova_base.NovaObject.obj_from_primitive(primitive)

    def migrate(self, source, dest, instance, bdms, version=None):
        """Nova's live-migration sequence; returns (migrate data, error)."""
        info = {"block_device_mapping": bdms, "root_device_name": None,
                "ephemerals": [], "swap": None}
        data = dest.check_can_live_migrate_destination(
            self.ctx, instance, {}, {}, block_migration=None)
        data = source.check_can_live_migrate_source(
            self.ctx, instance, self.hop(data, version), info)
        data = dest.pre_live_migration(self.ctx, instance, info, [], None,
                                       self.hop(data, version))
        data = self.hop(data, version)
        for x in self.x:
            x.debug.reset()

        def post(context, inst, host, block_migration, migrate_data):
            self.calls.append("post")
            source.post_live_migration(context, inst, info, migrate_data)

        def recover(context, inst, host, migrate_data):
            self.calls.append("recover")
            dest.rollback_live_migration_at_destination(
                context, inst, [], info, True,
                self.hop(migrate_data, version))

        try:
            source.live_migration(self.ctx, instance, "pool1-host0", post,
                                  recover, True, data)
        except Exception as exc:
            return data, exc
        return data, None

    # --- assertions --------------------------------------------------------

    def calls_of(self, index, method):
        counts = self.x[index].debug.get_call_count()["by_method"]
        return int(counts.get(method, 0))

    def sr_exists(self, index, sr_uuid):
        try:
            self.x[index].SR.get_by_uuid(sr_uuid)
        except XenAPI.Failure as exc:
            self.assertEqual("UUID_INVALID", exc.details[0])
            return False
        return True

    def vm_pool(self, vm_uuid):
        return [i for i in (0, 1) if vm_uuid in
                [r["uuid"] for r in
                 self.x[i].VM.get_all_records().values()]]

    def assert_no_hazard(self):
        for x in self.x:
            self.assertEqual([], x.debug.get_hazards())
            self.assertEqual([], [m for m in x.debug.get_migrations()
                                  if m["mirrored"]])


class TestStockNovaReproducesBug(LiveMigrationTestCase):
    """Launchpad bug 1566622 with Nova 21.2.4's own driver."""

    def test_legacy_sr_fails_with_uuid_invalid(self):
        source = self.driver(0, STOCK_DRIVER)
        dest = self.driver(1, STOCK_DRIVER)
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, legacy(VOL_A))])

        data, error = self.migrate(source, dest, instance, [bdm])

        # The destination computed the uuid5 name ...
        self.assertEqual([uuid5(VOL_A)], list(data.sr_uuid_map))
        # ... which the source only knows as FA15E-D15C-<volume>.
        self.assertIsInstance(error, nova_exception.MigrationError)
        cause = error.__context__
        self.assertIsInstance(cause, xenapi_session.XenAPI.Failure)
        self.assertEqual(["UUID_INVALID", "SR", uuid5(VOL_A)], cause.details)
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assert_no_hazard()


class TestExtensionDriver(LiveMigrationTestCase):

    def setUp(self):
        super().setUp()
        self.source = self.driver(0, OUR_DRIVER)
        self.dest = self.driver(1, OUR_DRIVER)

    def test_driver_class_is_novas(self):
        from nova.virt.xenapi import driver as nova_xenapi_driver
        cls = importutils.import_class(OUR_DRIVER)
        self.assertTrue(issubclass(cls, nova_xenapi_driver.XenAPIDriver))
        self.assertIs(cls, importutils.import_class(OUR_DRIVER))
        self.assertEqual("1.5", objects.XenapiLiveMigrateData.VERSION)
        self.assertEqual("auto", CONF.xenapi_resign.sr_naming)

    def test_load_compute_driver_through_nova_virt(self):
        # Nova 21 loads "nova.virt.<compute_driver>": a one-line module
        # under nova.virt is how a deployment names this driver.
        from nova_xenapi_resign import nova_driver
        import sys
        sys.modules["nova.virt.xenapi_resign"] = nova_driver
        self.addCleanup(sys.modules.pop, "nova.virt.xenapi_resign")
        CONF.set_override("connection_url", self.sim.urls[0], "xenserver")
        CONF.set_override("connection_password", "password", "xenserver")
        self.addCleanup(CONF.clear_override, "connection_url", "xenserver")
        self.addCleanup(CONF.clear_override, "connection_password",
                        "xenserver")
        loaded = virt_driver.load_compute_driver(
            object(), "xenapi_resign.XenAPIDriver")
        self.assertIsInstance(loaded, nova_driver.XenAPIDriver)

    def test_legacy_and_uuid5_volumes_migrate_without_mirror(self):
        instance = self.instance()
        bdm_a = self.volume(VOL_A, "/dev/xvdb")
        bdm_b = self.volume(VOL_B, "/dev/xvdc")
        vm_uuid = self.boot(instance, [(bdm_a, legacy(VOL_A)),
                                       (bdm_b, uuid5(VOL_B))])

        data, error = self.migrate(self.source, self.dest, instance,
                                   [bdm_a, bdm_b])

        self.assertIsNone(error)
        self.assertEqual(["post"], self.calls)
        self.assertEqual({VOL_A: legacy(VOL_A), VOL_B: uuid5(VOL_B)},
                         md.get_volume_sr_uuid_map(data))
        self.assertEqual({legacy(VOL_A), uuid5(VOL_B)},
                         set(data.sr_uuid_map))
        self.assertEqual([1], self.vm_pool(vm_uuid))
        x1 = self.x[1]
        vm = x1.VM.get_by_uuid(vm_uuid)
        dest_srs = sorted(x1.SR.get_uuid(x1.VDI.get_SR(x1.VBD.get_VDI(v)))
                          for v in x1.VM.get_VBDs(vm))
        self.assertEqual(sorted([legacy(VOL_A), uuid5(VOL_B)]), dest_srs)
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))
        self.assertEqual(1, self.calls_of(0, "VM.migrate_send"))
        self.assert_no_hazard()
        # Nova's tidy-up forgot the source's volume SRs.
        self.assertFalse(self.sr_exists(0, legacy(VOL_A)))
        self.assertFalse(self.sr_exists(0, uuid5(VOL_B)))

    def _refused(self, dest, version):
        instance = self.instance()
        bdm = self.volume(VOL_A, "/dev/xvdb")
        vm_uuid = self.boot(instance, [(bdm, legacy(VOL_A))])

        data, error = self.migrate(self.source, dest, instance, [bdm],
                                   version)

        self.assertIsInstance(error, exception.LiveMigrationPreCheckError)
        self.assertIn(legacy(VOL_A), str(error))
        self.assertIn(uuid5(VOL_A), str(error))
        self.assertEqual(["recover"], self.calls)
        self.assertEqual(0, self.calls_of(0, "VM.assert_can_migrate"))
        self.assertEqual(0, self.calls_of(0, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pool(vm_uuid))
        self.assertEqual("Running", self.x[0].VM.get_power_state(
            self.x[0].VM.get_by_uuid(vm_uuid)))
        self.assertTrue(self.sr_exists(0, legacy(VOL_A)))
        # The destination's rollback forgot what it introduced.
        self.assertFalse(self.sr_exists(1, uuid5(VOL_A)))
        self.assertFalse(self.sr_exists(1, legacy(VOL_A)))
        self.assert_no_hazard()

    def test_destination_pinned_to_1_4_is_refused(self):
        self._refused(self.dest, "1.4")

    def test_old_destination_is_refused(self):
        self._refused(self.driver(1, STOCK_DRIVER), "1.4")

    def test_attach_auto_reuses_legacy_sr(self):
        instance = self.instance()
        self.boot(instance, [])
        x0 = self.x[0]
        bdm_b = self.volume(VOL_B, "/dev/xvdb")
        bdm_c = self.volume(VOL_C, "/dev/xvdc")
        self.introduce(x0, legacy(VOL_B), bdm_b)  # attached before Mitaka
        for bdm in (bdm_b, bdm_c):
            self.source.attach_volume(self.ctx, bdm["connection_info"],
                                      instance, bdm["mount_device"])
        vm = x0.VM.get_by_name_label(instance.name)[0]
        srs = sorted(x0.SR.get_uuid(x0.VDI.get_SR(x0.VBD.get_VDI(v)))
                     for v in x0.VM.get_VBDs(vm))
        self.assertEqual(sorted([legacy(VOL_B), uuid5(VOL_C)]), srs)
        self.assertFalse(self.sr_exists(0, uuid5(VOL_B)))
        self.assertFalse(self.sr_exists(0, legacy(VOL_C)))

    def test_attach_legacy_naming(self):
        CONF.set_override("sr_naming", "legacy", "xenapi_resign")
        self.addCleanup(CONF.clear_override, "sr_naming", "xenapi_resign")
        instance = self.instance()
        self.boot(instance, [])
        bdm = self.volume(VOL_C, "/dev/xvdb")
        self.source.attach_volume(self.ctx, bdm["connection_info"],
                                  instance, bdm["mount_device"])
        self.assertTrue(self.sr_exists(0, legacy(VOL_C)))
        self.assertFalse(self.sr_exists(0, uuid5(VOL_C)))
