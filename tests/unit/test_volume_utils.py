"""xenapi.volume_utils against a small recording fake XAPI session."""

import itertools
import re

import XenAPI

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import volume_utils
from tests import base

VOLUME = "5c2a3a50-7f4b-4d1e-9c0e-6a8b2f1d3e4f"
IQN = "iqn.2010-10.org.openstack:volume-" + VOLUME
PORTAL = "192.0.2.10:3260"
LEGACY_SR = "FA15E-D15C-" + VOLUME
UUID5_SR = sr_naming.uuid5_sr_uuid("192.0.2.10", "3260", IQN)


def connection_data(volume_id=VOLUME, portal=PORTAL, iqn=IQN, chap=False,
                    **extra):
    data = {"volume_id": volume_id, "target_portal": portal,
            "target_iqn": iqn, "target_lun": 0, "target_discovered": False}
    if chap:
        data.update(auth_method="CHAP", auth_username="chap-user",
                    auth_password="chap-secret")
    data.update(extra)
    return data


class FakeSession(object):
    """Records every ``call_xenapi``; knows SRs, PBDs, VMs, VBDs, VDIs.

    Unknown SR UUIDs raise ``XenAPI.Failure(["UUID_INVALID", "SR", uuid])``
    as XAPI does.  ``fail[method] = details`` makes a method fail.
    """

    def __init__(self, product_version=(7, 1, 0)):
        self.calls = []
        self.fail = {}
        self.product_version = product_version
        self.host_ref = "OpaqueRef:host"
        self.srs = {}        # ref -> record
        self.pbds = {}       # ref -> record
        self.vms = {}        # ref -> list of VBD refs
        self.vbds = {}       # ref -> record
        self.vdis = {}       # ref -> SR ref
        self._ids = itertools.count(1)

    # --- test set-up -----------------------------------------------------

    def _ref(self, kind):
        return "OpaqueRef:%s-%d" % (kind, next(self._ids))

    def add_sr(self, sr_uuid, plugged=True):
        sr_ref = self._ref("SR")
        self.srs[sr_ref] = {"uuid": sr_uuid, "PBDs": []}
        pbd_ref = self._ref("PBD")
        self.pbds[pbd_ref] = {"SR": sr_ref, "currently_attached": plugged,
                              "device_config": {}}
        self.srs[sr_ref]["PBDs"].append(pbd_ref)
        return sr_ref

    def sr_uuids(self):
        return sorted(rec["uuid"] for rec in self.srs.values())

    def add_vm(self):
        vm_ref = self._ref("VM")
        self.vms[vm_ref] = []
        return vm_ref

    def add_vbd(self, vm_ref, sr_uuid, userdevice="1", osvol=True,
                empty=False):
        sr_ref = next(ref for ref, rec in self.srs.items()
                      if rec["uuid"] == sr_uuid)
        vdi_ref = self._ref("VDI")
        self.vdis[vdi_ref] = sr_ref
        vbd_ref = self._ref("VBD")
        self.vbds[vbd_ref] = {
            "VDI": vdi_ref, "userdevice": userdevice, "empty": empty,
            "other_config": {"osvol": "True"} if osvol else {}}
        self.vms[vm_ref].append(vbd_ref)
        return vbd_ref

    # --- inspection ---------------------------------------------------------

    def methods(self):
        return [call[0] for call in self.calls]

    def count(self, method):
        return self.methods().count(method)

    def xapi_calls(self):
        return len(self.calls)

    # --- XAPI ---------------------------------------------------------------

    def call_xenapi(self, method, *args):
        self.calls.append((method,) + args)
        if method in self.fail:
            raise XenAPI.Failure(list(self.fail[method]))
        return getattr(self, "_" + method.replace(".", "_"))(*args)

    @staticmethod
    def _where(expression):
        """(field, {values}) of an ``or`` of ``field "f"="v"`` terms."""
        terms = re.findall(r'field "([^"]+)"="([^"]*)"', expression)
        fields = {f for f, _ in terms}
        assert len(fields) == 1, expression
        return fields.pop(), {v for _, v in terms}

    def _VBD_get_all_records_where(self, expression):
        field, values = self._where(expression)
        assert field == "VM", expression
        return {ref: dict(self.vbds[ref], VM=vm) for vm in values
                for ref in self.vms.get(vm, [])}

    def _SR_get_all_records_where(self, expression):
        field, values = self._where(expression)
        assert field == "uuid", expression
        return {ref: dict(rec, VDIs=self._SR_get_VDIs(ref))
                for ref, rec in self.srs.items() if rec["uuid"] in values}

    def _sr(self, sr_ref):
        if sr_ref not in self.srs:
            raise XenAPI.Failure(["HANDLE_INVALID", "SR", sr_ref])
        return self.srs[sr_ref]

    def _SR_get_by_uuid(self, sr_uuid):
        for ref, rec in self.srs.items():
            if rec["uuid"] == sr_uuid:
                return ref
        raise XenAPI.Failure(["UUID_INVALID", "SR", sr_uuid])

    def _SR_get_uuid(self, sr_ref):
        return self._sr(sr_ref)["uuid"]

    def _SR_introduce(self, sr_uuid, label, desc, sr_type, content_type,
                      shared, sm_config):
        if sr_uuid in self.sr_uuids():
            raise XenAPI.Failure(["SR_UUID_EXISTS", sr_uuid])
        sr_ref = self._ref("SR")
        self.srs[sr_ref] = {"uuid": sr_uuid, "PBDs": [], "name_label": label,
                            "type": sr_type, "sm_config": dict(sm_config)}
        return sr_ref

    def _PBD_create(self, record):
        pbd_ref = self._ref("PBD")
        self.pbds[pbd_ref] = dict(record, currently_attached=False)
        self._sr(record["SR"])["PBDs"].append(pbd_ref)
        return pbd_ref

    def _PBD_plug(self, pbd_ref):
        self.pbds[pbd_ref]["currently_attached"] = True

    def _PBD_unplug(self, pbd_ref):
        self.pbds[pbd_ref]["currently_attached"] = False

    def _SR_scan(self, sr_ref):
        self._sr(sr_ref)

    def _SR_get_PBDs(self, sr_ref):
        return list(self._sr(sr_ref)["PBDs"])

    def _SR_forget(self, sr_ref):
        for pbd in self._sr(sr_ref)["PBDs"]:
            if self.pbds[pbd]["currently_attached"]:
                raise XenAPI.Failure(["SR_HAS_PBD", sr_ref])
        for pbd in self.srs.pop(sr_ref)["PBDs"]:
            del self.pbds[pbd]

    def _VM_get_VBDs(self, vm_ref):
        return list(self.vms[vm_ref])

    def _VBD_get_record(self, vbd_ref):
        return dict(self.vbds[vbd_ref])

    def _VDI_get_SR(self, vdi_ref):
        return self.vdis[vdi_ref]

    def _SR_get_VDIs(self, sr_ref):
        self._sr(sr_ref)
        return [vdi for vdi, sr in self.vdis.items() if sr == sr_ref]

    def _VDI_get_VBDs(self, vdi_ref):
        return [vbd for vbd, rec in self.vbds.items()
                if rec["VDI"] == vdi_ref]


