"""Live migration of volume-backed VMs between two simulated pools.

Bug 1566622's scenarios at the level of ``nova_xenapi_resign.xenapi``: two
pools (sharing one SAN) driven over XML-RPC through the PyPI ``XenAPI``
client, with a small harness, :class:`Host`, that makes the XAPI calls Nova
21's XenAPI driver makes, in the compute manager's order::

    dest.check_can_live_migrate_destination
    source.check_can_live_migrate_source     (+ build_volume_sr_uuid_map)
    dest.pre_live_migration                  (+ inject_source_sr_uuids)
    source.live_migration                    (+ check_sr_uuid_map)
        VM.migrate_send with Nova's vdi_map
        -> post, or recover -> dest.rollback_live_migration_at_destination

``Host(extension=False)`` is stock Nova (uuid5 naming, no map, no check).
The migrate data travels between hosts as RPC would carry it: serialized,
optionally for a peer pinned to an older object version.
``benchmarks/bench_live_migration.py`` drives the same harness.
"""

import hashlib
import os
import uuid

import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign.objects import migrate_data as md
from nova_xenapi_resign.simulator import fixture as simfixture
from nova_xenapi_resign.simulator import san as sanmod
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import live_migration
from nova_xenapi_resign.xenapi import session as xapi_session
from nova_xenapi_resign.xenapi import volume_utils
from tests import base

PORTAL = "192.0.2.5:3260"
MiB = 1024 * 1024
DEST_HOST = "pool1-host0"


# --- sessions, names, volumes ------------------------------------------------

def iqn(volume_id):
    return "iqn.2010-01.com.example:volume-%s" % volume_id


def legacy(volume_id):
    return sr_naming.legacy_sr_uuid(volume_id)


def uuid5(volume_id):
    host, port = PORTAL.split(":")
    return sr_naming.uuid5_sr_uuid(host, port, iqn(volume_id))


def volume_id(number):
    return str(uuid.UUID(int=(0xabc << 96) + number))


def make_bdm(san, vol, mount, explicit_sr_uuid=None, size=4 * MiB):
    """A LUN on the SAN and Nova's block device mapping for it."""
    path = san.create_lun(PORTAL, iqn(vol), 0, size)
    with open(path, "r+b") as f:
        f.write(b"volume %s" % vol.encode())
    data = {"volume_id": vol, "target_portal": PORTAL,
            "target_iqn": iqn(vol), "target_lun": 0,
            "target_discovered": False}
    if explicit_sr_uuid is not None:
        data["sr_uuid"] = explicit_sr_uuid
    return {"connection_info": {"driver_volume_type": "iscsi",
                                "data": data, "serial": vol},
            "mount_device": mount}


def block_device_info(bdms):
    return {"block_device_mapping": list(bdms), "root_device_name": None,
            "ephemerals": [], "swap": None}


def hop(migrate_data, version=None):
    """Carry migrate data to a peer understanding ``version`` (RPC)."""
    manifest = {"XenapiLiveMigrateData": version} if version else None
    primitive = md.ObjectSerializer(manifest).serialize_entity(
        None, migrate_data)
    return md.ObjectSerializer().deserialize_entity(None, primitive)


# --- a compute host ----------------------------------------------------------

