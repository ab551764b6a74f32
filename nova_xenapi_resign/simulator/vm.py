"""VBD, VM, VIF and network semantics: what attaching and live migration need.

Every function here runs with the pool lock held (the dispatcher takes it).
"""

from __future__ import annotations

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator import sm

NULL_REF = dbmod.NULL_REF


# --- VBD ---------------------------------------------------------------------

_VBD_FIELDS = ("userdevice", "bootable", "mode", "type", "unpluggable",
               "empty", "other_config", "qos_algorithm_type",
               "qos_algorithm_params")


def vbd_create(pool, session, record):
    db = pool.db
    if not isinstance(record, dict):
        raise errors.field_type_error("args")
    vm = record.get("VM", NULL_REF)
    db.raw("VM", vm)
    fields = {k: dbmod.coerce("VBD", k, record[k]) for k in _VBD_FIELDS
              if k in record}
    vdi = record.get("VDI", NULL_REF) or NULL_REF
    if vdi != NULL_REF:
        db.raw("VDI", vdi)
    elif not fields.get("empty"):
        raise errors.handle_invalid("VDI", vdi)
    return db.create("VBD", VM=vm, VDI=vdi, **fields)


def _power(pool, vm):
    return pool.db.get("VM", vm, "power_state")


def vbd_plug(pool, session, vbd):
    db = pool.db
    rec = db.raw("VBD", vbd)
    if _power(pool, rec["VM"]) != "Running":
        raise errors.vm_bad_power_state(rec["VM"], "running",
                                        _power(pool, rec["VM"]).lower())
    if rec["currently_attached"]:
        raise errors.device_already_attached(vbd)
    if rec["VDI"] != NULL_REF:
        sr = db.get("VDI", rec["VDI"], "SR")
        if sm.attached_device_config(pool, sr) is None:
            raise errors.sr_not_attached(sr)
    rec["currently_attached"] = True
    rec["device"] = _device_name(rec["userdevice"])
    return ""


def _device_name(userdevice):
    try:
        return "xvd" + "abcdefghijklmnop"[int(userdevice)]
    except (ValueError, IndexError):
        return "xvd" + str(userdevice)


def vbd_unplug(pool, session, vbd):
    rec = pool.db.raw("VBD", vbd)
    if not rec["currently_attached"]:
        raise errors.device_already_detached(vbd)
    rec["currently_attached"] = False
    return ""


def vbd_destroy(pool, session, vbd):
    if pool.db.get("VBD", vbd, "currently_attached"):
        raise errors.operation_not_allowed("VBD is currently attached")
    pool.db.destroy("VBD", vbd)
    return ""


# --- VM, VIF, network (what live migration needs) ----------------------------

_VM_FIELDS = tuple(k for k in dbmod.DEFAULTS["VM"]
                   if k not in ("uuid", "power_state", "resident_on",
                                "domid", "is_control_domain",
                                "snapshot_of", "suspend_VDI", "affinity",
                                "allowed_operations",
                                "current_operations"))


def vm_create(pool, session, record):
    if not isinstance(record, dict):
        raise errors.field_type_error("args")
    fields = {k: dbmod.coerce("VM", k, record[k]) for k in _VM_FIELDS
              if k in record}
    return pool.db.create("VM", **fields)


def vm_start_on(pool, session, vm, host, start_paused=False, force=False):
    db = pool.db
    db.raw("host", host)
    state = _power(pool, vm)
    if state != "Halted":
        raise errors.vm_bad_power_state(vm, "halted", state.lower())
    for vbd in db.get("VM", vm, "VBDs"):
        vdi = db.get("VBD", vbd, "VDI")
        if vdi != NULL_REF:
            sr = db.get("VDI", vdi, "SR")
            if sm.attached_device_config(pool, sr) is None:
                raise errors.sr_not_attached(sr)
    rec = db.raw("VM", vm)
    paused = start_paused in (True, "true", "True")
    rec["power_state"] = "Paused" if paused else "Running"
    rec["resident_on"] = host
    rec["domid"] = 1 + max([r["domid"] for r in
                            db.tables["VM"].values()] + [0])
    for vbd in db.get("VM", vm, "VBDs"):
        vrec = db.raw("VBD", vbd)
        vrec["currently_attached"] = True
        vrec["device"] = _device_name(vrec["userdevice"])
    for vif in db.get("VM", vm, "VIFs"):
        db.set("VIF", vif, "currently_attached", True)
    return ""


