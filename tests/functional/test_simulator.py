"""The embedded XAPI, driven only through the PyPI XenAPI client."""

import pickle
import threading
import time
import uuid
import xmlrpc.client

import XenAPI

from nova_xenapi_resign.simulator import fixture as simfixture
from nova_xenapi_resign.simulator import san as sanmod
from tests import base

PORTAL = "192.0.2.5:3260"
IQN = "iqn.2010-01.com.example:storage.vol-1"
MiB = 1024 * 1024
SR_NAMESPACE = uuid.UUID("3cca4135-a809-5bb3-af62-275fbfe87178")


def nova_sr_uuid(host, port, iqn):
    return str(uuid.uuid5(SR_NAMESPACE, "%s/%s/%s" % (host, port, iqn)))


def iscsi_params(iqn=IQN, portal=PORTAL, **extra):
    host, port = portal.split(":")
    params = {"target": host, "port": port, "targetIQN": iqn}
    params.update(extra)
    return params


def connect_iscsi(x, sr_uuid, params):
    """Nova's introduce_sr: introduce, PBD.create, plug, scan."""
    sr = x.SR.introduce(sr_uuid, "tempSR-%s" % sr_uuid, "Disk-for:None",
                        "iscsi", "", False, dict(params))
    host = x.pool.get_master(x.pool.get_all()[0])
    pbd = x.PBD.create({"host": host, "SR": sr,
                        "device_config": dict(params)})
    x.PBD.plug(pbd)
    x.SR.scan(sr)
    return sr, pbd


class SimulatorTestCase(base.TestCase):
    POOLS = 2

    def setUp(self):
        super().setUp()
        self.sim = self.useFixture(simfixture.SimulatorFixture(
            pools=self.POOLS, san_dir=self.tmpdir + "/san"))
        self.san = self.sim.san
        self.s0 = self.sim.session(0)
        self.x = self.s0.xenapi

    def raw(self, method, *params, index=0):
        """The raw envelope of one call (no client-side retry logic)."""
        proxy = xmlrpc.client.ServerProxy(self.sim.urls[index],
                                          allow_none=True)
        return getattr(proxy, method)(*params)

    def assertFailure(self, details, func, *args):
        exc = self.assertRaises(XenAPI.Failure, func, *args)
        self.assertEqual(details, exc.details)
        return exc


class SessionTest(SimulatorTestCase):

    def test_login_logout(self):
        s = XenAPI.Session(self.sim.urls[0])
        s.xenapi.login_with_password("root", "pw", "2.1", "tests")
        ref = s.handle
        self.assertTrue(ref.startswith("OpaqueRef:"))
        self.assertEqual(self.x.session.get_this_host(ref),
                         self.x.pool.get_master(self.x.pool.get_all()[0]))
        self.assertEqual("tests",
                         self.x.session.get_record(ref)["originator"])
        s.xenapi.session.logout()
        env = self.raw("pool.get_all", ref)
        self.assertEqual({"Status": "Failure",
                          "ErrorDescription": ["SESSION_INVALID", ref]}, env)

    def test_login_two_args(self):
        s = XenAPI.Session(self.sim.urls[1])
        s.xenapi.login_with_password("root", "pw")
        self.assertEqual(1, len(s.xenapi.pool.get_all()))
        s.xenapi.session.logout()

    def test_bad_session(self):
        env = self.raw("SR.get_all", "OpaqueRef:bogus")
        self.assertEqual(["SESSION_INVALID", "OpaqueRef:bogus"],
                         env["ErrorDescription"])

    def test_credentials(self):
        self.sim.pools[0].credentials = ("root", "secret")
        s = XenAPI.Session(self.sim.urls[0])
        exc = self.assertRaises(XenAPI.Failure,
                                s.xenapi.login_with_password, "root", "no")
        self.assertEqual("SESSION_AUTHENTICATION_FAILED", exc.details[0])
        s.xenapi.login_with_password("root", "secret")

    def test_envelope_success(self):
        env = self.raw("pool.get_all", self.s0.handle)
        self.assertEqual("Success", env["Status"])
        self.assertEqual(1, len(env["Value"]))


