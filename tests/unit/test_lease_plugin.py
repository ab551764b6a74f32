"""The dom0 plugin's codec equals the package's; the plugin runs on the
dom0 interpreters (Python 2.7 and 3.6 when installed here) and reports
errors the way XAPI plugins do."""

import json
import os
import random
import shutil
import subprocess
import sys

import fixtures

from nova_xenapi_resign import exception
from nova_xenapi_resign.lease import record as rec
from tests import base
from tests.unit import test_lease_protocol as harness

PLUGIN = harness.PLUGIN
#: dom0 Pythons: XenServer 7.1-8.2 run plugins with 2.7, 8.3 with 3.6.
DOM0_PYTHONS = ("python2.7", "python3.6")

#: A stand-in for dom0's XenAPIPlugin module (tests only): like the real
#: ``dispatch`` it calls ``fn(session, args)`` and turns an exception into
#: ['XENAPI_PLUGIN_FAILURE', fn, class name, message]; here the method
#: and the JSON args come from argv and the answer is printed as JSON.
XENAPI_PLUGIN_STUB = '''
import json
import sys


def dispatch(fn_table):
    name, args = sys.argv[1], json.loads(sys.argv[2])
    if name not in fn_table:
        out = {"Status": "Failure",
               "ErrorDescription": ["UNKNOWN_XENAPI_PLUGIN_FUNCTION", name]}
    else:
        try:
            out = {"Status": "Success", "Value": fn_table[name](None, args)}
        except Exception as e:
            out = {"Status": "Failure",
                   "ErrorDescription": ["XENAPI_PLUGIN_FAILURE", name,
                                        e.__class__.__name__, str(e)]}
    sys.stdout.write(json.dumps(out))
'''

#: Decode hex sectors given on stdin with the plugin's codec, on any Python.
DECODE_SCRIPT = '''
import imp, json, sys
plugin = imp.load_source("xenapi_resign_lease", sys.argv[1])
out = []
for line in sys.stdin.read().split():
    try:
        out.append(plugin.decode(bytes(bytearray.fromhex(line))))
    except plugin.LeaseFormatError:
        out.append(None)
sys.stdout.write(json.dumps(out, sort_keys=True))
'''


def as_dict(record):
    """A package record in the plugin's dict shape."""
    owner = record.owner or rec.Owner("", "")
    nxt = record.next_owner or rec.Owner("", "")
    return {"sr_uuid": record.sr_uuid, "state": record.state,
            "generation": record.generation, "counter": record.counter,
            "duration_ms": record.duration_ms,
            "written_at_ms": record.written_at_ms,
            "owner_pool": owner.pool, "owner_host": owner.host,
            "next_pool": nxt.pool, "next_host": nxt.host}


def random_records(n, seed=17):
    rnd = random.Random(seed)
    names = ["", "pool-a", "h\u00f6st-\u00df", "x" * 64,
             "8d3e2f11-7a4b-4c5d-9e6f-0a1b2c3d4e5f"]
    out = []
    for _ in range(n):
        held = rnd.random() < 0.6
        owner = rec.Owner(rnd.choice(names[1:]), rnd.choice(names)) \
            if held else None
        nxt = rec.Owner(rnd.choice(names[1:]), rnd.choice(names[1:])) \
            if rnd.random() < 0.3 else None
        out.append(rec.LeaseRecord(
            sr_uuid=rnd.choice(names[:3] + names[4:]),
            state=rec.STATE_HELD if held else rec.STATE_FREE,
            generation=rnd.randrange(2 ** 64),
            counter=rnd.randrange(2 ** 64),
            duration_ms=rnd.randrange(2 ** 32),
            written_at_ms=rnd.randrange(2 ** 64), owner=owner,
            next_owner=nxt))
    return out


