"""Cross-pool and intra-pool migration: migrate_receive, assert_can_migrate,
migrate_send, and the storage-motion rule of XAPI's ``xapi_vm_migrate.ml``.

Every VDI of the VM (empty and CD VBDs excepted) must be in ``vdi_map``
(VDI_NOT_IN_MAP otherwise, intra-pool too).  ``VM.migrate_send`` runs the
checks of ``VM.assert_can_migrate`` first; among them, a VDI whose
destination SR does not *match* its source SR (relaxed: same uuid; strict:
same SR) needs VDI_MIRROR and VDI_SNAPSHOT on both SR types, which raw
``iscsi`` lacks: SR_DOES_NOT_SUPPORT_MIGRATION, and nothing moves.  Then
XAPI decides whether to move each VDI's data::

    if relax-xsm-sr-check:
        if dest SR uuid == source SR uuid:
            the VDI (same uuid) must be in the dest SR (scanning it once if
            not found) -> no mirror; else fail "SR UUID matches on
            destination but VDI does not exist"
        else: mirror
    else:
        mirror = (not intra-pool) or (dest SR != source SR)

A mirror creates the destination VDI.  Only SR types that can mirror get
that far (LVHD ``lvmoiscsi``, local ``ext``); when the source and the
destination are the same LVHD LUN image file the mirror would read and
write one LUN -- corruption on a real system: the simulator records a
*hazard* in the source pool and writes nothing.

The source pool reaches the destination pool in-process, through the
registry of pools, keyed by the ``sim_pool`` entry of the migrate_receive
token.  Locks: the source pool lock and the destination pool lock are never
held together, so opposite migrations cannot deadlock.
"""

from __future__ import annotations

import os

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator import sm
from nova_xenapi_resign.simulator import storage

NULL_REF = dbmod.NULL_REF


def migrate_receive(pool, session, host, network, options):
    db = pool.db
    db.raw("host", host)
    db.raw("network", network)
    remote = db.create("session", this_host=host,
                       originator="migrate_receive")
    base = pool.url or "sim://%s" % pool.pool_id
    return {"session_id": remote, "host": host, "master": base,
            "SM": "%s/services/SM?session_id=%s" % (base, remote),
            "xenops": "%s/services/xenops?session_id=%s" % (base, remote),
            "sim_pool": pool.pool_id}


def _destination(pool, dest):
    if not isinstance(dest, dict):
        raise errors.field_type_error("dest")
    target = pool.registry.get(dest.get("sim_pool"))
    if target is None:
        raise errors.internal_error(
            "cannot reach the destination pool %r" % dest.get("master"))
    with target.lock:
        target.check_session(dest.get("session_id"))
        target.db.raw("host", dest.get("host"))
    return target, dest["host"]


def _sr_matches(pool, target, src, dest_sr):
    """xapi_vm_migrate.ml ``is_sr_matching``: no mirror needed by rule.

    Relaxed: the destination SR has the source SR's uuid.  Strict: it is
    the very same SR (same ref, so intra-pool only).
    """
    if pool.relaxed():
        with target.lock:
            return target.db.get("SR", dest_sr, "uuid") == src["sr_uuid"]
    return target is pool and dest_sr == src["sr"]


def _assert_sr_support_operations(pool, target, vbds):
    """Storage motion needs VDI_MIRROR and VDI_SNAPSHOT on both SRs.

    xapi-project/xen-api ocaml/xapi/xapi_vm_migrate.ml
    ``assert_sr_support_operations`` (CA-219436, commit 77d2ad0354, in
    XenServer 7.1): every VDI whose destination SR does not match its
    source SR must sit on an SR type with both capabilities and go to one;
    raw ``iscsi`` (sm drivers/RawISCSISR.py) has neither, so such a VDI is
    refused with SR_DOES_NOT_SUPPORT_MIGRATION [sr] before anything moves.
    """
    for info in vbds:
        src = info["vdi"]
        if src is None or _sr_matches(pool, target, src, src["dest_sr"]):
            continue
        if not sm.can_mirror(src["sr_type"]):
            raise errors.sr_does_not_support_migration(src["sr"])
        with target.lock:
            dest_type = target.db.get("SR", src["dest_sr"], "type")
        if not sm.can_mirror(dest_type):
            raise errors.sr_does_not_support_migration(src["dest_sr"])