class ErrorTest(SimulatorTestCase):

    def test_handle_invalid(self):
        self.assertFailure(["HANDLE_INVALID", "SR", "OpaqueRef:nope"],
                           self.x.SR.get_record, "OpaqueRef:nope")
        self.assertFailure(["HANDLE_INVALID", "VDI", "OpaqueRef:nope"],
                           self.x.VDI.get_uuid, "OpaqueRef:nope")

    def test_uuid_invalid(self):
        self.assertFailure(["UUID_INVALID", "SR", "FA15E-D15C-vol"],
                           self.x.SR.get_by_uuid, "FA15E-D15C-vol")

    def test_method_unknown(self):
        self.assertFailure(["MESSAGE_METHOD_UNKNOWN", "SR.frobnicate"],
                           self.x.SR.frobnicate)
        self.assertFailure(["MESSAGE_METHOD_UNKNOWN", "Nope.get_all"],
                           self.x.Nope.get_all)
        self.assertFailure(["MESSAGE_METHOD_UNKNOWN", "SR.get_nofield"],
                           self.x.SR.get_nofield, "OpaqueRef:x")

    def test_parameter_count_mismatch(self):
        self.assertFailure(
            ["MESSAGE_PARAMETER_COUNT_MISMATCH", "SR.get_by_uuid", "2", "3"],
            self.x.SR.get_by_uuid, "a", "b")
        self.assertFailure(
            ["MESSAGE_PARAMETER_COUNT_MISMATCH", "SR.introduce", "8", "3"],
            self.x.SR.introduce, "a", "b")

    def test_large_ints_are_strings(self):
        self.san.create_lun(PORTAL, IQN, 0, 5 * 1024 ** 3)
        sr, _ = connect_iscsi(self.x, nova_sr_uuid("192.0.2.5", "3260", IQN),
                              iscsi_params())
        vdi = self.x.SR.get_VDIs(sr)[0]
        self.assertEqual(str(5 * 1024 ** 3), self.x.VDI.get_virtual_size(vdi))
        self.assertEqual(str(5 * 1024 ** 3),
                         self.x.VDI.get_record(vdi)["virtual_size"])


class FieldTest(SimulatorTestCase):

    def test_getters_setters_maps(self):
        host = self.x.host.get_all()[0]
        self.x.host.set_name_label(host, "renamed")
        self.assertEqual("renamed", self.x.host.get_name_label(host))
        self.assertEqual([host], self.x.host.get_by_name_label("renamed"))
        uuid_ = self.x.host.get_uuid(host)
        self.assertEqual(host, self.x.host.get_by_uuid(uuid_))
        self.x.host.add_to_other_config(host, "k", "v")
        self.assertEqual({"k": "v"}, self.x.host.get_other_config(host))
        exc = self.assertRaises(XenAPI.Failure,
                                self.x.host.add_to_other_config, host, "k",
                                "w")
        self.assertEqual("MAP_DUPLICATE_KEY", exc.details[0])
        self.x.host.remove_from_other_config(host, "k")
        self.assertEqual({}, self.x.host.get_other_config(host))
        self.assertFailure(["FIELD_TYPE_ERROR", "enabled"],
                           self.x.host.set_enabled, host, "maybe")
        self.assertEqual("2", self.x.host.get_API_version_major(host))
        self.assertIn(host, self.x.host.get_all_records())

    def test_sm_config_and_device_config_maps(self):
        sr = self.x.SR.introduce("", "l", "d", "iscsi", "", False, {})
        self.x.SR.add_to_sm_config(sr, "a", "1")
        self.assertEqual({"a": "1"}, self.x.SR.get_sm_config(sr))
        host = self.x.host.get_all()[0]
        pbd = self.x.PBD.create({"host": host, "SR": sr,
                                 "device_config": {}})
        self.x.PBD.add_to_device_config(pbd, "target", "t")
        self.assertEqual({"target": "t"}, self.x.PBD.get_device_config(pbd))


