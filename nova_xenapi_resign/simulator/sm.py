"""The SM backends: what each SR type does on plug, scan, probe and create.

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

``relvmoiscsi`` is ``lvmoiscsi`` that resigns a cloned LUN on ``SR.create``,
and ``ext`` is a host's local SR.  Each rule cites the xapi-project/sm or
xapi-project/xen-api code it follows.

Every function here runs with the pool lock held (the dispatcher takes it).
"""

from __future__ import annotations

import os
import re
from xml.dom import minidom

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from nova_xenapi_resign.simulator import san as sanmod

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

    The resign-on-create workflow, done properly: ``SR.create`` gives the
    LUN the new SR's uuid with the project's resign engine and succeeds,
    leaving an attached
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
