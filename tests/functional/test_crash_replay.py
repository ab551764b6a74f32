"""Crash safety seen from outside the process: strace a CLI resign, replay.

``strace`` records the real system calls of ``xenapi-resign resign`` on an
LVM-made image: every ``pwrite64``/``fsync`` on the image, and every
``mkdir``, ``rename``, file ``write`` and ``fsync`` under the backup
directory.  From that log the test

* checks that every directory entry and byte the recovery depends on (the
  directories created on the way, the backup file's data and name) is
  durable - followed by an fsync of the file or of its parent directory -
  before the first write to the image;
* replays crash states of the image's write log, epoch by epoch (the
  writes between two fsyncs of the image may land in any order, or not
  at all): every prefix, every issued set with one write lost (out of
  order), only the last issued write landed, and torn writes (a sector
  cut 40 bytes in, and a multi-sector write cut after its first sector);
* replays each with the backup reachable and with the backup directory
  entry lost (or the rerun on another host), and reruns resign.

Every state must end byte-identical to an uninterrupted run, or be refused
with nothing written.
"""

import os
import re
import shutil
import subprocess
import sys

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device as device_mod
from nova_xenapi_resign import resign
from tests.functional import base
from tests.functional import lvhd_images

SOURCE = "6e5d4c3b-2a19-4807-9f6e-5d4c3b2a1908"
TARGET = "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f901"
SECTOR = 512
TORN_AT = 40
TRACED = ("openat", "pwrite64", "write", "fsync", "fdatasync", "mkdir",
          "rename")

_LINE = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(\w+)\((.*)\)\s+= (-?\d+)")
_HEX = r'((?:\\x[0-9a-f]{2})*)'
_STRING = re.compile(r'"%s"' % _HEX)
_FD = re.compile(r'(\d+)<%s>' % _HEX)


def _unhex(text):
    return bytes.fromhex(text.replace("\\x", ""))


def parse_strace(text):
    """``[(call, args)]``: strings and fds as bytes/paths, ints as ints."""
    calls = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or int(match.group(3)) < 0:
            continue
        call, raw = match.group(1), match.group(2)
        values = []
        raw = _FD.sub(lambda m: values.append(
            ("fd", _unhex(m.group(2)).decode())) or "\0%d" % (
                len(values) - 1), raw)
        raw = _STRING.sub(lambda m: values.append(
            ("str", _unhex(m.group(1)))) or "\0%d" % (len(values) - 1), raw)
        args = []
        for token in raw.split(", "):
            if token.startswith("\0"):
                args.append(values[int(token[1:])][1])
            elif token.lstrip("-").isdigit():
                args.append(int(token))
            else:
                args.append(token)
        calls.append((call, args))
    return calls


class WriteLog(object):
    """The image's writes in epochs, and the backup directory's events."""

    def __init__(self, calls, image, root):
        self.epochs = [[]]
        self.fs = []            # (index, event, path) under root
        self.first_write = None
        for index, (call, args) in enumerate(calls):
            path = args[0] if args and isinstance(args[0], str) else ""
            if call == "pwrite64" and path == image:
                data, offset = args[1], args[3]
                if self.first_write is None:
                    self.first_write = index
                self.epochs[-1].append((offset, data))
            elif call in ("fsync", "fdatasync") and path == image:
                if self.epochs[-1]:
                    self.epochs.append([])
            elif call in ("mkdir", "rename"):
                target = os.fsdecode(args[-2] if call == "mkdir"
                                     else args[1])
                if target.startswith(root):
                    self.fs.append((index, call, target))
            elif call in ("write", "fsync") and path.startswith(root):
                self.fs.append((index, call, path))
        if not self.epochs[-1]:
            self.epochs.pop()

    def not_durable_before_first_write(self):
        """Entries and file data not yet on disk at the first image write."""
        problems = []
        before = [e for e in self.fs if e[0] < self.first_write]
        for index, event, path in before:
            later = [(e, p) for i, e, p in before if i > index]
            if event in ("mkdir", "rename"):
                needed = ("fsync", os.path.dirname(path))
            elif event == "write":
                needed = ("fsync", path)
            else:
                continue
            if needed not in later:
                problems.append((event, path))
        return problems

    def states(self):
        """``(name, [(offset, data)])`` crash states."""
        durable = []
        for e, epoch in enumerate(self.epochs):
            n = len(epoch)
            for j in range(n + 1):
                yield "epoch %d: first %d of %d" % (e, j, n), \
                    durable + epoch[:j]
            for missing in range(n - 1):
                yield "epoch %d: all but write %d" % (e, missing), \
                    durable + epoch[:missing] + epoch[missing + 1:]
            for j in range(1, n):
                yield "epoch %d: only write %d" % (e, j), \
                    durable + [epoch[j]]
            for j, (offset, data) in enumerate(epoch):
                cut = len(data) - SECTOR + TORN_AT
                yield "epoch %d: write %d torn in its last sector" % (e, j), \
                    durable + epoch[:j] + [(offset, data[:cut])]
                if len(data) > SECTOR:
                    yield "epoch %d: write %d torn after a sector" % (e, j), \
                        durable + epoch[:j] + [(offset, data[:SECTOR])]
            durable = durable + epoch

    def ranges(self):
        return sorted({(o, len(d)) for epoch in self.epochs
                       for o, d in epoch})