class Host(object):
    """One nova-compute over one pool: Nova's XAPI calls, plus the fix."""

    def __init__(self, sim, index, extension=True, style="auto",
                 require_relaxed=True):
        self.sim = sim
        self.index = index
        self.session = xapi_session.XenAPISession(sim.session(index))
        self.x = self.session.xenapi
        self.extension = extension
        self.style = style if extension else sr_naming.STYLE_UUID5
        self.require_relaxed = require_relaxed
        self.dest_state = {}
        self.source_maps = {}
        #: The CheckedVolumes of the running live_migration (extension).
        self.checked = None
        self._relaxed = None

    def call(self, method, *args):
        return self.session.call_xenapi(method, *args)

    # Nova's helpers --------------------------------------------------------

    def vm_ref(self, name):
        refs = self.call("VM.get_by_name_label", name)
        return refs[0] if refs else None

    def default_sr(self):
        return self.call("pool.get_default_SR", self.call("pool.get_all")[0])

    def network_ref(self):
        pifs = self.call("PIF.get_all_records_where",
                         'field "management" = "true" and field "host" = '
                         '"%s"' % self.session.host_ref)
        return list(pifs.values())[0]["network"]

    def relaxed(self):
        if self._relaxed is None:
            value = self.call("host.call_plugin", self.session.host_ref,
                              "config_file", "get_val",
                              {"key": "relax-xsm-sr-check"})
            # XenServer 7.0 (platform 2.1.0) and later default to true.
            self._relaxed = value in ("true", "")
        return self._relaxed

    def iscsi_srs(self, vm):
        srs = []
        for vbd in self.call("VM.get_VBDs", vm):
            sr = self.call("VDI.get_SR", self.call("VBD.get_VDI", vbd))
            if self.call("SR.get_type", sr) == "iscsi":
                srs.append(sr)
        return srs

    def vdis_on(self, vm, sr):
        for vbd in self.call("VM.get_VBDs", vm):
            try:
                vdi = self.call("VBD.get_VDI", vbd)
                if self.call("VDI.get_SR", vdi) == sr:
                    yield vdi
            except XenAPI.Failure:
                continue

    def connect_volume(self, connection_info, instance_name=None):
        """VolumeOps._attach_volume without a VM.

        Returns (sr_ref, sr_uuid, vdi_ref, whether the SR was introduced).
        """
        data = connection_info["data"]
        sr_ref, sr_uuid, introduced = volume_utils.connect_volume_sr(
            self.session, data, "Disk-for:%s" % instance_name, self.style)
        try:
            vdi = None
            for ref in self.call("SR.get_VDIs", sr_ref):
                record = self.call("VDI.get_record", ref)
                if record["sm_config"].get("LUNid") == str(
                        data.get("target_lun", 0)):
                    vdi = ref
                    break
            if vdi is None:
                raise exception.StorageError(reason="no VDI for LUN")
            self.call("VDI.get_record", vdi)
            self.call("VDI.get_uuid", vdi)
        except Exception:
            volume_utils.forget_sr(self.session, sr_ref)
            raise
        return sr_ref, sr_uuid, vdi, introduced

    def boot(self, name, bdms, styles=None):
        """A running VM with the volumes attached (Nova's attach_volume).

        ``styles``: the SR naming each volume was attached under (an older
        Nova: ``legacy``), default this host's.
        """
        vm = self.call("VM.create", {"name_label": name})
        own_style = self.style
        for number, bdm in enumerate(bdms, 1):
            self.style = styles[number - 1] if styles else own_style
            try:
                vdi = self.connect_volume(bdm["connection_info"], name)[2]
            finally:
                self.style = own_style
            self.call("VBD.create", {
                "VM": vm, "VDI": vdi, "userdevice": str(number),
                "bootable": False, "mode": "RW", "type": "Disk",
                "unpluggable": True, "empty": False,
                "other_config": {"osvol": "True"},
                "qos_algorithm_type": "", "qos_algorithm_params": {}})
        self.call("VM.start", vm, False, False)
        return self.call("VM.get_uuid", vm)

    # The live-migration driver methods ------------------------------------

    def check_can_live_migrate_destination(self):
        network = self.network_ref()
        return md.XenapiLiveMigrateData(
            block_migration=True,
            migrate_send_data=self.call("host.migrate_receive",
                                        self.session.host_ref, network, {}),
            destination_sr_ref=self.default_sr(),
            vif_uuid_map={"": network})

    def check_can_live_migrate_source(self, name, data, info):
        vm = self.vm_ref(name)
        if self.iscsi_srs(vm) and not self.relaxed():
            raise exception.LiveMigrationPreCheckError(
                volume_id="all", reason="XAPI supporting "
                "relax-xsm-sr-check=true required", source_sr_uuid="-",
                dest_sr_uuid="-", action="-")
        try:
            self.migrate_command("VM.assert_can_migrate", vm, data)
        except XenAPI.Failure as exc:
            # Nova swallows this on XCP >= 2.1: the volume SRs do not exist
            # on the destination yet.
            if exc.details[0] != "VDI_NOT_IN_MAP":
                raise
        if self.extension:
            volume_map = live_migration.build_volume_sr_uuid_map(
                self.session, info, self.style)
            self.source_maps[name] = volume_map
            data.volume_sr_uuid_map = volume_map
        return data

    def pre_live_migration(self, name, info, data):
        introduced = self.dest_state[name] = set()
        if self.extension:
            info = live_migration.inject_source_sr_uuids(
                info, md.get_volume_sr_uuid_map(data))
        sr_uuid_map = {}
        try:
            for bdm in info["block_device_mapping"]:
                _, sr_uuid, _, new = self.connect_volume(
                    bdm["connection_info"])
                if new:
                    introduced.add(sr_uuid)
                sr_uuid_map[sr_uuid] = self.call("SR.get_by_uuid", sr_uuid)
        except Exception:
            if self.extension:
                # nova_driver: only what this migration introduced.
                live_migration.forget_introduced_srs(
                    self.session, {u: u for u in introduced}, ())
            else:
                # Nova: every SR connected so far, pre-existing ones too.
                for sr_ref in sr_uuid_map.values():
                    volume_utils.forget_sr(self.session, sr_ref)
            raise
        data.sr_uuid_map = sr_uuid_map
        data.vif_uuid_map = {}
        return data

    def volume_vdi_map(self, dest_sr, vm, local_sr):
        """Nova's _generate_vdi_map; the extension's answers from its check.

        As ``nova_driver`` does: the VDIs ``check_sr_uuid_map`` verified,
        instead of Nova's walk over every VBD of the VM.
        """
        if self.checked is not None:
            vdi_map = self.checked.vdi_map(vm, local_sr, dest_sr)
            if vdi_map is not None:
                return vdi_map
        return {vdi: dest_sr for vdi in self.vdis_on(vm, local_sr)}

    def migrate_command(self, command, vm, data):
        """Nova's _call_live_migrate_command."""
        vdi_map = {vdi: data.destination_sr_ref
                   for vdi in self.vdis_on(vm, self.default_sr())}
        sr_uuid_map = data.sr_uuid_map if "sr_uuid_map" in data else {}
        for sr_uuid, dest_sr in (sr_uuid_map or {}).items():
            local = self.call("SR.get_by_uuid", sr_uuid)
            vdi_map.update(self.volume_vdi_map(dest_sr, vm, local))
        send_data = dict(data.migrate_send_data)
        vif_map = {}
        if send_data.get("host") not in self.call("host.get_all_records"):
            default = data.vif_uuid_map.get("")
            for vif in self.call("VM.get_VIFs", vm):
                self.call("VIF.get_other_config", vif)
                vif_map[vif] = default
        self.call(command, vm, send_data, True, vdi_map, vif_map, {})

    def live_migration(self, name, data, post, recover):
        try:
            vm = self.vm_ref(name)
            remembered = self.source_maps.pop(name, None)
            if self.extension:
                volume_map = md.get_volume_sr_uuid_map(data) or remembered
                relaxed = self.relaxed() if self.require_relaxed else True
                self.checked = live_migration.check_sr_uuid_map(
                    self.session, vm, data.sr_uuid_map, volume_map,
                    relaxed, self.require_relaxed)
            iscsi_srs = self.iscsi_srs(vm)
            # Nova 21's live_migrate sends at once (XAPI checks the maps
            # before moving anything).
            self.migrate_command("VM.migrate_send", vm, data)
            for sr_ref in iscsi_srs:
                volume_utils.forget_sr(self.session, sr_ref)
            post(data)
        except Exception:
            recover(data)
            raise
        finally:
            self.checked = None

    def rollback_live_migration_at_destination(self, name, info, data):
        if self.extension:
            introduced = self.dest_state.pop(name, set())
            return live_migration.forget_introduced_srs(
                self.session, {u: u for u in introduced}, ())
        # Nova: recompute each volume's (uuid5) name and forget it.
        for bdm in info["block_device_mapping"]:
            sr_uuid, _, _ = volume_utils.parse_sr_info(
                bdm["connection_info"]["data"], style=sr_naming.STYLE_UUID5)
            sr_ref = volume_utils.find_sr_by_uuid(self.session, sr_uuid)
            if sr_ref:
                volume_utils.forget_sr(self.session, sr_ref)


