"""Where Nova's driver loader finds nova-xenapi-resign's compute driver.

Nova 18 to 21 load ``[DEFAULT] compute_driver`` as
``nova.virt.<compute_driver>``, so an out-of-tree driver needs a name under
``nova.virt``.  With this package installed next to Nova's,

    compute_driver = nova_xenapi_resign.nova_driver.XenAPIDriver

resolves to ``nova.virt.nova_xenapi_resign.nova_driver.XenAPIDriver``, which
is the class of :mod:`nova_xenapi_resign.nova_driver` itself.

The distribution ships no ``nova/__init__.py`` or ``nova/virt/__init__.py``:
installed beside Nova, only this directory is added to Nova's tree; where
Nova is absent, ``nova`` is at most an empty namespace in which
``nova.objects`` and ``nova.virt.xenapi`` still do not import.
"""