class FilterTest(SimulatorTestCase):

    def setUp(self):
        super().setUp()
        for label, shared in (("a", False), ("b", True), ("c", True)):
            self.x.SR.introduce("", label, "desc-" + label, "iscsi", "",
                                shared, {})

    def labels(self, expr):
        recs = self.x.SR.get_all_records_where(expr)
        return sorted(r["name_label"] for r in recs.values()
                      if r["type"] != "ext")

    def test_filter_language(self):
        self.assertEqual(["a"], self.labels('field "name__label"="a"'))
        self.assertEqual(["a"], self.labels('field "name_label" = "a"'))
        self.assertEqual(["b", "c"], self.labels('field "shared"="true"'))
        self.assertEqual(["b"], self.labels(
            'field "shared"="true" and field "name__label"="b"'))
        self.assertEqual(["a", "c"], self.labels(
            'field "name__label"="a" or field "name__label"="c"'))
        self.assertEqual(["a"], self.labels('not field "shared"="true"'))
        self.assertEqual(["a", "c"], self.labels(
            '(field "name__label"="a" or field "name__label"="c") and '
            '(not field "name__label"="b")'))
        self.assertEqual(["c"], self.labels(
            'not (field "name__label"="a" or field "name__label"="b")'))
        self.assertEqual(["a", "b", "c"], self.labels("true"))
        self.assertEqual([], self.labels("false"))
        self.assertEqual(["b"], self.labels(
            '"desc-b"=field "name__description"'))

    def test_nova_queries(self):
        host = self.x.host.get_all()[0]
        vms = self.x.VM.get_all_records_where(
            'field "is_control_domain"="false" and field "is_a_template"='
            '"false" and field "resident_on"="%s"' % host)
        self.assertEqual({}, vms)
        pifs = self.x.PIF.get_all_records_where(
            'field "management" = "true" and field "host" = "%s"' % host)
        self.assertEqual(1, len(pifs))

    def test_bad_query(self):
        exc = self.assertRaises(XenAPI.Failure,
                                self.x.SR.get_all_records_where,
                                'field "x" =')
        self.assertEqual("INTERNAL_ERROR", exc.details[0])


