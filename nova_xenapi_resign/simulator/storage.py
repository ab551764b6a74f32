"""SR, PBD and VDI semantics: the XAPI calls over the SM backends (:mod:`sm`).

Every function here runs with the pool lock held (the dispatcher takes it).
"""

from __future__ import annotations

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator import lease
from nova_xenapi_resign.simulator import sm

NULL_REF = dbmod.NULL_REF


# --- SR ----------------------------------------------------------------------


def sr_introduce(pool, session, uuid, name_label, name_description, type_,
                 content_type, shared, sm_config=None):
    db = pool.db
    uuid = uuid or dbmod.new_uuid()
    # One uuid index over every class: a VDI's or a VM's uuid is taken too
    # (xapi-project/xen-api ocaml/database/db_cache_types.ml).
    if db.uuid_taken(uuid):
        raise pool.failure_for_duplicate_sr(uuid)
    # xapi_sr.ml ``introduce`` stores the type lowercased.
    return db.create("SR", uuid=uuid, name_label=name_label,
                     name_description=name_description,
                     type=str(type_).lower(),
                     content_type=content_type,
                     shared=dbmod.coerce("SR", "shared", shared),
                     sm_config=dbmod.coerce("SR", "sm_config",
                                            sm_config or {}))


def sr_create(pool, session, host, device_config, physical_size,
              name_label, name_description, type_, content_type, shared,
              sm_config=None):
    db = pool.db
    db.raw("host", host)
    be = sm.backend(type_)
    device_config = dbmod.coerce("PBD", "device_config", device_config)
    sr = db.create("SR", name_label=name_label,
                   name_description=name_description, type=type_,
                   content_type=content_type,
                   shared=dbmod.coerce("SR", "shared", shared),
                   sm_config=dbmod.coerce("SR", "sm_config", sm_config or {}))
    try:
        be.create(pool, sr, device_config, int(physical_size))
        hosts = db.all_refs("host") if db.get("SR", sr, "shared") \
            else [host]
        for h in hosts:
            pbd = db.create("PBD", host=h, SR=sr,
                            device_config=device_config)
            be.plug(pool, sr, device_config)
            db.set("PBD", pbd, "currently_attached", True)
        be.scan(pool, sr, device_config)
    except errors.XapiError:
        for pbd in db.get("SR", sr, "PBDs"):
            db.destroy("PBD", pbd)
        for vdi in db.get("SR", sr, "VDIs"):
            db.destroy("VDI", vdi)
        db.destroy("SR", sr)
        raise
    return sr


def sr_probe(pool, session, host, device_config, type_, sm_config=None):
    pool.db.raw("host", host)
    device_config = dbmod.coerce("PBD", "device_config", device_config)
    return sm.backend(type_).probe(pool, device_config, sm_config or {})


def sr_scan(pool, session, sr):
    pool.db.raw("SR", sr)
    sm.scan_sr(pool, sr)
    return ""


def _forget(pool, sr):
    db = pool.db
    for pbd in db.get("SR", sr, "PBDs"):
        if db.get("PBD", pbd, "currently_attached"):
            raise errors.sr_has_pbd(sr)
    for vdi in db.get("SR", sr, "VDIs"):
        for vbd in db.get("VDI", vdi, "VBDs"):
            if db.get("VBD", vbd, "currently_attached"):
                raise errors.vdi_in_use(vdi, "forget")
    for pbd in db.get("SR", sr, "PBDs"):
        db.destroy("PBD", pbd)
    for vdi in db.get("SR", sr, "VDIs"):
        for vbd in db.get("VDI", vdi, "VBDs"):
            db.destroy("VBD", vbd)
        db.destroy("VDI", vdi)
    db.destroy("SR", sr)


def sr_forget(pool, session, sr):
    pool.db.raw("SR", sr)
    _forget(pool, sr)
    return ""


def sr_destroy(pool, session, sr):
    """SR.destroy's allowed-operation checks, in XAPI's order.

    xapi-project/xen-api ocaml/xapi/xapi_sr_operations.ml: a plugged PBD
    gives SR_HAS_PBD, no PBD at all SR_NO_PBDS, a managed VDI
    SR_NOT_EMPTY.  Then XAPI attaches the SR itself and SM deletes it; the
    LUNs belong to the SAN, so only the records go here.
    """
    db = pool.db
    db.raw("SR", sr)
    pbds = db.get("SR", sr, "PBDs")
    if any(db.get("PBD", pbd, "currently_attached") for pbd in pbds):
        raise errors.sr_has_pbd(sr)
    if not pbds:
        raise errors.sr_no_pbds(sr)
    if any(db.get("VDI", vdi, "managed") for vdi in db.get("SR", sr, "VDIs")):
        raise errors.sr_not_empty()
    _forget(pool, sr)
    return ""


# --- PBD ---------------------------------------------------------------------


def pbd_create(pool, session, record):
    db = pool.db
    if not isinstance(record, dict):
        raise errors.field_type_error("args")
    host, sr = record.get("host", NULL_REF), record.get("SR", NULL_REF)
    db.raw("host", host)
    db.raw("SR", sr)
    for pbd in db.find("PBD", SR=sr, host=host):
        raise errors.pbd_exists(sr, host, pbd)
    return db.create(
        "PBD", host=host, SR=sr,
        device_config=dbmod.coerce("PBD", "device_config",
                                   record.get("device_config", {})),
        other_config=dbmod.coerce("PBD", "other_config",
                                  record.get("other_config", {})))


