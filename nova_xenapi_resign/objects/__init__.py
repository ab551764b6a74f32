"""Versioned objects that cross RPC.

``register_all()`` imports every object module so its classes are registered
(and set as attributes of this package, newest version first), in the style
of os-vif.  In a Nova process the Nova driver adapter calls
``migrate_data.register_with_nova()`` instead (or as well).
"""


def register_all():
    """Register this library's standalone objects."""
    # NOTE: imported for the side effect of class registration.
    __import__("nova_xenapi_resign.objects.migrate_data")
