"""A test-only Cinder backend: sparse LUN files, attached as loop devices.

:class:`LocalFileDriver` is a real ``cinder.volume.driver.VolumeDriver``:
every volume is a sparse file ``<local_volume_dir>/<volume.name>`` (so it
follows ``_name_id`` after a migration, as a real backend's LUN does), a
snapshot a sparse copy of it, a clone or a volume from a snapshot a sparse
copy again (what a SAN clone is: the same bytes).  ``initialize_connection``
attaches the file to a loop device and returns ``driver_volume_type:
local`` with ``device_path`` for os-brick's ``LOCAL`` connector, plus the
iSCSI keys Nova's SR naming reads (``target_portal``, ``target_iqn``,
``target_lun``) and the LUN's SCSI id as the simulator SAN gives it
(``scsi_wwn``); ``terminate_connection`` detaches it again.
``manage_existing`` takes a LUN file by ``source-name``.

:class:`NativeGroupDriver` adds the backend's own ``create_group_from_src``
(a group of clones made in one call, as SAN drivers do), which Cinder
calls instead of ``create_cloned_volume`` per volume.

``calls`` records the driver methods Cinder called on the backend, so a
test can check each went through the wrapper.
"""

from __future__ import annotations

import os
import subprocess

from cinder.volume import driver
from oslo_config import cfg

from nova_xenapi_resign.simulator import san as san_mod

PORTAL = "192.0.2.10:3260"
IQN_PREFIX = "iqn.2010-10.org.openstack:"
GIB = 1024 ** 3

local_opts = [
    cfg.StrOpt("local_volume_dir", help="Directory of the LUN files."),
]


