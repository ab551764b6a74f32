"""``nova-compute-xenapi-resign``: how operators activate the extension."""

import os
import subprocess
import sys
import textwrap

from tests import base

# Nova's own main is replaced by a report of what it would start with.  The
# hub shim stands in for Ussuri's oslo.service (see nova_tests.nova_unit).
PROBE = textwrap.dedent("""
    from nova_tests.nova_unit import environment
    environment.install_hub_shim()

    import eventlet.patcher
    from nova.cmd import compute
    from nova_xenapi_resign import nova_compute

    def report():
        import nova.virt.xenapi
        from nova.virt.xenapi import driver
        print(nova.virt.xenapi.XenAPIDriver.__module__)
        print(driver.XenAPIDriver.__module__)
        print(eventlet.patcher.is_monkey_patched("socket"))

    compute.main = report
    nova_compute.main()
""")


class TestEntryPoint(base.TestCase):

    @staticmethod
    def repo_root():
        return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def test_main_activates_after_novas_eventlet_setup(self):
        out = subprocess.run([sys.executable, "-c", PROBE], check=True,
                             capture_output=True, text=True,
                             cwd=self.repo_root()).stdout
        # compute_driver = xenapi.XenAPIDriver resolves to the extension;
        # Nova's class stays Nova's; Nova monkey-patched first.
        self.assertEqual(["nova_xenapi_resign.nova_driver",
                          "nova.virt.xenapi.driver", "True"],
                         out.split())
