"""Unit tests: the simulator database, query language and wire form."""

import xmlrpc.client

from nova_xenapi_resign.simulator import db as dbmod
from nova_xenapi_resign.simulator import errors
from tests import base


class QueryTest(base.TestCase):

    REC = {"name_label": "a b", "shared": True, "size": 10,
           "quote": 'say "hi"', "SR": "OpaqueRef:1"}

    def match(self, expr, rec=None):
        return dbmod.parse_query(expr)(rec or self.REC)

    def test_field_equals(self):
        self.assertTrue(self.match('field "name__label"="a b"'))
        self.assertTrue(self.match('field "name_label"  =  "a b"'))
        self.assertFalse(self.match('field "name__label"="a"'))
        self.assertTrue(self.match('field "shared"="true"'))
        self.assertTrue(self.match('field "size"="10"'))
        self.assertTrue(self.match('"OpaqueRef:1"=field "SR"'))
        self.assertTrue(self.match(r'field "quote"="say \"hi\""'))

    def test_unknown_field_never_matches(self):
        self.assertFalse(self.match('field "nope"="x"'))

    def test_boolean_operators_and_precedence(self):
        t, f = 'field "shared"="true"', 'field "shared"="false"'
        self.assertTrue(self.match("%s or %s and %s" % (t, f, f)))
        self.assertFalse(self.match("(%s or %s) and %s" % (t, f, f)))
        self.assertTrue(self.match("not %s" % f))
        self.assertFalse(self.match("not (%s or %s)" % (t, f)))
        self.assertTrue(self.match("NOT %s AND %s" % (f, t)))
        self.assertTrue(self.match("true"))
        self.assertFalse(self.match("false"))
        self.assertTrue(self.match(""))

    def test_syntax_errors(self):
        for bad in ('field "x"', 'field "x"="y" and', '(field "x"="y"',
                    'field "x"="y")', 'field x="y"', '"x"=', "@"):
            self.assertRaises(dbmod.QueryError, dbmod.parse_query, bad)


class DatabaseTest(base.TestCase):

    def test_create_get_inverse(self):
        db = dbmod.Database()
        sr = db.create("SR", name_label="sr")
        vdi = db.create("VDI", SR=sr)
        self.assertEqual([vdi], db.get("SR", sr, "VDIs"))
        rec = db.record("SR", sr)
        self.assertEqual([vdi], rec["VDIs"])
        self.assertEqual(36, len(rec["uuid"]))
        self.assertEqual(sr, db.by_uuid("SR", rec["uuid"]))
        db.destroy("VDI", vdi)
        self.assertEqual([], db.get("SR", sr, "VDIs"))

    def test_uuid_taken_spans_every_class(self):
        db = dbmod.Database()
        db.create("VM", uuid="shared-uuid")
        self.assertTrue(db.uuid_taken("shared-uuid"))
        self.assertFalse(db.uuid_taken("other-uuid"))
        self.assertEqual([], db.find("SR", uuid="shared-uuid"))

    def test_errors(self):
        db = dbmod.Database()
        exc = self.assertRaises(errors.XapiError, db.raw, "SR", "OpaqueRef:x")
        self.assertEqual(["HANDLE_INVALID", "SR", "OpaqueRef:x"], exc.details)
        exc = self.assertRaises(errors.XapiError, db.by_uuid, "VM", "u")
        self.assertEqual(["UUID_INVALID", "VM", "u"], exc.details)

    def test_records_are_copies(self):
        db = dbmod.Database()
        sr = db.create("SR")
        db.record("SR", sr)["sm_config"]["x"] = "y"
        self.assertEqual({}, db.get("SR", sr, "sm_config"))

    def test_where(self):
        db = dbmod.Database()
        a = db.create("VM", name_label="a", is_control_domain=True)
        db.create("VM", name_label="b")
        self.assertEqual([a], list(db.where(
            "VM", 'field "is_control_domain"="true"')))


class MarshalTest(base.TestCase):

    def test_marshal(self):
        value = {"big": 2 ** 40, "small": 3, "flag": True, "none": None,
                 "list": (1, "x"), 1: {"nested": -1}, "f": 1.5}
        self.assertEqual({"big": str(2 ** 40), "small": "3", "flag": True,
                          "none": "", "list": ["1", "x"],
                          "1": {"nested": "-1"}, "f": 1.5},
                         dbmod.marshal(value))
        xmlrpc.client.dumps((dbmod.marshal(value),))  # encodable
