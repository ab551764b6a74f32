"""Two simulated pools driven by Nova 21.2.4's own XenAPI driver.

Shared by ``nova_tests`` and ``benchmarks/bench_live_migration.py --nova``.
The drivers are loaded as nova-compute loads them
(``nova.virt.driver.load_compute_driver`` with ``compute_driver =
xenapi.XenAPIDriver`` and ``[xenserver] connection_url``): stock, or with
the extension activated as ``nova-compute-xenapi-resign`` activates it.
Nova's own ``VMOps`` / ``VolumeOps`` / ``volume_utils`` and os-xenapi's
``XenAPISession`` run over the PyPI ``XenAPI`` client's ordinary transport,
with the extension's :mod:`~nova_xenapi_resign.xenapi.plugin_compat` (as
on a compute host) and one adjustment for the simulator: a URL with a
port.  The compute manager's part is played by
:meth:`NovaPools.migrate`, which calls the driver methods in Nova's order
and carries the migrate data between hosts as RPC would
(``obj_to_primitive`` / ``obj_from_primitive``, optionally pinned to an
older object version).
"""

import socket
import urllib.parse
import uuid

import fixtures
import nova.conf
from nova import context as nova_context
from nova import objects
from nova.objects import base as nova_base
from nova import rpc
from nova.virt import driver as virt_driver
import nova.virt.xenapi as nova_xenapi
from nova.virt.xenapi import driver as nova_xenapi_driver
import oslo_messaging

from nova_xenapi_resign import nova_compute
from nova_xenapi_resign.simulator import fixture as simfixture
from nova_xenapi_resign.xenapi import plugin_compat
from tests.functional.test_live_migration_sim import iqn
from tests.functional.test_live_migration_sim import PORTAL

CONF = nova.conf.CONF
#: ``[DEFAULT] compute_driver``, as README gives it, for both services.
COMPUTE_DRIVER = "xenapi.XenAPIDriver"
#: The service started as ``nova-compute-xenapi-resign`` (README).
OUR_DRIVER = "extension"
#: The service started as Nova's own ``nova-compute``.
STOCK_DRIVER = "stock"
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


def _get_ip_from_url(self, url):
    """The host of ``url``, resolved.

    os-xenapi resolves ``netloc``, so a URL with a port (the simulator's)
    fails; a real host is on port 80/443.
    """
    return socket.gethostbyname(urllib.parse.urlparse(url).hostname)


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
        # os-xenapi 0.3.4 on Python 3 cannot call a real host's plugins;
        # the extension ships the fix (for stock Nova's driver too: it is
        # os-xenapi's, not the driver's).
        plugin_compat.install()
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=2, san_dir=self.san_dir))
        self.x = [self.sim.session(i).xenapi for i in range(2)]
        self.ctx = nova_context.get_admin_context()
        #: "post" / "recover", as the compute manager's callbacks ran.
        self.calls = []
        #: XAPI calls (both pools) per phase of the last ``migrate``.
        self.phase_calls = {}

    # --- hosts, volumes and instances -------------------------------------

    def driver(self, index, service=OUR_DRIVER):
        """The driver the compute service of pool ``index`` loads.

        ``service`` is :data:`OUR_DRIVER` (``nova-compute-xenapi-resign``:
        the extension activated) or :data:`STOCK_DRIVER` (``nova-compute``);
        ``compute_driver`` is :data:`COMPUTE_DRIVER` for both.
        """
        CONF.set_override("connection_url", self.sim.urls[index],
                          "xenserver")
        CONF.set_override("connection_password", "password", "xenserver")
        package = nova_xenapi
        try:
            if service == OUR_DRIVER:
                nova_compute.activate()
            else:
                package.XenAPIDriver = nova_xenapi_driver.XenAPIDriver
            return virt_driver.load_compute_driver(object(), COMPUTE_DRIVER)
        finally:
            package.XenAPIDriver = nova_xenapi_driver.XenAPIDriver
            CONF.clear_override("connection_url", "xenserver")
            CONF.clear_override("connection_password", "xenserver")

    def volume(self, volume_id, mount, size=8 * MiB, target=None, lun=0):
        """A LUN on the SAN and Nova's block device mapping for it (CHAP).

        The LUN is ``lun`` of the target ``target`` (an IQN; by default
        one target per volume, ``iqn(volume_id)``).
        """
        target = target or iqn(volume_id)
        self.sim.san.create_lun(PORTAL, target, lun, size)
        data = {"volume_id": volume_id, "target_portal": PORTAL,
                "target_iqn": target, "target_lun": lun,
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
        """A running VM on pool 0 with each (bdm, SR uuid) attached.

        Volumes naming the same SR uuid share one SR (introduced once).
        """
        x = self.x[0]
        vm = x.VM.create({"name_label": instance.name,
                          "other_config": {"nova_uuid": instance.uuid}})
        srs = {}
        for number, (bdm, sr_uuid) in enumerate(volumes, 1):
            if sr_uuid not in srs:
                srs[sr_uuid] = self.introduce(x, sr_uuid, bdm)
            self.attach(x, vm, srs[sr_uuid], number,
                        bdm["connection_info"]["data"]["target_lun"])
        x.VM.start(vm, False, False)
        return x.VM.get_uuid(vm)

    @staticmethod
    def attach(x, vm, sr, number=1, lun=0):
        """A volume VBD (``osvol``, as Nova makes it) of LUN ``lun``'s VDI."""
        vdi = [v for v in x.SR.get_VDIs(sr)
               if x.VDI.get_sm_config(v).get("LUNid") == str(lun)][0]
        return x.VBD.create({
            "VM": vm, "VDI": vdi, "userdevice": str(number),
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
            # The compute manager's _post_live_migration: the source's
            # post, then the destination's over RPC.
            self.calls.append("post")
            source.post_live_migration(context, inst, info, migrate_data)
            dest.post_live_migration_at_destination(context, inst, [],
                                                    block_migration, info)

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