def _plan(pool, vm, dest, live, vdi_map, vif_map):
    """Validate a migration and read what it needs.

    ``live`` is not checked against the power state: a Halted VM may be
    migrated with live=true (xapi-project/xen-api
    ocaml/xapi/xapi_vm_lifecycle.ml allows migrate_send when Halted).
    Returns (target pool, dest host, VM record, VBD infos, VIF records),
    read under the source lock.
    """
    target, dest_host = _destination(pool, dest)
    intra = target is pool
    if not isinstance(vdi_map, dict) or not isinstance(vif_map, dict):
        raise errors.field_type_error("vdi_map")
    with pool.lock:
        db = pool.db
        vm_rec = db.record("VM", vm)
        for vdi in vdi_map:
            db.raw("VDI", vdi)
        for vif in vif_map:
            db.raw("VIF", vif)
        vbds = []
        for vbd in vm_rec["VBDs"]:
            rec = db.record("VBD", vbd)
            info = {"vbd": vbd, "record": rec, "vdi": None}
            if not rec["empty"] and rec["type"] != "CD" \
                    and rec["VDI"] != NULL_REF:
                vdi = rec["VDI"]
                vrec = db.raw("VDI", vdi)
                sr = vrec["SR"]
                sr_type = db.get("SR", sr, "type")
                # xapi_vm_migrate.ml ``check_vdi_map``: every VDI of the VM
                # must be mapped, intra-pool too.
                if vdi not in vdi_map:
                    raise errors.vdi_not_in_map(vdi)
                info["vdi"] = {
                    "ref": vdi, "uuid": vrec["uuid"], "sr": sr,
                    "sr_uuid": db.get("SR", sr, "uuid"),
                    "sr_type": sr_type,
                    "size": vrec["virtual_size"],
                    "sm_config": dict(vrec["sm_config"]),
                    "dest_sr": vdi_map[vdi],
                    "path": sm.backend(sr_type).lun_path(pool, vdi)
                    if sr_type in sm.BACKENDS else None,
                }
            vbds.append(info)
        vifs = [(v, db.record("VIF", v)) for v in vm_rec["VIFs"]]
    with target.lock:
        if not intra:
            for net in vif_map.values():
                target.db.raw("network", net)
        for info in vbds:
            if info["vdi"]:
                target.db.raw("SR", info["vdi"]["dest_sr"])
    _assert_sr_support_operations(pool, target, vbds)
    return target, dest_host, vm_rec, vbds, vifs


def assert_can_migrate(pool, session, vm, dest, live, vdi_map, vif_map,
                       options, vgpu_map=None):
    _plan(pool, vm, dest, live, vdi_map, vif_map)
    return ""


def _dest_vdi_on_sr(target, vdi_uuid, sr, retry=True):
    with target.lock:
        refs = target.db.find("VDI", uuid=vdi_uuid)
        if refs:
            return refs[0] if target.db.get("VDI", refs[0], "SR") == sr \
                else None
        if not retry:
            return None
        sm.scan_sr(target, sr)
    return _dest_vdi_on_sr(target, vdi_uuid, sr, retry=False)


def _attach_dest_sr(target, sr, dest_host):
    with target.lock:
        for pbd in target.db.get("SR", sr, "PBDs"):
            rec = target.db.raw("PBD", pbd)
            if rec["host"] in (target.master, dest_host) \
                    and not rec["currently_attached"]:
                storage.pbd_plug(target, None, pbd)


def _mirror_target(target, sr, src):
    """Create the destination VDI of a mirror; return (ref, uuid, lun path).

    Only SR types that can mirror get here (LVHD and local ``ext``): the
    mirror writes a new VDI in the destination SR.
    """
    with target.lock:
        db = target.db
        be = sm.backend(db.get("SR", sr, "type"))
        ref = db.create("VDI", SR=sr, name_label="",
                        virtual_size=src["size"],
                        sm_config={k: v for k, v in src["sm_config"].items()
                                   if k == "vdi_type"})
        db.set("VDI", ref, "location", db.get("VDI", ref, "uuid"))
        return ref, db.get("VDI", ref, "uuid"), be.lun_path(target, ref)


def _same_file(a, b):
    if not a or not b:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _mirror_decision(target, src, dest_sr, dest_sr_uuid, intra, relaxed):
    """``(mirror, destination VDI ref or None)`` as xapi_vm_migrate.ml."""
    if not relaxed:
        return (not intra) or dest_sr != src["sr"], src["ref"]
    if dest_sr_uuid != src["sr_uuid"]:
        return True, None
    found = _dest_vdi_on_sr(target, src["uuid"], dest_sr)
    if found is None:
        raise errors.internal_error(
            "SR UUID matches on destination but VDI does not exist")
    return False, found