class IscsiLifecycleTest(SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.path0 = self.san.create_lun(PORTAL, IQN, 0, 8 * MiB)
        self.path1 = self.san.create_lun(PORTAL, IQN, 1, 16 * MiB)
        self.sr_uuid = nova_sr_uuid("192.0.2.5", "3260", IQN)

    def test_nova_connect_volume_sequence(self):
        self.assertFailure(["UUID_INVALID", "SR", self.sr_uuid],
                           self.x.SR.get_by_uuid, self.sr_uuid)
        sr, pbd = connect_iscsi(self.x, self.sr_uuid, iscsi_params())
        self.assertEqual(sr, self.x.SR.get_by_uuid(self.sr_uuid))
        self.assertTrue(self.x.PBD.get_currently_attached(pbd))
        vdis = self.x.SR.get_VDIs(sr)
        self.assertEqual(2, len(vdis))
        by_lun = {self.x.VDI.get_record(v)["sm_config"]["LUNid"]: v
                  for v in vdis}
        self.assertEqual({"0", "1"}, set(by_lun))
        rec = self.x.VDI.get_record(by_lun["1"])
        self.assertTrue(rec["managed"])
        self.assertEqual(str(16 * MiB), rec["virtual_size"])
        self.assertEqual(sr, rec["SR"])
        scsi = sanmod.scsi_id(PORTAL, IQN, 1)
        self.assertEqual(sanmod.vdi_uuid_for_scsi_id(scsi), rec["uuid"])
        self.assertEqual(by_lun["1"], self.x.VDI.get_by_uuid(rec["uuid"]))
        # A second scan is idempotent.
        self.x.SR.scan(sr)
        self.assertEqual(sorted(vdis), sorted(self.x.SR.get_VDIs(sr)))
        # Nova's forget_sr.
        for p in self.x.SR.get_PBDs(sr):
            self.x.PBD.unplug(p)
        self.x.SR.forget(sr)
        self.assertFailure(["UUID_INVALID", "SR", self.sr_uuid],
                           self.x.SR.get_by_uuid, self.sr_uuid)
        self.assertFailure(["HANDLE_INVALID", "PBD", pbd],
                           self.x.PBD.get_record, pbd)
        self.assertFailure(["UUID_INVALID", "VDI", rec["uuid"]],
                           self.x.VDI.get_by_uuid, rec["uuid"])

    def test_vdi_uuids_equal_in_every_pool(self):
        x1 = self.sim.session(1).xenapi
        sr0, _ = connect_iscsi(self.x, "FA15E-D15C-vol", iscsi_params())
        sr1, _ = connect_iscsi(x1, self.sr_uuid, iscsi_params())
        u0 = sorted(self.x.VDI.get_uuid(v) for v in self.x.SR.get_VDIs(sr0))
        u1 = sorted(x1.VDI.get_uuid(v) for v in x1.SR.get_VDIs(sr1))
        self.assertEqual(u0, u1)

    def test_vdi_uuid_unique_within_pool(self):
        connect_iscsi(self.x, "FA15E-D15C-vol", iscsi_params())
        sr = self.x.SR.introduce(self.sr_uuid, "l", "d", "iscsi", "", False,
                                 iscsi_params())
        pbd = self.x.PBD.create({"host": self.x.host.get_all()[0], "SR": sr,
                                 "device_config": iscsi_params()})
        self.x.PBD.plug(pbd)
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.scan, sr)
        # SM's scan fails with XAPI's uniqueness error as its opterr.
        self.assertEqual("SR_BACKEND_FAILURE_40", exc.details[0])
        self.assertIn('Db_exn.Uniqueness_constraint_violation("VDI", "uuid"',
                      exc.details[2])

    def test_plug_missing_target(self):
        params = iscsi_params(iqn="iqn.2010-01.com.example:absent")
        sr = self.x.SR.introduce("", "l", "d", "iscsi", "", False, params)
        pbd = self.x.PBD.create({"host": self.x.host.get_all()[0], "SR": sr,
                                 "device_config": params})
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        # BaseISCSI: discovery finds no such IQN (ISCSIDiscovery, 83).
        self.assertEqual("SR_BACKEND_FAILURE_83", exc.details[0])
        self.assertIn("[opterr=", exc.details[2])
        self.assertFalse(self.x.PBD.get_currently_attached(pbd))
        self.assertFailure(["SR_NO_PBDS", sr], self.x.SR.scan, sr)

    def test_chap(self):
        self.san.set_chap(PORTAL, IQN, "user", "secret")
        bad = iscsi_params(chapuser="user", chappassword="wrong")
        sr = self.x.SR.introduce("", "l", "d", "iscsi", "", False, bad)
        pbd = self.x.PBD.create({"host": self.x.host.get_all()[0], "SR": sr,
                                 "device_config": bad})
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.plug, pbd)
        self.assertEqual("SR_BACKEND_FAILURE_68", exc.details[0])
        good = iscsi_params(chapuser="user", chappassword="secret")
        connect_iscsi(self.x, self.sr_uuid, good)

    def test_pbd_rules(self):
        sr, pbd = connect_iscsi(self.x, self.sr_uuid, iscsi_params())
        host = self.x.host.get_all()[0]
        self.assertFailure(["PBD_EXISTS", sr, host, pbd], self.x.PBD.create,
                           {"host": host, "SR": sr,
                            "device_config": iscsi_params()})
        self.assertFailure(["SR_HAS_PBD", sr], self.x.SR.forget, sr)
        exc = self.assertRaises(XenAPI.Failure, self.x.PBD.destroy, pbd)
        self.assertEqual("OPERATION_NOT_ALLOWED", exc.details[0])
        self.x.PBD.plug(pbd)  # idempotent, as in XAPI
        self.x.PBD.unplug(pbd)
        self.x.PBD.unplug(pbd)
        self.x.PBD.destroy(pbd)
        self.assertEqual([], self.x.SR.get_PBDs(sr))
        self.assertFailure(["SR_UNKNOWN_DRIVER", "nfsx"], self._plug_type,
                           "nfsx")

    def _plug_type(self, sr_type):
        sr = self.x.SR.introduce("", "l", "d", sr_type, "", False, {})
        pbd = self.x.PBD.create({"host": self.x.host.get_all()[0], "SR": sr,
                                 "device_config": {}})
        self.x.PBD.plug(pbd)

    def test_vdi_introduce_and_vbd_lifecycle(self):
        sr, _ = connect_iscsi(self.x, self.sr_uuid, iscsi_params())
        vdi = self.x.SR.get_VDIs(sr)[0]
        rec = self.x.VDI.get_record(vdi)
        # Nova's 11-argument introduce of a known VDI returns it.
        again = self.x.VDI.introduce(
            rec["uuid"], rec["name_label"], rec["name_description"],
            rec["SR"], rec["type"], rec["sharable"], rec["read_only"],
            rec["other_config"], rec["location"], rec["xenstore_data"],
            rec["sm_config"])
        self.assertEqual(vdi, again)
        new = self.x.VDI.introduce(
            "", "extra", "", sr, "user", False, True, {}, "loc", {}, {})
        self.assertTrue(self.x.VDI.get_read_only(new))
        self.x.VDI.forget(new)

        vm = self.x.VM.create({"name_label": "instance-1",
                               "memory_static_max": str(2 ** 33)})
        self.assertEqual(str(2 ** 33), self.x.VM.get_memory_static_max(vm))
        vbd = self.x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "1",
                                 "bootable": False, "mode": "RW",
                                 "type": "Disk", "unpluggable": True,
                                 "empty": False,
                                 "other_config": {"osvol": "True"},
                                 "qos_algorithm_type": "",
                                 "qos_algorithm_params": {}})
        self.assertEqual([vbd], self.x.VM.get_VBDs(vm))
        self.assertEqual([vbd], self.x.VDI.get_VBDs(vdi))
        self.assertFailure(["VM_BAD_POWER_STATE", vm, "running", "halted"],
                           self.x.VBD.plug, vbd)
        self.x.VM.start(vm, False, False)
        self.assertEqual("Running", self.x.VM.get_power_state(vm))
        self.assertTrue(self.x.VBD.get_currently_attached(vbd))
        self.assertFailure(["DEVICE_ALREADY_ATTACHED", vbd],
                           self.x.VBD.plug, vbd)
        self.x.VBD.unplug(vbd)
        self.assertFailure(["DEVICE_ALREADY_DETACHED", vbd],
                           self.x.VBD.unplug, vbd)
        self.x.VBD.plug(vbd)
        self.assertEqual("xvdb", self.x.VBD.get_device(vbd))
        self.assertFailure(["VDI_IN_USE", vdi, "destroy"],
                           self.x.VDI.destroy, vdi)
        self.x.VM.hard_shutdown(vm)
        self.x.VBD.destroy(vbd)
        self.assertEqual([], self.x.VDI.get_VBDs(vdi))
        self.x.VM.destroy(vm)

    def test_sr_create_iscsi_then_destroy_is_refused(self):
        host = self.x.host.get_all()[0]
        sr = self.x.SR.create(host, iscsi_params(), "0", "created", "",
                              "iscsi", "", True, {})
        self.assertEqual(2, len(self.x.SR.get_VDIs(sr)))
        # Plugged, then holding its (managed) LUN VDIs: XAPI refuses.
        self.assertFailure(["SR_HAS_PBD", sr], self.x.SR.destroy, sr)
        for pbd in self.x.SR.get_PBDs(sr):
            self.x.PBD.unplug(pbd)
        self.assertFailure(["SR_NOT_EMPTY"], self.x.SR.destroy, sr)
        self.x.SR.forget(sr)
        self.assertFailure(["HANDLE_INVALID", "SR", sr],
                           self.x.SR.get_record, sr)
        self.assertEqual([0, 1], self.san.luns(PORTAL, IQN))


