"""``XenapiLiveMigrateData`` 1.5: Nova's 1.4 plus ``volume_sr_uuid_map``.

The source compute records, for every volume of the instance, the UUID of
the SR it really uses (legacy ``FA15E-D15C-<volume id>``, uuid5 or explicit)
in ``volume_sr_uuid_map``; the destination introduces each volume's SR under
that same UUID (Launchpad bug 1566622; see
doc/source/reference/live-migration.rst).

Wire compatibility with Nova
----------------------------
Nova 18.0.0 (Rocky) to 21.x (Ussuri) sends ``XenapiLiveMigrateData`` 1.4.
Everything here serializes exactly as Nova does: project namespace ``nova``,
serial namespace ``nova_object`` (primitive keys ``nova_object.name``,
``.namespace``, ``.version``, ``.data``, ``.changes``), object name
``XenapiLiveMigrateData``, and the 1.4 field set is Nova's, field for field:
the 1.4 fingerprint of these definitions is Nova's own pinned hash
``1.4-7dc9417e921b2953faa6751f18785f3f`` (and ``VIFMigrateData`` matches
Nova's ``1.0-cb15282b25a039ab35046ed705eb931d``); the unit tests check both.

Two modes
---------
* Standalone (no Nova importable, the normal case for this library and its
  tests): the classes below are plain oslo.versionedobjects objects,
  registered with :class:`ResignObjectRegistry`.
* Inside Nova (18.0.0 to 21.x, whose class is 1.4): the adapter calls
  :func:`register_with_nova`, which defines a subclass of Nova's own
  ``nova.objects.migrate_data.XenapiLiveMigrateData`` at 1.5 and registers
  it in Nova's ``NovaObjectRegistry`` (so
  ``nova.objects.XenapiLiveMigrateData`` becomes it).  Nova is imported
  only inside that function.

Nested objects (a documented choice)
------------------------------------
Nova's 1.4 carries ``migration`` (``ObjectField('Migration')``) and ``vifs``
(``ListOfObjectsField('VIFMigrateData')``) inherited from ``LiveMigrateData``.
Both fields are declared exactly as Nova declares them, so the fingerprint
and the backports agree.  Standalone, a minimal but wire-compatible
``VIFMigrateData`` 1.0 is provided (same fields; ``source_vif`` travels as
the same JSON string and is hydrated as a plain ``dict`` instead of
``nova.network.model.VIF``).  ``Migration`` is *not* re-implemented: it is a
large database-backed Nova object the XenAPI driver never reads from migrate
data; a primitive that carries it can only be hydrated where Nova is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
import sys
from typing import Any

from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import versionutils
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields

LOG = logging.getLogger(__name__)

#: The version Nova 18.0.0 to 21.x sends.
NOVA_VERSION = "1.4"
#: The version of this extension (Nova's 1.4 + volume_sr_uuid_map).
VERSION = "1.5"
#: The field this extension adds.
VOLUME_SR_UUID_MAP = "volume_sr_uuid_map"

_OUR_PACKAGE = __name__.rsplit(".", 2)[0]


# --- Registry, base class, serializer ----------------------------------------

def _is_ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] == _OUR_PACKAGE


class ResignObjectRegistry(ovo_base.VersionedObjectRegistry):
    """Registry of this library's standalone objects.

    oslo.versionedobjects keeps one process-wide table of classes by name.
    A standalone class never displaces a class of the same name and an
    equal or newer version that someone else (Nova) registered: in a Nova
    process Nova's objects and :func:`register_with_nova` win.
    """

    def _register_class(self, cls: type[ovo_base.VersionedObject]) -> None:
        mine = versionutils.convert_version_to_tuple(cls.VERSION)
        for other in self._obj_classes.get(cls.obj_name(), ()):
            theirs = versionutils.convert_version_to_tuple(other.VERSION)
            if not _is_ours(other) and theirs >= mine:
                LOG.debug("Not registering standalone %s %s: %s.%s %s is "
                          "already registered", cls.obj_name(), cls.VERSION,
                          other.__module__, other.__name__, other.VERSION)
                ovo_base._make_class_properties(cls)
                return
        super()._register_class(cls)

    def registration_hook(self, cls: type[ovo_base.VersionedObject],
                          index: int) -> None:
        # Like Nova: nova_xenapi_resign.objects.<Name> is the newest version.
        objects = sys.modules.get(_OUR_PACKAGE + ".objects")
        if objects is None:
            return
        current = getattr(objects, cls.obj_name(), None)
        if (current is None or versionutils.convert_version_to_tuple(
                cls.VERSION) >= versionutils.convert_version_to_tuple(
                    current.VERSION)):
            setattr(objects, cls.obj_name(), cls)


class NovaCompatibleObject(ovo_base.VersionedObject):
    """Base of objects that must serialize exactly as Nova's."""

    OBJ_PROJECT_NAMESPACE = "nova"
    OBJ_SERIAL_NAMESPACE = "nova_object"


