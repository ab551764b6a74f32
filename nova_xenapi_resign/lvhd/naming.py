"""LVHD names: how SM names an SR's volume group, its LVs and their links.

An LVHD SR is the volume group ``VG_XenStorage-<sr uuid>``; a VDI is the LV
``VHD-<vdi uuid>`` (a VHD) or ``LV-<vdi uuid>`` (raw), and a differencing
VHD names its parent by the parent LV's device-mapper name (SM's
``lvhdutil``/``vhdutil``).  Pure string functions, no I/O.
"""

from __future__ import annotations

import re

from nova_xenapi_resign import exception

VG_PREFIX = "VG_XenStorage-"
LV_PREFIX_VHD = "VHD-"
LV_PREFIX_RAW = "LV-"
# Doubled dashes are taken possessively (no backtracking into a pair), so
# the separator is the first single dash, as device-mapper reads it.
_DM_NAME_RE = re.compile(r"((?:[^-]|--)*+)-(.*)", re.S)


def sr_vg_name(sr_uuid: str) -> str:
    """The volume group name of the LVHD SR ``sr_uuid``."""
    return VG_PREFIX + sr_uuid


def dm_name(vg_name: str, lv_name: str) -> str:
    """The device-mapper name of an LV: ``-`` doubled, joined by ``-``."""
    return vg_name.replace("-", "--") + "-" + lv_name.replace("-", "--")


def split_dm_name(name: str) -> tuple:
    """Inverse of :func:`dm_name`: ``(vg_name, lv_name)``.

    The split is at the first ``-`` that is not half of a doubled ``--``.
    """
    match = _DM_NAME_RE.fullmatch(name)
    if match is None:
        raise exception.InvalidInput(reason="%r is not a device-mapper VG-LV "
                                     "name" % (name,))
    return (match.group(1).replace("--", "-"),
            match.group(2).replace("--", "-"))


def lvhd_parent_name(sr_uuid: str, vdi_uuid: str, raw: bool = False) -> str:
    """What blktap stores for an LVHD parent: the parent LV's dm name.

    ``VG_XenStorage--<sr, '-' doubled>-VHD--<vdi, '-' doubled>`` (``LV--``
    for a raw parent).  The locators hold ``./`` + this name.
    """
    prefix = LV_PREFIX_RAW if raw else LV_PREFIX_VHD
    return dm_name(VG_PREFIX + str(sr_uuid), prefix + str(vdi_uuid))


def parse_lvhd_parent_name(name: str) -> tuple:
    """``(sr_uuid, vdi_uuid, raw)`` from a :func:`lvhd_parent_name` name.

    A path (``./name``) is accepted; anything else raises InvalidInput.
    """
    base = name.rstrip("/").rsplit("/", 1)[-1]
    vg, lv = split_dm_name(base)
    if not vg.startswith(VG_PREFIX):
        raise exception.InvalidInput(reason="%r is not an LVHD VG" % (vg,))
    if lv.startswith(LV_PREFIX_VHD):
        raw, vdi = False, lv[len(LV_PREFIX_VHD):]
    elif lv.startswith(LV_PREFIX_RAW):
        raw, vdi = True, lv[len(LV_PREFIX_RAW):]
    else:
        raise exception.InvalidInput(reason="%r is not an LVHD VDI LV"
                                     % (lv,))
    return vg[len(VG_PREFIX):], vdi, raw
