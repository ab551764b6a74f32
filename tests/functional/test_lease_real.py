"""The lease on a real LVHD VG made by lvm2, on a loop device.

The expected lease offset comes from lvm2's own reports (``pe_start``,
``vg_extent_size`` and the LV's ``seg_pe_ranges``), never from the code
under test; both locators (package and dom0 plugin) must find it, also when
the committed metadata wraps around the circular buffer.  The plugin then
runs acquire / renew / hand_over / acquire on the loop device itself
(``O_DIRECT``) under every dom0 Python installed here, and lvm2 still finds
the VG intact and every byte outside the lease area unchanged.
"""

import hashlib
import json
import os
import subprocess
import sys
from unittest import mock

from nova_xenapi_resign.lease import locator
from nova_xenapi_resign.lease import protocol
from nova_xenapi_resign.lease import record as rec
from nova_xenapi_resign.lvhd import device as device_mod
from tests.functional import base
from tests.functional import lvhd_images
from tests.unit import test_lease_plugin
from tests.unit import test_lease_protocol as harness

SR = "5b7c9d1e-2f3a-4b5c-8d6e-7f8091a2b3c4"
OTHER_SR = "00000000-0000-4000-8000-000000000000"
TIMING = protocol.Timing(duration=1.0, io_timeout=0.01)

#: Drive the plugin's functions like XAPI would, through a session-less call.
RUN_FUNCTIONS = '''
import imp, json, sys
plugin = imp.load_source("xenapi_resign_lease", sys.argv[1])
plugin.STATE_DIR = sys.argv[2]
out = []
for fn, args in json.loads(sys.argv[3]):
    try:
        out.append(json.loads(plugin.FUNCTIONS[fn](None, args)))
    except Exception as e:
        out.append([e.__class__.__name__, str(e)])
sys.stdout.write(json.dumps(out))
'''


class LeaseLvmTestCase(base.FunctionalTestCase):
    """An LVHD VG with the lease LV, made by lvm2 on a loop device."""

    TOOLS = ("losetup", "lvm")

    def make_sr(self, wrap=False):
        path = os.path.join(self.tmpdir, "sr.img")
        made = lvhd_images.make_lvhd_image(
            self, path, SR, lvhd_images.many_vdis(SR, 2), wrap=wrap)
        loop = self.attach(path)
        lvm_ = base.Lvm(loop)
        lvm_("lvcreate", "-L", "4m", "-n", locator.LEASE_LV, made["vg_name"])
        if wrap:
            self._wrap(lvm_, path, made["vg_name"])
        return path, loop, lvm_, made["vg_name"]

    def _wrap(self, lvm_, path, vg_name):
        for i in range(lvhd_images.MAX_WRAP_CHANGES):
            if any(len(p) > 1 for p in lvhd_images.committed_pieces(path)):
                return
            lvm_("lvchange", "--addtag", "t%d" % i,
                 "%s/%s" % (vg_name, locator.LEASE_LV))
        self.fail("metadata never wrapped")

    def expected_offset(self, lvm_, vg_name):
        pe_start = int(lvm_.report("pvs", "pe_start")[0]["pe_start"])
        extent = int(lvm_.report("vgs", "vg_extent_size")[0]
                     ["vg_extent_size"])
        row = [r for r in lvm_.report("lvs", "lv_name,seg_pe_ranges",
                                      vg_name)
               if r["lv_name"] == locator.LEASE_LV][0]
        first_pe = int(row["seg_pe_ranges"].split(":")[1].split("-")[0])
        return pe_start + first_pe * extent