def pbd_plug(pool, session, pbd):
    db = pool.db
    rec = db.raw("PBD", pbd)
    if rec["currently_attached"]:
        return ""
    sr = rec["SR"]
    sr_type = db.get("SR", sr, "type")
    sm.backend(sr_type).plug(pool, sr, dict(rec["device_config"]))
    rec["currently_attached"] = True
    lease.note_plug(pool, rec)
    return ""


def pbd_unplug(pool, session, pbd):
    db = pool.db
    rec = db.raw("PBD", pbd)
    if not rec["currently_attached"]:
        return ""
    # xapi-project/xen-api ocaml/xapi/xapi_pbd.ml ``unplug``: VDI_IN_USE
    # with the refs of every VDI a plugged VBD still uses.
    in_use = [vdi for vdi in db.get("SR", rec["SR"], "VDIs")
              if any(db.get("VBD", vbd, "currently_attached")
                     for vbd in db.get("VDI", vdi, "VBDs"))]
    if in_use:
        raise errors.vdis_in_use(in_use)
    rec["currently_attached"] = False
    lease.note_unplug(pool, rec)
    return ""


def pbd_destroy(pool, session, pbd):
    if pool.db.get("PBD", pbd, "currently_attached"):
        raise errors.operation_not_allowed("PBD is currently attached")
    pool.db.destroy("PBD", pbd)
    return ""


# --- VDI ---------------------------------------------------------------------


def vdi_introduce(pool, session, uuid, name_label, name_description, sr,
                  type_, sharable, read_only, other_config, location,
                  xenstore_data, sm_config, managed=True, virtual_size="0",
                  physical_utilisation="0", metadata_of_pool=NULL_REF,
                  is_a_snapshot=False, snapshot_time=None,
                  snapshot_of=NULL_REF):
    db = pool.db
    db.raw("SR", sr)
    uuid = uuid or dbmod.new_uuid()
    for ref in db.find("VDI", uuid=uuid):
        if db.get("VDI", ref, "SR") == sr:
            # SM's vdi_introduce of a known VDI: XAPI hands back the record.
            return ref
    if db.uuid_taken(uuid):
        raise errors.uniqueness_violation("VDI", "uuid", uuid)
    fields = dict(
        name_label=name_label, name_description=name_description,
        type=type_, sharable=sharable, read_only=read_only,
        other_config=other_config, location=location,
        xenstore_data=xenstore_data, sm_config=sm_config, managed=managed,
        virtual_size=virtual_size,
        physical_utilisation=physical_utilisation,
        is_a_snapshot=is_a_snapshot, snapshot_of=snapshot_of)
    if snapshot_time is not None:
        fields["snapshot_time"] = snapshot_time
    fields = {k: dbmod.coerce("VDI", k, v) for k, v in fields.items()}
    if metadata_of_pool and metadata_of_pool != NULL_REF:
        fields["metadata_of_pool"] = metadata_of_pool
    return db.create("VDI", uuid=uuid, SR=sr, **fields)


_VDI_CREATE_FIELDS = ("name_label", "name_description", "type", "sharable",
                      "read_only", "other_config", "xenstore_data",
                      "sm_config", "virtual_size", "tags")


def vdi_create(pool, session, record):
    """VDI.create: only on ``ext`` (local) SRs; LUN-backed SRs refuse."""
    db = pool.db
    if not isinstance(record, dict):
        raise errors.field_type_error("args")
    sr = record.get("SR", NULL_REF)
    if db.get("SR", sr, "type") != "ext":
        raise errors.sr_operation_not_supported(sr)
    fields = {k: dbmod.coerce("VDI", k, record[k]) for k in _VDI_CREATE_FIELDS
              if k in record}
    ref = db.create("VDI", SR=sr, **fields)
    db.set("VDI", ref, "location", db.get("VDI", ref, "uuid"))
    return ref


def vdi_forget(pool, session, vdi):
    db = pool.db
    for vbd in db.get("VDI", vdi, "VBDs"):
        if db.get("VBD", vbd, "currently_attached"):
            raise errors.vdi_in_use(vdi, "forget")
    db.destroy("VDI", vdi)
    return ""


def vdi_destroy(pool, session, vdi):
    db = pool.db
    if db.get("VDI", vdi, "VBDs"):
        raise errors.vdi_in_use(vdi, "destroy")
    db.destroy("VDI", vdi)
    return ""


def register(pool):
    reg = pool.register
    reg("SR.introduce", sr_introduce, 7, optional=1)
    reg("SR.create", sr_create, 9, optional=1)
    reg("SR.probe", sr_probe, 4, optional=1)
    reg("SR.scan", sr_scan, 1)
    reg("SR.forget", sr_forget, 1)
    reg("SR.destroy", sr_destroy, 1)
    reg("PBD.create", pbd_create, 1)
    reg("PBD.plug", pbd_plug, 1)
    reg("PBD.unplug", pbd_unplug, 1)
    reg("PBD.destroy", pbd_destroy, 1)
    reg("VDI.introduce", vdi_introduce, 18, optional=7)
    reg("VDI.create", vdi_create, 1)
    reg("VDI.forget", vdi_forget, 1)
    reg("VDI.destroy", vdi_destroy, 1)
