"""xenapi.live_migration: source map, injection, rollback, pre-checks."""

import copy

from nova_xenapi_resign import exception
from nova_xenapi_resign import sr_naming
from nova_xenapi_resign.xenapi import live_migration
from nova_xenapi_resign.xenapi import volume_utils
from tests import base
from tests.unit.test_volume_utils import connection_data
from tests.unit.test_volume_utils import FakeSession

VOL_A = "11111111-1111-4111-8111-111111111111"
VOL_B = "22222222-2222-4222-8222-222222222222"
VOL_C = "33333333-3333-4333-8333-333333333333"


def iqn(volume_id):
    return "iqn.2010-10.org.openstack:volume-" + volume_id


def legacy(volume_id):
    return sr_naming.legacy_sr_uuid(volume_id)


def uuid5(volume_id):
    return sr_naming.uuid5_sr_uuid("192.0.2.10", "3260", iqn(volume_id))


def bdm(volume_id, mount="/dev/xvdb", **extra):
    data = connection_data(volume_id=volume_id, iqn=iqn(volume_id), **extra)
    return {"mount_device": mount, "delete_on_termination": False,
            "connection_info": {"driver_volume_type": "iscsi",
                                "serial": volume_id, "data": data}}


def block_device_info(*bdms):
    return {"root_device_name": "/dev/xvda", "ephemerals": [],
            "swap": None, "block_device_mapping": list(bdms)}


def find_preexisting_srs(session, volume_sr_uuid_map):
    """The SR UUIDs of the map that exist on ``session`` before connecting.

    What a destination records for :func:`forget_introduced_srs`.
    """
    return {sr_uuid for sr_uuid in set(volume_sr_uuid_map.values())
            if volume_utils.find_sr_by_uuid(session, sr_uuid) is not None}


