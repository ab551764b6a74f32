"""SR, PBD, VDI, VBD and VM semantics, and the SM backends.

Two SR types read the SAN:

``iscsi``      raw iSCSI (what Nova attaches): one VDI per LUN behind the
               target, its uuid derived from the LUN's SCSI id so that every
               pool names it the same (``location`` = that uuid,
               ``sm_config``: ``LUNid``, ``SCSIid``, ``backend-kind=vbd``);
               it cannot be mirrored by storage motion.
``lvmoiscsi``  an LVHD SR on the LUN named by ``device_config["SCSIid"]``:
               the SR uuid must be uuid-shaped and the VG
               ``VG_XenStorage-<sr uuid>``; VDIs come from the LUN's LVHD
               metadata, read by the project's ``lvhd`` library through
               :class:`LvhdReader` (injectable for unit tests).

Each rule cites the xapi-project/sm or xapi-project/xen-api code it follows.

Every function here runs with the pool lock held (the dispatcher takes it).
"""

from __future__ import annotations

import os
import re
from xml.dom import minidom

from nova_xenapi_resign.simulator import api
from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator import san as sanmod

coerce = api.coerce
NULL_REF = dbmod.NULL_REF

# --- SM-style XML ------------------------------------------------------------


def _xml(root_name, items):
    """``items``: list of (element name, [(child, text), ...])."""
    doc = minidom.Document()
    root = doc.createElement(root_name)
    doc.appendChild(root)
    for name, children in items:
        el = doc.createElement(name)
        root.appendChild(el)
        for child, text in children:
            c = doc.createElement(child)
            c.appendChild(doc.createTextNode(str(text)))
            el.appendChild(c)
    return doc.toprettyxml(indent="\t")


def srlist_xml(sr_uuids):
    return _xml("SRlist", [("SR", [("UUID", u)]) for u in sr_uuids])


# --- backends ----------------------------------------------------------------


class LvhdReader(object):
    """The only place that reads an LVHD LUN: the project's lvhd library.

    ``inspect(path)`` returns an object with ``sr_uuid``, ``vg_name`` and
    ``vdis`` (each with uuid, vdi_type, name_label, name_description,
    parent_uuid, is_a_snapshot, snapshot_of, hidden, read_only,
    virtual_size) and raises ``exception.FormatError`` on unreadable LUNs.
    """

    def inspect(self, path):
        from nova_xenapi_resign.lvhd import sr as lvhd_sr  # lazy: optional
        return lvhd_sr.inspect_path(path)


class IscsiTarget(object):
    """The (portal, IQN) of a device_config, checked against the SAN.

    The checks and their order are BaseISCSISR's (xapi-project/sm
    drivers/BaseISCSI.py ``load`` and ``attach``): no target -> 95, a port
    that is not 1..65535 -> 142, no IQN -> 96 with the target's IQNs,
    nothing listening at the portal -> 141, an IQN the portal does not
    offer (discovery finds nothing) -> 83, CHAP refused -> 68.
    """

    def __init__(self, pool, device_config, login=True):
        dc = device_config or {}
        self.san = pool.san
        if not dc.get("target"):
            raise errors.sr_backend_failure(95)
        port = dc.get("port") or sanmod.DEFAULT_PORT
        try:
            valid_port = 1 <= int(port) <= 65535
        except (TypeError, ValueError):
            valid_port = False
        if not valid_port:
            raise errors.sr_backend_failure(142)
        self.portal = sanmod.normalize_portal(dc["target"], port)
        if not dc.get("targetIQN"):
            iqns = self.san.targets(self.portal)
            raise errors.sr_backend_failure(
                96, None, _xml("iscsi-target-iqns", [
                    ("TGT", [("Index", i), ("IPAddress", dc["target"]),
                             ("TargetIQN", iqn)])
                    for i, iqn in enumerate(iqns)]))
        self.iqn = dc["targetIQN"]
        if login:
            self.login(dc)

    def login(self, dc):
        if not self.san.portal_exists(self.portal):
            raise errors.sr_backend_failure(141)
        if not self.san.target_exists(self.portal, self.iqn):
            raise errors.sr_backend_failure(
                83, "check target settings: no target %s at portal %s"
                % (self.iqn, self.portal))
        chap = self.san.chap(self.portal, self.iqn)
        if chap is not None and \
                (dc.get("chapuser"), dc.get("chappassword")) != chap:
            raise errors.sr_backend_failure(
                68, "iscsiadm: login failed to authenticate with target")

    def luns(self):
        return self.san.luns(self.portal, self.iqn)

    def path(self, lun):
        return self.san.path(self.portal, self.iqn, lun)

    def scsi_id(self, lun):
        return self.san.scsi_id(self.portal, self.iqn, lun)

    def lun_xml(self):
        return _xml("iscsi-target", [
            ("LUN", [("vendor", "SIM"), ("serial", self.scsi_id(lun)[-12:]),
                     ("LUNid", lun),
                     ("size", self.san.size(self.portal, self.iqn, lun)),
                     ("SCSIid", self.scsi_id(lun))])
            for lun in self.luns()])


