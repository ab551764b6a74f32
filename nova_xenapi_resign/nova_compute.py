"""``nova-compute-xenapi-resign``: nova-compute with the extension active.

Nova 21 loads ``[DEFAULT] compute_driver`` as ``nova.virt.<name>``, and
keys behaviour to the exact string ``xenapi.XenAPIDriver``
(``nova.virt.driver.is_xenapi()``: ``/dev/xvdX`` names for ephemeral and
swap disks and the root device in ``nova.compute.utils``, the
``nova/virt/block_device.py`` defaults, ``nova-novncproxy``'s XenAPI
check).  Nova has no hook for replacing a compute driver: its ``nova.hooks``
(deprecated since 13.0) wrap four API/manager calls, and its stevedore
namespaces load monitors, image download modules and scheduler drivers.

So ``compute_driver`` stays ``xenapi.XenAPIDriver`` and the service is
started through this entry point instead of ``nova-compute``: it lets
Nova's ``nova.cmd`` do its eventlet set-up first, then :func:`activate`
makes the name ``xenapi.XenAPIDriver`` resolve to the extension's driver,
then runs Nova's own ``nova.cmd.compute.main``.
"""

from __future__ import annotations


def activate() -> type:
    """Make ``compute_driver = xenapi.XenAPIDriver`` load the extension.

    ``load_compute_driver`` imports ``nova.virt.xenapi.XenAPIDriver``: the
    package attribute.  Only that name is rebound; the class in
    ``nova.virt.xenapi.driver`` stays Nova's (the extension subclasses it,
    and its ``__init__`` refers to itself by that module name).  Building
    the class installs os-xenapi's plugin-call fix
    (:mod:`nova_xenapi_resign.xenapi.plugin_compat`).  Idempotent; returns
    the extension's class.
    """
    import nova.virt.xenapi as package

    from nova_xenapi_resign import nova_driver
    cls = nova_driver.build_driver_class()
    package.XenAPIDriver = cls
    return cls


def main() -> None:
    """Nova's ``nova-compute`` with :func:`activate` run before it starts."""
    import nova.cmd  # noqa: F401  (Nova's eventlet monkey-patching first)
    from nova.cmd import compute
    activate()
    compute.main()


if __name__ == "__main__":
    main()
