"""A test Cinder backend: LUN image files in a SAN, exported on loop devices.

:func:`backend_configuration` is Cinder's own
``cinder.volume.configuration.Configuration`` for a backend section when
Cinder is installed, else :class:`FakeConfiguration`, which behaves like it
for what drivers use (``append_config_values``, ``safe_get``, attribute
access to the backend section) over any ``oslo_config.cfg.ConfigOpts``.

:class:`LoopBackendDriver` is a backend driver in the shape of Cinder's
``VolumeDriver``: volumes and snapshots are sparse image files - volumes are
the LUNs of a simulator :class:`~nova_xenapi_resign.simulator.san.San`
(one iSCSI target per volume, LUN 0, as SolidFire does), so a pool of the
embedded XAPI sees the very same bytes.  ``initialize_connection`` attaches
the LUN to a loop device and returns ``driver_volume_type: local`` with
``device_path`` (what os-brick's ``LocalConnector`` needs) plus the iSCSI
keys Nova's SR naming reads (``target_portal``, ``target_iqn``,
``target_lun``, ``volume_id``); ``terminate_connection`` detaches the loop
devices again.  Every call is recorded in ``calls`` so tests can check that
a source was never exported.
"""

from __future__ import annotations

import os
import subprocess

from oslo_config import cfg
from oslo_utils import importutils

from nova_xenapi_resign.simulator import san as san_mod

PORTAL = "192.0.2.10:3260"
IQN_PREFIX = "iqn.2010-10.org.openstack:volume-"
GIB = 1024 ** 3

fake_opts = [
    cfg.StrOpt("fake_san_dir", help="Directory of the SAN's LUN files."),
    cfg.StrOpt("fake_portal", default=PORTAL,
               help="host:port of every target."),
]


class FakeConfiguration(object):
    """Cinder's ``Configuration`` for one backend section, over ConfigOpts."""

    def __init__(self, conf: cfg.ConfigOpts, config_group: str = "backend"):
        self.conf = conf
        self.config_group = config_group
        conf.register_group(cfg.OptGroup(config_group))

    def append_config_values(self, volume_opts):
        for opt in volume_opts:
            try:
                self.conf.register_opt(opt, group=self.config_group)
            except cfg.DuplicateOptError:
                pass

    def safe_get(self, value):
        try:
            return self.__getattr__(value)
        except cfg.NoSuchOptError:
            return None

    def set(self, name, value):
        self.conf.set_override(name, value, group=self.config_group)

    def __getattr__(self, value):
        if value in ("conf", "config_group"):
            raise AttributeError(value)
        return getattr(self.conf._get(self.config_group), value)


def backend_configuration(conf: cfg.ConfigOpts, group: str = "backend"):
    """A backend section's configuration, Cinder's own when installed.

    Cinder's ``Configuration`` lives in ``cfg.CONF``, as in cinder-volume;
    without Cinder a :class:`FakeConfiguration` over ``conf``.
    """
    configuration = importutils.try_import("cinder.volume.configuration")
    if configuration is None:
        return FakeConfiguration(conf, group)
    # What cinder-volume does first: the drivers' options (with their
    # shared [backend_defaults]) and a group for the backend section.
    importutils.import_module("cinder.volume.driver")
    cfg.CONF.register_group(cfg.OptGroup(group))
    return configuration.Configuration([], config_group=group)


def set_backend_option(configuration, name: str, value) -> None:
    """Set a backend option on either kind of configuration."""
    if isinstance(configuration, FakeConfiguration):
        configuration.set(name, value)
    else:
        cfg.CONF.set_override(name, value,
                              group=configuration.config_group)


def volume_iqn(volume_id: str) -> str:
    return IQN_PREFIX + str(volume_id)