class TestParseSrInfo(base.TestCase):

    def test_uuid5_default_as_nova(self):
        data = connection_data()
        sr_uuid, label, params = volume_utils.parse_sr_info(data, "desc")
        self.assertEqual(UUID5_SR, sr_uuid)
        self.assertEqual("tempSR-%s" % UUID5_SR, label)
        self.assertEqual({"id": VOLUME, "target": "192.0.2.10",
                          "port": "3260", "targetIQN": IQN,
                          "name_description": "desc"}, params)

    def test_legacy_style(self):
        sr_uuid, label, _ = volume_utils.parse_sr_info(
            connection_data(), style="legacy")
        self.assertEqual(LEGACY_SR, sr_uuid)
        self.assertEqual("tempSR-" + LEGACY_SR, label)

    def test_auto_without_session_names_uuid5(self):
        sr_uuid, _, _ = volume_utils.parse_sr_info(connection_data(),
                                                   style="auto")
        self.assertEqual(UUID5_SR, sr_uuid)

    def test_chap(self):
        _, _, params = volume_utils.parse_sr_info(connection_data(chap=True))
        self.assertEqual("chap-user", params["chapuser"])
        self.assertEqual("chap-secret", params["chappassword"])

    def test_explicit_keeps_iscsi_keys(self):
        # Nova lost target/port/targetIQN/CHAP here: the bug this fixes.
        data = connection_data(chap=True, sr_uuid=LEGACY_SR)
        sr_uuid, label, params = volume_utils.parse_sr_info(data)
        self.assertEqual(LEGACY_SR, sr_uuid)
        self.assertEqual("tempSR-" + LEGACY_SR, label)
        self.assertEqual({"id": VOLUME, "target": "192.0.2.10",
                          "port": "3260", "targetIQN": IQN,
                          "chapuser": "chap-user",
                          "chappassword": "chap-secret",
                          "name_description": ""}, params)

    def test_explicit_introduce_sr_keys_honoured_and_override(self):
        data = connection_data(sr_uuid="explicit-sr", sr_type="lvmoiscsi",
                               SCSIid="36001405abc", port="3261",
                               introduce_sr_keys=["sr_type", "SCSIid",
                                                  "port"])
        _, _, params = volume_utils.parse_sr_info(data)
        self.assertEqual("lvmoiscsi", params["sr_type"])
        self.assertEqual("36001405abc", params["SCSIid"])
        self.assertEqual("3261", params["port"])
        self.assertEqual(IQN, params["targetIQN"])

    def test_explicit_without_target_only_named_keys(self):
        # xensm-style data: no iSCSI target at all.
        data = {"sr_uuid": "sm-sr", "sr_type": "nfs", "server": "srv",
                "introduce_sr_keys": ["sr_type", "server"]}
        sr_uuid, _, params = volume_utils.parse_sr_info(data, "d")
        self.assertEqual("sm-sr", sr_uuid)
        self.assertEqual({"sr_type": "nfs", "server": "srv",
                          "name_description": "d"}, params)

    def test_missing_introduce_key(self):
        data = {"sr_uuid": "sm-sr", "introduce_sr_keys": ["nope"]}
        self.assertRaises(exception.InvalidConnectionData,
                          volume_utils.parse_sr_info, data)

    def test_does_not_mutate(self):
        data = connection_data(chap=True, name_label="my-label",
                               name_description="my-desc")
        before = dict(data)
        sr_uuid, label, params = volume_utils.parse_sr_info(data)
        self.assertEqual(before, data)
        self.assertEqual("my-label", label)
        self.assertEqual("my-desc", params["name_description"])

    def test_missing_volume_id(self):
        data = connection_data()
        del data["volume_id"]
        exc = self.assertRaises(exception.InvalidConnectionData,
                                volume_utils.parse_sr_info, data)
        self.assertEqual("volume_id", exc.kwargs["field"])

    def test_missing_iqn(self):
        data = connection_data(iqn=None)
        self.assertRaises(exception.InvalidConnectionData,
                          volume_utils.parse_sr_info, data)

    def test_password_masked_in_error(self):
        data = connection_data(chap=True)
        del data["volume_id"]
        exc = self.assertRaises(exception.InvalidConnectionData,
                                volume_utils.parse_sr_info, data)
        self.assertNotIn("chap-secret", str(exc))

    def test_default_port_and_host(self):
        sr_uuid, _, params = volume_utils.parse_sr_info(
            connection_data(portal=""), default_host="198.51.100.1")
        self.assertEqual("198.51.100.1", params["target"])
        self.assertEqual("3260", params["port"])
        self.assertEqual(
            sr_naming.uuid5_sr_uuid("198.51.100.1", 3260, IQN), sr_uuid)