def _migrate_vdi(pool, target, dest_host, vm_uuid, src, intra, relaxed):
    """Decide and do the move of one VDI; ``(destination VDI, entry)``.

    ``entry`` is what ``debug.get_migrations`` reports for the VDI.
    """
    dest_sr = src["dest_sr"]
    _attach_dest_sr(target, dest_sr, dest_host)
    with target.lock:
        dest_sr_uuid = target.db.get("SR", dest_sr, "uuid")
    mirror, found = _mirror_decision(target, src, dest_sr, dest_sr_uuid,
                                     intra, relaxed)
    entry = {"vm": vm_uuid, "vdi": src["uuid"],
             "source_sr_uuid": src["sr_uuid"],
             "dest_sr_uuid": dest_sr_uuid, "mirrored": mirror,
             "intra_pool": intra, "dest_vdi": src["uuid"],
             "hazard": False}
    if not mirror:
        return found, entry
    ref, uuid, path = _mirror_target(target, dest_sr, src)
    entry["dest_vdi"] = uuid
    if _same_file(src["path"], path):
        # An LVHD LUN mirrored onto itself: corruption on a real host.
        # Recorded, and nothing is written.
        entry["hazard"] = True
        pool.record_hazard({
            "vm": vm_uuid, "vdi": src["uuid"],
            "source_sr_uuid": src["sr_uuid"],
            "dest_sr_uuid": dest_sr_uuid, "dest_vdi": uuid,
            "lun_path": os.path.realpath(src["path"]),
            "source_pool": pool.name, "dest_pool": target.name})
    return ref, entry


def migrate_send(pool, session, vm, dest, live, vdi_map, vif_map, options,
                 vgpu_map=None, vdi_format_map=None):
    """VM.migrate_send: the assert first, then the mirror decisions.

    The assert runs first as in message_forwarding.ml; then
    xapi_vm_migrate.ml's mirror decision for every mapped VDI.
    """
    target, dest_host, vm_rec, vbds, vifs = _plan(pool, vm, dest, live,
                                                  vdi_map, vif_map)
    intra = target is pool
    relaxed = pool.relaxed()
    new_vdi = {}  # source VBD ref -> destination VDI ref
    for info in vbds:
        if info["vdi"] is None:
            continue
        new_vdi[info["vbd"]], entry = _migrate_vdi(
            pool, target, dest_host, vm_rec["uuid"], info["vdi"], intra,
            relaxed)
        with pool.lock:
            pool.migrations.append(entry)
    if intra:
        with pool.lock:
            for vbd, vdi in new_vdi.items():
                pool.db.set("VBD", vbd, "VDI", vdi)
            if vm_rec["power_state"] == "Running":
                pool.db.set("VM", vm, "resident_on", dest_host)
        return vm
    return _move_vm(pool, target, dest_host, vm, vm_rec, vbds, vifs,
                    new_vdi, vif_map)


_VM_NOT_COPIED = ("resident_on", "affinity", "suspend_VDI", "snapshot_of",
                  "VBDs", "VIFs", "snapshots", "allowed_operations",
                  "current_operations")


def _move_vm(pool, target, dest_host, vm, vm_rec, vbds, vifs, new_vdi,
             vif_map):
    with target.lock:
        db = target.db
        if db.uuid_taken(vm_rec["uuid"]):
            raise errors.uniqueness_violation("VM", "uuid", vm_rec["uuid"])
        fields = {k: v for k, v in vm_rec.items()
                  if k in dbmod.DEFAULTS["VM"] and k not in _VM_NOT_COPIED}
        running = vm_rec["power_state"] in ("Running", "Paused")
        fields["resident_on"] = dest_host if running else NULL_REF
        new_vm = db.create("VM", **fields)
        for info in vbds:
            rec = info["record"]
            db.create("VBD", VM=new_vm,
                      VDI=new_vdi.get(info["vbd"], NULL_REF),
                      **{k: rec[k] for k in
                         ("userdevice", "bootable", "mode", "type",
                          "unpluggable", "empty", "other_config",
                          "currently_attached", "device",
                          "qos_algorithm_type", "qos_algorithm_params",
                          "uuid")})
        for src_ref, vif in vifs:
            net = vif_map.get(src_ref, target.network)
            db.create("VIF", VM=new_vm, network=net,
                      **{k: vif[k] for k in
                         ("device", "MAC", "MTU", "other_config",
                          "currently_attached", "uuid")})
    with pool.lock:
        sdb = pool.db
        for ref in sdb.get("VM", vm, "VBDs"):
            sdb.destroy("VBD", ref)
        for ref in sdb.get("VM", vm, "VIFs"):
            sdb.destroy("VIF", ref)
        sdb.destroy("VM", vm)
    return new_vm


def register(pool):
    reg = pool.register
    reg("host.migrate_receive", migrate_receive, 3)
    reg("VM.assert_can_migrate", assert_can_migrate, 7, optional=1,
        locked=False)
    reg("VM.migrate_send", migrate_send, 8, optional=2, locked=False)
