"""``compute_driver = nova_xenapi_resign.nova_driver.XenAPIDriver``.

The same class object as ``nova_xenapi_resign.nova_driver.XenAPIDriver``
(built on first access, importing Nova), under the module path Nova's
``load_compute_driver`` imports.
"""

from nova_xenapi_resign.nova_driver import XenAPIDriver  # noqa: F401