class TestFindSr(base.TestCase):

    def test_found(self):
        session = FakeSession()
        ref = session.add_sr(LEGACY_SR)
        self.assertEqual(ref, volume_utils.find_sr_by_uuid(session,
                                                           LEGACY_SR))

    def test_absent(self):
        session = FakeSession()
        self.assertIsNone(volume_utils.find_sr_by_uuid(session, LEGACY_SR))
        self.assertEqual(1, session.xapi_calls())

    def test_other_failure_reraised(self):
        session = FakeSession()
        session.fail["SR.get_by_uuid"] = ["SESSION_INVALID", "x"]
        exc = self.assertRaises(XenAPI.Failure, volume_utils.find_sr_by_uuid,
                                session, LEGACY_SR)
        self.assertEqual("SESSION_INVALID", exc.details[0])


class TestIntroduceSr(base.TestCase):

    def _params(self):
        _, _, params = volume_utils.parse_sr_info(connection_data(chap=True),
                                                  "Disk-for:vm")
        return params

    def test_introduce_as_nova(self):
        session = FakeSession()
        params = self._params()
        before = dict(params)
        sr_ref = volume_utils.introduce_sr(session, UUID5_SR, "label", params)
        self.assertEqual(before, params)
        self.assertEqual(["SR.introduce", "PBD.create", "PBD.plug",
                          "SR.scan"], session.methods())
        introduce = session.calls[0]
        expected_config = {"target": "192.0.2.10", "port": "3260",
                           "targetIQN": IQN, "chapuser": "chap-user",
                           "chappassword": "chap-secret"}
        self.assertEqual(("SR.introduce", UUID5_SR, "label", "Disk-for:vm",
                          "iscsi", "", False, expected_config), introduce)
        pbd_record = session.calls[1][1]
        self.assertEqual({"host": "OpaqueRef:host", "SR": sr_ref,
                          "device_config": expected_config}, pbd_record)
        self.assertEqual([UUID5_SR], session.sr_uuids())

    def test_backend_kind_like_nova(self):
        for version, expected in (((6, 5, 0), True), ((6, 2, 0), False),
                                  ((6, 5), True), ((7, 0, 0), False),
                                  ((8, 2, 1), False), (None, False)):
            session = FakeSession(product_version=version)
            volume_utils.introduce_sr(session, UUID5_SR, "l", self._params())
            config = session.calls[0][7]
            self.assertEqual(expected, config.get("backend-kind") == "vbd",
                             version)

    def test_backend_kind_only_for_iscsi(self):
        session = FakeSession(product_version=(6, 5, 0))
        params = dict(self._params(), sr_type="lvmoiscsi")
        volume_utils.introduce_sr(session, UUID5_SR, "l", params)
        self.assertEqual("lvmoiscsi", session.calls[0][4])
        self.assertNotIn("backend-kind", session.calls[0][7])

    def test_plug_failure_forgets_and_reraises(self):
        session = FakeSession()
        session.fail["PBD.plug"] = ["SR_BACKEND_FAILURE_47", "", "no VG"]
        exc = self.assertRaises(XenAPI.Failure, volume_utils.introduce_sr,
                                session, UUID5_SR, "l", self._params())
        self.assertEqual("SR_BACKEND_FAILURE_47", exc.details[0])
        self.assertEqual(["SR.introduce", "PBD.create", "PBD.plug",
                          "SR.get_PBDs", "PBD.unplug", "SR.forget"],
                         session.methods())
        self.assertEqual([], session.sr_uuids())

    def test_scan_failure_forgets_and_reraises(self):
        session = FakeSession()
        session.fail["SR.scan"] = ["SR_BACKEND_FAILURE_40", "", "scan"]
        self.assertRaises(XenAPI.Failure, volume_utils.introduce_sr,
                          session, UUID5_SR, "l", self._params())
        self.assertEqual("SR.forget", session.methods()[-1])
        self.assertEqual([], session.sr_uuids())

    def test_forget_failure_does_not_hide_original(self):
        session = FakeSession()
        session.fail["PBD.create"] = ["INTERNAL_ERROR", "pbd"]
        session.fail["SR.forget"] = ["INTERNAL_ERROR", "forget"]
        exc = self.assertRaises(XenAPI.Failure, volume_utils.introduce_sr,
                                session, UUID5_SR, "l", self._params())
        self.assertEqual(["INTERNAL_ERROR", "pbd"], exc.details)