class Migration(object):
    """The compute manager's live-migration sequence between two hosts."""

    def __init__(self, source, dest, name, bdms, version=None):
        self.source = source
        self.dest = dest
        self.name = name
        self.info = block_device_info(bdms)
        self.version = version
        self.events = []
        self.data = None
        self.phase_calls = {}
        #: {method: calls} on the source during live_migration.
        self.live_calls = {}

    def _counts(self):
        return sum(int(h.x.debug.get_call_count()["total"])
                   for h in (self.source, self.dest))

    def run(self, before_live_migration=None):
        """Run it; re-raise a refusal after the rollback ran."""
        for host in (self.source, self.dest):
            host.x.debug.reset()
        version = self.version
        phases = [
            ("check_destination",
             lambda d: self.dest.check_can_live_migrate_destination()),
            ("check_source",
             lambda d: self.source.check_can_live_migrate_source(
                 self.name, hop(d, version), self.info)),
            ("pre_live_migration", lambda d: self.dest.pre_live_migration(
                self.name, self.info, hop(d, version))),
        ]
        data = None
        try:
            for label, phase in phases:
                before = self._counts()
                data = phase(data)
                self.phase_calls[label] = self._counts() - before
        except Exception:
            self.events.append("rollback")
            self.dest.rollback_live_migration_at_destination(
                self.name, self.info, hop(data, version) if data else None)
            raise
        data = hop(data, version)
        self.data = data
        if before_live_migration is not None:
            before_live_migration()

        def post(migrate_data):
            self.events.append("post")

        def recover(migrate_data):
            self.events.append("recover")
            self.dest.rollback_live_migration_at_destination(
                self.name, self.info, hop(migrate_data, version))

        before = self._counts()
        by_method = dict(self.source.x.debug.get_call_count()["by_method"])
        try:
            self.source.live_migration(self.name, data, post, recover)
        finally:
            self.phase_calls["live_migration"] = self._counts() - before
            after = self.source.x.debug.get_call_count()["by_method"]
            self.live_calls = {
                m: int(n) - int(by_method.get(m, 0))
                for m, n in after.items() if int(n) > int(by_method.get(m, 0))}
        return data