class TestLeaseOnRealLvm(LeaseLvmTestCase):

    def test_both_locators_find_the_lease_lv(self):
        for wrap in (False, True):
            path, loop, lvm_, vg_name = self.make_sr(wrap)
            expected = self.expected_offset(lvm_, vg_name)
            with device_mod.Device(loop) as dev:
                self.assertEqual(expected, locator.locate(dev).offset)
            dev = harness.PLUGIN.Device(loop)
            try:
                self.assertEqual(expected, harness.PLUGIN.locate(dev, SR))
            finally:
                dev.close()
            base.run(["losetup", "--detach", loop])

    def test_sr_without_lease_lv_is_lease_not_found(self):
        path = os.path.join(self.tmpdir, "plain.img")
        lvhd_images.make_lvhd_image(self, path, SR, ())
        from nova_xenapi_resign import exception
        with device_mod.Device(path) as dev:
            exc = self.assertRaises(exception.LeaseNotFound,
                                    locator.locate, dev)
        self.assertIn(locator.LEASE_LV, str(exc))
        dev = harness.PLUGIN.Device(path)
        try:
            self.assertRaises(harness.PLUGIN.LeaseNotFound,
                              harness.PLUGIN.locate, dev, SR)
        finally:
            dev.close()

    def _digest_outside(self, loop, offset):
        h = hashlib.sha256()
        with device_mod.Device(loop) as dev:
            h.update(dev.read(0, offset))
            end = offset + rec.AREA_SIZE
            h.update(dev.read(end, dev.size - end))
        return h.hexdigest()

    def test_plugin_lease_cycle_on_loop_device(self):
        path, loop, lvm_, vg_name = self.make_sr()
        offset = self.expected_offset(lvm_, vg_name)
        with device_mod.Device(loop, writable=True) as dev:
            where = locator.locate(dev)
            locator.DeviceStore(dev, where).write_slot(
                0, rec.slot_bytes(protocol.initial_record(SR, TIMING)))
        before = self._digest_outside(loop, offset)
        src = {"device": loop, "sr_uuid": SR, "pool": "pool-a",
               "host": "host-a", "duration": "1.0", "io_timeout": "0.01"}
        dst = dict(src, pool="pool-b", host="host-b")
        calls = [["acquire", src], ["renew", src], ["renew", dst],
                 ["hand_over", dict(src, next_pool="pool-b",
                                    next_host="host-b")],
                 ["acquire", dst],
                 ["renew_many", dict(dst, leases=json.dumps([
                     {"device": loop, "sr_uuid": SR},
                     {"device": loop, "sr_uuid": OTHER_SR}]))],
                 ["renew", src], ["read", src]]
        for python in test_lease_plugin.dom0_pythons() + [None]:
            state = os.path.join(self.tmpdir, "state-%s" % python)
            results = self.run_calls(python, state, calls)
            (acquired, renewed, refused, handed, taken, many, lost,
             read) = results
            self.assertNotIsInstance(acquired, list, acquired)
            self.assertEqual((acquired["owner_host"], acquired["counter"]),
                             ("host-a", 0), python)
            self.assertEqual(acquired["generation"] + 0,
                             renewed["generation"])
            self.assertEqual(1, renewed["counter"])
            self.assertEqual("LeaseLost", refused[0], python)
            self.assertEqual(("", "pool-b", "host-b"),
                             (handed["owner_host"], handed["next_pool"],
                              handed["next_host"]))
            self.assertEqual(("host-b", acquired["generation"] + 1),
                             (taken["owner_host"], taken["generation"]))
            self.assertEqual(dict(taken, counter=1, written_at_ms=mock.ANY),
                             many[SR], python)
            self.assertEqual("LeaseFormatError", many[OTHER_SR][0])
            self.assertEqual("LeaseLost", lost[0], python)
            self.assertEqual(many[SR], read["latest"])
            self.assertEqual([None, None], read["errors"])
        self.assertEqual(before, self._digest_outside(loop, offset))
        lvm_("vgck", vg_name)
        names = [r["lv_name"] for r in lvm_.report("lvs", "lv_name")]
        self.assertIn(locator.LEASE_LV, names)

    def run_calls(self, python, state, calls):
        if python is None:
            plugin = harness.PLUGIN
            saved = plugin.STATE_DIR
            plugin.STATE_DIR = state
            out = []
            try:
                for fn, args in calls:
                    try:
                        out.append(json.loads(plugin.FUNCTIONS[fn](None,
                                                                   args)))
                    except Exception as e:  # as XAPI would report it
                        out.append([e.__class__.__name__, str(e)])
            finally:
                plugin.STATE_DIR = saved
            return out
        proc = subprocess.run(
            [python, "-c", RUN_FUNCTIONS, harness.PLUGIN_PATH, state,
             json.dumps(calls)], capture_output=True, text=True)
        self.assertEqual(0, proc.returncode, python + proc.stderr)
        return json.loads(proc.stdout)

    def test_sm_ignores_the_lease_lv_name(self):
        # sm's lvhdutil.matchLV keeps only VHD-/LV- names and LVHDSR.load
        # only names holding a uuid; the lease LV is neither.
        self.assertFalse(locator.LEASE_LV.startswith(("VHD-", "LV-")))
        self.assertNotRegex(locator.LEASE_LV, "[0-9a-f]{8}-")