class TestForgetSr(base.TestCase):

    def test_unplug_then_forget(self):
        session = FakeSession()
        sr_ref = session.add_sr(LEGACY_SR)
        volume_utils.forget_sr(session, sr_ref)
        self.assertEqual(["SR.get_PBDs", "PBD.unplug", "SR.forget"],
                         session.methods())
        self.assertEqual([], session.sr_uuids())

    def test_unplug_failure_ignored(self):
        session = FakeSession()
        sr_ref = session.add_sr(LEGACY_SR, plugged=False)
        session.fail["PBD.unplug"] = ["PBD_NOT_PLUGGED"]
        volume_utils.forget_sr(session, sr_ref)
        self.assertEqual([], session.sr_uuids())

    def test_get_pbds_failure_ignored(self):
        session = FakeSession()
        sr_ref = session.add_sr(LEGACY_SR, plugged=False)
        session.fail["SR.get_PBDs"] = ["INTERNAL_ERROR"]
        volume_utils.forget_sr(session, sr_ref)
        self.assertEqual([], session.sr_uuids())

    def test_forget_failure_raised(self):
        session = FakeSession()
        sr_ref = session.add_sr(LEGACY_SR)
        session.fail["SR.forget"] = ["SR_HAS_PBD"]
        self.assertRaises(XenAPI.Failure, volume_utils.forget_sr, session,
                          sr_ref)