class DuplicateSrTest(SimulatorTestCase):

    def test_sr_uuid_exists(self):
        self.x.SR.introduce("dup-uuid", "a", "", "iscsi", "", False, {})
        self.assertFailure(["SR_UUID_EXISTS", "dup-uuid"],
                           self.x.SR.introduce, "dup-uuid", "b", "",
                           "iscsi", "", False, {})
        self.assertEqual(1, len(self.x.SR.get_all_records_where(
            'field "uuid"="dup-uuid"')))

    def test_legacy_uniqueness_text(self):
        self.x.debug.set_setting("legacy_errors", True)
        self.x.SR.introduce("dup-uuid", "a", "", "iscsi", "", False, {})
        self.assertFailure(
            ["INTERNAL_ERROR",
             'Db_exn.Uniqueness_constraint_violation("SR", "uuid", '
             '"dup-uuid")'],
            self.x.SR.introduce, "dup-uuid", "b", "", "iscsi", "", False, {})

    def test_pools_are_independent(self):
        x1 = self.sim.session(1).xenapi
        sr0 = self.x.SR.introduce("same", "a", "", "iscsi", "", False, {})
        sr1 = x1.SR.introduce("same", "b", "", "iscsi", "", False, {})
        self.assertNotEqual(sr0, sr1)
        self.assertEqual("a", self.x.SR.get_name_label(
            self.x.SR.get_by_uuid("same")))
        self.assertEqual("b", x1.SR.get_name_label(
            x1.SR.get_by_uuid("same")))
        x1.SR.forget(sr1)
        self.assertFailure(["UUID_INVALID", "SR", "same"],
                           x1.SR.get_by_uuid, "same")
        self.assertEqual(sr0, self.x.SR.get_by_uuid("same"))


