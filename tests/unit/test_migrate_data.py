"""XenapiLiveMigrateData 1.5: fields, pinned hashes, backports, Nova mode."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import exception as ovo_exc
from oslo_versionedobjects import fixture as ovo_fixture

from nova_xenapi_resign import objects
from nova_xenapi_resign.objects import migrate_data
from tests import base

objects.register_all()

# Pinned fingerprints of this library's objects.  A change here means the
# wire format changed: bump the version (and add a backport) first.
OBJECT_DATA = {
    "VIFMigrateData": "1.0-cb15282b25a039ab35046ed705eb931d",
    "XenapiLiveMigrateData": "1.5-4651580429f3e8fa85aed6df57ae79c4",
}

# Nova's own pinned hashes (nova/tests/unit/objects/test_objects.py,
# 18.0.0 to 21.x): our 1.4 field set must give exactly these.
NOVA_OBJECT_DATA = {
    "VIFMigrateData": "1.0-cb15282b25a039ab35046ed705eb931d",
    "XenapiLiveMigrateData": "1.4-7dc9417e921b2953faa6751f18785f3f",
}

NOVA_1_4_FIELDS = {
    # LiveMigrateData 1.3
    "is_volume_backed", "migration", "old_vol_attachment_ids",
    "wait_for_vif_plugged", "vifs",
    # XenapiLiveMigrateData 1.4
    "block_migration", "destination_sr_ref", "migrate_send_data",
    "sr_uuid_map", "kernel_file", "ramdisk_file", "vif_uuid_map",
}

VOLUME = "5c2a3a50-7f4b-4d1e-9c0e-6a8b2f1d3e4f"
LEGACY_SR = "FA15E-D15C-" + VOLUME


def _our_classes():
    return {name: [cls for cls in classes
                   if cls.__module__.startswith("nova_xenapi_resign.")]
            for name, classes in
            ovo_base.VersionedObjectRegistry.obj_classes().items()
            if any(cls.__module__.startswith("nova_xenapi_resign.")
                   for cls in classes)}


def full_object():
    """An object with every field set (except the Nova-only migration)."""
    vif = migrate_data.VIFMigrateData(
        port_id="port-1", vnic_type="normal", vif_type="ovs", host="dest",
        source_vif={"id": "port-1", "address": "fa:16:3e:00:00:01"})
    vif.vif_details = {"port_filter": True}
    vif.profile = {}
    return migrate_data.XenapiLiveMigrateData(
        is_volume_backed=True,
        old_vol_attachment_ids={VOLUME: "attachment-1"},
        wait_for_vif_plugged=True,
        vifs=[vif],
        block_migration=True,
        destination_sr_ref="OpaqueRef:dest-sr",
        migrate_send_data={"host": "OpaqueRef:h", "xenops": "http://x"},
        sr_uuid_map={LEGACY_SR: "OpaqueRef:dest-vol-sr"},
        kernel_file="",
        ramdisk_file="",
        vif_uuid_map={"": "OpaqueRef:net"},
        volume_sr_uuid_map={VOLUME: LEGACY_SR},
    )


class TestObjectVersions(base.TestCase):

    def test_versions(self):
        checker = ovo_fixture.ObjectVersionChecker(_our_classes())
        if os.environ.get("GENERATE_HASHES"):
            print(json.dumps(checker.get_hashes(), indent=4, sort_keys=True))
            self.fail("GENERATE_HASHES is set: hashes printed, not tested")
        expected, actual = checker.test_hashes(OBJECT_DATA)
        self.assertEqual(expected, actual,
                         "Some objects have changed; please make sure the "
                         "versions have been bumped, and then update their "
                         "hashes here.")

    def test_nova_1_4_fingerprint(self):
        # Our fields minus the new one, at 1.4, ARE Nova's 1.4.
        cls = type("XenapiLiveMigrateData",
                   (migrate_data.NovaCompatibleObject,),
                   {"VERSION": "1.4",
                    "fields": {k: v for k, v in
                               migrate_data.XenapiLiveMigrateData
                               .fields.items()
                               if k != "volume_sr_uuid_map"}})
        checker = ovo_fixture.ObjectVersionChecker({
            "XenapiLiveMigrateData": [cls],
            "VIFMigrateData": [migrate_data.VIFMigrateData]})
        self.assertEqual(NOVA_OBJECT_DATA, checker.get_hashes())

    def test_compatibility_routines(self):
        # Migration is Nova's (deliberately not re-implemented standalone);
        # version manifests need every sub-object registered, so register a
        # throwaway stand-in for this test only.
        self.useFixture(ovo_fixture.VersionedObjectRegistryFixture())
        stub = type("Migration", (migrate_data.NovaCompatibleObject,),
                    {"VERSION": "1.7", "fields": {}})
        ovo_base.VersionedObjectRegistry.register(stub)
        checker = ovo_fixture.ObjectVersionChecker(_our_classes())
        checker.test_compatibility_routines(use_manifest=True)
        checker.test_compatibility_routines(use_manifest=False)

    def test_manifest_needs_migration_registered(self):
        # Documented limitation of standalone mode.
        self.assertRaises(ovo_exc.UnregisteredSubobject,
                          ovo_base.obj_tree_get_versions,
                          "XenapiLiveMigrateData")

    def test_relationships_in_order(self):
        checker = ovo_fixture.ObjectVersionChecker(_our_classes())
        checker.test_relationships_in_order()


class TestXenapiLiveMigrateData(base.TestCase):

    def test_version_and_fields(self):
        cls = migrate_data.XenapiLiveMigrateData
        self.assertEqual("1.5", cls.VERSION)
        self.assertEqual(NOVA_1_4_FIELDS | {"volume_sr_uuid_map"},
                         set(cls.fields))
        self.assertEqual("XenapiLiveMigrateData", cls.obj_name())
        self.assertEqual("DictOfStrings",
                         type(cls.fields["volume_sr_uuid_map"]).__name__
                         .replace("Field", ""))

    def test_package_attribute_is_newest(self):
        self.assertIs(migrate_data.XenapiLiveMigrateData,
                      objects.XenapiLiveMigrateData)
        self.assertIs(migrate_data.VIFMigrateData, objects.VIFMigrateData)

    def test_primitive_is_nova_shaped(self):
        obj = migrate_data.XenapiLiveMigrateData(
            volume_sr_uuid_map={VOLUME: LEGACY_SR})
        prim = obj.obj_to_primitive()
        self.assertEqual({"nova_object.name", "nova_object.namespace",
                          "nova_object.version", "nova_object.data",
                          "nova_object.changes"}, set(prim))
        self.assertEqual("XenapiLiveMigrateData", prim["nova_object.name"])
        self.assertEqual("nova", prim["nova_object.namespace"])
        self.assertEqual("1.5", prim["nova_object.version"])
        self.assertEqual({"volume_sr_uuid_map": {VOLUME: LEGACY_SR}},
                         prim["nova_object.data"])
        self.assertEqual(["volume_sr_uuid_map"], prim["nova_object.changes"])

    def test_round_trip(self):
        obj = full_object()
        back = migrate_data.XenapiLiveMigrateData.obj_from_primitive(
            obj.obj_to_primitive())
        self.assertIsInstance(back, migrate_data.XenapiLiveMigrateData)
        self.assertEqual({VOLUME: LEGACY_SR}, back.volume_sr_uuid_map)
        self.assertEqual({"port_filter": True}, back.vifs[0].vif_details)
        self.assertEqual("fa:16:3e:00:00:01",
                         back.vifs[0].source_vif["address"])

    def test_source_vif_travels_as_json_like_nova(self):
        vif = full_object().vifs[0]
        data = vif.obj_to_primitive()["nova_object.data"]
        self.assertIsInstance(data["source_vif"], str)
        self.assertEqual({"id": "port-1", "address": "fa:16:3e:00:00:01"},
                         json.loads(data["source_vif"]))

    def test_hydrates_a_nova_1_4_primitive(self):
        # What a Rocky..Ussuri destination returns from pre_live_migration.
        prim = {
            "nova_object.name": "XenapiLiveMigrateData",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.4",
            "nova_object.data": {"block_migration": False,
                                 "sr_uuid_map": {"uuid5-sr": "OpaqueRef:1"},
                                 "wait_for_vif_plugged": True},
            "nova_object.changes": ["block_migration", "sr_uuid_map"],
        }
        obj = migrate_data.XenapiLiveMigrateData.obj_from_primitive(prim)
        self.assertEqual("1.4", obj.VERSION)
        self.assertNotIn("volume_sr_uuid_map", obj)
        self.assertEqual({}, migrate_data.get_volume_sr_uuid_map(obj))
        self.assertEqual({"uuid5-sr": "OpaqueRef:1"}, obj.sr_uuid_map)

    def test_other_namespace_refused(self):
        prim = full_object().obj_to_primitive()
        prim["nova_object.namespace"] = "os_vif"
        self.assertRaises(ovo_exc.UnsupportedObjectError,
                          migrate_data.XenapiLiveMigrateData
                          .obj_from_primitive, prim)

    def test_get_volume_sr_uuid_map(self):
        self.assertEqual({}, migrate_data.get_volume_sr_uuid_map(None))
        self.assertEqual({}, migrate_data.get_volume_sr_uuid_map(
            migrate_data.XenapiLiveMigrateData()))
        got = migrate_data.get_volume_sr_uuid_map(full_object())
        self.assertEqual({VOLUME: LEGACY_SR}, got)


class TestBackports(base.TestCase):
    """Every older version: exactly what it drops."""

    # target version -> fields that must be gone (cumulative, as in Nova)
    DROPPED = {
        "1.5": set(),
        "1.4": {"volume_sr_uuid_map"},
        "1.3": {"volume_sr_uuid_map", "vifs"},
        "1.2": {"volume_sr_uuid_map", "vifs", "wait_for_vif_plugged"},
        "1.1": {"volume_sr_uuid_map", "vifs", "wait_for_vif_plugged",
                "old_vol_attachment_ids"},
        "1.0": {"volume_sr_uuid_map", "vifs", "wait_for_vif_plugged",
                "old_vol_attachment_ids", "vif_uuid_map"},
    }

    def _check(self, version, with_manifest):
        obj = full_object()
        everything = set(obj.obj_to_primitive()["nova_object.data"])
        manifest = ({"XenapiLiveMigrateData": version,
                     "VIFMigrateData": "1.0"} if with_manifest else None)
        prim = obj.obj_to_primitive(target_version=version,
                                    version_manifest=manifest)
        self.assertEqual(version, prim["nova_object.version"])
        data = prim["nova_object.data"]
        self.assertEqual(everything - self.DROPPED[version], set(data),
                         "backport to %s" % version)
        self.assertFalse(set(prim.get("nova_object.changes", []))
                         & self.DROPPED[version])
        # The backported primitive hydrates, without the dropped fields.
        back = migrate_data.XenapiLiveMigrateData.obj_from_primitive(prim)
        for name in self.DROPPED[version]:
            self.assertNotIn(name, back)

    def test_backports(self):
        for version in sorted(self.DROPPED):
            self._check(version, with_manifest=False)

    def test_backports_with_manifest(self):
        for version in sorted(self.DROPPED):
            self._check(version, with_manifest=True)

    def test_obj_make_compatible_directly(self):
        obj = full_object()
        prim = obj.obj_to_primitive()["nova_object.data"]
        obj.obj_make_compatible(prim, "1.4")
        self.assertNotIn("volume_sr_uuid_map", prim)
        self.assertIn("vifs", prim)

    def test_newer_than_ours_refused(self):
        self.assertRaises(ovo_exc.InvalidTargetVersion,
                          full_object().obj_to_primitive,
                          target_version="1.6")


class TestRegistry(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(ovo_fixture.VersionedObjectRegistryFixture())

    def _foreign(self, name, version):
        cls = type(name, (migrate_data.NovaCompatibleObject,),
                   {"VERSION": version, "fields": {}})
        cls.__module__ = "nova.objects.migrate_data"
        ovo_base.VersionedObjectRegistry.register(cls)
        return cls

    def _ours(self, name, version):
        cls = type(name, (migrate_data.NovaCompatibleObject,),
                   {"VERSION": version, "fields": {}})
        cls.__module__ = migrate_data.__name__
        return cls

    def test_standalone_never_displaces_nova(self):
        nova_cls = self._foreign("TestOnlyVIF", "1.0")
        migrate_data.ResignObjectRegistry.register(
            self._ours("TestOnlyVIF", "1.0"))
        self.assertEqual([nova_cls], ovo_base.VersionedObjectRegistry
                         .obj_classes()["TestOnlyVIF"])

    def test_standalone_newer_version_is_added(self):
        nova_cls = self._foreign("TestOnlyLMD", "1.4")
        ours = self._ours("TestOnlyLMD", "1.5")
        migrate_data.ResignObjectRegistry.register(ours)
        self.assertEqual([ours, nova_cls], ovo_base.VersionedObjectRegistry
                         .obj_classes()["TestOnlyLMD"])


FAKE_NOVA = {
    "nova/__init__.py": "",
    "nova/objects/__init__.py": "",
    "nova/objects/base.py": """
        from oslo_utils import versionutils
        from oslo_versionedobjects import base as ovo_base

        from nova import objects


        class NovaObjectRegistry(ovo_base.VersionedObjectRegistry):
            def registration_hook(self, cls, index):
                new = versionutils.convert_version_to_tuple(cls.VERSION)
                cur = getattr(objects, cls.obj_name(), None)
                if cur is None or new >= versionutils.convert_version_to_tuple(
                        cur.VERSION):
                    setattr(objects, cls.obj_name(), cls)


        class NovaObject(ovo_base.VersionedObject):
            OBJ_SERIAL_NAMESPACE = "nova_object"
            OBJ_PROJECT_NAMESPACE = "nova"
        """,
    "nova/objects/migrate_data.py": """
        from oslo_utils import versionutils
        from oslo_versionedobjects import fields

        from nova.objects import base


        @base.NovaObjectRegistry.register
        class VIFMigrateData(base.NovaObject):
            VERSION = "1.0"
            fields = {"port_id": fields.StringField()}


        @base.NovaObjectRegistry.register_if(False)
        class LiveMigrateData(base.NovaObject):
            VERSION = "1.3"
            fields = {"is_volume_backed": fields.BooleanField(),
                      "old_vol_attachment_ids": fields.DictOfStringsField(),
                      "wait_for_vif_plugged": fields.BooleanField(),
                      "vifs": fields.ListOfObjectsField("VIFMigrateData")}


        @base.NovaObjectRegistry.register
        class XenapiLiveMigrateData(LiveMigrateData):
            VERSION = "1.4"
            obj_relationships = {"vifs": [("1.4", "1.0")]}
            fields = {"sr_uuid_map": fields.DictOfStringsField(),
                      "vif_uuid_map": fields.DictOfStringsField()}

            def obj_make_compatible(self, primitive, target_version):
                super().obj_make_compatible(primitive, target_version)
                tv = versionutils.convert_version_to_tuple(target_version)
                for name, below in (("vifs", (1, 4)),
                                    ("wait_for_vif_plugged", (1, 3)),
                                    ("old_vol_attachment_ids", (1, 2)),
                                    ("vif_uuid_map", (1, 1))):
                    if tv < below and name in primitive:
                        del primitive[name]
        """,
}

NOVA_MODE_SCRIPT = """
import json, sys
import nova.objects.migrate_data as nova_md   # Nova first, as in nova-compute
from nova import objects as nova_objects
from nova.objects import base as nova_base
from nova_xenapi_resign.objects import migrate_data as md
from oslo_versionedobjects import base as ovo_base