class TestChooseSrUuid(base.TestCase):

    def test_auto_reuses_existing_legacy(self):
        session = FakeSession()
        ref = session.add_sr(LEGACY_SR)
        self.assertEqual((LEGACY_SR, ref), volume_utils.choose_sr_uuid(
            session, connection_data(), "auto"))
        self.assertEqual(["SR.get_by_uuid"], session.methods())

    def test_auto_without_legacy_is_uuid5(self):
        session = FakeSession()
        self.assertEqual((UUID5_SR, None), volume_utils.choose_sr_uuid(
            session, connection_data(), "auto"))
        self.assertEqual(1, session.xapi_calls())

    def test_uuid5_and_legacy_make_no_call(self):
        for style, expected in (("uuid5", UUID5_SR), ("legacy", LEGACY_SR)):
            session = FakeSession()
            session.add_sr(LEGACY_SR)
            self.assertEqual((expected, None), volume_utils.choose_sr_uuid(
                session, connection_data(), style))
            self.assertEqual(0, session.xapi_calls())

    def test_explicit_wins(self):
        session = FakeSession()
        session.add_sr(LEGACY_SR)
        self.assertEqual(("x-sr", None), volume_utils.choose_sr_uuid(
            session, connection_data(sr_uuid="x-sr"), "auto"))
        self.assertEqual(0, session.xapi_calls())


class TestConnectVolumeSr(base.TestCase):

    def test_reuses_legacy_in_one_call(self):
        session = FakeSession()
        ref = session.add_sr(LEGACY_SR)
        self.assertEqual((ref, LEGACY_SR, False),
                         volume_utils.connect_volume_sr(
                             session, connection_data(), style="auto"))
        self.assertEqual(1, session.xapi_calls())

    def test_reuses_uuid5(self):
        session = FakeSession()
        ref = session.add_sr(UUID5_SR)
        self.assertEqual((ref, UUID5_SR, False),
                         volume_utils.connect_volume_sr(
                             session, connection_data(), style="auto"))
        self.assertEqual(2, session.xapi_calls())

    def test_introduces_uuid5_with_chap(self):
        session = FakeSession()
        data = connection_data(chap=True)
        sr_ref, sr_uuid, introduced = volume_utils.connect_volume_sr(
            session, data, "Disk-for:vm", style="auto")
        self.assertTrue(introduced)
        self.assertEqual(UUID5_SR, sr_uuid)
        self.assertEqual([UUID5_SR], session.sr_uuids())
        config = session.srs[sr_ref]["sm_config"]
        self.assertEqual("chap-secret", config["chappassword"])
        self.assertNotIn("sr_uuid", data)

    def test_legacy_style_introduces_legacy(self):
        session = FakeSession()
        _, sr_uuid, introduced = volume_utils.connect_volume_sr(
            session, connection_data(), style="legacy")
        self.assertTrue(introduced)
        self.assertEqual([LEGACY_SR], session.sr_uuids())


