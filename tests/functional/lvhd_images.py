"""LVHD SR images made by the real LVM tools, for functional tests.

:func:`make_lvhd_image` does what XenServer's SM does to a LUN
(``pvcreate``/``vgcreate VG_XenStorage-<sr>``, an ``MGT`` LV, one LV per
VDI, ``--addtag hidden`` and ``lvchange -p r`` where SM uses them) on a
loop device, then fills MGT and every VHD LV with the bytes
:mod:`nova_xenapi_resign.lvhd.create` would write, so the result is an SR
image whose LVM metadata comes from lvm2 itself.  The loop device is always
detached before the function returns: the caller gets a plain image file.

Large VDI counts: ``lvcreate`` costs ~0.1 s per LV, so past
:data:`RESTORE_THRESHOLD` VDIs the LVs are added in one step with
``vgcfgrestore -f`` from a metadata file generated with ``vg_metadata``
(lvm2 still validates and writes the metadata itself).

Spec builders: :func:`snapshot_tree` (the standard layout after one VM
snapshot) and :func:`many_vdis`.
"""

import os
import time
import uuid

from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import libdm_config
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import lvm_id
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import vg_metadata
from tests.functional import base

MIB = 1024 * 1024
EXTENT = 4 * MIB
VDI_SIZE = 8 * MIB
#: Above this many VDIs the LVs are made with one vgcfgrestore.
RESTORE_THRESHOLD = 32
#: Most metadata changes made to force a wrap of the circular buffer.
MAX_WRAP_CHANGES = 400
SNAPSHOT_TIME = "20240101T00:00:00Z"

_NS = uuid.UUID("3f0e6c4a-5d8b-4e57-9d1c-7a2b6e0f9c11")


def _vdi_uuid(sr_uuid, role):
    return str(uuid.uuid5(_NS, "%s/%s" % (sr_uuid, role)))


def snapshot_tree(sr_uuid, size=VDI_SIZE, raw_hidden=True):
    """The VDIs of an SR after one VM snapshot, plus a raw VDI.

    A hidden, read-only, unmanaged base copy; the VM's disk (a visible leaf
    child of the base); a snapshot (child of the base, ``is_a_snapshot``,
    ``snapshot_of`` the leaf); and a raw ``LV-`` VDI (hidden by the
    ``hidden`` tag unless ``raw_hidden`` is false).  Uuids are derived from
    ``sr_uuid``, so each SR gets its own.
    """
    base_uuid = _vdi_uuid(sr_uuid, "base")
    leaf_uuid = _vdi_uuid(sr_uuid, "leaf")
    return (
        create.VdiSpec(base_uuid, "vhd", size, name_label="base copy",
                       hidden=True, read_only=True, managed=False),
        create.VdiSpec(leaf_uuid, "vhd", size, name_label="vm disk",
                       name_description="the VM's disk", parent=base_uuid),
        create.VdiSpec(_vdi_uuid(sr_uuid, "snapshot"), "vhd", size,
                       name_label="vm disk snapshot", parent=base_uuid,
                       is_a_snapshot=True, snapshot_of=leaf_uuid,
                       snapshot_time=SNAPSHOT_TIME),
        create.VdiSpec(_vdi_uuid(sr_uuid, "raw"), "raw", size,
                       name_label="raw disk", hidden=raw_hidden),
    )


def many_vdis(sr_uuid, n, size=VDI_SIZE):
    """``n`` plain (dynamic, visible) VHD VDIs of one extent each."""
    return tuple(create.VdiSpec(_vdi_uuid(sr_uuid, "vdi-%d" % i), "vhd",
                                size, name_label="disk %d" % i)
                 for i in range(n))