class TestBuildVolumeSrUuidMap(base.TestCase):

    def test_legacy_uuid5_and_explicit(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        session.add_sr(uuid5(VOL_B))
        session.add_sr("explicit-sr-c")
        info = block_device_info(bdm(VOL_A), bdm(VOL_B, "/dev/xvdc"),
                                 bdm(VOL_C, "/dev/xvdd",
                                     sr_uuid="explicit-sr-c"))
        result = live_migration.build_volume_sr_uuid_map(session, info,
                                                         "auto")
        self.assertEqual({VOL_A: legacy(VOL_A), VOL_B: uuid5(VOL_B),
                          VOL_C: "explicit-sr-c"}, result)
        # legacy hit: 1 call; uuid5 after a legacy miss: 2; explicit: 1.
        self.assertEqual([("SR.get_by_uuid", legacy(VOL_A)),
                          ("SR.get_by_uuid", legacy(VOL_B)),
                          ("SR.get_by_uuid", uuid5(VOL_B)),
                          ("SR.get_by_uuid", "explicit-sr-c")],
                         session.calls)

    def test_at_most_two_calls_per_volume(self):
        for style in ("auto", "legacy", "uuid5"):
            session = FakeSession()
            for volume_id in (VOL_A, VOL_B, VOL_C):
                session.add_sr(legacy(volume_id) if volume_id != VOL_B
                               else uuid5(volume_id))
            info = block_device_info(bdm(VOL_A), bdm(VOL_B), bdm(VOL_C))
            live_migration.build_volume_sr_uuid_map(session, info, style)
            self.assertLessEqual(session.xapi_calls(), 2 * 3, style)

    def test_option_order(self):
        # Both names exist (should not happen, but the order decides).
        for style, first in (("auto", legacy(VOL_A)),
                             ("legacy", legacy(VOL_A)),
                             ("uuid5", uuid5(VOL_A))):
            session = FakeSession()
            session.add_sr(legacy(VOL_A))
            session.add_sr(uuid5(VOL_A))
            result = live_migration.build_volume_sr_uuid_map(
                session, block_device_info(bdm(VOL_A)), style)
            self.assertEqual({VOL_A: first}, result)
            self.assertEqual(1, session.xapi_calls())

    def test_uuid5_style_still_finds_legacy(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        result = live_migration.build_volume_sr_uuid_map(
            session, block_device_info(bdm(VOL_A)), "uuid5")
        self.assertEqual({VOL_A: legacy(VOL_A)}, result)
        self.assertEqual(2, session.xapi_calls())

    def test_explicit_only_one_lookup(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        exc = self.assertRaises(
            exception.LiveMigrationPreCheckError,
            live_migration.build_volume_sr_uuid_map, session,
            block_device_info(bdm(VOL_A, sr_uuid="gone-sr")), "auto")
        self.assertEqual(1, session.xapi_calls())
        self.assertIn("gone-sr", str(exc))

    def test_no_sr_found_names_volume_and_uuids_tried(self):
        session = FakeSession()
        exc = self.assertRaises(
            exception.LiveMigrationPreCheckError,
            live_migration.build_volume_sr_uuid_map, session,
            block_device_info(bdm(VOL_A)), "auto")
        message = str(exc)
        self.assertIn(VOL_A, message)
        self.assertIn(legacy(VOL_A), message)
        self.assertIn(uuid5(VOL_A), message)
        self.assertIn("xe sr-list", message)
        self.assertEqual(VOL_A, exc.kwargs["volume_id"])
        self.assertEqual(2, session.xapi_calls())

    def test_volume_id_from_serial(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        item = bdm(VOL_A)
        del item["connection_info"]["data"]["volume_id"]
        # The legacy name is derived from connection_info["serial"].
        result = live_migration.build_volume_sr_uuid_map(
            session, block_device_info(item), "auto")
        self.assertEqual({VOL_A: legacy(VOL_A)}, result)
        self.assertEqual(1, session.xapi_calls())
        self.assertNotIn("volume_id", item["connection_info"]["data"])

    def test_no_volume_id(self):
        item = bdm(VOL_A)
        del item["connection_info"]["data"]["volume_id"]
        del item["connection_info"]["serial"]
        self.assertRaises(exception.LiveMigrationPreCheckError,
                          live_migration.build_volume_sr_uuid_map,
                          FakeSession(), block_device_info(item), "auto")

    def test_bad_connection_data(self):
        item = bdm(VOL_A)
        item["connection_info"]["data"] = {"volume_id": VOL_A,
                                           "target_iqn": 42}
        self.assertRaises(exception.LiveMigrationPreCheckError,
                          live_migration.build_volume_sr_uuid_map,
                          FakeSession(), block_device_info(item), "uuid5")

    def test_no_volumes(self):
        session = FakeSession()
        self.assertEqual({}, live_migration.build_volume_sr_uuid_map(
            session, None, "auto"))
        self.assertEqual({}, live_migration.build_volume_sr_uuid_map(
            session, block_device_info(), "auto"))
        self.assertEqual(0, session.xapi_calls())


class TestInjectSourceSrUuids(base.TestCase):

    def test_injects_and_does_not_mutate(self):
        info = block_device_info(bdm(VOL_A, chap=True), bdm(VOL_B))
        before = copy.deepcopy(info)
        new = live_migration.inject_source_sr_uuids(
            info, {VOL_A: legacy(VOL_A)})
        self.assertEqual(before, info)
        data = new["block_device_mapping"][0]["connection_info"]["data"]
        self.assertEqual(legacy(VOL_A), data["sr_uuid"])
        self.assertEqual(["target", "port", "targetIQN", "chapuser",
                          "chappassword"], data["introduce_sr_keys"])
        self.assertEqual("192.0.2.10", data["target"])
        self.assertEqual("3260", data["port"])
        self.assertEqual(iqn(VOL_A), data["targetIQN"])
        self.assertEqual("chap-user", data["chapuser"])
        self.assertEqual("chap-secret", data["chappassword"])
        # Unmapped volumes pass through untouched.
        self.assertIs(info["block_device_mapping"][1],
                      new["block_device_mapping"][1])
        self.assertEqual(info["root_device_name"], new["root_device_name"])

    def test_parse_sr_info_then_uses_source_uuid_with_full_config(self):
        new = live_migration.inject_source_sr_uuids(
            block_device_info(bdm(VOL_A, chap=True)), {VOL_A: legacy(VOL_A)})
        data = new["block_device_mapping"][0]["connection_info"]["data"]
        sr_uuid, _, params = volume_utils.parse_sr_info(data, style="uuid5")
        self.assertEqual(legacy(VOL_A), sr_uuid)
        for key in ("target", "port", "targetIQN", "chapuser",
                    "chappassword"):
            self.assertIn(key, params)

    def test_as_novas_unmodified_parse_sr_info_would_read_it(self):
        # Nova's explicit branch copies exactly introduce_sr_keys.
        new = live_migration.inject_source_sr_uuids(
            block_device_info(bdm(VOL_A, chap=True)), {VOL_A: legacy(VOL_A)})
        data = new["block_device_mapping"][0]["connection_info"]["data"]
        novas_params = {k: data[k] for k in data["introduce_sr_keys"]}
        self.assertEqual({"target": "192.0.2.10", "port": "3260",
                          "targetIQN": iqn(VOL_A), "chapuser": "chap-user",
                          "chappassword": "chap-secret"}, novas_params)

    def test_existing_introduce_sr_keys_kept(self):
        item = bdm(VOL_A, sr_uuid="cinder-sr", sr_type="lvmoiscsi",
                   introduce_sr_keys=["sr_type"])
        new = live_migration.inject_source_sr_uuids(
            block_device_info(item), {VOL_A: "cinder-sr"})
        data = new["block_device_mapping"][0]["connection_info"]["data"]
        self.assertEqual(["sr_type", "target", "port", "targetIQN"],
                         data["introduce_sr_keys"])
        self.assertEqual(["sr_type"], item["connection_info"]["data"]
                         ["introduce_sr_keys"])

    def test_non_iscsi_only_sr_uuid(self):
        item = {"connection_info": {"serial": VOL_A, "data": {
            "volume_id": VOL_A, "sr_uuid": "sm-sr", "server": "s",
            "introduce_sr_keys": ["server"]}}}
        new = live_migration.inject_source_sr_uuids(
            block_device_info(item), {VOL_A: "sm-sr"})
        data = new["block_device_mapping"][0]["connection_info"]["data"]
        self.assertEqual("sm-sr", data["sr_uuid"])
        self.assertEqual(["server"], data["introduce_sr_keys"])

    def test_empty_map_returns_input(self):
        info = block_device_info(bdm(VOL_A))
        self.assertIs(info, live_migration.inject_source_sr_uuids(info, {}))
        self.assertIsNone(live_migration.inject_source_sr_uuids(
            None, {VOL_A: "x"}))


class TestDestinationRollback(base.TestCase):

    def test_forgets_only_introduced(self):
        session = FakeSession()
        session.add_sr(uuid5(VOL_B))  # pre-existing (shared target SR)
        vmap = {VOL_A: legacy(VOL_A), VOL_B: uuid5(VOL_B),
                VOL_C: legacy(VOL_C)}
        preexisting = find_preexisting_srs(session, vmap)
        self.assertEqual({uuid5(VOL_B)}, preexisting)
        # pre_live_migration then introduces A and C under the source names.
        for volume_id in (VOL_A, VOL_C):
            volume_utils.connect_volume_sr(
                session, connection_data(volume_id=volume_id,
                                         iqn=iqn(volume_id),
                                         sr_uuid=vmap[volume_id]))
        self.assertEqual(3, len(session.sr_uuids()))
        forgotten = live_migration.forget_introduced_srs(session, vmap,
                                                         preexisting)
        self.assertEqual(sorted([legacy(VOL_A), legacy(VOL_C)]), forgotten)
        self.assertEqual([uuid5(VOL_B)], session.sr_uuids())

    def test_not_yet_introduced_is_skipped(self):
        session = FakeSession()
        forgotten = live_migration.forget_introduced_srs(
            session, {VOL_A: legacy(VOL_A)}, set())
        self.assertEqual([], forgotten)
        self.assertEqual(["SR.get_by_uuid"], session.methods())

    def test_sr_in_use_is_kept(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        session.add_sr("shared-sr")
        other_vm = session.add_vm()
        session.add_vbd(other_vm, "shared-sr")
        forgotten = live_migration.forget_introduced_srs(
            session, {VOL_A: legacy(VOL_A), VOL_B: "shared-sr"}, set())
        self.assertEqual([legacy(VOL_A)], forgotten)
        self.assertEqual(["shared-sr"], session.sr_uuids())

    def test_failure_is_logged_and_others_forgotten(self):
        session = FakeSession()
        session.add_sr(legacy(VOL_A))
        session.add_sr(legacy(VOL_B))
        real = session._SR_forget
        state = {"first": True}

        def flaky(sr_ref):
            if state.pop("first", False):
                raise volume_utils.XenAPI.Failure(["INTERNAL_ERROR"])
            return real(sr_ref)

        session._SR_forget = flaky
        forgotten = live_migration.forget_introduced_srs(
            session, {VOL_A: legacy(VOL_A), VOL_B: legacy(VOL_B)}, ())
        self.assertEqual([legacy(VOL_B)], forgotten)
        self.assertEqual([legacy(VOL_A)], session.sr_uuids())

    def test_shared_sr_counted_once(self):
        session = FakeSession()
        sr_uuid = "shared-target-sr"
        session.add_sr(sr_uuid)
        forgotten = live_migration.forget_introduced_srs(
            session, {VOL_A: sr_uuid, VOL_B: sr_uuid}, ())
        self.assertEqual([sr_uuid], forgotten)
        self.assertEqual(1, session.count("SR.forget"))


class TestCheckSrUuidMap(base.TestCase):

    def setUp(self):
        super().setUp()
        self.session = FakeSession()
        self.vm = self.session.add_vm()
        self.session.add_sr("local-default-sr")
        self.session.add_vbd(self.vm, "local-default-sr", "0", osvol=False)
        for volume_id, sr_uuid, device in ((VOL_A, legacy(VOL_A), "1"),
                                           (VOL_B, uuid5(VOL_B), "2")):
            self.session.add_sr(sr_uuid)
            self.session.add_vbd(self.vm, sr_uuid, device)
        self.vmap = {VOL_A: legacy(VOL_A), VOL_B: uuid5(VOL_B)}

    def _check(self, sr_uuid_map, vmap=None, relaxed=True, required=True):
        return live_migration.check_sr_uuid_map(
            self.session, self.vm, sr_uuid_map,
            self.vmap if vmap is None else vmap, relaxed, required)

    def test_ok_returns_local_refs_and_vdis(self):
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        checked = self._check(dest)
        self.assertEqual({legacy(VOL_A), uuid5(VOL_B)}, set(checked.srs))
        for sr_uuid, ref in checked.srs.items():
            self.assertEqual(sr_uuid, self.session.srs[ref]["uuid"])
            # The VDIs Nova's get_instance_vdis_for_sr would yield.
            expected = {vdi for vdi, sr in self.session.vdis.items()
                        if sr == ref}
            self.assertEqual(
                {vdi: dest[sr_uuid] for vdi in expected},
                checked.vdi_map(self.vm, ref, dest[sr_uuid]))
        self.assertIsNone(checked.vdi_map("OpaqueRef:other-vm", ref, "d"))
        self.assertEqual((), checked.lvhd_srs)
        default_sr = self.session._SR_get_by_uuid("local-default-sr")
        self.assertIsNone(checked.vdi_map(self.vm, default_sr, "d"))
        self.assertNotIn("VM.migrate_send", self.session.methods())
        self.assertNotIn("VM.assert_can_migrate", self.session.methods())

    def test_lvhd_srs_are_the_lvmoiscsi_volume_srs(self):
        sr_uuid = "0f0e0d0c-0b0a-4909-8807-060504030201"
        lvhd_ref = self.session.add_sr(sr_uuid)
        self.session.srs[lvhd_ref]["type"] = "lvmoiscsi"
        self.session.add_vbd(self.vm, sr_uuid, "3")
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2",
                sr_uuid: "OpaqueRef:d3"}
        checked = self._check(dest, dict(self.vmap, **{VOL_C: sr_uuid}))
        self.assertEqual((lvhd_ref,), checked.lvhd_srs)
        self.assertEqual(3, len(checked.srs))

    def test_old_destination_renamed_legacy_sr(self):
        # The bug: an old destination computed the uuid5 name for VOL_A.
        dest = {uuid5(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                self._check, dest)
        message = str(exc)
        self.assertEqual(VOL_A, exc.kwargs["volume_id"])
        self.assertIn(legacy(VOL_A), message)
        self.assertIn(uuid5(VOL_A), message)
        self.assertIn("install nova-xenapi-resign", message)
        self.assertIn("mirror", message)
        # Refused before any XAPI call.
        self.assertEqual(0, self.session.xapi_calls())

    def test_destination_uuid_missing_locally_without_volume_map(self):
        # Old source semantics: no volume map; the destination's key is
        # unknown here.
        dest = {uuid5(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                self._check, dest, vmap={})
        self.assertEqual(uuid5(VOL_A), exc.kwargs["dest_sr_uuid"])
        self.assertIn("does not exist on the source", str(exc))
        self.assertNotIn("VM.get_VBDs", self.session.methods())

    def test_volume_vdi_not_in_map(self):
        # The destination connected only VOL_B; VOL_A's VDI is unmapped.
        dest = {uuid5(VOL_B): "OpaqueRef:d2"}
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                self._check, dest,
                                vmap={VOL_B: uuid5(VOL_B)})
        self.assertEqual(legacy(VOL_A), exc.kwargs["source_sr_uuid"])
        self.assertIn("VBD 1", str(exc))

    def test_relaxed_required(self):
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        exc = self.assertRaises(exception.LiveMigrationPreCheckError,
                                self._check, dest, relaxed=False)
        self.assertIn("relax-xsm-sr-check", str(exc))
        self.assertIn(VOL_A, exc.kwargs["volume_id"])
        self.assertEqual(0, self.session.xapi_calls())

    def test_relaxed_not_required(self):
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        self._check(dest, relaxed=False, required=False)

    def test_no_volumes_no_relaxed_needed(self):
        session = FakeSession()
        vm = session.add_vm()
        session.add_sr("local-default-sr")
        session.add_vbd(vm, "local-default-sr", "0", osvol=False)
        checked = live_migration.check_sr_uuid_map(session, vm, {}, {},
                                                   False, True)
        self.assertEqual(({}, {}), (checked.srs, checked.vdis))

    def test_other_xapi_failures_propagate(self):
        self.session.fail["SR.get_all_records_where"] = ["SESSION_INVALID",
                                                         "x"]
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        self.assertRaises(volume_utils.XenAPI.Failure, self._check, dest)

    def test_empty_cd_vbd_ignored(self):
        self.session.add_vbd(self.vm, "local-default-sr", "3", osvol=True,
                             empty=True)
        dest = {legacy(VOL_A): "OpaqueRef:d1", uuid5(VOL_B): "OpaqueRef:d2"}
        self._check(dest)

    def test_message_lists_everything(self):
        exc = exception.LiveMigrationPreCheckError(
            volume_id="v", reason="r", source_sr_uuid="s", dest_sr_uuid="d",
            action="do X")
        self.assertEqual("Live migration refused for volume v: r (source SR "
                         "uuid: s; destination SR uuid: d). do X", str(exc))


class TestEndToEndWithFakePools(base.TestCase):
    """Source legacy SR -> map -> injected destination -> checked source."""

    def test_bug_1566622_flow(self):
        source = FakeSession()
        source.add_sr(legacy(VOL_A))
        vm = source.add_vm()
        source.add_vbd(vm, legacy(VOL_A))
        info = block_device_info(bdm(VOL_A, chap=True))

        # 1. source
        vmap = live_migration.build_volume_sr_uuid_map(source, info, "auto")
        # 2. destination (uuid5 naming configured!)
        dest = FakeSession()
        preexisting = find_preexisting_srs(dest, vmap)
        injected = live_migration.inject_source_sr_uuids(info, vmap)
        sr_uuid_map = {}
        for item in injected["block_device_mapping"]:
            sr_ref, sr_uuid, _ = volume_utils.connect_volume_sr(
                dest, item["connection_info"]["data"], style="uuid5")
            sr_uuid_map[sr_uuid] = sr_ref
        self.assertEqual([legacy(VOL_A)], dest.sr_uuids())
        introduce = [c for c in dest.calls if c[0] == "SR.introduce"][0]
        self.assertEqual("chap-secret", introduce[7]["chappassword"])
        # 3. source check passes: equal UUIDs on both sides
        checked = live_migration.check_sr_uuid_map(source, vm, sr_uuid_map,
                                                   vmap, True, True)
        self.assertEqual([legacy(VOL_A)], list(checked.srs))
        # rollback at the destination
        self.assertEqual([legacy(VOL_A)], live_migration.forget_introduced_srs(
            dest, vmap, preexisting))
        self.assertEqual([], dest.sr_uuids())


class TestPreCheckCost(base.TestCase):
    """The pre-check costs two XAPI calls per migration, not per volume."""

    def test_constant_calls_for_many_volumes(self):
        costs = []
        for n in (1, 8, 32):
            session = FakeSession()
            vm = session.add_vm()
            vmap = {}
            for i in range(n):
                sr_uuid = "FA15E-D15C-vol-%d" % i
                session.add_sr(sr_uuid)
                session.add_vbd(vm, sr_uuid, str(i + 1))
                vmap["vol-%d" % i] = sr_uuid
            dest = {u: "OpaqueRef:dest-%s" % u for u in vmap.values()}
            live_migration.check_sr_uuid_map(session, vm, dest, vmap, True)
            costs.append(session.xapi_calls())
        self.assertEqual([2, 2, 2], costs)