def vm_start(pool, session, vm, start_paused=False, force=False):
    return vm_start_on(pool, session, vm, pool.master, start_paused, force)


def vm_shutdown(pool, session, vm):
    db = pool.db
    state = _power(pool, vm)
    if state == "Halted":
        raise errors.vm_bad_power_state(vm, "running", "halted")
    rec = db.raw("VM", vm)
    rec.update(power_state="Halted", resident_on=NULL_REF, domid=-1)
    for vbd in db.get("VM", vm, "VBDs"):
        db.set("VBD", vbd, "currently_attached", False)
    for vif in db.get("VM", vm, "VIFs"):
        db.set("VIF", vif, "currently_attached", False)
    return ""


def vm_destroy(pool, session, vm):
    db = pool.db
    state = _power(pool, vm)
    if state != "Halted":
        raise errors.vm_bad_power_state(vm, "halted", state.lower())
    for vbd in db.get("VM", vm, "VBDs"):
        db.destroy("VBD", vbd)
    for vif in db.get("VM", vm, "VIFs"):
        db.destroy("VIF", vif)
    db.destroy("VM", vm)
    return ""


def vm_pool_migrate(pool, session, vm, host, options):
    db = pool.db
    db.raw("host", host)
    if _power(pool, vm) != "Running":
        raise errors.vm_bad_power_state(vm, "running",
                                        _power(pool, vm).lower())
    db.set("VM", vm, "resident_on", host)
    return ""


def vif_create(pool, session, record):
    db = pool.db
    vm, net = record.get("VM", NULL_REF), record.get("network", NULL_REF)
    db.raw("VM", vm)
    db.raw("network", net)
    fields = {k: dbmod.coerce("VIF", k, record[k])
              for k in ("device", "MAC", "MTU", "other_config",
                        "qos_algorithm_type", "qos_algorithm_params")
              if k in record}
    return db.create("VIF", VM=vm, network=net, **fields)


def vif_destroy(pool, session, vif):
    pool.db.destroy("VIF", vif)
    return ""


def network_create(pool, session, record):
    fields = {k: dbmod.coerce("network", k, record[k])
              for k in ("name_label", "name_description", "MTU",
                        "other_config", "bridge") if k in record}
    return pool.db.create("network", **fields)


def network_destroy(pool, session, net):
    if pool.db.get("network", net, "VIFs"):
        raise errors.operation_not_allowed("network has VIFs")
    pool.db.destroy("network", net)
    return ""


def register(pool):
    reg = pool.register
    reg("VBD.create", vbd_create, 1)
    reg("VBD.plug", vbd_plug, 1)
    reg("VBD.unplug", vbd_unplug, 1)
    reg("VBD.destroy", vbd_destroy, 1)
    reg("VM.create", vm_create, 1)
    reg("VM.start", vm_start, 3, optional=2)
    reg("VM.start_on", vm_start_on, 4, optional=2)
    reg("VM.hard_shutdown", vm_shutdown, 1)
    reg("VM.clean_shutdown", vm_shutdown, 1)
    reg("VM.destroy", vm_destroy, 1)
    reg("VM.pool_migrate", vm_pool_migrate, 3)
    reg("VIF.create", vif_create, 1)
    reg("VIF.destroy", vif_destroy, 1)
    reg("network.create", network_create, 1)
    reg("network.destroy", network_destroy, 1)
