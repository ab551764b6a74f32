"""Options: registration, listing, and the committed sample config."""

import os
import subprocess
import sys

from oslo_config import cfg

from cinder_backend import opts as cinder_opts
from nova_xenapi_resign import conf
from tests import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class TestOptions(base.TestCase):

    def test_defaults(self):
        c = cfg.ConfigOpts()
        conf.register_opts(c)
        c([])
        group = c.xenapi_resign
        self.assertEqual("auto", group.sr_naming)
        self.assertFalse(group.resignature_duplicate_srs)
        self.assertTrue(group.require_relaxed_xsm_sr_check)
        self.assertTrue(group.backup_dir)

    def test_choices_enforced(self):
        c = cfg.ConfigOpts()
        conf.register_opts(c)
        c([])
        self.assertRaises(ValueError, c.set_override, "sr_naming", "new",
                          group="xenapi_resign")

    def test_list_opts_returns_the_registered_objects(self):
        [(group, opts)] = conf.list_opts()
        self.assertEqual("xenapi_resign", group.name)
        self.assertIs(conf.xenapi_resign_opts, opts)
        self.assertEqual(
            {"sr_naming", "resignature_duplicate_srs",
             "require_relaxed_xsm_sr_check", "backup_dir",
             "lease_duration", "lease_io_timeout", "max_clock_skew",
             "ignore_clock_skew"},
            {o.name for o in opts})

    def test_help_has_possible_values(self):
        for opt in conf.xenapi_resign_opts + cinder_opts.resign_opts:
            self.assertIn("Possible values:", opt.help, opt.name)
            self.assertIn("Related options:", opt.help, opt.name)

    def test_sample_config_is_up_to_date(self):
        out = os.path.join(self.tmpdir, "sample.conf")
        subprocess.run(
            [sys.executable, "-m", "oslo_config.generator",
             "--config-file", os.path.join(ROOT, "etc",
                                           "oslo-config-generator.conf"),
             "--output-file", out], check=True, cwd=ROOT)
        with open(out) as f:
            generated = f.read()
        with open(os.path.join(ROOT, "etc",
                               "nova-xenapi-resign.conf.sample")) as f:
            committed = f.read()
        self.assertEqual(committed, generated,
                         "etc/nova-xenapi-resign.conf.sample is stale: run "
                         "tox -e genconfig")