class ProbeTest(SimulatorTestCase):

    def setUp(self):
        super().setUp()
        self.san.create_lun(PORTAL, IQN, 0, 4 * MiB)
        self.host = self.x.host.get_all()[0]

    def test_probe_without_iqn_lists_targets(self):
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.probe, self.host,
                                {"target": "192.0.2.5", "port": "3260"},
                                "iscsi", {})
        self.assertEqual("SR_BACKEND_FAILURE_96", exc.details[0])
        self.assertIn("<TargetIQN>%s</TargetIQN>" % IQN, exc.details[3])

    def test_probe_iscsi_lists_known_srs(self):
        # BaseISCSISR.probe lists the pool's SRs on the IQN, not the LUNs.
        xml = self.x.SR.probe(self.host, iscsi_params(), "iscsi", {})
        self.assertTrue(xml.startswith('<?xml version="1.0" ?>'))
        self.assertNotIn("<SR>", xml)
        sr_uuid = nova_sr_uuid("192.0.2.5", "3260", IQN)
        connect_iscsi(self.x, sr_uuid, iscsi_params())
        xml = self.x.SR.probe(self.host, iscsi_params(), "iscsi", {})
        self.assertIn("<UUID>%s</UUID>" % sr_uuid, xml)
        self.assertIn("<TargetIQN>%s</TargetIQN>" % IQN, xml)

    def test_probe_lvmoiscsi_without_lun(self):
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.probe, self.host,
                                iscsi_params(), "lvmoiscsi", {})
        self.assertEqual("SR_BACKEND_FAILURE_107", exc.details[0])
        self.assertIn("<LUNid>0</LUNid>", exc.details[3])


class AsyncTest(SimulatorTestCase):

    def wait(self, task):
        for _ in range(200):
            status = self.x.task.get_status(task)
            if status != "pending":
                return status
            time.sleep(0.01)
        self.fail("task did not finish")

    def test_async_success(self):
        sr = self.x.Async.SR.introduce("async-sr", "l", "d", "iscsi", "",
                                       False, {})
        self.assertTrue(sr.startswith("OpaqueRef:"))
        self.assertEqual("success", self.wait(sr))
        ref = self.x.SR.get_by_uuid("async-sr")
        self.assertEqual("<value>%s</value>" % ref,
                         self.x.task.get_result(sr))
        rec = self.x.task.get_record(sr)
        self.assertEqual("1.0", str(rec["progress"]))
        self.x.task.destroy(sr)

    def test_async_failure(self):
        task = self.x.Async.SR.get_by_uuid("nope")
        self.assertEqual("failure", self.wait(task))
        self.assertEqual(["UUID_INVALID", "SR", "nope"],
                         self.x.task.get_error_info(task))

    def test_custom_task(self):
        task = self.x.task.create("os-xenapi-label", "desc")
        self.assertEqual("pending", self.x.task.get_status(task))
        self.x.task.destroy(task)


class CallCountTest(SimulatorTestCase):

    def test_counts(self):
        self.x.debug.reset()
        self.x.pool.get_all()
        self.x.SR.get_all()
        self.x.SR.get_all()
        counts = self.x.debug.get_call_count()
        self.assertEqual("3", counts["total"])
        self.assertEqual("2", counts["by_method"]["SR.get_all"])
        self.assertEqual("3", counts["this_session"])


