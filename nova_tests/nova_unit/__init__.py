"""Nova 21.2.4's own unit tests, stock or with the extension active.

``tools/nova-unit-tests.sh`` runs this package with stestr twice:
``NOVA_UNIT_MODE=stock`` and ``NOVA_UNIT_MODE=extension``.  Without
``NOVA_UNIT_MODE`` it loads nothing, so the ordinary ``nova_tests`` run does
not collect Nova's suite.

The tests come from the nova 21.2.4 wheel (it ships ``nova/tests``):
:data:`SUITES`.  Before any of them is imported, :mod:`.environment`
supplies what this environment lacks (the eventlet hub Nova asks
oslo.service for) and, in ``extension`` mode, activates the extension
exactly as ``nova-compute-xenapi-resign`` does for an operator.
"""

import os
import unittest

#: Nova's test packages and modules compared (issue: "Nova stays Nova").
SUITES = (
    "nova.tests.unit.virt.xenapi",
    "nova.tests.unit.compute.test_compute_utils",
    "nova.tests.unit.compute.test_compute_xen",
    "nova.tests.unit.virt.test_driver",
    "nova.tests.unit.objects.test_objects.TestObjectVersions",
)

MODE_VARIABLE = "NOVA_UNIT_MODE"


def load_tests(loader, standard_tests, pattern):
    mode = os.environ.get(MODE_VARIABLE)
    if not mode:
        return unittest.TestSuite()
    from nova_tests.nova_unit import environment
    environment.prepare(mode)
    import nova
    top = os.path.dirname(os.path.dirname(nova.__file__))
    suite = unittest.TestSuite()
    for name in SUITES:
        path = os.path.join(top, *name.split("."))
        if os.path.isdir(path):
            suite.addTests(unittest.TestLoader().discover(
                path, pattern="test_*.py", top_level_dir=top))
        else:
            suite.addTests(loader.loadTestsFromName(name))
    return suite
