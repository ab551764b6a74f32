"""``xenapi-resign demo``: the whole story on the embedded XAPI, in seconds.

Two simulated pools share one SAN of LUN image files.  The demo attaches an
LVHD SR, clones its LUN on the "SAN", shows XAPI refusing the clone, resigns
it and attaches it beside the original; then it reproduces Launchpad bug
1566622 with Nova's stock algorithm, gives the same VM a VDI-per-LUN volume
that the Cinder wrapper (``ResignVolumeDriver`` on a simulated-SAN backend,
:mod:`nova_xenapi_resign.demo_cinder`) created as one LVHD VDI and
published, attaches a volume Cinder made from its snapshot (resigned by the
wrapper) to a second VM beside it, and live-migrates the first VM,
legacy-named raw volume and LVHD volume in one go, with the extension and
no storage mirror.  Every step records the
XAPI calls it made; the hazard list of both pools must stay empty.

Step names (stable, for ``--json``): see :data:`STEPS`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import shutil
import tempfile
import time
from typing import Any, Callable

STEPS = ("start-pools", "format-original-lun", "attach-original", "san-clone",
         "introduce-duplicate-refused", "resign-clone", "attach-clone",
         "bug-1566622-stock-nova", "vdi-per-lun-volume",
         "vdi-per-lun-clone-beside", "live-migrate-mixed-volumes",
         "no-hazards")

MiB = 1024 * 1024
PORTAL = "192.0.2.10:3260"
IQN_SR = "iqn.2010-01.com.solidfire:demo.sr-lun"
IQN_CLONE = "iqn.2010-01.com.solidfire:demo.sr-lun-clone"
IQN_VOLUME = "iqn.2010-01.com.solidfire:demo.vol-1"
VOLUME_ID = "0b9bf0a4-4ad3-4c55-9f44-3b1a5c6e0d01"
LVHD_VOLUME_ID = "0b9bf0a4-4ad3-4c55-9f44-3b1a5c6e0d02"
LVHD_CLONE_ID = "0b9bf0a4-4ad3-4c55-9f44-3b1a5c6e0d03"
LVHD_SNAPSHOT_ID = "0b9bf0a4-4ad3-4c55-9f44-3b1a5c6e0d04"
#: A volume type of VDI-per-LUN volumes (docs: admin/vdi-per-lun).
LVHD_VOLUME_TYPE = {"extra_specs": {"xenapi_resign:sr_type": "lvmoiscsi"}}


@dataclasses.dataclass
class Step:
    name: str
    ok: bool
    xapi_calls: int
    seconds: float
    summary: str
    detail: dict
    #: ``{XAPI method: calls}`` the step made, both pools together.
    xapi_methods: dict = dataclasses.field(default_factory=dict)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _failure(call: Callable, *args: Any) -> list:
    import XenAPI
    try:
        call(*args)
    except XenAPI.Failure as exc:
        return list(exc.details)
    return []


class Demo(object):
    """Runs the steps in order; each returns (ok, summary, detail)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.steps: list[Step] = []
        self.sim = None
        self.a = self.b = None      # Nova-like sessions on pool A and B
        self.ctx: dict = {}
        self._stack = contextlib.ExitStack()
        self._lease_hosts: dict = {}

    # --- bookkeeping ---------------------------------------------------

    def _calls(self) -> int:
        if self.sim is None:
            return 0
        return sum(int(p.call_total) for p in self.sim.pools)

    def _methods(self) -> collections.Counter:
        counts: collections.Counter = collections.Counter()
        for pool in (self.sim.pools if self.sim is not None else ()):
            counts.update(pool.calls_by_method)
        return counts

    def run(self, report: Callable[[Step], None]) -> list[Step]:
        for name in STEPS:
            before, started = self._calls(), time.monotonic()
            methods = self._methods()
            try:
                ok, summary, detail = getattr(
                    self, "step_" + name.replace("-", "_"))()
            except Exception as exc:  # the demo reports, never hides
                ok, summary, detail = False, "%s: %s" % (
                    type(exc).__name__, exc), {}
            step = Step(name, ok, self._calls() - before,
                        time.monotonic() - started, summary, detail,
                        dict(sorted((self._methods() - methods).items())))
            self.steps.append(step)
            report(step)
            if not ok:
                break
        return self.steps

    def close(self) -> None:
        self._stack.close()
        if self.sim is not None:
            self.sim.stop()

    # --- the SR and its clone -----------------------------------------

    def step_start_pools(self):
        from nova_xenapi_resign.simulator import server
        from nova_xenapi_resign.xenapi import session
        self.sim = server.serve(self.workdir + "/san", pools=2,
                                names=["pool-a", "pool-b"])
        self.a = session.connect(self.sim.urls[0])
        self.b = session.connect(self.sim.urls[1])
        return True, "two pools sharing one SAN", {"urls": self.sim.urls}

    def step_format_original_lun(self):
        from nova_xenapi_resign.lvhd import create
        from nova_xenapi_resign.lvhd import device
        import uuid
        path = self.sim.san.create_lun(PORTAL, IQN_SR, 0, 64 * MiB)
        sr_uuid = str(uuid.uuid4())
        base, leaf, snap, raw = (str(uuid.uuid4()) for _ in range(4))
        vdis = (
            create.VdiSpec(base, "vhd", 8 * MiB, name_label="base copy",
                           hidden=True, read_only=True, managed=False),
            create.VdiSpec(leaf, "vhd", 8 * MiB, name_label="vm-disk",
                           parent=base),
            create.VdiSpec(snap, "vhd", 8 * MiB, name_label="vm-disk snap",
                           parent=base, is_a_snapshot=True,
                           snapshot_of=leaf),
            create.VdiSpec(raw, "raw", 4 * MiB, name_label="config-drive"))
        with device.open_device(path, writable=True) as dev:
            create.format_sr(dev, sr_uuid, vdis, name_label="customer-sr")
        self.ctx.update(original=path, sr_uuid=sr_uuid)
        return True, "LVHD SR %s with a snapshot tree and a raw VDI" % (
            sr_uuid), {"sr_uuid": sr_uuid, "vdis": [v.uuid for v in vdis]}

    def _attach_lvhd(self, iqn: str, name: str):
        """XenServer's two-step lvmoiscsi attach, then introduce and plug.

        sr-probe without SCSIid (SR_BACKEND_FAILURE_107 lists the LUNs),
        sr-probe with the SCSIid of LUN 0 (the SR on it), sr-introduce,
        pbd-create, pbd-plug, sr-scan.
        """
        from nova_xenapi_resign.xenapi import volume_utils
        import xml.dom.minidom
        x = self.a.xenapi
        config = volume_utils.lvmoiscsi_device_config(
            self.a, {"target": PORTAL.split(":")[0], "port": "3260",
                     "targetIQN": iqn}, 0)
        probe = x.SR.probe(self.a.host_ref, config, "lvmoiscsi", {})
        uuids = [n.firstChild.data.strip() for n in xml.dom.minidom
                 .parseString(probe).getElementsByTagName("UUID")]
        sr = x.SR.introduce(uuids[0], name, "", "lvmoiscsi", "", True, {})
        pbd = x.PBD.create({"host": self.a.host_ref, "SR": sr,
                            "device_config": config})
        x.PBD.plug(pbd)
        x.SR.scan(sr)
        vdis = {x.VDI.get_uuid(v): x.VDI.get_record(v)
                for v in x.SR.get_VDIs(sr)}
        return uuids[0], sr, vdis, config["SCSIid"]

    def step_attach_original(self):
        sr_uuid, sr, vdis, scsi_id = self._attach_lvhd(IQN_SR, "customer-sr")
        self.ctx["original_vdis"] = vdis
        summary = "attached in pool-a with %d VDIs (probe -> " \
            "SR_BACKEND_FAILURE_107 LUN list -> SCSIid %s -> plug)" % (
                len(vdis), scsi_id)
        return sr_uuid == self.ctx["sr_uuid"], summary, {
            "sr_uuid": sr_uuid, "scsi_id": scsi_id, "vdis": sorted(vdis)}

    def step_san_clone(self):
        # Fingerprint the original now: attaching an LVHD SR may rewrite
        # its metadata, as real SM does; from here on nothing may write it.
        self.ctx["original_sha256"] = _sha256(self.ctx["original"])
        clone = self.sim.san.clone_lun(self.ctx["original"], PORTAL,
                                       IQN_CLONE, 0)
        self.ctx["clone"] = clone
        same = _sha256(clone) == self.ctx["original_sha256"]
        return same, "clone LUN is a byte copy (same SR uuid, LVM ids, " \
            "VDI uuids)", {"clone": clone}

    def step_introduce_duplicate_refused(self):
        x = self.a.xenapi
        error = _failure(x.SR.introduce, self.ctx["sr_uuid"], "clone", "",
                         "lvmoiscsi", "", True, {})
        ok = bool(error) and error[0] == "SR_UUID_EXISTS"
        return ok, "XAPI refuses the clone: %s" % " ".join(error), {
            "error": error}

    def step_resign_clone(self):
        from nova_xenapi_resign import resign
        from nova_xenapi_resign import sr_naming
        target = sr_naming.preferred_sr_uuid(
            {"target_portal": PORTAL, "target_iqn": IQN_CLONE}, "uuid5")
        where = dict(backup_dir=self.workdir + "/backups",
                     lock_path=self.workdir + "/locks")
        result = resign.resign_device(self.ctx["clone"], target, **where)
        again = resign.resign_device(self.ctx["clone"], target, **where)
        untouched = _sha256(self.ctx["original"]) == \
            self.ctx["original_sha256"]
        self.ctx["target"] = target
        ok = result.changed and not again.changed and untouched
        return ok, "%s; rerun: %s; original untouched: %s" % (
            result.message, again.message, untouched), {
            "target_sr_uuid": target, "changes": len(result.plan.changes),
            "bytes_written": result.bytes_written,
            "seconds": round(result.seconds, 4)}

    def step_attach_clone(self):
        sr_uuid, sr, vdis, scsi_id = self._attach_lvhd(IQN_CLONE,
                                                       "customer-sr clone")
        original = self.ctx["original_vdis"]
        labels = sorted(r["name_label"] for r in vdis.values())
        same_labels = labels == sorted(r["name_label"]
                                       for r in original.values())
        disjoint = not set(vdis) & set(original)
        parents = sorted(bool(r["sm_config"].get("vhd-parent"))
                         for r in vdis.values())
        same_tree = parents == sorted(bool(r["sm_config"].get("vhd-parent"))
                                      for r in original.values())
        srs = len(self.a.xenapi.SR.get_all_records_where(
            'field "type"="lvmoiscsi"'))
        ok = (sr_uuid == self.ctx["target"] and same_labels and disjoint
              and same_tree and srs == 2)
        return ok, "clone attached beside the original (SCSIid %s): new " \
            "VDI uuids, same labels and parent tree" % scsi_id, {
                "sr_uuid": sr_uuid, "scsi_id": scsi_id, "labels": labels}

    # --- live migration of a legacy-named volume --------------------------

    def _volume_bdi(self) -> dict:
        """The VM's volumes: the legacy raw one, the LVHD one once made."""
        data = {"volume_id": VOLUME_ID, "target_portal": PORTAL,
                "target_iqn": IQN_VOLUME, "target_lun": 0}
        bdms = [{"mount_device": "/dev/xvdb",
                 "connection_info": {"driver_volume_type": "iscsi",
                                     "serial": VOLUME_ID, "data": data}}]
        if "lvhd_data" in self.ctx:
            bdms.append({"mount_device": "/dev/xvdc", "connection_info": {
                "driver_volume_type": "iscsi", "serial": LVHD_VOLUME_ID,
                "data": self.ctx["lvhd_data"]}})
        return {"block_device_mapping": bdms}

    @staticmethod
    def _plug_vbd(x, vm: str, vdi: str, userdevice: str) -> None:
        """A volume VBD, as Nova's ``create_vbd(osvol=True)``, plugged."""
        vbd = x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": userdevice,
                            "bootable": False, "mode": "RW", "type": "Disk",
                            "unpluggable": True, "empty": False,
                            "other_config": {"osvol": "True"},
                            "qos_algorithm_type": "",
                            "qos_algorithm_params": {}})
        if x.VM.get_power_state(vm) == "Running":
            x.VBD.plug(vbd)

    def _legacy_vm(self):
        """A VM whose volume SR a pre-Mitaka Nova named FA15E-D15C-<id>."""
        from nova_xenapi_resign import sr_naming
        from nova_xenapi_resign.xenapi import volume_utils
        self.sim.san.create_lun(PORTAL, IQN_VOLUME, 0, 8 * MiB)
        data = dict(self._volume_bdi()["block_device_mapping"][0]
                    ["connection_info"]["data"])
        sr, sr_uuid, _ = volume_utils.connect_volume_sr(
            self.a, data, style=sr_naming.STYLE_LEGACY)
        x = self.a.xenapi
        vdi = x.SR.get_VDIs(sr)[0]
        vm = x.VM.create({"name_label": "instance-legacy"})
        self._plug_vbd(x, vm, vdi, "1")
        x.VM.start(vm, False, False)
        return vm, vdi, sr_uuid

    def step_bug_1566622_stock_nova(self):
        """Stock Nova: the source cannot find the destination's SR uuid.

        The destination names the SR uuid5, the source asks XAPI for that
        uuid and gets UUID_INVALID.
        """
        from nova_xenapi_resign import sr_naming
        from nova_xenapi_resign.xenapi import volume_utils
        vm, vdi, legacy = self._legacy_vm()
        self.ctx.update(vm=vm, vdi=vdi, legacy=legacy)
        data = self._volume_bdi()["block_device_mapping"][0][
            "connection_info"]["data"]
        dest_sr, dest_uuid, _ = volume_utils.connect_volume_sr(
            self.b, data, style=sr_naming.STYLE_UUID5)
        error = _failure(self.a.xenapi.SR.get_by_uuid, dest_uuid)
        volume_utils.forget_sr(self.b, dest_sr)
        ok = legacy.startswith(sr_naming.LEGACY_PREFIX) and error[:1] == [
            "UUID_INVALID"]
        return ok, "reproduced: source SR %s, destination SR %s -> %s" % (
            legacy, dest_uuid, " ".join(error)), {"error": error}

    # --- VDI-per-LUN volumes ---------------------------------------------

    def _cinder(self):
        """The Cinder wrapper on the simulated SAN (made on first use)."""
        if "cinder" not in self.ctx:
            from nova_xenapi_resign import demo_cinder
            self.ctx["cinder"] = self._stack.enter_context(
                demo_cinder.cinder_wrapper(self.sim.san, self.workdir))
        return self.ctx["cinder"]

    def _cinder_attach_data(self, volume: dict) -> dict:
        """What Nova gets from ``os-initialize_connection`` for a volume."""
        wrapper, connector = self._cinder()
        if connector.attached:
            raise AssertionError("LUNs left attached on the Cinder host: %s"
                                 % connector.attached)
        return wrapper.initialize_connection(
            volume, {"host": "compute-a", "initiator": "iqn.demo:a"})["data"]

    def _leases(self, session):
        """The extension's lease client and renewer of a pool's host."""
        from nova_xenapi_resign.lease import protocol
        from nova_xenapi_resign.xenapi import volume_lease
        if id(session) not in self._lease_hosts:
            client = volume_lease.LeaseClient(session,
                                              protocol.DEFAULT_TIMING)
            self._lease_hosts[id(session)] = (client,
                                              volume_lease.Renewer(client))
        return self._lease_hosts[id(session)]

    def _attach_published(self, vm: str, data: dict, userdevice: str):
        """The extension's attach of a volume: SR, ``vdi_uuid``, a VBD.

        The lease of an LVHD volume's SR is taken before sm's GC may run.
        """
        from nova_xenapi_resign.xenapi import volume_lease
        from nova_xenapi_resign.xenapi import volume_utils
        x = self.a.xenapi
        lease = volume_lease.lease_for_connection(data)
        sr, sr_uuid, _ = volume_utils.connect_volume_sr(
            self.a, data, hold_gc=lease is not None)
        if lease is not None:
            volume_lease.take(*self._leases(self.a), lease, sr)
        vdi = x.VDI.get_by_uuid(data["vdi_uuid"])
        self._plug_vbd(x, vm, vdi, userdevice)
        return sr_uuid, x.SR.get_type(sr), x.VDI.get_uuid(vdi)

    def step_vdi_per_lun_volume(self):
        """Cinder creates an LVHD volume; Nova attaches its one VDI."""
        from nova_xenapi_resign.lvhd import sr as sr_mod
        from nova_xenapi_resign import sr_naming
        wrapper, _ = self._cinder()
        volume = {"id": LVHD_VOLUME_ID, "display_name": "database",
                  "volume_type": LVHD_VOLUME_TYPE}
        update = wrapper.create_volume(volume)
        volume["admin_metadata"] = update["admin_metadata"]
        self.ctx["lvhd_volume"] = volume
        data = self._cinder_attach_data(volume)
        self.ctx["lvhd_data"] = data
        attached = self._attach_published(self.ctx["vm"], data, "2")
        model = sr_mod.inspect_path(wrapper.backend.path(volume))
        vdi = model.vdis[0]
        # Nova's uuid5 name of the volume's target, which Cinder wrote.
        expected = sr_naming.preferred_sr_uuid(
            {k: data[k] for k in ("target_portal", "target_iqn")}, "uuid5")
        ok = (attached == (expected, "lvmoiscsi", vdi.uuid)
              and model.sr_uuid == expected)
        summary = ("Cinder wrapper: create_volume made LUN %s = one LVHD "
                   "VDI %s of %d MiB (%r) in SR %s; attached to "
                   "instance-legacy by vdi_uuid from an lvmoiscsi SR "
                   "plugged with SCSIid %s" % (
                       data["targetIQN"], vdi.uuid, vdi.virtual_size // MiB,
                       vdi.name_label, expected, data["SCSIid"]))
        return ok, summary, {
            "sr_uuid": expected, "vdi_uuid": vdi.uuid,
            "backend_calls": wrapper.backend.calls,
            "introduce_sr_keys": data["introduce_sr_keys"]}

    def step_vdi_per_lun_clone_beside(self):
        """Cinder snapshots it and makes a volume from the snapshot."""
        wrapper, _ = self._cinder()
        source = self.ctx["lvhd_volume"]
        before = _sha256(wrapper.backend.path(source))
        snapshot = {"id": LVHD_SNAPSHOT_ID, "volume": source}
        wrapper.create_snapshot(snapshot)
        clone = {"id": LVHD_CLONE_ID, "display_name": "database copy",
                 "volume_type": LVHD_VOLUME_TYPE}
        update = wrapper.create_volume_from_snapshot(clone, snapshot)
        clone["admin_metadata"] = update["admin_metadata"]
        data = self._cinder_attach_data(clone)
        x = self.a.xenapi
        vm = x.VM.create({"name_label": "instance-clone"})
        x.VM.start(vm, False, False)
        attached = self._attach_published(vm, data, "1")
        src = self.ctx["lvhd_data"]
        untouched = _sha256(wrapper.backend.path(source)) == before
        ok = (attached == (data["sr_uuid"], "lvmoiscsi", data["vdi_uuid"])
              and data["sr_uuid"] != src["sr_uuid"]
              and data["vdi_uuid"] != src["vdi_uuid"] and untouched)
        summary = ("Cinder wrapper: snapshot, then create_volume_from_"
                   "snapshot resigned the copy to SR %s; its VDI %s "
                   "attached to instance-clone beside the source volume "
                   "(SR %s, untouched: %s)" % (
                       data["sr_uuid"], data["vdi_uuid"], src["sr_uuid"],
                       untouched))
        return ok, summary, {"sr_uuid": data["sr_uuid"],
                             "vdi_uuid": data["vdi_uuid"]}

    def step_live_migrate_mixed_volumes(self):
        from nova_xenapi_resign.xenapi import live_migration as lm
        from nova_xenapi_resign.xenapi import volume_lease
        from nova_xenapi_resign.xenapi import volume_utils
        a, b = self.a, self.b
        bdi = self._volume_bdi()
        # Source, check_can_live_migrate_source: which SR each volume uses.
        vmap = lm.build_volume_sr_uuid_map(a, bdi, "auto")
        # Destination, pre_live_migration: connect under the source's uuid;
        # an LVHD SR with sm's GC and leaf-coalesce held off (the source
        # holds its lease).
        dest_bdi = lm.inject_source_sr_uuids(bdi, vmap)
        sr_uuid_map = {}
        for bdm in dest_bdi["block_device_mapping"]:
            data = bdm["connection_info"]["data"]
            lease = volume_lease.lease_for_connection(data)
            sr, sr_uuid, _ = volume_utils.connect_volume_sr(
                b, data, hold_gc=lease is not None)
            if lease is not None:
                volume_lease.hold_off_leaf_coalesce(b, sr)
            sr_uuid_map[sr_uuid] = sr
        token = b.xenapi.host.migrate_receive(
            b.host_ref, b.xenapi.network.get_all()[0], {})
        # Source, live_migration: refuse anything XAPI would mirror.
        checked = lm.check_sr_uuid_map(a, self.ctx["vm"], sr_uuid_map, vmap,
                                       relaxed_xsm_sr_check=True)
        # The vdi_map XAPI gets is the one that was checked.
        vdi_map = {}
        for sr_uuid, dest_sr in sr_uuid_map.items():
            vdi_map.update(checked.vdi_map(self.ctx["vm"],
                                           checked.srs[sr_uuid], dest_sr))
        a.xenapi.VM.assert_can_migrate(self.ctx["vm"], token, True, vdi_map,
                                       {}, {})
        a.xenapi.VM.migrate_send(self.ctx["vm"], token, True, vdi_map, {},
                                 {})
        # The source hands the lease over while its SR is still plugged
        # (dom0 sees the LUN only then), then Nova's tidy-up, with the
        # extension's list, forgets the LVHD SR too; the destination takes
        # the lease.
        leases = volume_lease.leases_of(bdi)
        volume_lease.hand_over_before_forget(
            *self._leases(a), leases, self._leases(b)[0].me, checked.srs,
            checked.lvhd_vdis())
        for sr in checked.srs.values():
            volume_utils.forget_sr(a, sr)
        taken = volume_lease.acquire_at_destination(*self._leases(b), leases)
        moved = [(m["source_sr_uuid"], m["dest_sr_uuid"], m["mirrored"])
                 for m in a.xenapi.debug.get_migrations()]
        on_b = b.xenapi.VM.get_by_name_label("instance-legacy")
        expected = {self.ctx["legacy"], self.ctx["lvhd_data"]["sr_uuid"]}
        ok = (bool(on_b) and set(sr_uuid_map) == expected
              and not any(m[2] for m in moved)
              and {m[0] for m in moved} == expected
              and taken == [self.ctx["lvhd_data"]["sr_uuid"]])
        summary = "VM moved to pool-b; volume SRs %s (raw legacy) and %s " \
            "(lvmoiscsi) on both sides, none mirrored; the LVHD SR's lease " \
            "handed over to pool-b" % (
                self.ctx["legacy"], self.ctx["lvhd_data"]["sr_uuid"])
        return ok, summary, {"volume_sr_uuid_map": vmap,
                             "moved": moved}

    def step_no_hazards(self):
        hazards = [h for s in (self.a, self.b)
                   for h in s.xenapi.debug.get_hazards()]
        self.ctx["hazards"] = hazards
        return not hazards, ("no LUN was ever mirrored onto itself, no volume "
                             "SR plugged writable without its lease"), {
            "hazards": hazards}


def run(report: Callable[[Step], None]) -> tuple[list[Step], list]:
    """Run the demo in a temporary directory that is always removed."""
    workdir = tempfile.mkdtemp(prefix="xenapi-resign-demo-")
    demo = Demo(workdir)
    try:
        steps = demo.run(report)
        return steps, demo.ctx.get("hazards", [])
    finally:
        demo.close()
        shutil.rmtree(workdir, ignore_errors=True)
