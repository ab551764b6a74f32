"""``xenapi-resign sr-uuid`` and the command line's exit codes."""

import contextlib
import io
import json

from nova_xenapi_resign.cmd import main
from tests import base


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main.main(list(argv))
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


class TestSrUuidCommand(base.TestCase):

    def test_vector_json(self):
        rc, out, _ = run_cli("sr-uuid", "--portal", "host:port", "--iqn",
                             "iqn", "--json")
        self.assertEqual(0, rc)
        self.assertEqual("f677649b-2373-5417-adfb-d0a88e3fb7f8",
                         json.loads(out)["sr_uuid"])

    def test_legacy_style(self):
        rc, out, _ = run_cli("sr-uuid", "--volume-id", "v1", "--portal",
                             "h:3260", "--iqn", "i", "--style", "legacy")
        self.assertEqual(0, rc)
        self.assertIn("new SR (legacy): FA15E-D15C-v1", out)

    def test_connection_info(self):
        info = {"driver_volume_type": "iscsi",
                "data": {"volume_id": "v1", "target_portal": "h:3260",
                         "target_iqn": "i", "sr_uuid": "explicit"}}
        rc, out, _ = run_cli("sr-uuid", "--connection-info", json.dumps(info),
                             "--json")
        self.assertEqual(0, rc)
        result = json.loads(out)
        self.assertEqual("explicit", result["sr_uuid"])
        self.assertEqual(["explicit", "FA15E-D15C-v1"],
                         [c["sr_uuid"] for c in result["candidates"]][:2])

    def test_only_volume_id_gives_legacy(self):
        rc, out, _ = run_cli("sr-uuid", "--volume-id", "v1", "--json")
        self.assertEqual(0, rc)
        self.assertEqual("FA15E-D15C-v1", json.loads(out)["sr_uuid"])

    def test_bad_input_exit_1(self):
        rc, _, err = run_cli("sr-uuid", "--portal", "h:3260")
        self.assertEqual(1, rc)
        self.assertIn("volume_id/target_iqn", err)

    def test_bad_json_exit_2(self):
        # A bad argument value is a usage error, like argparse's own.
        rc, _, err = run_cli("sr-uuid", "--connection-info", "{")
        self.assertEqual(2, rc)
        self.assertIn("not JSON", err)

    def test_connection_info_not_an_object(self):
        for text in ('{"data": null}', '"x"', "5", "[1, 2]",
                     '{"data": [1]}', '{"data": "x"}'):
            rc, out, err = run_cli("sr-uuid", "--connection-info", text)
            self.assertEqual(2, rc, text)
            self.assertIn("must be a JSON object", err)
            self.assertNotIn("Traceback", out + err)

    def test_nested_secret_masked_and_data_intact(self):
        info = {"data": {"auth_password": {"inner": "S3cret"},
                         "target_iqn": "iqn.x", "volume_id": "v1",
                         "auth_username": "user", "target_lun": 1}}
        rc, _, err = run_cli("sr-uuid", "--connection-info",
                             json.dumps(info), "--style", "uuid5")
        self.assertEqual(1, rc)
        self.assertNotIn("S3cret", err)
        self.assertNotIn("inner", err)
        echoed = json.loads(err[err.index("(connection data: ") + 18:
                                err.rindex(")")])
        self.assertEqual({"auth_password": "***", "target_iqn": "iqn.x",
                          "volume_id": "v1", "auth_username": "user",
                          "target_lun": 1}, echoed)

    def test_usage_exit_2(self):
        self.assertEqual(2, run_cli("sr-uuid", "--style", "x")[0])
        self.assertEqual(2, run_cli()[0])

    def test_help_on_every_subcommand(self):
        parser = main.build_parser()
        for name in parser._subparsers._group_actions[0].choices:
            rc, out, _ = run_cli(name, "--help")
            self.assertEqual(0, rc, name)
            self.assertIn("usage:", out)