def losetup_find(path: str) -> list[str]:
    """Loop devices backed by ``path`` (``losetup -j``)."""
    out = subprocess.run(["losetup", "-j", path], capture_output=True,
                         text=True, check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


class LocalFileDriver(driver.VolumeDriver):
    """Sparse LUN files; ``local`` connections on loop devices."""

    VERSION = "1.0.0"
    #: Reported free and total capacity (see NativeGroupDriver).
    CAPACITY_GB: int | str = 10240
    # The calls of every instance, by backend name (one process, many
    # services: the test reads them from here).
    calls: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.configuration.append_config_values(local_opts)
        self.root = self.configuration.safe_get("local_volume_dir")
        self.backend_name = (self.configuration.safe_get(
            "volume_backend_name") or "local")
        self.loops: dict = {}       # volume name -> [loop devices]

    def _record(self, name: str, *ids) -> None:
        LocalFileDriver.calls.setdefault(self.backend_name, []).append(
            (name,) + tuple(str(i) for i in ids))

    def path(self, volume) -> str:
        return os.path.join(self.root, volume.name)

    def snapshot_path(self, snapshot) -> str:
        return os.path.join(self.root, snapshot.name)

    # --- setup and stats ---

    def do_setup(self, context):
        self._record("do_setup")
        os.makedirs(self.root, exist_ok=True)

    def check_for_setup_error(self):
        self._record("check_for_setup_error")

    def get_volume_stats(self, refresh=False):
        if refresh or not self._stats:
            self._stats = {
                "volume_backend_name": self.backend_name,
                "vendor_name": "test", "driver_version": self.VERSION,
                "storage_protocol": "local",
                "total_capacity_gb": self.CAPACITY_GB,
                "free_capacity_gb": self.CAPACITY_GB,
                "reserved_percentage": 0,
                "consistent_group_snapshot_enabled": False,
                "multiattach": False, "thin_provisioning_support": True}
        return self._stats

    # --- volumes and snapshots ---

    def create_volume(self, volume):
        self._record("create_volume", volume.id)
        with open(self.path(volume), "wb") as f:
            f.truncate(volume.size * GIB)

    def delete_volume(self, volume):
        self._record("delete_volume", volume.id)
        try:
            os.unlink(self.path(volume))
        except FileNotFoundError:
            pass

    def create_snapshot(self, snapshot):
        self._record("create_snapshot", snapshot.id)
        san_mod.sparse_copy(self.path(snapshot.volume),
                            self.snapshot_path(snapshot))

    def delete_snapshot(self, snapshot):
        self._record("delete_snapshot", snapshot.id)
        try:
            os.unlink(self.snapshot_path(snapshot))
        except FileNotFoundError:
            pass

    def _copy(self, src: str, volume) -> None:
        san_mod.sparse_copy(src, self.path(volume))
        with open(self.path(volume), "r+b") as f:
            f.truncate(max(volume.size * GIB, os.path.getsize(src)))

    def create_volume_from_snapshot(self, volume, snapshot):
        self._record("create_volume_from_snapshot", volume.id, snapshot.id)
        self._copy(self.snapshot_path(snapshot), volume)

    def create_cloned_volume(self, volume, src_vref):
        self._record("create_cloned_volume", volume.id, src_vref.id)
        self._copy(self.path(src_vref), volume)

    # --- import (cinder manage) ---

    def _existing(self, existing_ref) -> str:
        name = (existing_ref or {}).get("source-name")
        path = os.path.join(self.root, name or "")
        if not name or os.sep in name or not os.path.isfile(path):
            from cinder import exception
            raise exception.ManageExistingInvalidReference(
                existing_ref=existing_ref, reason="no LUN file %r" % name)
        return path

    def manage_existing_get_size(self, volume, existing_ref):
        size = os.path.getsize(self._existing(existing_ref))
        return -(-size // GIB)

    def manage_existing(self, volume, existing_ref):
        """The LUN file takes the volume's name, as a SAN renames a LUN."""
        self._record("manage_existing", volume.id)
        os.rename(self._existing(existing_ref), self.path(volume))

    def unmanage(self, volume):
        """The LUN file leaves Cinder under ``unmanaged-<volume name>``."""
        self._record("unmanage", volume.id)
        os.rename(self.path(volume), self.unmanaged_path(volume))

    def unmanaged_path(self, volume) -> str:
        return os.path.join(self.root, "unmanaged-" + volume.name)

    # --- exports and connections ---

    def create_export(self, context, volume, connector):
        self._record("create_export", volume.id)

    def ensure_export(self, context, volume):
        pass

    def remove_export(self, context, volume):
        self._record("remove_export", volume.id)

    def initialize_connection(self, volume, connector):
        self._record("initialize_connection", volume.id)
        loop = subprocess.run(["losetup", "--find", "--show",
                               self.path(volume)], capture_output=True,
                              text=True, check=True).stdout.strip()
        self.loops.setdefault(volume.name, []).append(loop)
        return {"driver_volume_type": "local",
                "data": {"device_path": loop, "volume_id": volume.id,
                         "target_discovered": False,
                         "target_portal": PORTAL,
                         "target_iqn": IQN_PREFIX + volume.name,
                         "target_lun": 0,
                         # What the simulator SAN's LUN answers to a SCSI
                         # INQUIRY page 0x83 (the LOCAL connector reads
                         # no scsi_wwn itself).
                         "scsi_wwn": san_mod.scsi_id(
                             PORTAL, IQN_PREFIX + volume.name, 0)}}

    def terminate_connection(self, volume, connector, **kwargs):
        self._record("terminate_connection", volume.id)
        for loop in self.loops.pop(volume.name, []):
            subprocess.run(["losetup", "--detach", loop],
                           capture_output=True, check=True)

    def detach_all(self) -> None:
        """Detach every loop device this driver made (test cleanup)."""
        for name in list(self.loops):
            for loop in self.loops.pop(name):
                subprocess.run(["losetup", "--detach", loop],
                               capture_output=True)


class NativeGroupDriver(LocalFileDriver):
    """A backend that copies a whole group in one call.

    It reports ``infinite`` capacity, which Cinder's capacity weigher
    ranks last: a volume of a type that names no backend always lands on
    ``loop``, never on this one by the scheduler's chance.
    """

    CAPACITY_GB = "infinite"

    def create_group_from_src(self, context, group, volumes,
                              group_snapshot=None, snapshots=None,
                              source_group=None, source_vols=None):
        self._record("create_group_from_src", group.id)
        sources = ([self.snapshot_path(s) for s in snapshots] if snapshots
                   else [self.path(v) for v in source_vols])
        for volume, src in zip(volumes, sources):
            self._copy(src, volume)
        return None, [{"id": v.id, "status": "available"} for v in volumes]
