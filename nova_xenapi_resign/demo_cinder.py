"""The demo's Cinder side: ``ResignVolumeDriver`` on the simulated SAN.

:class:`SanBackendDriver` is a backend driver in the shape of Cinder's
``VolumeDriver`` whose LUNs are those of the embedded XAPI's
:class:`~nova_xenapi_resign.simulator.san.San` (one iSCSI target per volume
or snapshot, LUN 0, as SolidFire does): a snapshot or a clone is a SAN
clone, a byte copy.  Its connection data are iSCSI data plus the LUN's
SCSI id as that SAN answers page 0x83 (``scsi_wwn``).

:func:`cinder_wrapper` builds the real
:class:`cinder_backend.driver.ResignVolumeDriver` around it, as
cinder-volume does from ``cinder.conf`` (Cinder itself is not needed), and
attaches LUNs with :class:`SanConnector`, which opens the LUN image the
data address, where a cinder-volume host would log in with os-brick.  The
privileged calls run in-process, the backups and device locks go to the
demo's directory; everything is put back when the context ends.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator
import warnings

from oslo_config import cfg

from nova_xenapi_resign.simulator import san as san_mod

PORTAL = "192.0.2.10:3260"
IQN_PREFIX = "iqn.2010-01.com.solidfire:demo.cinder."
#: The simulated SAN's LUN size, whatever the volume size (the demo runs
#: in seconds; the layout does not depend on the size).
LUN_SIZE = 64 * 1024 * 1024


class SanBackendDriver(object):
    """A Cinder backend driver whose LUNs live on the simulated SAN."""

    san: san_mod.San | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[str] = []

    @staticmethod
    def iqn(resource: Any) -> str:
        return IQN_PREFIX + str(resource["id"])

    def path(self, resource: Any) -> str:
        return self.san.path(PORTAL, self.iqn(resource), 0)

    def create_volume(self, volume: Any) -> None:
        self.calls.append("create_volume")
        self.san.create_lun(PORTAL, self.iqn(volume), 0, LUN_SIZE)

    def create_snapshot(self, snapshot: Any) -> None:
        self.calls.append("create_snapshot")
        self.san.clone_lun(self.path(snapshot["volume"]), PORTAL,
                           self.iqn(snapshot), 0)

    def create_volume_from_snapshot(self, volume: Any, snapshot: Any
                                    ) -> None:
        self.calls.append("create_volume_from_snapshot")
        self.san.clone_lun(self.path(snapshot), PORTAL, self.iqn(volume), 0)

    def create_cloned_volume(self, volume: Any, src_vref: Any) -> None:
        self.calls.append("create_cloned_volume")
        self.san.clone_lun(self.path(src_vref), PORTAL, self.iqn(volume), 0)

    def create_export(self, context: Any, volume: Any, connector: Any
                      ) -> None:
        self.calls.append("create_export")

    def remove_export(self, context: Any, volume: Any) -> None:
        self.calls.append("remove_export")

    def initialize_connection(self, volume: Any, connector: Any) -> dict:
        self.calls.append("initialize_connection")
        iqn = self.iqn(volume)
        return {"driver_volume_type": "iscsi",
                "data": {"target_portal": PORTAL, "target_iqn": iqn,
                         "target_lun": 0, "volume_id": str(volume["id"]),
                         "scsi_wwn": san_mod.scsi_id(PORTAL, iqn, 0)}}

    def terminate_connection(self, volume: Any, connector: Any,
                             **kwargs: Any) -> None:
        self.calls.append("terminate_connection")


class SanConnector(object):
    """os-brick's connector for the simulated SAN: the LUN image itself."""

    def __init__(self, san: san_mod.San) -> None:
        self.san = san
        self.attached: list[str] = []

    def connect_volume(self, data: dict) -> dict:
        path = self.san.path(data["target_portal"], data["target_iqn"],
                             data["target_lun"])
        if not os.path.exists(path):
            raise FileNotFoundError(path)
        self.attached.append(path)
        return {"type": "block", "path": path}

    def disconnect_volume(self, data: dict, device_info: dict,
                          force: bool = False,
                          ignore_errors: bool = False) -> None:
        self.attached.remove(device_info["path"])


class _Configuration(object):
    """A backend section of cinder.conf, as Cinder's ``Configuration``."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def append_config_values(self, opts: list) -> None:
        for opt in opts:
            self.values.setdefault(opt.dest, opt.default)

    def safe_get(self, name: str) -> Any:
        return self.values.get(name)


@contextlib.contextmanager
def cinder_wrapper(san: san_mod.San, workdir: str
                   ) -> Iterator[tuple[Any, SanConnector]]:
    """A ``ResignVolumeDriver`` wrapping :class:`SanBackendDriver`.

    Yields the wrapper and the connector it attaches LUNs with (whose
    ``attached`` list must be empty between calls).
    """
    with warnings.catch_warnings():
        # oslo.privsep imports eventlet, which warns that it is deprecated;
        # nothing the demo's reader can act on.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is "
                                "deprecated")
        from cinder_backend import driver
        from cinder_backend import privileged
    from nova_xenapi_resign import conf as xenapi_conf
    xenapi_conf.register_opts(cfg.CONF)
    from oslo_concurrency import lockutils  # noqa: F401 (its options)
    overrides = (("backup_dir", workdir + "/backups", "xenapi_resign"),
                 ("lock_path", workdir + "/locks", "oslo_concurrency"))
    for name, value, group in overrides:
        cfg.CONF.set_override(name, value, group=group)
    privileged.default.set_client_mode(False)
    SanBackendDriver.san = san
    try:
        wrapper = driver.ResignVolumeDriver(configuration=_Configuration(
            resign_backend_driver=__name__ + ".SanBackendDriver"))
        connector = SanConnector(san)
        wrapper.attach_with({"host": "cinder-volume-1",
                             "initiator": "iqn.2010-01.demo:cinder-1"},
                            connector)
        yield wrapper, connector
    finally:
        SanBackendDriver.san = None
        privileged.default.set_client_mode(True)
        for name, _value, group in overrides:
            cfg.CONF.clear_override(name, group=group)
