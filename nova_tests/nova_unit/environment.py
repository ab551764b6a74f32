"""What Nova 21.2.4's unit tests need here, and the extension's activation.

The hub shim
    Nova 21's ``nova.monkey_patch`` (imported by ``nova.test``) calls
    ``eventlet.hubs.use_hub("oslo_service:service_hub")``.  oslo.service
    dropped ``service_hub`` in 2.5 (eventlet >= 0.21 hubs use a monotonic
    clock themselves, which is all it provided); the environment resolves
    a current oslo.service.  :func:`install_hub_shim` gives
    ``oslo_service`` that attribute back: eventlet's default hub class,
    whose clock is checked to be ``time.monotonic``.
``extension`` mode
    :func:`nova_xenapi_resign.nova_compute.activate`, as the operator's
    ``nova-compute-xenapi-resign`` runs it, so every ``compute_driver =
    xenapi.XenAPIDriver`` that Nova's tests load is the extension's driver.
    Nova's xenapi tests also build ``nova.virt.xenapi.driver.XenAPIDriver``
    directly; :func:`use_extension_in_tests` points those modules' ``driver``
    aliases at a view of the driver module whose ``XenAPIDriver`` is the
    extension's (rebinding the name in Nova's module itself would make the
    stock ``__init__``'s ``super(XenAPIDriver, self)`` recurse).
"""

import time
import types

STOCK = "stock"
EXTENSION = "extension"


def install_hub_shim():
    import eventlet.hubs
    import oslo_service
    if hasattr(oslo_service, "service_hub"):
        return
    hub = eventlet.hubs.get_default_hub().Hub
    if getattr(hub, "clock", time.monotonic) is not time.monotonic:
        raise RuntimeError("eventlet hub %r does not use time.monotonic"
                           % (hub,))
    oslo_service.service_hub = hub


class _DriverModuleView(types.ModuleType):
    """``nova.virt.xenapi.driver`` with the extension's ``XenAPIDriver``."""

    def __init__(self, module, driver_class):
        super().__init__(module.__name__, module.__doc__)
        self.__dict__["_module"] = module
        self.__dict__["XenAPIDriver"] = driver_class

    def __getattr__(self, name):
        return getattr(self.__dict__["_module"], name)

    def __setattr__(self, name, value):
        setattr(self.__dict__["_module"], name, value)


def use_extension_in_tests(driver_class):
    """Point test modules' aliases of Nova's driver module at the view."""
    import importlib
    from nova.virt.xenapi import driver as nova_driver
    view = _DriverModuleView(nova_driver, driver_class)
    for name in ("nova.tests.unit.virt.xenapi.test_driver",
                 "nova.tests.unit.virt.xenapi.test_xenapi"):
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if value is nova_driver:
                setattr(module, attr, view)


def prepare(mode):
    if mode not in (STOCK, EXTENSION):
        raise ValueError("NOVA_UNIT_MODE must be %s or %s, not %r"
                         % (STOCK, EXTENSION, mode))
    install_hub_shim()
    if mode == EXTENSION:
        from nova_xenapi_resign import nova_compute
        use_extension_in_tests(nova_compute.activate())