class RecordingDevice(device_mod.Device):
    """Counts and locates the writes of a rerun."""

    log = None

    def write(self, offset, data):
        super().write(offset, data)
        self.log.append((offset, len(data)))


class CrashReplayTest(base.FunctionalTestCase):

    TOOLS = ("losetup", "lvm", "strace")

    def traced_resign(self, clone, backup_dir):
        out = os.path.join(self.tmpdir, "strace.out")
        proc = subprocess.run(
            ["strace", "-f", "-qq", "-y", "-xx", "-s", str(64 << 20),
             "-o", out, "-e", "trace=" + ",".join(TRACED), sys.executable,
             "-m", "nova_xenapi_resign.cmd.main", "resign", clone,
             "--sr-uuid", TARGET, "--backup-dir", backup_dir, "--yes"],
            capture_output=True, text=True)
        self.assertEqual(0, proc.returncode, proc.stderr)
        with open(out) as f:
            return parse_strace(f.read())

    def read_ranges(self, path, ranges):
        with open(path, "rb") as f:
            out = []
            for offset, length in ranges:
                f.seek(offset)
                out.append(f.read(length))
            return out

    def replay(self, vdis, **image_kwargs):
        original = os.path.join(self.tmpdir, "original.img")
        lvhd_images.make_lvhd_image(self, original, SOURCE, vdis,
                                    **image_kwargs)
        clone = os.path.join(self.tmpdir, "clone.img")
        base.run(["cp", "--sparse=always", original, clone])
        # A backup directory two levels below anything that exists.
        backup_dir = os.path.join(self.tmpdir, "var", "backups")
        log = WriteLog(self.traced_resign(clone, backup_dir), clone,
                       self.tmpdir)
        self.assertEqual([], log.not_durable_before_first_write())
        self.assertGreater(len(log.epochs), 1)
        [name] = os.listdir(backup_dir)
        backup_file = os.path.join(backup_dir, name)
        ranges = log.ranges()
        expected = self.read_ranges(clone, ranges)
        pristine = self.read_ranges(original, ranges)
        outcomes = {"finished": 0, "refused": 0}
        for state, writes in log.states():
            for lost in (False, True):
                outcome = self.rerun(clone, pristine, ranges, writes,
                                     backup_file, lost, expected, state)
                outcomes[outcome] += 1
        self.assertGreater(outcomes["finished"], 0)
        return outcomes

    def rerun(self, clone, pristine, ranges, writes, backup_file, lost,
              expected, state):
        with open(clone, "r+b") as f:
            for (offset, _), data in zip(ranges, pristine):
                f.seek(offset)
                f.write(data)
            for offset, data in writes:
                f.seek(offset)
                f.write(data)
        crashed = self.read_ranges(clone, ranges)
        backup_dir = os.path.join(self.tmpdir, "rerun-backups")
        shutil.rmtree(backup_dir, ignore_errors=True)
        if not lost:
            os.makedirs(backup_dir)
            shutil.copy(backup_file, backup_dir)
        written = []

        def opener(path, writable=False):
            dev = RecordingDevice(path, writable=writable)
            dev.log = written
            return dev
        what = "%s, backup %s" % (state, "lost" if lost else "kept")
        try:
            resign.resign_device(clone, TARGET, backup_dir=backup_dir,
                                 lock_path=os.path.join(self.tmpdir, "lk"),
                                 opener=opener)
        except exception.UnsafeOperation:
            self.assertEqual([], written, what)
            self.assertEqual(crashed, self.read_ranges(clone, ranges), what)
            return "refused"
        for offset, length in written:
            self.assertTrue(any(o <= offset and offset + length <= o + n
                                for o, n in ranges), what)
        self.assertEqual(expected, self.read_ranges(clone, ranges), what)
        return "finished"

    def test_snapshot_tree(self):
        self.replay(lvhd_images.snapshot_tree(SOURCE))

    def test_wrapped_two_metadata_copies(self):
        self.replay(lvhd_images.snapshot_tree(SOURCE), wrap=True,
                    pvmetadatacopies=2)

    def test_fifty_vdis(self):
        self.replay(lvhd_images.many_vdis(SOURCE, 50))