class Backend(object):
    type = None
    #: Whether the SM driver lists VDI_MIRROR and VDI_SNAPSHOT among its
    #: capabilities (the pair storage motion needs).
    can_mirror = False

    def plug(self, pool, sr, device_config):
        raise NotImplementedError

    def scan(self, pool, sr, device_config):
        raise NotImplementedError

    def probe(self, pool, device_config, sm_config):
        raise NotImplementedError

    def create(self, pool, sr, device_config, size):
        raise errors.sr_operation_not_supported(sr)

    def lun_path(self, pool, vdi):
        """The LUN image file holding the VDI's data (hazard detection)."""
        return None


class IscsiBackend(Backend):
    """Raw iSCSI, one VDI per LUN.

    xapi-project/sm drivers/RawISCSISR.py, drivers/BaseISCSI.py,
    drivers/LUNperVDI.py.  Its capabilities have neither VDI_MIRROR nor
    VDI_SNAPSHOT, so storage motion refuses its VDIs (see :mod:`migration`).
    """

    type = "iscsi"

    def plug(self, pool, sr, device_config):
        IscsiTarget(pool, device_config)

    def create(self, pool, sr, device_config, size):
        IscsiTarget(pool, device_config)

    def probe(self, pool, device_config, sm_config):
        """The pool's SRs on this IQN, as BaseISCSISR.probe lists them.

        Not the LUNs: SM looks for SRs whose sm_config names the target
        IQN (Nova's SR.introduce passes its device-config as sm_config).
        """
        target = IscsiTarget(pool, device_config, login=False)
        db = pool.db
        found = []
        for ref in db.all_refs("SR"):
            sm = db.get("SR", ref, "sm_config")
            if sm.get("targetIQN") == target.iqn:
                found.append(("SR", [("UUID", db.get("SR", ref, "uuid")),
                                     ("Target", sm.get("target", "")),
                                     ("TargetIQN", target.iqn)]))
        return _xml("SRlist", found)

    def scan(self, pool, sr, device_config):
        try:
            target = IscsiTarget(pool, device_config)
        except errors.XapiError as exc:
            # SM reports a lost target during a scan as a scan failure:
            # Nova's find_bad_volumes looks for exactly this code.
            raise errors.sr_backend_failure(40, exc.details[2])
        db = pool.db
        wanted = {}
        for lun in target.luns():
            sid = target.scsi_id(lun)
            wanted[sanmod.vdi_uuid_for_scsi_id(sid)] = (lun, sid)
        mine = {db.get("VDI", ref, "uuid"): ref
                for ref in db.find("VDI", SR=sr)}
        total = 0
        for uuid, (lun, sid) in wanted.items():
            size = os.path.getsize(target.path(lun))
            total += size
            # LUNperVDI.RAWVDI: location is the VDI uuid, and the VBD is
            # a plain block device (backend-kind=vbd).
            sm_config = {"LUNid": str(lun), "SCSIid": sid,
                         "backend-kind": "vbd"}
            if uuid in mine:
                rec = db.raw("VDI", mine[uuid])
                rec["virtual_size"] = size
                rec["physical_utilisation"] = size
                rec["sm_config"].update(sm_config)
                continue
            introduce_scanned_vdi(
                pool, uuid=uuid, SR=sr, name_label="", name_description="",
                location=uuid, sm_config=sm_config, virtual_size=size,
                physical_utilisation=size, managed=True)
        for uuid, ref in mine.items():
            if uuid not in wanted and not db.get("VDI", ref, "VBDs"):
                db.destroy("VDI", ref)
        rec = db.raw("SR", sr)
        rec["physical_size"] = total
        rec["physical_utilisation"] = total
        rec["virtual_allocation"] = total

    def lun_path(self, pool, vdi):
        rec = pool.db.raw("VDI", vdi)
        dc = attached_device_config(pool, rec["SR"])
        lun = rec["sm_config"].get("LUNid")
        if dc is None or lun is None:
            return None
        target = IscsiTarget(pool, dc, login=False)
        return target.path(int(lun))


