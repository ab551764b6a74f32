"""Two simulated pools driven by Nova 21.2.4's own XenAPI driver.

Shared by ``nova_tests`` and ``benchmarks/bench_live_migration.py --nova``.
The drivers are loaded as nova-compute loads them
(``nova.virt.driver.load_compute_driver`` with a ``compute_driver`` name and
``[xenserver] connection_url``), so Nova's own ``VMOps`` / ``VolumeOps`` /
``volume_utils`` and os-xenapi's ``XenAPISession`` run unmodified.  The
session gets the two py3 adjustments of the research notes (a URL with a
port; plugin replies as bytes).  The compute manager's part is played by
:meth:`NovaPools.migrate`, which calls the driver methods in Nova's order
and carries the migrate data between hosts as RPC would
(``obj_to_primitive`` / ``obj_from_primitive``, optionally pinned to an
older object version).
"""

import socket
import urllib.parse
import uuid
import xmlrpc.client

import fixtures
import nova.conf
from nova import context as nova_context
from nova import objects
from nova.objects import base as nova_base
from nova import rpc
from nova.virt import driver as virt_driver
from os_xenapi.client import session as xenapi_session
import oslo_messaging

from nova_xenapi_resign.simulator import fixture as simfixture
from tests.functional.test_live_migration_sim import iqn
from tests.functional.test_live_migration_sim import PORTAL

CONF = nova.conf.CONF
#: The ``compute_driver`` value README gives for this project's driver.
OUR_DRIVER = "nova_xenapi_resign.nova_driver.XenAPIDriver"
#: Nova's own (``compute_driver = xenapi.XenAPIDriver``).
STOCK_DRIVER = "xenapi.XenAPIDriver"
MiB = 1024 * 1024

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


class NovaPools(fixtures.Fixture):
    """Nova set up, os-xenapi adjusted, two simulated pools on one SAN."""

    def __init__(self, san_dir):
        super().__init__()
        self.san_dir = san_dir

    def _setUp(self):
        setup_nova()
        cls = "os_xenapi.client.session.XenAPISession."
        self.useFixture(fixtures.MonkeyPatch(cls + "_get_ip_from_url",
                                             _get_ip_from_url))
        self.useFixture(fixtures.MonkeyPatch(cls + "_create_session",
                                             _create_session))
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=2, san_dir=self.san_dir))
        self.x = [self.sim.session(i).xenapi for i in range(2)]
        self.ctx = nova_context.get_admin_context()
        #: "post" / "recover", as the compute manager's callbacks ran.
        self.calls = []
        #: XAPI calls (both pools) per phase of the last ``migrate``.
        self.phase_calls = {}

    # --- hosts, volumes and instances -------------------------------------

    def driver(self, index, compute_driver):
        """The driver nova-compute of pool ``index`` would load."""
        CONF.set_override("connection_url", self.sim.urls[index],
                          "xenserver")
        CONF.set_override("connection_password", "password", "xenserver")
        try:
            return virt_driver.load_compute_driver(object(), compute_driver)
        finally:
            CONF.clear_override("connection_url", "xenserver")
            CONF.clear_override("connection_password", "xenserver")

    def volume(self, volume_id, mount, size=8 * MiB):
        """A LUN on the SAN and Nova's block device mapping for it (CHAP)."""
        self.sim.san.create_lun(PORTAL, iqn(volume_id), 0, size)
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
        """A running VM on pool 0 with each (bdm, SR uuid) attached."""
        x = self.x[0]
        vm = x.VM.create({"name_label": instance.name,
                          "other_config": {"nova_uuid": instance.uuid}})
        for number, (bdm, sr_uuid) in enumerate(volumes, 1):
            self.attach(x, vm, self.introduce(x, sr_uuid, bdm), number)
        x.VM.start(vm, False, False)
        return x.VM.get_uuid(vm)

    @staticmethod
    def attach(x, vm, sr, number=1):
        """A volume VBD (``osvol``, as Nova makes it) of the SR's VDI."""
        return x.VBD.create({
            "VM": vm, "VDI": x.SR.get_VDIs(sr)[0], "userdevice": str(number),
            "bootable": False, "mode": "RW", "type": "Disk",
            "unpluggable": True, "empty": False,
            "other_config": {"osvol": "True"}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}})

    @staticmethod
    def instance(number=1):
        return objects.Instance(
            id=number, uuid=str(uuid.UUID(int=number)), host="pool0-host0",
            node="pool0-host0", kernel_id=None, ramdisk_id=None)

    # --- the compute manager's part ----------------------------------------

    @staticmethod
    def hop(migrate_data, version=None):
        """Migrate data over RPC to a peer that understands ``version``."""
        primitive = migrate_data.obj_to_primitive(target_version=version)
        return nova_base.NovaObject.obj_from_primitive(primitive)

    def migrate(self, source, dest, instance, bdms, version=None,
                reset_counters=True):
        """Nova's live-migration sequence; returns (migrate data, error).

        With ``reset_counters`` the simulator's call counters restart before
        ``live_migration`` (what the tests inspect); otherwise they cover
        the whole sequence (what the benchmark counts).
        """
        info = {"block_device_mapping": bdms, "root_device_name": None,
                "ephemerals": [], "swap": None}
        mark = self._phase("check_destination")
        data = dest.check_can_live_migrate_destination(
            self.ctx, instance, {}, {}, block_migration=None)
        mark("check_source")
        data = source.check_can_live_migrate_source(
            self.ctx, instance, self.hop(data, version), info)
        mark("pre_live_migration")
        data = dest.pre_live_migration(self.ctx, instance, info, [], None,
                                       self.hop(data, version))
        data = self.hop(data, version)
        if reset_counters:
            for x in self.x:
                x.debug.reset()
        mark("live_migration")

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
        finally:
            mark(None)
        return data, None

    def _phase(self, first):
        """A marker recording the calls of each phase in ``phase_calls``."""
        self.phase_calls = {}
        state = {"name": first, "start": self.total_calls()}

        def mark(name):
            now = self.total_calls()
            self.phase_calls[state["name"]] = now - state["start"]
            state.update(name=name, start=self.total_calls())
        return mark

    # --- inspection ---------------------------------------------------------

    def calls_of(self, index, method):
        counts = self.x[index].debug.get_call_count()["by_method"]
        return int(counts.get(method, 0))

    def total_calls(self):
        return sum(int(x.debug.get_call_count()["total"]) for x in self.x)
