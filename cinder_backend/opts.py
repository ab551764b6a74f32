"""Cinder-side options of the resignature wrapper driver.

They live in each backend section of cinder.conf, next to ``volume_driver``.
"""

from __future__ import annotations

from oslo_config import cfg

resign_opts = [
    cfg.StrOpt(
        "resign_backend_driver",
        help="""
Import path of the volume driver the resignature wrapper delegates to.

Set ``volume_driver = cinder_backend.driver.ResignVolumeDriver`` and name the
real backend driver here; every call is passed through to it, and volumes it
creates from snapshots or clones are resignatured afterwards.

Possible values:

* A class import path, e.g.
  ``cinder.volume.drivers.solidfire.SolidFireDriver``

Related options:

* ``[xenapi_resign] resignature_duplicate_srs``
"""),
    cfg.IntOpt(
        "resign_attach_timeout",
        default=120,
        min=1,
        help="""
Seconds to wait for the cloned LUN to appear on this host.

The hook attaches the new volume with os-brick before it resignatures it.

Possible values:

* A positive number of seconds.

Related options:

* ``resign_backend_driver``
"""),
    cfg.BoolOpt(
        "resign_on_import",
        default=False,
        help="""
Resignature the LVHD SR of every LUN this backend imports.

``cinder manage`` of a LUN holding an LVHD SR publishes the SR uuid found on
it; a LUN that is a copy of an SR Cinder already knows is refused.  With
this option (or the volume type extra spec
``xenapi_resign:resign_on_import=True``, which wins) the imported SR is
resigned to the uuid Nova computes for the new volume instead.

Possible values:

* False: import read only; refuse a LUN whose SR uuid is already published
* True: resign every imported LVHD SR

Related options:

* ``[xenapi_resign] backup_dir``
"""),
]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """oslo.config.opts entry point for sample config generation."""
    return [("backend", resign_opts)]