def _lv_bytes(sr_uuid, spec):
    """(LV size in bytes, bytes to write at its start)."""
    if spec.vdi_type == create.VDI_TYPE_VHD:
        image = create.vhd_contents(sr_uuid, spec)
        return -(-len(image) // EXTENT) * EXTENT, image
    return -(-spec.virtual_size // EXTENT) * EXTENT, b""


def _needed_size(sr_uuid, vdis, pvmetadatacopies):
    extents = 1 + sum(_lv_bytes(sr_uuid, s)[0] // EXTENT for s in vdis)
    size = 16 * MIB + extents * EXTENT
    if pvmetadatacopies == 2:
        size += 12 * MIB
    return max(64 * MIB, size)


def _read_pv(path):
    with device_mod.open_device(path) as dev:
        return lvm.read_pv(dev)


def committed_pieces(path):
    """Text extents of the committed copy in every mda of an image."""
    pv = _read_pv(path)
    return [lvm.text_extents(mda.header, mda.header.committed)
            for mda in pv.mdas if mda.header.committed is not None]


def _lvcreate_all(lvm_, vg_name, sr_uuid, vdis):
    for spec in vdis:
        size, _ = _lv_bytes(sr_uuid, spec)
        args = ["-L", "%db" % size, "-n", spec.lv_name]
        if spec.vdi_type == create.VDI_TYPE_RAW and spec.hidden:
            args += ["--addtag", sr_mod.HIDDEN_TAG]
        lvm_("lvcreate", *(args + [vg_name]))
        if spec.read_only:
            lvm_("lvchange", "-p", "r", "%s/%s" % (vg_name, spec.lv_name))


def _restore_all(test, lvm_, path, vg_name, sr_uuid, vdis):
    """Add every VDI LV at once: generated metadata + vgcfgrestore."""
    vg = vg_metadata.parse_vg(_read_pv(path).committed_text, path)
    next_pe = max(pe + seg.extent_count for lv in vg.lvs
                  for seg in lv.segments for _, pe in seg.stripes)
    host = os.uname().nodename
    now = int(time.time())
    added = []
    for spec in vdis:
        size, _ = _lv_bytes(sr_uuid, spec)
        tags = ((sr_mod.HIDDEN_TAG,) if spec.vdi_type == create.VDI_TYPE_RAW
                and spec.hidden else ())
        lv = create.LvPlan(name=spec.lv_name,
                           id=lvm_id.derive_lvm_id("lvhd_images", vg.id,
                                                   spec.lv_name),
                           start_extent=next_pe,
                           extent_count=size // EXTENT,
                           read_only=spec.read_only, tags=tags)
        next_pe += lv.extent_count
        added.append((lv.name, create.lv_section(lv, creation_host=host,
                                                 creation_time=now)))
    old = vg.tree.section((vg.name, "logical_volumes"))
    merged = libdm_config.Section(old.items + tuple(added))
    tree = vg.tree.with_section((vg.name, "logical_volumes"), merged)
    tree = tree.with_value((vg.name, "seqno"), vg.seqno + 1)
    new_vg = vg_metadata.VolumeGroup.from_tree(tree, "<generated>")
    backup = os.path.join(test.tmpdir, "%s.vg" % vg_name)
    with open(backup, "w") as f:
        f.write(vg_metadata.render_vg(new_vg, form="backup"))
    lvm_("vgcfgrestore", "-f", backup, vg_name)


def _force_wrap(lvm_, path, vg_name):
    """Change the metadata until every committed copy wraps; return count."""
    target = "%s/%s" % (vg_name, sr_mod.MGT_LV)
    for n in range(1, MAX_WRAP_CHANGES + 1):
        flag = "--addtag" if n % 2 else "--deltag"
        lvm_("lvchange", flag, "x", target)
        pieces = committed_pieces(path)
        if pieces and all(len(p) == 2 for p in pieces):
            return n
    raise AssertionError("metadata did not wrap after %d changes"
                         % MAX_WRAP_CHANGES)


def _write_contents(path, sr_uuid, vdis, name_label):
    """Write MGT and every VHD image into the LVs of the image file."""
    model = sr_mod.inspect_path(path)
    data = [(sr_mod.MGT_LV, create.mgt_contents(sr_uuid, vdis,
                                                name_label=name_label))]
    for spec in vdis:
        if spec.vdi_type == create.VDI_TYPE_VHD:
            data.append((spec.lv_name, create.vhd_contents(sr_uuid, spec)))
    with open(path, "r+b") as f:
        for lv_name, payload in data:
            lv = model.lv(lv_name)
            pos = 0
            for offset, length in lv.device_ranges(0, len(payload)):
                f.seek(offset)
                f.write(payload[pos:pos + length])
                pos += length
        f.flush()
        os.fsync(f.fileno())


def make_lvhd_image(test, path, sr_uuid, vdis, *, size=None,
                    metadata_size="10M", pvmetadatacopies=1, wrap=False,
                    name_label="", method=None):
    """Make an LVHD SR image at ``path`` with the real LVM tools.

    ``vdis`` are :class:`~nova_xenapi_resign.lvhd.create.VdiSpec`.
    ``size`` defaults to what the VDIs need (at least 64 MiB).  ``wrap``
    uses a 32 KiB metadata area (``--dataalignment 64k``: a 60 KiB area)
    and changes the metadata until the committed copy wraps around the
    circular buffer.  ``method`` is ``"lvcreate"`` (one LVM command per
    LV) or ``"restore"`` (one ``vgcfgrestore``); by default ``lvcreate`` up
    to :data:`RESTORE_THRESHOLD` VDIs.

    Returns a dict: ``path``, ``sr_uuid``, ``vg_name``, ``vdis`` (the
    specs), ``pv_id``/``vg_id`` (dashed, from ``pvs``/``vgs``), ``lv_ids``
    ``{lv name: id}``, the raw report rows ``pv``, ``vg``, ``lvs`` (by LV
    name), ``wrap_changes`` (metadata changes made to wrap, 0 without
    ``wrap``), ``sr`` (``sr.inspect_path`` of the finished image) and
    ``seconds`` (``{"lvm": ..., "total": ...}``).
    """
    started = time.monotonic()
    vdis = create.check_vdis(vdis)
    create.check_sr_uuid(sr_uuid)
    vg_name = naming.sr_vg_name(sr_uuid)
    if method is None:
        method = "restore" if len(vdis) > RESTORE_THRESHOLD else "lvcreate"
    if method not in ("lvcreate", "restore"):
        raise ValueError("method must be 'lvcreate' or 'restore'")
    if size is None:
        size = _needed_size(sr_uuid, vdis, pvmetadatacopies)
    pv_args = ["-ff", "-y", "--metadatasize",
               "32k" if wrap else metadata_size]
    if wrap:
        pv_args += ["--dataalignment", "64k"]
    if pvmetadatacopies != 1:
        pv_args += ["--pvmetadatacopies", str(pvmetadatacopies)]
    base.make_image(path, size)
    wrap_changes = 0
    with base.LoopDevice(path) as loop:
        lvm_ = base.Lvm(loop.path)
        lvm_("pvcreate", *(pv_args + [loop.path]))
        lvm_("vgcreate", "--metadatasize", "32k" if wrap else metadata_size,
             vg_name, loop.path)
        lvm_("lvcreate", "-L", "%db" % create.MGT_SIZE, "-n",
             sr_mod.MGT_LV, vg_name)
        if method == "lvcreate":
            _lvcreate_all(lvm_, vg_name, sr_uuid, vdis)
        else:
            _restore_all(test, lvm_, path, vg_name, sr_uuid, vdis)
        if wrap:
            wrap_changes = _force_wrap(lvm_, path, vg_name)
        pv = lvm_.report("pvs", "pv_name,pv_uuid,pe_start,pv_mda_count,"
                         "pv_mda_size,dev_size")[0]
        vg = lvm_.report("vgs", "vg_name,vg_uuid,vg_seqno,vg_extent_size")[0]
        lvs = {row["lv_name"]: row for row in lvm_.report(
            "lvs", "lv_name,lv_uuid,lv_size,lv_tags,lv_attr,seg_pe_ranges")}
    lvm_seconds = time.monotonic() - started
    _write_contents(path, sr_uuid, vdis, name_label)
    model = sr_mod.inspect_path(path)
    return {
        "path": path, "sr_uuid": sr_uuid, "vg_name": vg_name, "vdis": vdis,
        "pv_id": pv["pv_uuid"], "vg_id": vg["vg_uuid"],
        "lv_ids": {name: row["lv_uuid"] for name, row in lvs.items()},
        "pv": pv, "vg": vg, "lvs": lvs, "wrap_changes": wrap_changes,
        "sr": model,
        "seconds": {"lvm": lvm_seconds,
                    "total": time.monotonic() - started},
    }