def introduce_scanned_vdi(pool, **fields):
    """Create the record of a VDI a scan found; SM's ``VDI.db_introduce``.

    A uuid already used anywhere in the pool fails the scan with
    SR_BACKEND_FAILURE_40 and XAPI's uniqueness error as the opterr; the
    VDIs introduced before stay (xapi-project/sm drivers/SR.py
    ``ScanRecord.synchronise_new`` introduces them one by one).
    """
    if pool.db.uuid_taken(fields["uuid"]):
        raise errors.scan_uniqueness_failure("VDI", fields["uuid"])
    return pool.db.create("VDI", **fields)


#: util.match_uuid of xapi-project/sm drivers/util.py: a lowercase
#: 8-4-4-4-12 hex uuid (anchored at both ends here, which is stricter).
_SM_UUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


class LvmoIscsiBackend(Backend):
    """An LVHD SR on one iSCSI LUN, read with the project's lvhd library.

    Real behaviour reproduced (xapi-project/sm drivers/LVHDoISCSISR.py and
    drivers/LVHDSR.py):

    * ``load``: without ``device_config["SCSIid"]`` probe, plug, scan and
      create fail with SR_BACKEND_FAILURE_107 carrying the target's LUN
      list XML; ``LUNid`` never picks the LUN;
    * ``attach``: every failure (target, IQN, CHAP, LUN, VG) is re-wrapped
      as SR_BACKEND_FAILURE_47; LVHDSR.attach refuses an SR uuid that is
      not ``util.match_uuid``-shaped;
    * attach and scan on the master replace the SR's sm_config with
      ``{allocation, use_vhd}``.
    """

    type = "lvmoiscsi"
    can_mirror = True  # sm drivers/LVHDoISCSISR.py CAPABILITIES

    def _reader(self, pool):
        return pool.lvhd_reader or LvhdReader()

    def _load(self, pool, device_config):
        """The target of a device_config with a SCSIid (no login yet)."""
        target = IscsiTarget(pool, device_config, login=False)
        if not device_config.get("SCSIid"):
            target.login(device_config)
            raise errors.sr_backend_failure(107, None, target.lun_xml())
        return target

    def _lun(self, pool, device_config):
        target = self._load(pool, device_config)
        target.login(device_config)
        lun = pool.san.find_scsi_id(target.portal, target.iqn,
                                    device_config["SCSIid"])
        if lun is None:
            raise errors.sr_backend_failure(
                47, "no LUN with SCSIid %s behind %s"
                % (device_config["SCSIid"], target.iqn))
        return target, lun

    def _inspect(self, pool, path, sr_uuid):
        from nova_xenapi_resign import exception
        vg = "VG_XenStorage-%s" % sr_uuid
        if not _SM_UUID.fullmatch(sr_uuid):
            raise errors.sr_backend_failure(47,
                                            "no such volume group: %s" % vg)
        try:
            found = self._reader(pool).inspect(path)
        except exception.FormatError:
            raise errors.sr_backend_failure(47,
                                            "no such volume group: %s" % vg)
        if found.vg_name != vg:
            raise errors.sr_backend_failure(47,
                                            "no such volume group: %s" % vg)
        return found

    def _replace_sm_config(self, pool, sr, device_config):
        allocation = device_config.get("allocation")
        pool.db.set("SR", sr, "sm_config", {
            "allocation": allocation if allocation in ("thin", "thick")
            else "thick", "use_vhd": "true"})

    def plug(self, pool, sr, device_config):
        self._load(pool, device_config)
        try:
            target, lun = self._lun(pool, device_config)
            self._inspect(pool, target.path(lun),
                          pool.db.get("SR", sr, "uuid"))
        except errors.XapiError as exc:
            raise errors.sr_backend_failure(47, exc.details[2])
        self._replace_sm_config(pool, sr, device_config)

    def probe(self, pool, device_config, sm_config):
        from nova_xenapi_resign import exception
        target, lun = self._lun(pool, device_config)
        try:
            found = self._reader(pool).inspect(target.path(lun))
        except exception.FormatError:
            return srlist_xml([])
        return srlist_xml([found.sr_uuid] if found.sr_uuid else [])

    def create(self, pool, sr, device_config, size):
        """Format the LUN as an empty LVHD SR, as LVHDSR.create does."""
        from nova_xenapi_resign.lvhd import create
        from nova_xenapi_resign.lvhd import device
        target, lun = self._lun(pool, device_config)
        db = pool.db
        with device.open_device(target.path(lun), writable=True) as dev:
            create.format_sr(dev, db.get("SR", sr, "uuid"),
                             name_label=db.get("SR", sr, "name_label"),
                             name_description=db.get("SR", sr,
                                                     "name_description"))

    def scan(self, pool, sr, device_config):
        db = pool.db
        sr_uuid = db.get("SR", sr, "uuid")
        target, lun = self._lun(pool, device_config)
        found = self._inspect(pool, target.path(lun), sr_uuid)
        self._replace_sm_config(pool, sr, device_config)
        mine = {db.get("VDI", ref, "uuid"): ref
                for ref in db.find("VDI", SR=sr)}
        wanted = {v.uuid: v for v in found.vdis}
        for uuid, v in wanted.items():
            sm_config = {"vdi_type": v.vdi_type}
            if v.parent_uuid:
                sm_config["vhd-parent"] = v.parent_uuid
            fields = dict(name_label=v.name_label or "",
                          name_description=v.name_description or "",
                          read_only=bool(v.read_only),
                          managed=not v.hidden,
                          is_a_snapshot=bool(v.is_a_snapshot),
                          virtual_size=int(v.virtual_size),
                          physical_utilisation=int(v.virtual_size))
            if uuid in mine:
                rec = db.raw("VDI", mine[uuid])
                rec.update(fields)
                rec["sm_config"].pop("vhd-parent", None)
                rec["sm_config"].update(sm_config)
            else:
                mine[uuid] = introduce_scanned_vdi(
                    pool, uuid=uuid, SR=sr, location=uuid,
                    sm_config=sm_config, **fields)
        for uuid, v in wanted.items():
            snap = NULL_REF
            if v.snapshot_of and v.snapshot_of in mine:
                snap = mine[v.snapshot_of]
            db.set("VDI", mine[uuid], "snapshot_of", snap)
        for uuid, ref in list(mine.items()):
            if uuid not in wanted and not db.get("VDI", ref, "VBDs"):
                db.destroy("VDI", ref)
        size = os.path.getsize(target.path(lun))
        rec = db.raw("SR", sr)
        rec["physical_size"] = size
        rec["virtual_allocation"] = sum(int(v.virtual_size)
                                        for v in found.vdis)

    def lun_path(self, pool, vdi):
        dc = attached_device_config(pool, pool.db.get("VDI", vdi, "SR"))
        if dc is None:
            return None
        try:
            target, lun = self._lun(pool, dc)
        except errors.XapiError:
            return None
        return target.path(lun)