#: One host of the contention test: wait for the common start (the machine's
#: CLOCK_MONOTONIC is shared by processes), race for the lease, and if won
#: keep it past every loser's wait, then release it.
CONTENDER = '''
import json, sys, time
try:
    import importlib.util as iu
    spec = iu.spec_from_file_location("xenapi_resign_lease", sys.argv[1])
    plugin = iu.module_from_spec(spec)
    spec.loader.exec_module(plugin)
except ImportError:
    import imp
    plugin = imp.load_source("xenapi_resign_lease", sys.argv[1])
plugin.STATE_DIR = sys.argv[2]
args = json.loads(sys.argv[3])
start = float(sys.argv[4])
while plugin.monotonic() < start:
    time.sleep(0.001)
try:
    plugin.acquire(None, args)
except plugin.LeaseRefused:
    sys.stdout.write(json.dumps({"result": "refused"}))
    sys.exit(0)
since = plugin.FileState(sys.argv[2], args["sr_uuid"]).load()["since"]
for _ in range(8):
    time.sleep(float(args["duration"]) / 5)
    plugin.renew(None, args)
end = plugin.monotonic()
plugin.release(None, args)
sys.stdout.write(json.dumps({"result": "won", "since": since, "end": end}))
'''


class TestContentionOnLoopDevice(LeaseLvmTestCase):
    """Eight processes race for one lease on a loop device.

    They mix the dom0 Pythons found here; each has its own state and reads
    through O_DIRECT.
    """

    def test_eight_processes_one_winner(self):
        path, loop, lvm_, vg_name = self.make_sr()
        with device_mod.Device(loop, writable=True) as dev:
            locator.DeviceStore(dev, locator.locate(dev)).write_slot(
                0, rec.slot_bytes(protocol.initial_record(SR, TIMING)))
        pythons = test_lease_plugin.dom0_pythons() + [sys.executable]
        start = harness.PLUGIN.monotonic() + 3.0
        procs = []
        for i in range(8):
            args = {"device": loop, "sr_uuid": SR, "pool": "pool-%d" % i,
                    "host": "host-%d" % i, "duration": "5.0",
                    "io_timeout": "0.05"}
            procs.append(subprocess.Popen(
                [pythons[i % len(pythons)], "-c", CONTENDER,
                 harness.PLUGIN_PATH, os.path.join(self.tmpdir, "h%d" % i),
                 json.dumps(args), repr(start)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            self.assertEqual(0, proc.returncode, err)
            results.append(json.loads(out))
        won = [r for r in results if r["result"] == "won"]
        self.assertEqual(1, len(won), results)
        self.assertEqual(7, [r["result"] for r in results].count("refused"))
        dev = harness.PLUGIN.Device(loop)
        try:
            store = harness.PLUGIN.Store(dev, harness.PLUGIN.locate(dev, SR))
            records, errors = harness.PLUGIN.decode_slots(store.read_slots())
        finally:
            dev.close()
        self.assertEqual([None, None], errors)
        latest = records[harness.PLUGIN.latest_slot(records)]
        # Claimed (1), renewed eight times, released: nobody else wrote.
        self.assertEqual((1, 9, harness.PLUGIN.FREE),
                         (latest["generation"], latest["counter"],
                          latest["state"]))