def mangled(sectors, seed=5):
    """Torn, flipped and random sectors made from good ones."""
    rnd = random.Random(seed)
    out = [b"\0" * 512, b"\xff" * 512]
    for a, b in zip(sectors, sectors[1:]):
        keep = rnd.randrange(1, 512)
        out.append(a[:keep] + b[keep:])
        flip = bytearray(a)
        flip[rnd.randrange(512)] ^= 1 << rnd.randrange(8)
        out.append(bytes(flip))
    out.append(bytes(rnd.randrange(256) for _ in range(512)))
    return out


class TestCodecsEqual(base.TestCase):

    def test_package_bytes_decode_equally_in_plugin(self):
        for record in random_records(300):
            sector = rec.encode(record)
            self.assertEqual(as_dict(record), PLUGIN.decode(sector))
            self.assertEqual(sector, PLUGIN.encode(as_dict(record)))

    def test_both_reject_the_same_damaged_sectors(self):
        good = [rec.encode(r) for r in random_records(100, seed=2)]
        for sector in mangled(good):
            try:
                mine = as_dict(rec.decode(sector))
            except exception.LeaseRecordError:
                mine = None
            try:
                theirs = PLUGIN.decode(sector)
            except PLUGIN.LeaseFormatError:
                theirs = None
            self.assertEqual(mine, theirs)

    def test_same_latest_slot(self):
        records = random_records(60, seed=9)
        for a, b in zip(records, records[1:]):
            for pair in ((a, b), (b, a), (a, a)):
                raw = tuple(rec.encode(r) for r in pair)
                records_p, _ = PLUGIN.decode_slots(raw)
                self.assertEqual(rec.snapshot(raw).latest_slot,
                                 PLUGIN.latest_slot(records_p))

    def test_layout_constants_equal(self):
        self.assertEqual(
            (rec.RECORD_SIZE, rec.SLOT_STRIDE, rec.SLOT_COUNT, rec.AREA_SIZE,
             rec.MAGIC, rec.VERSION, rec.STATE_FREE, rec.STATE_HELD),
            (PLUGIN.RECORD_SIZE, PLUGIN.SLOT_STRIDE, PLUGIN.SLOT_COUNT,
             PLUGIN.AREA_SIZE, PLUGIN.MAGIC, PLUGIN.VERSION, PLUGIN.FREE,
             PLUGIN.HELD))


def dom0_pythons():
    found = []
    for name in DOM0_PYTHONS:
        path = shutil.which(name)
        pyenv = os.path.expanduser("~/.pyenv/versions")
        if os.path.isdir(pyenv):
            for version in sorted(os.listdir(pyenv)):
                candidate = os.path.join(pyenv, version, "bin", name)
                if os.path.exists(candidate):
                    path = candidate
        if path and subprocess.run([path, "-c", "pass"],
                                   capture_output=True).returncode == 0:
            found.append(path)
    return found