class RelvmoIscsiBackend(LvmoIscsiBackend):
    """``relvmoiscsi``: create = resignature a cloned LVHD LUN, then attach.

    The seed-001 UX, done properly: ``SR.create`` gives the LUN the new SR's
    uuid with the project's resign engine and succeeds, leaving an attached
    SR whose VDIs have new uuids; the original can stay attached beside it.
    """

    type = "relvmoiscsi"

    def create(self, pool, sr, device_config, size):
        from nova_xenapi_resign import exception
        from nova_xenapi_resign import resign
        target, lun = self._lun(pool, device_config)
        try:
            resign.resign_device(target.path(lun),
                                 pool.db.get("SR", sr, "uuid"),
                                 backup_dir=pool.backup_dir,
                                 lock_path=pool.lock_dir)
        except exception.ResignException as exc:
            raise errors.sr_backend_failure(
                1, "resignature of %s LUN %d failed: %s"
                % (target.iqn, lun, exc))


class LocalBackend(Backend):
    """Host-local storage (``ext``): records only, no data.

    Gives the pool a default SR for instance root disks, as Nova's
    ``safe_find_sr`` expects, and a place to create VDIs with VDI.create.
    """

    type = "ext"
    can_mirror = True  # sm drivers/EXTSR.py CAPABILITIES

    def plug(self, pool, sr, device_config):
        pass

    def create(self, pool, sr, device_config, size):
        pass

    def scan(self, pool, sr, device_config):
        db = pool.db
        total = sum(db.get("VDI", v, "virtual_size")
                    for v in db.find("VDI", SR=sr))
        db.set("SR", sr, "virtual_allocation", total)

    def probe(self, pool, device_config, sm_config):
        return srlist_xml([])