class ObjectSerializer(ovo_base.VersionedObjectSerializer):
    """Serializer for RPC carrying these objects.

    ``version_manifest`` ({object name: version}) is what the receiver
    understands, e.g. derived from a negotiated RPC version cap: an object
    named in it is backported (``obj_make_compatible``) to that version
    before it is sent, as Nova does for pinned computes.
    """

    OBJ_BASE_CLASS = NovaCompatibleObject

    def __init__(self, version_manifest: Mapping[str, str] | None = None):
        super().__init__()
        self.version_manifest = dict(version_manifest or {})

    def serialize_entity(self, context: Any, entity: Any) -> Any:
        if (isinstance(entity, ovo_base.VersionedObject)
                and self.version_manifest):
            target = self.version_manifest.get(entity.obj_name())
            if target is not None and (
                    versionutils.convert_version_to_tuple(target)
                    > versionutils.convert_version_to_tuple(entity.VERSION)):
                # An object hydrated at an older version (e.g. from an old
                # peer) is sent as it is: it cannot be made newer.
                target = entity.VERSION
            return entity.obj_to_primitive(
                target_version=target,
                version_manifest=self.version_manifest)
        return super().serialize_entity(context, entity)


# --- Nested objects ---------------------------------------------------------

class NetworkVIFModel(fields.FieldType):
    """A VIF (a dict) carried as a JSON string, as Nova's field of that name.

    The class name is part of the object fingerprint, hence kept.
    """

    @staticmethod
    def coerce(obj: Any, attr: str, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = jsonutils.loads(value)
        if not isinstance(value, Mapping):
            raise ValueError("A VIF (mapping) or its JSON is required, "
                             "found %r" % type(value).__name__)
        return dict(value)

    @staticmethod
    def to_primitive(obj: Any, attr: str, value: Any) -> str:
        return jsonutils.dumps(value)

    @staticmethod
    def from_primitive(obj: Any, attr: str, value: Any) -> dict[str, Any]:
        return dict(jsonutils.loads(value))

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"]}


@ResignObjectRegistry.register
class VIFMigrateData(NovaCompatibleObject):
    """Minimal standalone twin of Nova's ``VIFMigrateData`` 1.0."""

    # Version 1.0: Initial version
    VERSION = "1.0"

    fields = {
        #: Neutron port id.
        "port_id": fields.StringField(),
        #: vnic type of the destination port binding.
        "vnic_type": fields.StringField(),
        #: vif type of the destination port binding.
        "vif_type": fields.StringField(),
        #: vif details of the destination binding, as JSON.
        "vif_details_json": fields.StringField(),
        #: binding profile of the destination binding, as JSON.
        "profile_json": fields.StringField(),
        #: destination host of the binding.
        "host": fields.StringField(),
        #: the VIF as seen on the source host.
        "source_vif": fields.Field(NetworkVIFModel()),
    }

    @property
    def vif_details(self) -> Any:
        return jsonutils.loads(self.vif_details_json)

    @vif_details.setter
    def vif_details(self, value: Any) -> None:
        self.vif_details_json = jsonutils.dumps(value)

    @property
    def profile(self) -> Any:
        return jsonutils.loads(self.profile_json)

    @profile.setter
    def profile(self, value: Any) -> None:
        self.profile_json = jsonutils.dumps(value)


# --- Live migrate data ------------------------------------------------------

@ResignObjectRegistry.register_if(False)
class LiveMigrateData(NovaCompatibleObject):
    """Nova's abstract ``LiveMigrateData`` 1.3 (never sent by itself)."""

    # Version 1.0: Initial version
    # Version 1.1: Added old_vol_attachment_ids field.
    # Version 1.2: Added wait_for_vif_plugged
    # Version 1.3: Added vifs field.
    VERSION = "1.3"

    fields = {
        "is_volume_backed": fields.BooleanField(),
        "migration": fields.ObjectField("Migration"),
        #: volume id -> attachment id to restore on rollback.
        "old_vol_attachment_ids": fields.DictOfStringsField(),
        #: set by the destination in pre_live_migration.
        "wait_for_vif_plugged": fields.BooleanField(),
        "vifs": fields.ListOfObjectsField("VIFMigrateData"),
    }


def _backport_volume_sr_uuid_map(primitive: dict[str, Any],
                                 target_version: str) -> None:
    if (versionutils.convert_version_to_tuple(target_version) < (1, 5)
            and VOLUME_SR_UUID_MAP in primitive):
        del primitive[VOLUME_SR_UUID_MAP]


def _volume_sr_uuid_map_field() -> fields.Field:
    return fields.DictOfStringsField()


@ResignObjectRegistry.register
class XenapiLiveMigrateData(LiveMigrateData):
    """Standalone ``XenapiLiveMigrateData``: Nova's 1.4 + the volume SR map."""

    # Version 1.0: Initial version
    # Version 1.1: Added vif_uuid_map
    # Version 1.2: Added old_vol_attachment_ids
    # Version 1.3: Added wait_for_vif_plugged
    # Version 1.4: Inherited vifs from LiveMigrateData
    # Version 1.5: Added volume_sr_uuid_map (nova-xenapi-resign, bug 1566622)
    VERSION = VERSION

    # Without a version manifest, how to backport the nested objects.
    obj_relationships = {
        "vifs": [("1.4", "1.0")],
    }

    fields = {
        "block_migration": fields.BooleanField(nullable=True),
        "destination_sr_ref": fields.StringField(nullable=True),
        "migrate_send_data": fields.DictOfStringsField(nullable=True),
        #: destination: SR uuid -> destination SR ref, from pre_live_migration.
        "sr_uuid_map": fields.DictOfStringsField(),
        "kernel_file": fields.StringField(),
        "ramdisk_file": fields.StringField(),
        "vif_uuid_map": fields.DictOfStringsField(),
        #: source: volume id -> UUID of the SR the source uses for it.
        VOLUME_SR_UUID_MAP: _volume_sr_uuid_map_field(),
    }

    def obj_make_compatible(self, primitive: dict[str, Any],
                            target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        _backport_volume_sr_uuid_map(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        if target < (1, 4) and "vifs" in primitive:
            del primitive["vifs"]
        if target < (1, 3) and "wait_for_vif_plugged" in primitive:
            del primitive["wait_for_vif_plugged"]
        if target < (1, 2) and "old_vol_attachment_ids" in primitive:
            del primitive["old_vol_attachment_ids"]
        if target < (1, 1) and "vif_uuid_map" in primitive:
            del primitive["vif_uuid_map"]


def get_volume_sr_uuid_map(migrate_data: Any) -> dict[str, str]:
    """The volume -> SR uuid map of any migrate data, ``{}`` if absent.

    Works on the standalone class, the Nova subclass, and Nova's plain 1.4
    object (an old source, or a primitive backported on the way).
    """
    if migrate_data is None:
        return {}
    try:
        if not migrate_data.obj_attr_is_set(VOLUME_SR_UUID_MAP):
            return {}
    except (AttributeError, NotImplementedError):
        return {}
    return dict(getattr(migrate_data, VOLUME_SR_UUID_MAP) or {})


# --- Nova mode --------------------------------------------------------------

_nova_class: type | None = None


def register_with_nova() -> type:
    """Register the 1.5 class with Nova's registry; return it.

    The class is a subclass of Nova's own
    ``nova.objects.migrate_data.XenapiLiveMigrateData`` 1.4 (Nova 18.0.0 to
    21.x), so every ``isinstance`` check in Nova keeps working and all of
    Nova's backports (to 1.0) are inherited.  Idempotent.  Raises
    ``ImportError`` where Nova is not installed and ``RuntimeError`` where
    Nova's class is not 1.4.
    """
    global _nova_class
    if _nova_class is not None:
        return _nova_class

    from nova.objects import base as nova_base
    from nova.objects import migrate_data as nova_migrate_data

    nova_cls = nova_migrate_data.XenapiLiveMigrateData
    if nova_cls.VERSION != NOVA_VERSION:
        # 1.5 means "Nova's 1.4 plus one field": on top of an older Nova
        # (13 to 17: 1.0 to 1.2, without vifs / wait_for_vif_plugged) the
        # claim would be false, and a newer one is not ours to extend.
        raise RuntimeError(
            "Nova's XenapiLiveMigrateData is %s; nova-xenapi-resign extends "
            "exactly %s (Nova 18.0.0 to 21.x)"
            % (nova_cls.VERSION, NOVA_VERSION))

    class XenapiLiveMigrateData(nova_cls):  # noqa: F811 (Nova's name)
        # Version 1.5: Added volume_sr_uuid_map (nova-xenapi-resign)
        VERSION = VERSION

        fields = {VOLUME_SR_UUID_MAP: _volume_sr_uuid_map_field()}

        def obj_make_compatible(self, primitive: dict[str, Any],
                                target_version: str) -> None:
            super().obj_make_compatible(primitive, target_version)
            _backport_volume_sr_uuid_map(primitive, target_version)

    XenapiLiveMigrateData.__module__ = __name__
    XenapiLiveMigrateData.__qualname__ = "NovaXenapiLiveMigrateData"
    nova_base.NovaObjectRegistry.register(XenapiLiveMigrateData)
    _nova_class = XenapiLiveMigrateData
    LOG.info("Registered XenapiLiveMigrateData %s (Nova's %s + %s) with "
             "Nova's object registry", VERSION, nova_cls.VERSION,
             VOLUME_SR_UUID_MAP)
    return XenapiLiveMigrateData