cls = md.register_with_nova()
again = md.register_with_nova()
table = ovo_base.VersionedObjectRegistry.obj_classes()
obj = nova_objects.XenapiLiveMigrateData(
    sr_uuid_map={"a": "b"}, volume_sr_uuid_map={"v": "FA15E-D15C-v"},
    vifs=[nova_md.VIFMigrateData(port_id="p")], wait_for_vif_plugged=True)
prim = obj.obj_to_primitive()
back = nova_base.NovaObject.obj_from_primitive(prim)
old = obj.obj_to_primitive(target_version="1.2")
print(json.dumps({
    "idempotent": cls is again,
    "subclass": issubclass(cls, nova_md.XenapiLiveMigrateData),
    "nova_attr_is_ours": nova_objects.XenapiLiveMigrateData is cls,
    "versions": [c.VERSION for c in table["XenapiLiveMigrateData"]],
    "vif_class_is_novas": table["VIFMigrateData"] == [nova_md.VIFMigrateData],
    "hydrated_is_ours": type(back) is cls,
    "field": back.volume_sr_uuid_map,
    "v12_fields": sorted(old["nova_object.data"]),
    "isinstance": isinstance(back, nova_md.XenapiLiveMigrateData),
}))
"""


class TestNovaMode(base.TestCase):

    def test_without_nova_import_error(self):
        try:
            nova_found = importlib.util.find_spec("nova.objects") is not None
        except ModuleNotFoundError:  # no "nova" package at all
            nova_found = False
        if nova_found:
            self.skipTest("a real Nova is importable here")
        self.assertRaises(ImportError, migrate_data.register_with_nova)

    def test_register_with_fake_nova(self):
        root = os.path.join(self.tmpdir, "fakenova")
        for path, text in FAKE_NOVA.items():
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(textwrap.dedent(text))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, repo]),
                   PYTHONWARNINGS="ignore")
        proc = subprocess.run([sys.executable, "-c", NOVA_MODE_SCRIPT],
                              capture_output=True, text=True, env=env,
                              cwd=self.tmpdir, timeout=120)
        self.assertEqual(0, proc.returncode, proc.stderr)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        self.assertEqual({
            "idempotent": True,
            "subclass": True,
            "nova_attr_is_ours": True,
            "versions": ["1.5", "1.4"],
            "vif_class_is_novas": True,
            "hydrated_is_ours": True,
            "field": {"v": "FA15E-D15C-v"},
            "v12_fields": ["sr_uuid_map"],
            "isinstance": True,
        }, result)
