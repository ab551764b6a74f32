"""The hook's device access, run with privileges through oslo.privsep.

cinder-volume runs as the unprivileged ``cinder`` user, while the LUN
os-brick attaches is a ``root:disk`` device node.  Like os-brick and Cinder
themselves, the hook does its privileged work in an oslo.privsep daemon that
cinder-volume starts through its root helper, and only that work: the two
entrypoints below take a device path, read (and for a resignature write) it,
and return plain data.  Everything else of the hook (driver calls, os-brick,
naming, Cinder's database) stays in the unprivileged service.

The daemon is started with ``sudo cinder-rootwrap /etc/cinder/rootwrap.conf
privsep-helper --config-file <cinder.conf> --privsep_context
cinder_backend.privileged.default --privsep_sock_path /tmp/...``, so
rootwrap needs the filter line the README gives, next to os-brick's.  Its
options live in ``[cinder_backend_privileged]`` (oslo.privsep's
``helper_command``, ``user``, ``group``, ``thread_pool_size``, ...).

The capabilities are those of direct block-device access: opening a
``root:disk`` node for writing (``CAP_DAC_OVERRIDE``/``CAP_DAC_READ_SEARCH``)
and flushing its buffers (``CAP_SYS_ADMIN``), plus ``CAP_FOWNER`` for the
backup and lock files the daemon writes.
"""

from __future__ import annotations


from oslo_log import log as logging
from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import create
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign.lvhd import lvm
from nova_xenapi_resign.lvhd import naming
from nova_xenapi_resign.lvhd import sr as sr_mod
from nova_xenapi_resign.lvhd import vg_metadata
from nova_xenapi_resign import resign as resign_mod

LOG = logging.getLogger(__name__)

default = priv_context.PrivContext(
    "cinder_backend",
    cfg_section="cinder_backend_privileged",
    pypath=__name__ + ".default",
    capabilities=[caps.CAP_DAC_OVERRIDE, caps.CAP_DAC_READ_SEARCH,
                  caps.CAP_FOWNER, caps.CAP_SYS_ADMIN],
)


@default.entrypoint
def detect_lvhd(path: str) -> str | None:
    """The VG name if ``path`` holds an LVHD SR, else None.

    Cheap: 2 KiB for the label; only an LVM2 PV is read further (its
    metadata area header and committed text, never LV data).  A device
    without an LVM2 label, or an LVM2 PV whose VG is not named
    ``VG_XenStorage-<uuid>``, is not an LVHD SR.  An LVM2 PV whose
    metadata cannot be read is reported as not LVHD too, with a warning:
    the resignature would refuse it anyway.
    """
    with device_mod.open_device(path) as dev:
        if dev.size < lvm.LABEL_SCAN_SIZE:
            return None
        try:
            lvm.parse_label(dev.read(0, lvm.LABEL_SCAN_SIZE), device=path)
        except exception.FormatError as exc:
            LOG.debug("%s: no LVM2 label (%s)", path, exc)
            return None
        try:
            text = lvm.read_pv(dev).committed_text
            name = vg_metadata.parse_vg(text, path).name if text else None
        except exception.FormatError as exc:
            LOG.warning("%s: LVM2 label found but its metadata cannot be "
                        "read (%s); not treated as an LVHD SR", path, exc)
            return None
    if name and name.startswith(naming.VG_PREFIX):
        return name
    LOG.debug("%s: LVM2 VG %s is not an LVHD SR", path, name)
    return None


@default.entrypoint
def resign_device(path: str, target: str, backup_dir: str,
                  lock_path: str | None = None) -> dict:
    """:func:`nova_xenapi_resign.resign.resign_device`, as plain data.

    privsep carries only primitive types back, so the result is the dict
    of the fields the hook reports.  A refusal is re-raised in the service
    as the same :class:`~nova_xenapi_resign.exception.UnsafeOperation`.
    """
    res = resign_mod.resign_device(path, target, backup_dir=backup_dir,
                                   lock_path=lock_path)
    return {"changed": res.changed, "state": res.state,
            "message": res.message, "bytes_written": res.bytes_written,
            "seconds": res.seconds}


def _sr_summary(sr: sr_mod.LvhdSr) -> dict:
    """An inspected SR as plain data (what privsep carries back)."""
    return {"sr_uuid": sr.sr_uuid, "vg_name": sr.vg_name,
            "problems": [str(p) for p in sr.problems],
            "lvs": [{"name": lv.name, "size": lv.size} for lv in sr.lvs],
            "vdis": [{"uuid": v.uuid, "vdi_type": v.vdi_type,
                      "lv_name": v.lv_name, "name_label": v.name_label,
                      "hidden": v.hidden, "parent_uuid": v.parent_uuid,
                      "virtual_size": v.virtual_size} for v in sr.vdis]}


@default.entrypoint
def inspect_lvhd(path: str) -> dict | None:
    """The LVHD SR on ``path`` as plain data, or None (read only).

    None exactly when :func:`detect_lvhd` says the device holds no LVHD
    SR; else ``{"sr_uuid", "vg_name", "problems", "lvs", "vdis"}`` of
    :func:`nova_xenapi_resign.lvhd.sr.inspect`.
    """
    if detect_lvhd(path) is None:
        return None
    return _sr_summary(sr_mod.inspect_path(path))


@default.entrypoint
def format_volume(path: str, sr_uuid: str, volume_id: str,
                  name: str) -> dict:
    """:func:`nova_xenapi_resign.lvhd.create.format_volume` on ``path``.

    Refuses (nothing written) a device that already holds an LVM2 label:
    a blank volume's LUN is new, so a label means the backend handed out
    a LUN with data on it.  Returns the SR as :func:`inspect_lvhd` does,
    read back from the device after the format.
    """
    with device_mod.open_device(path, writable=True) as dev:
        if dev.size >= lvm.LABEL_SCAN_SIZE:
            try:
                lvm.parse_label(dev.read(0, lvm.LABEL_SCAN_SIZE),
                                device=path)
            except exception.FormatError:
                pass
            else:
                raise exception.UnsafeOperation(
                    device=path, reason="the LUN of new volume %s already "
                    "holds an LVM2 label; not formatting it" % volume_id)
        sr = create.format_volume(dev, sr_uuid, volume_id, name)
    return _sr_summary(sr)