def losetup_find(image: str) -> list[str]:
    """Loop devices backed by ``image`` (``losetup -j``)."""
    out = subprocess.run(["losetup", "-j", image], capture_output=True,
                         text=True, check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


class LoopBackendDriver(object):
    """LUN files in a SAN directory, exported as loop devices."""

    VERSION = "1.0.0"

    def __init__(self, *args, **kwargs):
        self.configuration = kwargs.get("configuration")
        self.configuration.append_config_values(fake_opts)
        self.san = san_mod.San(self.configuration.safe_get("fake_san_dir"))
        self.portal = self.configuration.safe_get("fake_portal") or PORTAL
        self.snapshot_dir = os.path.join(self.san.root, "snapshots")
        os.makedirs(self.snapshot_dir, exist_ok=True)
        self.calls = []
        self.attachments = {}       # volume id -> [loop devices]
        self._initialized = False
        self.fail = {}              # method name -> exception to raise
        self.init_args = (args, kwargs)

    # --- helpers ---

    def _record(self, name, *args):
        self.calls.append((name,) + args)
        if name in self.fail:
            raise self.fail[name]

    def address(self, volume):
        return (self.portal, volume_iqn(volume["id"]), 0)

    def lun_path(self, volume):
        return self.san.path(*self.address(volume))

    def snapshot_path(self, snapshot):
        return os.path.join(self.snapshot_dir, "%s.img" % snapshot["id"])

    def _model_update(self, volume):
        portal, iqn, lun = self.address(volume)
        return {"provider_location": "%s %s %d" % (portal, iqn, lun)}

    # --- the driver interface ---

    def do_setup(self, context):
        self._record("do_setup", context)

    def check_for_setup_error(self):
        self._record("check_for_setup_error")

    def set_initialized(self):
        self._initialized = True

    @property
    def initialized(self):
        return self._initialized

    def get_volume_stats(self, refresh=False):
        self._record("get_volume_stats", refresh)
        return {"volume_backend_name": "loop", "vendor_name": "test",
                "driver_version": self.VERSION, "storage_protocol": "local",
                "total_capacity_gb": "infinite",
                "free_capacity_gb": "infinite"}

    def create_volume(self, volume):
        self._record("create_volume", volume["id"])
        size = volume.get("size_bytes") or int(volume["size"]) * GIB
        self.san.create_lun(*self.address(volume), size)
        return self._model_update(volume)

    def import_image(self, volume, image):
        """Make ``image`` the LUN of a (new) volume; a test helper."""
        path = self.lun_path(volume)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        san_mod.sparse_copy(image, path)
        return self._model_update(volume)

    def delete_volume(self, volume):
        self._record("delete_volume", volume["id"])
        try:
            os.unlink(self.lun_path(volume))
        except FileNotFoundError:
            pass

    def create_snapshot(self, snapshot):
        self._record("create_snapshot", snapshot["id"])
        src = self.lun_path({"id": snapshot["volume_id"]})
        san_mod.sparse_copy(src, self.snapshot_path(snapshot))

    def delete_snapshot(self, snapshot):
        self._record("delete_snapshot", snapshot["id"])
        try:
            os.unlink(self.snapshot_path(snapshot))
        except FileNotFoundError:
            pass

    def create_volume_from_snapshot(self, volume, snapshot):
        self._record("create_volume_from_snapshot", volume["id"],
                     snapshot["id"])
        self.san.clone_lun(self.snapshot_path(snapshot),
                           *self.address(volume))
        return self._model_update(volume)

    def create_cloned_volume(self, volume, src_vref):
        self._record("create_cloned_volume", volume["id"], src_vref["id"])
        self.san.clone_lun(self.lun_path(src_vref), *self.address(volume))
        return self._model_update(volume)

    def create_export(self, context, volume, connector):
        self._record("create_export", volume["id"])

    def ensure_export(self, context, volume):
        self._record("ensure_export", volume["id"])

    def remove_export(self, context, volume):
        self._record("remove_export", volume["id"])

    def initialize_connection(self, volume, connector):
        self._record("initialize_connection", volume["id"])
        path = self.lun_path(volume)
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        loop = subprocess.run(["losetup", "--find", "--show", path],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
        self.attachments.setdefault(volume["id"], []).append(loop)
        portal, iqn, lun = self.address(volume)
        return {"driver_volume_type": "local",
                "data": {"device_path": loop,
                         "volume_id": volume["id"],
                         "target_discovered": False,
                         "target_portal": portal,
                         "target_iqn": iqn,
                         "target_lun": lun}}

    def terminate_connection(self, volume, connector, **kwargs):
        self._record("terminate_connection", volume["id"])
        for loop in self.attachments.pop(volume["id"], []):
            subprocess.run(["losetup", "--detach", loop],
                           capture_output=True, check=True)

    def detach_all(self):
        """Detach every loop device this driver made (test cleanup)."""
        for volume_id in list(self.attachments):
            for loop in self.attachments.pop(volume_id):
                subprocess.run(["losetup", "--detach", loop],
                               capture_output=True)
