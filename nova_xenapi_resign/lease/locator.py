"""Where the lease lives on a LUN, found without LVM activation or XAPI.

The lease is the first bytes of an LV named :data:`LEASE_LV` in the SR's
VG.  SM ignores LVs whose names do not start with ``VHD-`` or ``LV-`` (see
doc/source/reference/lease.rst), so neither a scan nor the garbage
collector touches it.  Given only the block device (or an image), the lease
area is found from the LVM metadata: label, pv_header, mda_header, the
committed text, then the LV's first extent.
"""

from __future__ import annotations

import dataclasses

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import vg_metadata

LEASE_LV = "xenapi_resign_lease"
VG_PREFIX = "VG_XenStorage-"
SECTOR = 512


@dataclasses.dataclass(frozen=True)
class LeaseLocation:
    """The lease area of one SR: absolute byte offset on the device."""

    device: str
    sr_uuid: str
    offset: int
    lv_size: int


def locate_in_vg(vg: vg_metadata.VolumeGroup, device: str) -> LeaseLocation:
    """The lease area of a parsed VG (pure)."""
    if not vg.name.startswith(VG_PREFIX):
        raise exception.InvalidInput(
            reason="%s: VG %s is not an LVHD SR (no %s prefix)"
            % (device, vg.name, VG_PREFIX))
    sr_uuid = vg.name[len(VG_PREFIX):]
    if LEASE_LV not in vg.lv_names:
        raise exception.LeaseNotFound(
            sr=sr_uuid, device=device, lv=LEASE_LV,
            reason="the SR was not formatted by nova-xenapi-resign; only "
            "XAPI's own per-pool locking protects it")
    lv = vg.lv(LEASE_LV)
    first = min(lv.segments, key=lambda s: s.start_extent, default=None)
    if (first is None or first.start_extent != 0 or first.type != "striped"
            or len(first.stripes) != 1):
        raise exception.LeaseRecordError(
            device=device, structure="LV %s segment1" % LEASE_LV,
            offset="metadata", expected="a linear first segment",
            found=first)
    pv_key, pe = first.stripes[0]
    pv = vg.pv(pv_key)
    extent = vg.extent_size * SECTOR
    size = first.extent_count * extent
    if size < rec.AREA_SIZE:
        raise exception.LeaseRecordError(
            device=device, structure="LV %s size" % LEASE_LV,
            offset="metadata", expected="at least %d bytes" % rec.AREA_SIZE,
            found=size)
    return LeaseLocation(device=device, sr_uuid=sr_uuid,
                         offset=pv.pe_start * SECTOR + pe * extent,
                         lv_size=size)


def locate(dev) -> LeaseLocation:
    """Find the lease area of an opened device (anything with ``read``)."""
    pv = lvm.read_pv(dev)
    text = pv.committed_text
    if text is None:
        raise exception.LvmMetadataError(
            device=dev.path, structure="metadata areas", offset=4096,
            expected="a committed metadata copy", found="none")
    return locate_in_vg(vg_metadata.parse_vg(text, dev.path), dev.path)


class DeviceStore:
    """The two slots of a located lease area on an opened device.

    One read of :data:`record.AREA_SIZE` bytes returns both slots; a write
    is one 4 KiB slot, followed by an fsync.
    """

    def __init__(self, dev, location: LeaseLocation) -> None:
        self.dev = dev
        self.location = location
        self.name = "%s (lease at byte %d)" % (dev.path, location.offset)

    def read_slots(self) -> tuple[bytes, ...]:
        area = self.dev.read(self.location.offset, rec.AREA_SIZE)
        return tuple(area[i * rec.SLOT_STRIDE:
                          i * rec.SLOT_STRIDE + rec.RECORD_SIZE]
                     for i in range(rec.SLOT_COUNT))

    def write_slot(self, slot: int, data: bytes) -> None:
        self.dev.write(self.location.offset + slot * rec.SLOT_STRIDE, data)
        self.dev.fsync()
