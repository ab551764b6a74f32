"""Cinder side: resignature LVHD SRs on cloned volumes.

* :mod:`cinder_backend.driver`: ``ResignVolumeDriver``, the ``volume_driver``
  that wraps a backend's real driver (``resign_backend_driver``) and, when
  ``[xenapi_resign] resignature_duplicate_srs`` is on, resignatures the LVHD
  SR of every volume created from a snapshot or a clone, then publishes its
  SR UUID to Nova in ``initialize_connection``.
* :mod:`cinder_backend.hook`: the attach -> detect -> resign -> detach step,
  with os-brick, usable on its own with any driver object.
* :mod:`cinder_backend.lvhd`: VDI-per-LUN volumes (volume type extra spec
  ``xenapi_resign:sr_type=lvmoiscsi``): format, clone, import, refusals.
* :mod:`cinder_backend.opts`: the per-backend options.

Nothing here imports Cinder at module import time.
"""