class ConcurrencyTest(SimulatorTestCase):
    THREADS = 8
    CALLS = 200

    def test_no_lost_update(self):
        host = self.x.host.get_all()[0]
        errors = []

        def worker(n):
            try:
                s = XenAPI.Session(self.sim.urls[0])
                s.xenapi.login_with_password("root", "pw")
                for i in range(self.CALLS // 2):
                    s.xenapi.host.add_to_other_config(host, "t%d-%d" % (n, i),
                                                      str(i))
                    s.xenapi.host.get_name_label(host)
                s.xenapi.session.logout()
            except Exception as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,))
                   for n in range(self.THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual([], errors)
        other = self.x.host.get_other_config(host)
        self.assertEqual(self.THREADS * self.CALLS // 2, len(other))
        counts = self.x.debug.get_call_count()
        self.assertGreaterEqual(int(counts["by_method"][
            "host.add_to_other_config"]), self.THREADS * self.CALLS // 2)


class OsXenapiSequenceTest(SimulatorTestCase):
    """os-xenapi's session calls, replayed.

    The calls os-xenapi 0.3.4's XenAPISession constructor makes (pool and
    master, API version, this host, software version) and its first plugin
    call, with the protocol-0 text pickles of the extension's plugin_compat.
    """

    def test_session_constructor_calls(self):
        sessions = [self.sim.session(1, builtin_types=True)
                    for _ in range(5)]
        for s in sessions:
            x = s.xenapi
            pool = x.pool.get_all()[0]
            master = x.pool.get_master(pool)
            self.assertEqual("2", x.host.get_API_version_major(master))
            self.assertEqual("16", x.host.get_API_version_minor(master))
        x = sessions[0].xenapi
        host = x.session.get_this_host(sessions[0].handle)
        host_uuid = x.host.get_uuid(host)
        version = x.host.get_software_version(host)
        self.assertEqual("7.1.2", version["product_version"])
        self.assertEqual("2.2.0", version["platform_version"])
        # os-xenapi with the extension's plugin_compat: protocol 0 text.
        rv = x.host.call_plugin(
            host, "dom0_plugin_version.py", "get_version",
            {"params": pickle.dumps({"args": (), "kwargs": {}},
                                    protocol=0).decode("ascii"),
             "host_uuid": host_uuid})
        self.assertEqual("2.1", pickle.loads(rv.encode("ascii")))
        relaxed = x.host.call_plugin(host, "config_file.py", "get_val",
                                     {"key": "relax-xsm-sr-check",
                                      "host_uuid": host_uuid})
        self.assertEqual("true", relaxed)
        counts = self.sim.session(1).xenapi.debug.get_call_count()
        self.assertEqual("1", counts["by_method"]["session.get_this_host"])
        self.assertEqual("5", counts["by_method"]["pool.get_master"])


class BadVolumeTest(SimulatorTestCase):

    def test_scan_of_vanished_target_is_backend_failure_40(self):
        self.san.create_lun(PORTAL, IQN, 0, MiB)
        sr, _ = connect_iscsi(self.x, "FA15E-D15C-v", iscsi_params())
        import shutil
        shutil.rmtree(self.san.target_dir(PORTAL, IQN))
        exc = self.assertRaises(XenAPI.Failure, self.x.SR.scan, sr)
        self.assertEqual("SR_BACKEND_FAILURE_40", exc.details[0])
        self.assertTrue(exc.details[2].startswith(
            "The SR scan failed [opterr="))


class LocalSrTest(SimulatorTestCase):

    def test_default_sr_and_vdi_create(self):
        pool = self.x.pool.get_all()[0]
        sr = self.x.pool.get_default_SR(pool)
        rec = self.x.SR.get_record(sr)
        self.assertEqual("ext", rec["type"])
        self.assertEqual({"i18n-key": "local-storage"}, rec["other_config"])
        vdi = self.x.VDI.create({"SR": sr, "name_label": "root",
                                 "virtual_size": str(2 ** 34),
                                 "type": "system", "sharable": False,
                                 "read_only": False, "other_config": {}})
        self.assertEqual(str(2 ** 34), self.x.VDI.get_virtual_size(vdi))
        self.x.SR.scan(sr)
        self.assertEqual([vdi], self.x.SR.get_VDIs(sr))
        self.san.create_lun(PORTAL, IQN, 0, MiB)
        iscsi, _ = connect_iscsi(self.x, "FA15E-D15C-x", iscsi_params())
        self.assertFailure(["SR_OPERATION_NOT_SUPPORTED", iscsi],
                           self.x.VDI.create, {"SR": iscsi})


class ServeTest(base.TestCase):

    def test_serve_settings_per_pool(self):
        from nova_xenapi_resign.simulator import server
        with server.serve(self.tmpdir, 2, settings=[
                {"relax-xsm-sr-check": False}, {"legacy_errors": True}],
                names=["src", "dst"]) as sim:
            self.assertEqual(["src", "dst"], [p.name for p in sim.pools])
            self.assertFalse(sim.pools[0].relaxed())
            self.assertTrue(sim.pools[1].settings["legacy_errors"])
            s = XenAPI.Session(sim.urls[0])
            s.xenapi.login_with_password("root", "")
            self.assertIs(False, s.xenapi.debug.get_settings()[
                "relax-xsm-sr-check"])
            s.xenapi.session.logout()