class TestOtherClientFailures(base.TestCase):
    """os-xenapi raises its own Failure class; it must count as XAPI's."""

    def test_uuid_invalid_from_os_xenapi_style_session(self):
        class OwnFailure(Exception):
            def __init__(self, details):
                super().__init__(details)
                self.details = details

        class Session(object):
            XenAPI = type("XenAPIModule", (), {"Failure": OwnFailure})

            def call_xenapi(self, method, *args):
                raise OwnFailure(["UUID_INVALID", "SR", args[0]])

        self.assertIsNone(volume_utils.find_sr_by_uuid(Session(), "x"))


class TestLvhdConnectionData(base.TestCase):
    """The connection data of a VDI-per-LUN volume (issue #17 contract)."""

    SR = "0f0e0d0c-0b0a-4909-8807-060504030201"
    VDI = "1e2d3c4b-5a69-4788-9766-554433221100"
    SCSI = "36001405aabbccddeeff00112233445566"

    def test_fields_and_keys(self):
        original = connection_data(chap=True)
        data = volume_utils.lvhd_connection_data(original, self.SR,
                                                 self.VDI, self.SCSI)
        self.assertEqual(connection_data(chap=True), original)
        self.assertEqual((self.SR, "lvmoiscsi", self.VDI),
                         (data["sr_uuid"], data["sr_type"],
                          data["vdi_uuid"]))
        # Keys Nova 21's parse_sr_info copies into the SR's device-config
        # (and sr_type, which its _handle_sr_params pops from there).
        self.assertEqual({"target": "192.0.2.10", "port": "3260",
                          "targetIQN": IQN, "chapuser": "chap-user",
                          "chappassword": "chap-secret", "SCSIid": self.SCSI,
                          "sr_type": "lvmoiscsi"},
                         {k: data[k] for k in data["introduce_sr_keys"]})
        self.assertNotIn("id", data["introduce_sr_keys"])

    def test_parse_sr_info_gives_an_lvmoiscsi_sr(self):
        data = volume_utils.lvhd_connection_data(connection_data(), self.SR,
                                                 self.VDI, self.SCSI)
        sr_uuid, _, params = volume_utils.parse_sr_info(data)
        self.assertEqual(self.SR, sr_uuid)
        self.assertEqual(("lvmoiscsi", self.SCSI),
                         (params["sr_type"], params["SCSIid"]))
        # The data's sr_type counts even when not named (Nova needs it
        # named; the extension does not).
        data["introduce_sr_keys"].remove("sr_type")
        self.assertEqual("lvmoiscsi",
                         volume_utils.parse_sr_info(data)[2]["sr_type"])

    def test_refusals(self):
        for args, field in (((connection_data(), "", self.VDI, self.SCSI),
                             "sr_uuid"),
                            ((connection_data(), self.SR, None, self.SCSI),
                             "vdi_uuid"),
                            ((connection_data(chap=True), self.SR, self.VDI,
                              ""), "SCSIid"),
                            (({"volume_id": VOLUME}, self.SR, self.VDI,
                              self.SCSI), "target_iqn")):
            exc = self.assertRaises(exception.InvalidConnectionData,
                                    volume_utils.lvhd_connection_data, *args)
            self.assertIn(field, str(exc))
            self.assertNotIn("chap-secret", str(exc))