BACKENDS = {b.type: b for b in (IscsiBackend(), LvmoIscsiBackend(),
                                RelvmoIscsiBackend(),
                                LocalBackend())}


def create_local_sr(pool, host):
    """A host's local SR with an attached PBD."""
    db = pool.db
    sr = db.create("SR", name_label="Local storage", type="ext",
                   content_type="user",
                   other_config={"i18n-key": "local-storage"},
                   physical_size=2 ** 40)
    db.create("PBD", host=host, SR=sr, currently_attached=True,
              device_config={"device": "/dev/sda3"})
    return sr


def can_mirror(sr_type):
    """Whether storage motion may mirror VDIs of this SR type."""
    be = BACKENDS.get(sr_type)
    return be is not None and be.can_mirror


def backend(sr_type):
    try:
        return BACKENDS[sr_type]
    except KeyError:
        raise errors.sr_unknown_driver(sr_type)


def attached_device_config(pool, sr):
    """device_config of an attached PBD of ``sr`` (master's first)."""
    db = pool.db
    pbds = [p for p in db.get("SR", sr, "PBDs")
            if db.get("PBD", p, "currently_attached")]
    pbds.sort(key=lambda p: db.get("PBD", p, "host") != pool.master)
    return dict(db.get("PBD", pbds[0], "device_config")) if pbds else None


def scan_sr(pool, sr):
    dc = attached_device_config(pool, sr)
    if dc is None:
        # The scan is forwarded to a host with the SR plugged; there is
        # none (xapi-project/xen-api ocaml/xapi/message_forwarding.ml
        # ``forward_sr_op`` / ``choose_pbd_for_sr``).
        raise errors.sr_no_pbds(sr)
    backend(pool.db.get("SR", sr, "type")).scan(pool, sr, dc)


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
                     shared=coerce("SR", "shared", shared),
                     sm_config=coerce("SR", "sm_config", sm_config or {}))


def sr_create(pool, session, host, device_config, physical_size,
              name_label, name_description, type_, content_type, shared,
              sm_config=None):
    db = pool.db
    db.raw("host", host)
    be = backend(type_)
    device_config = coerce("PBD", "device_config", device_config)
    sr = db.create("SR", name_label=name_label,
                   name_description=name_description, type=type_,
                   content_type=content_type,
                   shared=coerce("SR", "shared", shared),
                   sm_config=coerce("SR", "sm_config", sm_config or {}))
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
    return backend(type_).probe(pool, coerce("PBD", "device_config",
                                             device_config),
                                sm_config or {})


def sr_scan(pool, session, sr):
    pool.db.raw("SR", sr)
    scan_sr(pool, sr)
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
        device_config=coerce("PBD", "device_config",
                             record.get("device_config", {})),
        other_config=coerce("PBD", "other_config",
                            record.get("other_config", {})))


def pbd_plug(pool, session, pbd):
    db = pool.db
    rec = db.raw("PBD", pbd)
    if rec["currently_attached"]:
        return ""
    sr = rec["SR"]
    sr_type = db.get("SR", sr, "type")
    backend(sr_type).plug(pool, sr, dict(rec["device_config"]))
    rec["currently_attached"] = True
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
    fields = {k: coerce("VDI", k, v) for k, v in fields.items()}
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
    fields = {k: coerce("VDI", k, record[k]) for k in _VDI_CREATE_FIELDS
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
    fields = {k: coerce("VBD", k, record[k]) for k in _VBD_FIELDS
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
        if attached_device_config(pool, sr) is None:
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
    fields = {k: coerce("VM", k, record[k]) for k in _VM_FIELDS
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
            if attached_device_config(pool, sr) is None:
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
    fields = {k: coerce("VIF", k, record[k])
              for k in ("device", "MAC", "MTU", "other_config",
                        "qos_algorithm_type", "qos_algorithm_params")
              if k in record}
    return db.create("VIF", VM=vm, network=net, **fields)


def vif_destroy(pool, session, vif):
    pool.db.destroy("VIF", vif)
    return ""


def network_create(pool, session, record):
    fields = {k: coerce("network", k, record[k])
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