# --- tests -------------------------------------------------------------------

def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class LiveMigrationSimTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=2, san_dir=os.path.join(self.tmpdir, "san")))
        self.san = self.sim.san
        self.name = "instance-00000001"

    def hosts(self, **kwargs):
        return Host(self.sim, 0, **kwargs), Host(self.sim, 1, **kwargs)

    def sr_exists(self, host, sr_uuid):
        return volume_utils.find_sr_by_uuid(host.session, sr_uuid) is not None

    def vm_pools(self, vm_uuid):
        found = []
        for index in (0, 1):
            x = self.sim.session(index).xenapi
            try:
                x.VM.get_by_uuid(vm_uuid)
            except XenAPI.Failure:
                continue
            found.append(index)
        return found

    def calls(self, host, method):
        counts = host.x.debug.get_call_count()["by_method"]
        return int(counts.get(method, 0))

    def assert_no_hazard(self, source, dest):
        for host in (source, dest):
            self.assertEqual([], host.x.debug.get_hazards())
            self.assertEqual([], [m for m in host.x.debug.get_migrations()
                                  if m["mirrored"]])

    def migrate_ok(self, volumes):
        """volumes: [(volume id, source style, explicit sr uuid or None)]."""
        source, dest = self.hosts()
        bdms, source_srs, luns = [], {}, []
        for number, (vol, style, explicit) in enumerate(volumes):
            bdms.append(make_bdm(self.san, vol,
                                 "/dev/xvd%s" % "bcdefgh"[number], explicit))
            luns.append(self.san.path(PORTAL, iqn(vol), 0))
            source_srs[vol] = explicit or {"legacy": legacy,
                                           "uuid5": uuid5}[style](vol)
        digests = [digest(p) for p in luns]
        vm_uuid = source.boot(self.name, bdms, [v[1] for v in volumes])
        self.assertEqual(set(source_srs.values()), {
            source.x.SR.get_uuid(sr) for sr in source.x.SR.get_all()
            if source.x.SR.get_type(sr) == "iscsi"})

        migration = Migration(source, dest, self.name, bdms)
        data = migration.run()

        self.assertEqual(["post"], migration.events)
        self.assertEqual(1, migration.live_calls["VM.migrate_send"])
        self.assertEqual(source_srs, md.get_volume_sr_uuid_map(data))
        self.assertEqual(set(source_srs.values()), set(data.sr_uuid_map))
        self.assertEqual([1], self.vm_pools(vm_uuid))
        x1 = dest.x
        vm = x1.VM.get_by_uuid(vm_uuid)
        self.assertEqual("Running", x1.VM.get_power_state(vm))
        dest_srs = sorted(x1.SR.get_uuid(x1.VDI.get_SR(x1.VBD.get_VDI(v)))
                          for v in x1.VM.get_VBDs(vm))
        self.assertEqual(sorted(source_srs.values()), dest_srs)
        self.assertEqual(len(volumes), len(
            [m for m in source.x.debug.get_migrations()
             if not m["mirrored"]]))
        self.assert_no_hazard(source, dest)
        for sr_uuid in source_srs.values():
            self.assertFalse(self.sr_exists(source, sr_uuid))
        self.assertEqual(digests, [digest(p) for p in luns])
        return source, dest, migration

    # (a) - (d): success, same SR uuids, no mirror --------------------------

    def test_a_legacy_sr(self):
        vol = volume_id(1)
        self.migrate_ok([(vol, "legacy", None)])

    def test_b_uuid5_sr(self):
        vol = volume_id(2)
        self.migrate_ok([(vol, "uuid5", None)])

    def test_c_legacy_and_uuid5(self):
        _, dest, _ = self.migrate_ok([(volume_id(3), "legacy", None),
                                      (volume_id(4), "uuid5", None)])
        self.assertFalse(self.sr_exists(dest, uuid5(volume_id(3))))
        self.assertFalse(self.sr_exists(dest, legacy(volume_id(4))))

    def test_d_explicit_sr_uuid(self):
        explicit = "5e1ec7ed-0000-4000-8000-000000000005"
        self.migrate_ok([(volume_id(5), "uuid5", explicit)])

    def test_lookups_per_volume(self):
        source = Host(self.sim, 0)
        vols = [volume_id(10 + i) for i in range(4)]
        styles = ["legacy", "uuid5", "legacy", "uuid5"]
        bdms = [make_bdm(self.san, v, str(n + 1))
                for n, v in enumerate(vols)]
        source.boot(self.name, bdms, styles)
        source.x.debug.reset()
        volume_map = live_migration.build_volume_sr_uuid_map(
            source.session, block_device_info(bdms), "auto")
        self.assertEqual({v: (legacy if s == "legacy" else uuid5)(v)
                          for v, s in zip(vols, styles)}, volume_map)
        # auto: the legacy name first (1 call), else uuid5 too (2 calls).
        self.assertEqual(6, self.calls(source, "SR.get_by_uuid"))
        self.assertEqual(6, int(source.x.debug.get_call_count()["total"]))

    # The bug itself, with stock Nova on both hosts ------------------------

    def test_stock_nova_legacy_sr_uuid_invalid(self):
        source, dest = self.hosts(extension=False)
        vol = volume_id(6)
        bdm = make_bdm(self.san, vol, "/dev/xvdb")
        vm_uuid = source.boot(self.name, [bdm], ["legacy"])
        migration = Migration(source, dest, self.name, [bdm])
        exc = self.assertRaises(XenAPI.Failure, migration.run)
        self.assertEqual(["UUID_INVALID", "SR", uuid5(vol)], exc.details)
        self.assertEqual(["recover"], migration.events)
        self.assertEqual([0], self.vm_pools(vm_uuid))
        self.assertEqual(0, self.calls(source, "VM.migrate_send"))
        self.assertFalse(self.sr_exists(dest, uuid5(vol)))

    # (e) - (g): refusals and rollbacks ------------------------------------

    def refused_setup(self, number, **kwargs):
        source, dest = self.hosts(**kwargs)
        vol = volume_id(number)
        bdm = make_bdm(self.san, vol, "/dev/xvdb")
        vm_uuid = source.boot(self.name, [bdm], ["legacy"])
        return source, dest, vol, bdm, vm_uuid

    def assert_refused_cleanly(self, source, dest, vol, vm_uuid, migration):
        self.assertEqual(0, migration.live_calls.get("VM.assert_can_migrate",
                                                     0))
        self.assertEqual(0, self.calls(source, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pools(vm_uuid))
        self.assertEqual("Running", source.x.VM.get_power_state(
            source.x.VM.get_by_uuid(vm_uuid)))
        self.assertTrue(self.sr_exists(source, legacy(vol)))
        self.assertFalse(self.sr_exists(dest, legacy(vol)))
        self.assertFalse(self.sr_exists(dest, uuid5(vol)))
        self.assert_no_hazard(source, dest)

    def test_e_destination_pinned_to_1_4(self):
        source, dest, vol, bdm, vm_uuid = self.refused_setup(7)
        migration = Migration(source, dest, self.name, [bdm], version="1.4")
        # The source does not remember its map either: only the data.
        source.source_maps = _Forgetful()
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                migration.run)
        self.assertEqual("1.4", migration.data.VERSION)
        self.assertEqual({}, md.get_volume_sr_uuid_map(migration.data))
        self.assertIn(uuid5(vol), str(exc))
        self.assertEqual(["recover"], migration.events)
        self.assert_refused_cleanly(source, dest, vol, vm_uuid, migration)

    def test_e_destination_pinned_source_remembers(self):
        source, dest, vol, bdm, vm_uuid = self.refused_setup(8)
        migration = Migration(source, dest, self.name, [bdm], version="1.4")
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                migration.run)
        self.assertIn(legacy(vol), str(exc))
        self.assertIn("no SR under the UUID the source uses", str(exc))
        self.assertEqual(["recover"], migration.events)
        self.assert_refused_cleanly(source, dest, vol, vm_uuid, migration)

    def test_f_relaxed_check_off(self):
        self.sim.pools[0].settings["relax-xsm-sr-check"] = False
        source, dest, vol, bdm, vm_uuid = self.refused_setup(9)
        migration = Migration(source, dest, self.name, [bdm])
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                migration.run)
        self.assertIn("relax-xsm-sr-check", str(exc))
        self.assertEqual(["rollback"], migration.events)
        self.assert_refused_cleanly(source, dest, vol, vm_uuid, migration)

    def test_f_relaxed_check_turned_off_before_live_migration(self):
        source, dest, vol, bdm, vm_uuid = self.refused_setup(10)
        migration = Migration(source, dest, self.name, [bdm])

        def xapi_restarted_with_strict_check():
            self.sim.pools[0].settings["relax-xsm-sr-check"] = False
            source._relaxed = None

        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                migration.run,
                                xapi_restarted_with_strict_check)
        self.assertIn("relax-xsm-sr-check", str(exc))
        self.assertEqual(["recover"], migration.events)
        self.assert_refused_cleanly(source, dest, vol, vm_uuid, migration)

    def test_f_relaxed_not_required(self):
        # require_relaxed_xsm_sr_check = False: the extension lets it
        # through; XAPI's strict check would mirror the volume, and raw
        # iSCSI cannot be mirrored (no VDI_MIRROR since XenServer 7.1), so
        # XAPI itself refuses before moving anything.  On an SR type that
        # can mirror this would be the LUN mirrored onto itself -- which is
        # why the option defaults to True.
        source, dest, vol, bdm, vm_uuid = self.refused_setup(
            11, require_relaxed=False)
        migration = Migration(source, dest, self.name, [bdm])
        exc = self.assertRaises(
            XenAPI.Failure, migration.run,
            lambda: self.sim.pools[0].settings.update(
                {"relax-xsm-sr-check": False}))
        self.assertEqual("SR_DOES_NOT_SUPPORT_MIGRATION", exc.details[0])
        self.assertEqual(["recover"], migration.events)
        self.assertEqual([0], self.vm_pools(vm_uuid))
        self.assertEqual([], source.x.debug.get_migrations())
        self.assert_no_hazard(source, dest)

    def test_g_sr_missing_on_destination_san_view(self):
        source, dest = self.hosts()
        vols = [volume_id(12), volume_id(13)]
        bdms = [make_bdm(self.san, v, m)
                for v, m in zip(vols, ("/dev/xvdb", "/dev/xvdc"))]
        vm_uuid = source.boot(self.name, bdms, ["legacy", "legacy"])
        # The destination pool sees the first volume's target only.
        view = sanmod.San(os.path.join(self.tmpdir, "dest-view"))
        visible = view.target_dir(PORTAL, iqn(vols[0]))
        os.makedirs(os.path.dirname(visible))
        os.symlink(self.san.target_dir(PORTAL, iqn(vols[0])), visible)
        self.sim.pools[1].san = view
        migration = Migration(source, dest, self.name, bdms)
        self.assertRaises(XenAPI.Failure, migration.run)
        self.assertEqual(["rollback"], migration.events)
        self.assertEqual(0, self.calls(source, "VM.migrate_send"))
        self.assertEqual([0], self.vm_pools(vm_uuid))
        for vol in vols:
            self.assertTrue(self.sr_exists(source, legacy(vol)))
            self.assertFalse(self.sr_exists(dest, legacy(vol)))
            self.assertFalse(self.sr_exists(dest, uuid5(vol)))
        self.assert_no_hazard(source, dest)

    def test_preexisting_destination_sr_is_kept_on_rollback(self):
        source, dest, vol, bdm, vm_uuid = self.refused_setup(14)
        # Another VM on the destination already uses the volume's legacy SR.
        other = dest.boot("other", [bdm], ["legacy"])
        migration = Migration(source, dest, self.name, [bdm])

        def strict():
            self.sim.pools[0].settings["relax-xsm-sr-check"] = False
            source._relaxed = None

        self.assertRaises(exception.LiveMigrationPreCheckError,
                          migration.run, strict)
        self.assertEqual(["recover"], migration.events)
        self.assertTrue(self.sr_exists(dest, legacy(vol)))
        self.assertEqual([1], self.vm_pools(other))
        self.assertEqual([0], self.vm_pools(vm_uuid))


class _Forgetful(dict):
    """A source_maps that never remembers anything."""

    def __setitem__(self, key, value):
        pass


class TestManyVolumes(base.TestCase):

    def test_8_mixed_volumes(self):
        sim = self.useFixture(simfixture.SimulatorFixture(
            pools=2, san_dir=os.path.join(self.tmpdir, "san")))
        source, dest = Host(sim, 0), Host(sim, 1)
        vols = [volume_id(100 + i) for i in range(8)]
        bdms = [make_bdm(sim.san, v, str(n + 1), size=MiB)
                for n, v in enumerate(vols)]
        source.boot("instance-00000002", bdms, ["legacy", "uuid5"] * 4)
        data = Migration(source, dest, "instance-00000002", bdms).run()
        self.assertEqual(8, len(set(data.sr_uuid_map)))
        self.assertEqual(set(md.get_volume_sr_uuid_map(data).values()),
                         set(data.sr_uuid_map))
        self.assertEqual([], source.x.debug.get_hazards())
        self.assertEqual([], [m for m in source.x.debug.get_migrations()
                              if m["mirrored"]])
