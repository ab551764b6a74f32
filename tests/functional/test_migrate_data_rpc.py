"""XenapiLiveMigrateData crosses a real oslo.messaging RPC call.

``fake://`` transport, a real RPC server with a destination endpoint, and an
``RPCClient`` whose ``version_cap`` stands for the destination's RPC API
version.  The cap maps onto object versions through a version manifest
(RPC 1.4 understands ``XenapiLiveMigrateData`` 1.4, RPC 1.5 understands
1.5), and the client's serializer backports to it (``obj_make_compatible``)
before sending, as Nova does for pinned computes.
"""

from oslo_config import cfg
import oslo_messaging
from oslo_messaging import conffixture as oslo_messaging_conffixture

from nova_xenapi_resign.objects import migrate_data as md
from tests import base

VOLUME = "5c2a3a50-7f4b-4d1e-9c0e-6a8b2f1d3e4f"
LEGACY_SR = "FA15E-D15C-" + VOLUME

#: RPC API version -> object versions the destination understands.
RPC_OBJECT_VERSIONS = {
    "1.4": {"XenapiLiveMigrateData": "1.4", "VIFMigrateData": "1.0"},
    "1.5": {"XenapiLiveMigrateData": "1.5", "VIFMigrateData": "1.0"},
}


class RecordingSerializer(md.ObjectSerializer):
    """Keeps every primitive it put on the wire."""

    def __init__(self, version_manifest=None):
        super().__init__(version_manifest)
        self.sent = []

    def serialize_entity(self, context, entity):
        primitive = super().serialize_entity(context, entity)
        if isinstance(primitive, dict) and "nova_object.name" in primitive:
            self.sent.append(primitive)
        return primitive


class DestinationEndpoint(object):
    """The destination side of ``pre_live_migration``."""

    target = oslo_messaging.Target(version="1.5")

    def __init__(self):
        self.received = []

    def pre_live_migration(self, ctxt, migrate_data):
        self.received.append(migrate_data)
        volume_map = md.get_volume_sr_uuid_map(migrate_data)
        # An upgraded destination introduces the source's SR names; without
        # the map it can only compute its own (here: a uuid5 stand-in).
        names = sorted(volume_map.values()) or ["uuid5-name-of-" + VOLUME]
        migrate_data.sr_uuid_map = {name: "OpaqueRef:dest-" + name
                                    for name in names}
        return migrate_data


class DestinationAPI(object):
    """Client side: the version cap picks the RPC and object versions."""

    def __init__(self, transport, version_cap):
        self.serializer = RecordingSerializer(
            RPC_OBJECT_VERSIONS[version_cap])
        self.client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic="compute", version="1.4"),
            version_cap=version_cap, serializer=self.serializer, timeout=30)

    def pre_live_migration(self, ctxt, host, migrate_data):
        version = "1.5" if self.client.can_send_version("1.5") else "1.4"
        cctxt = self.client.prepare(server=host, version=version)
        return cctxt.call(ctxt, "pre_live_migration",
                          migrate_data=migrate_data)


class TestMigrateDataOverRpc(base.TestCase):

    def setUp(self):
        super().setUp()
        # A private ConfigOpts (never the global CONF); the fixture
        # registers oslo.messaging's own options on it.
        conf = cfg.ConfigOpts()
        self.useFixture(oslo_messaging_conffixture.ConfFixture(conf))
        conf([], project="nova-xenapi-resign-test")
        self.transport = oslo_messaging.get_rpc_transport(conf,
                                                          url="fake:/")
        self.addCleanup(self.transport.cleanup)
        self.endpoint = DestinationEndpoint()
        self.server = oslo_messaging.get_rpc_server(
            self.transport,
            oslo_messaging.Target(topic="compute", server="dest"),
            [self.endpoint], executor="threading",
            serializer=md.ObjectSerializer())
        self.server.start()
        self.addCleanup(self.server.wait)
        self.addCleanup(self.server.stop)

    def _source_data(self):
        return md.XenapiLiveMigrateData(
            block_migration=True, destination_sr_ref="OpaqueRef:sr",
            migrate_send_data={"host": "OpaqueRef:h"}, is_volume_backed=True,
            volume_sr_uuid_map={VOLUME: LEGACY_SR})

    def test_cap_1_5_carries_the_map(self):
        api = DestinationAPI(self.transport, "1.5")
        result = api.pre_live_migration({}, "dest", self._source_data())

        sent = api.serializer.sent[0]
        self.assertEqual("1.5", sent["nova_object.version"])
        self.assertEqual({VOLUME: LEGACY_SR},
                         sent["nova_object.data"]["volume_sr_uuid_map"])
        received = self.endpoint.received[0]
        self.assertIsInstance(received, md.XenapiLiveMigrateData)
        self.assertEqual("1.5", received.VERSION)
        self.assertEqual({VOLUME: LEGACY_SR}, received.volume_sr_uuid_map)
        # The reply: the destination introduced the source's SR name.
        self.assertIsInstance(result, md.XenapiLiveMigrateData)
        self.assertEqual({LEGACY_SR: "OpaqueRef:dest-" + LEGACY_SR},
                         result.sr_uuid_map)

    def test_cap_1_4_drops_the_map(self):
        api = DestinationAPI(self.transport, "1.4")
        result = api.pre_live_migration({}, "dest", self._source_data())

        sent = api.serializer.sent[0]
        self.assertEqual("1.4", sent["nova_object.version"])
        self.assertNotIn("volume_sr_uuid_map", sent["nova_object.data"])
        self.assertNotIn("volume_sr_uuid_map",
                         sent.get("nova_object.changes", []))
        received = self.endpoint.received[0]
        self.assertEqual("1.4", received.VERSION)
        self.assertNotIn("volume_sr_uuid_map", received)
        self.assertTrue(received.block_migration)
        # The destination fell back to its own name: the source pre-check
        # (check_sr_uuid_map) is what must catch this.
        self.assertEqual(["uuid5-name-of-" + VOLUME],
                         list(result.sr_uuid_map))

    def test_cap_1_4_then_1_5_same_server(self):
        data = self._source_data()
        DestinationAPI(self.transport, "1.4").pre_live_migration(
            {}, "dest", data)
        DestinationAPI(self.transport, "1.5").pre_live_migration(
            {}, "dest", data)
        first, second = self.endpoint.received
        self.assertNotIn("volume_sr_uuid_map", first)
        self.assertEqual({VOLUME: LEGACY_SR}, second.volume_sr_uuid_map)
        # An object received at 1.4 is re-sent at 1.4 even under a 1.5 cap.
        api = DestinationAPI(self.transport, "1.5")
        api.pre_live_migration({}, "dest", first)
        self.assertEqual("1.4", api.serializer.sent[0]["nova_object.version"])
        # The caller's object was not changed by either backport.
        self.assertEqual({VOLUME: LEGACY_SR}, data.volume_sr_uuid_map)
        self.assertEqual("1.5", data.VERSION)
