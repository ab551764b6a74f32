"""SR naming: the exact names Nova gave, quirks included."""

import uuid

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming
from tests import base

ISCSI = {"volume_id": "vol-1", "target_portal": "10.0.0.5:3260",
         "target_iqn": "iqn.2010-01.com.solidfire:abc.vol-1",
         "target_lun": 0}


class TestNames(base.TestCase):

    def test_namespace_is_novas(self):
        # Nova's comment: generated as uuid5(UUID(int=0), name).
        self.assertEqual(
            uuid.uuid5(uuid.UUID(int=0), "volume_utils-SR_UUID"),
            sr_naming.SR_NAMESPACE)

    def test_uuid5_vector(self):
        self.assertEqual("f677649b-2373-5417-adfb-d0a88e3fb7f8",
                         sr_naming.uuid5_sr_uuid("host", "port", "iqn"))

    def test_int_and_str_port_agree(self):
        self.assertEqual(sr_naming.uuid5_sr_uuid("h", 3260, "i"),
                         sr_naming.uuid5_sr_uuid("h", "3260", "i"))

    def test_legacy(self):
        self.assertEqual("FA15E-D15C-vol-1", sr_naming.legacy_sr_uuid("vol-1"))

    def test_legacy_rejects_non_string(self):
        exc = self.assertRaises(exception.InvalidConnectionData,
                                sr_naming.legacy_sr_uuid, 42)
        self.assertIn("volume_id", str(exc))

    def test_uuid5_rejects_missing_iqn(self):
        self.assertRaises(exception.InvalidConnectionData,
                          sr_naming.uuid5_sr_uuid, "h", 3260, "")


class TestParseTarget(base.TestCase):

    def test_host_and_port(self):
        self.assertEqual(("10.0.0.5", "3260", ISCSI["target_iqn"]),
                         sr_naming.parse_target(ISCSI))

    def test_default_port(self):
        data = dict(ISCSI, target_portal="10.0.0.5")
        self.assertEqual(("10.0.0.5", 3260, ISCSI["target_iqn"]),
                         sr_naming.parse_target(data))

    def test_default_host(self):
        data = dict(ISCSI, target_portal=":3261")
        self.assertEqual(("san", "3261", ISCSI["target_iqn"]),
                         sr_naming.parse_target(data, default_host="san"))

    def test_ipv6_quirk_kept(self):
        # Nova split at ':' and took fields 0 and 1: "[fe80" and "".  The
        # SRs it made carry that name, so we must compute the same one.
        data = dict(ISCSI, target_portal="[fe80::1]:3260")
        host, port, _ = sr_naming.parse_target(data)
        self.assertEqual(("[fe80", ""), (host, port))
        self.assertEqual(
            str(uuid.uuid5(sr_naming.SR_NAMESPACE,
                           "[fe80//%s" % ISCSI["target_iqn"])),
            sr_naming.preferred_sr_uuid(data, "uuid5"))

    def test_trailing_colon_gives_empty_port(self):
        data = dict(ISCSI, target_portal="10.0.0.5:")
        self.assertEqual("", sr_naming.parse_target(data)[1])

    def test_missing_iqn_named(self):
        data = dict(ISCSI)
        del data["target_iqn"]
        exc = self.assertRaises(exception.InvalidConnectionData,
                                sr_naming.parse_target, data)
        self.assertEqual("target_iqn", exc.kwargs["field"])

    def test_empty_portal_no_default_host(self):
        data = dict(ISCSI, target_portal="", auth_password="s3cret",
                    auth_method="CHAP", auth_username="u")
        exc = self.assertRaises(exception.InvalidConnectionData,
                                sr_naming.parse_target, data)
        self.assertEqual("target_portal", exc.kwargs["field"])
        self.assertNotIn("s3cret", str(exc))
        self.assertIn("***", str(exc))

    def test_non_string_portal(self):
        self.assertRaises(exception.InvalidConnectionData,
                          sr_naming.parse_target,
                          dict(ISCSI, target_portal=3260))

    def test_not_a_mapping(self):
        self.assertRaises(exception.InvalidConnectionData,
                          sr_naming.parse_target, ["target_iqn"])


class TestCandidates(base.TestCase):

    def setUp(self):
        super().setUp()
        self.legacy = "FA15E-D15C-vol-1"
        self.uuid5 = sr_naming.uuid5_sr_uuid("10.0.0.5", "3260",
                                             ISCSI["target_iqn"])

    def test_auto_is_legacy_first(self):
        self.assertEqual([self.legacy, self.uuid5],
                         sr_naming.sr_uuid_candidates(ISCSI, "auto"))

    def test_uuid5_first(self):
        self.assertEqual([self.uuid5, self.legacy],
                         sr_naming.sr_uuid_candidates(ISCSI, "uuid5"))

    def test_legacy_first(self):
        self.assertEqual([self.legacy, self.uuid5],
                         sr_naming.sr_uuid_candidates(ISCSI, "legacy"))

    def test_explicit_wins(self):
        data = dict(ISCSI, sr_uuid="11111111-2222-3333-4444-555555555555")
        self.assertEqual(
            ["11111111-2222-3333-4444-555555555555", self.uuid5, self.legacy],
            sr_naming.sr_uuid_candidates(data, "uuid5"))
        self.assertEqual("11111111-2222-3333-4444-555555555555",
                         sr_naming.preferred_sr_uuid(data, "legacy"))

    def test_duplicates_removed(self):
        data = dict(ISCSI, sr_uuid=self.legacy)
        self.assertEqual([self.legacy, self.uuid5],
                         sr_naming.sr_uuid_candidates(data))

    def test_only_volume_id(self):
        self.assertEqual([self.legacy],
                         sr_naming.sr_uuid_candidates({"volume_id": "vol-1"}))

    def test_nothing_derivable(self):
        self.assertRaises(exception.InvalidConnectionData,
                          sr_naming.sr_uuid_candidates, {"target_lun": 1})

    def test_bad_style(self):
        self.assertRaises(exception.InvalidInput,
                          sr_naming.sr_uuid_candidates, ISCSI, "new")

    def test_bad_explicit(self):
        self.assertRaises(exception.InvalidConnectionData,
                          sr_naming.sr_uuid_candidates,
                          dict(ISCSI, sr_uuid=7))

    def test_two_luns_one_target_share_an_sr(self):
        # Nova's test_sr_info_two_luns: one portal + IQN = one SR.
        other = dict(ISCSI, volume_id="vol-2", target_lun=1)
        self.assertEqual(sr_naming.preferred_sr_uuid(ISCSI, "uuid5"),
                         sr_naming.preferred_sr_uuid(other, "uuid5"))
        self.assertNotEqual(sr_naming.preferred_sr_uuid(ISCSI, "legacy"),
                            sr_naming.preferred_sr_uuid(other, "legacy"))

    def test_preferred_per_style(self):
        self.assertEqual(self.uuid5, sr_naming.preferred_sr_uuid(ISCSI))
        self.assertEqual(self.legacy,
                         sr_naming.preferred_sr_uuid(ISCSI, "legacy"))


class TestClassify(base.TestCase):

    def test_classes(self):
        self.assertEqual("legacy", sr_naming.classify("FA15E-D15C-x"))
        self.assertEqual("uuid5", sr_naming.classify(
            "f677649b-2373-5417-adfb-d0a88e3fb7f8"))
        self.assertEqual("other", sr_naming.classify(str(uuid.uuid4())))
        self.assertEqual("other", sr_naming.classify("not a uuid"))
        self.assertEqual("other", sr_naming.classify(None))