class TestOnDom0Pythons(base.TestCase):
    """What runs here under each dom0 interpreter that is installed."""

    def setUp(self):
        super().setUp()
        self.pythons = dom0_pythons() + [sys.executable]

    def test_compiles(self):
        for python in self.pythons:
            proc = subprocess.run(
                [python, "-c", "import py_compile,sys; "
                 "py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
                 "doraise=True)", harness.PLUGIN_PATH,
                 os.path.join(self.tmpdir, "plugin.pyc")],
                capture_output=True, text=True)
            self.assertEqual(0, proc.returncode, python + proc.stderr)

    def test_codec_equal_on_each_interpreter(self):
        good = [rec.encode(r) for r in random_records(40, seed=4)]
        sectors = good + mangled(good, seed=8)
        expected = []
        for sector in sectors:
            try:
                expected.append(as_dict(rec.decode(sector)))
            except exception.LeaseRecordError:
                expected.append(None)
        for python in self.pythons:
            if python == sys.executable:
                continue   # covered in-process above; no imp on 3.12+
            proc = subprocess.run(
                [python, "-c", DECODE_SCRIPT, harness.PLUGIN_PATH],
                input="\n".join(s.hex() for s in sectors),
                capture_output=True, text=True)
            self.assertEqual(0, proc.returncode, python + proc.stderr)
            self.assertEqual(expected, json.loads(proc.stdout), python)

    def run_plugin(self, python, fn, args):
        stub = os.path.join(self.tmpdir, "stub")
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, "XenAPIPlugin.py"), "w") as f:
            f.write(XENAPI_PLUGIN_STUB)
        proc = subprocess.run(
            [python, harness.PLUGIN_PATH, fn, json.dumps(args)],
            capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=stub))
        self.assertEqual(0, proc.returncode, python + proc.stderr)
        return json.loads(proc.stdout)

    def test_errors_are_plugin_failures(self):
        image = os.path.join(self.tmpdir, "not-lvm.img")
        with open(image, "wb") as f:
            f.truncate(1024 * 1024)
        for python in self.pythons:
            out = self.run_plugin(python, "read", {
                "device": image, "sr_uuid": harness.SR})
            self.assertEqual(["XENAPI_PLUGIN_FAILURE", "read",
                              "LeaseFormatError"],
                             out["ErrorDescription"][:3], python)
            self.assertIn("no LVM label", out["ErrorDescription"][3])
            out = self.run_plugin(python, "acquire", {"device": image})
            self.assertEqual(["XENAPI_PLUGIN_FAILURE", "acquire",
                              "ValueError", "missing argument 'pool'"],
                             out["ErrorDescription"], python)
            out = self.run_plugin(python, "steal", {})
            self.assertEqual(["UNKNOWN_XENAPI_PLUGIN_FUNCTION", "steal"],
                             out["ErrorDescription"])


class TestCachedOffset(base.TestCase):
    """renew/release reuse the offset saved at acquire: no LVM reads."""

    def setUp(self):
        super().setUp()
        self.image = os.path.join(self.tmpdir, "no-lvm.img")
        with open(self.image, "wb") as f:
            f.truncate(harness.AREA_OFFSET + rec.AREA_SIZE)
        self.held = rec.LeaseRecord(
            sr_uuid=harness.SR, state=rec.STATE_HELD, generation=3,
            counter=0, duration_ms=120000, written_at_ms=0,
            owner=rec.Owner("pool-a", "host-a"))
        with open(self.image, "r+b") as f:
            f.seek(harness.AREA_OFFSET)
            f.write(rec.slot_bytes(self.held))
        self.useFixture(fixtures.MonkeyPatch(
            "tests.unit.test_lease_protocol.PLUGIN.STATE_DIR", self.tmpdir))
        self.args = {"device": self.image, "sr_uuid": harness.SR,
                     "pool": "pool-a", "host": "host-a"}

    def hold(self, offset):
        PLUGIN.FileState(self.tmpdir, harness.SR).save({
            "record": as_dict(self.held), "since": PLUGIN.monotonic(),
            "offset": offset})

    def test_renew_with_saved_offset_needs_no_lvm_metadata(self):
        self.hold(harness.AREA_OFFSET)
        out = json.loads(PLUGIN.renew(None, self.args))
        self.assertEqual((3, 1, "host-a"), (out["generation"],
                                            out["counter"],
                                            out["owner_host"]))

    def test_wrong_saved_offset_fails_safe(self):
        self.hold(0)
        self.assertRaises(PLUGIN.LeaseLost, PLUGIN.renew, None, self.args)
        with open(self.image, "rb") as f:
            f.seek(harness.AREA_OFFSET)
            self.assertEqual(rec.slot_bytes(self.held), f.read(4096))
            f.seek(0)
            self.assertEqual(b"\0" * 4096, f.read(4096))

    def test_without_saved_state_it_locates_and_fails_on_no_lvm(self):
        self.assertRaises(PLUGIN.LeaseFormatError, PLUGIN.renew, None,
                          self.args)
