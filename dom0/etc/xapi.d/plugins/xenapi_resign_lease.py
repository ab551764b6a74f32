#!/usr/bin/env python
#
# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""XAPI plugin: the on-LUN lease of an LVHD volume SR, run in dom0.

Standalone on purpose: dom0 of XenServer 7.1 to 8.x runs it with Python 2.7
(or 3.6+ on 8.3), it imports only the standard library and it cannot import
nova_xenapi_resign.  It carries its own LVM locator and record codec; the
package's ``nova_xenapi_resign.lease`` holds the same format, and the
project's tests run both codecs and both state machines on the same bytes.
The design is in the project's doc/source/reference/lease.rst.

Functions (arguments: a map of strings; result: a JSON string; errors are
raised, so XAPI answers XENAPI_PLUGIN_FAILURE [fn, class, message]):

* ``read``: device, sr_uuid
* ``acquire``: device, sr_uuid, pool, host [, duration, io_timeout]
* ``renew``, ``release``: device, sr_uuid, pool, host
* ``renew_many``: pool, host, leases (JSON list of {device, sr_uuid})
* ``hand_over``: device, sr_uuid, pool, host, next_pool, next_host

``acquire`` may block for one lease duration plus margins; call it with
``Async.host.call_plugin`` when that matters.  What a host holds (the
record it wrote and the monotonic time it started writing it) is kept in
``/run/nova-xenapi-resign``: tmpfs, so a reboot (which resets the monotonic
clock) forgets it and the host must acquire again.
"""

import errno
import io
import json
import mmap
import os
import re
import stat
import struct
import time
import zlib

# --- the lease record (keep equal to nova_xenapi_resign/lease/record.py) -----

RECORD_SIZE = 512
SLOT_STRIDE = 4096
SLOT_COUNT = 2
AREA_SIZE = SLOT_STRIDE * SLOT_COUNT
MAGIC = b"XRSLEASE"
VERSION = 1
FREE = 1
HELD = 2
CRC_OFFSET = RECORD_SIZE - 4
_FIXED = struct.Struct("<8sHBBIQQQ36s64s64s64s64s")
_NAMES = (("sr_uuid", 36), ("owner_pool", 64), ("owner_host", 64),
          ("next_pool", 64), ("next_host", 64))
LEASE_LV = "xenapi_resign_lease"
VG_PREFIX = "VG_XenStorage-"
STATE_DIR = "/run/nova-xenapi-resign"


class LeaseFormatError(Exception):
    """A lease sector or the LVM metadata around it is invalid."""


class LeaseRefused(Exception):
    """Another host holds the lease, or won a race for it."""


class LeaseLost(Exception):
    """This host does not (or no longer) hold the lease: stop SR changes."""


class LeaseNotFound(Exception):
    """The LUN has no lease volume."""


def _crc(data):
    return zlib.crc32(data) & 0xFFFFFFFF


def _text(raw, what):
    raw = raw.rstrip(b"\0")
    if b"\0" in raw:
        raise LeaseFormatError("lease %s: NUL inside the text" % what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LeaseFormatError("lease %s: not UTF-8" % what)


def encode(rec):
    """A record dict -> its 512-byte sector."""
    names = []
    for key, size in _NAMES:
        raw = rec[key].encode("utf-8")
        if len(raw) > size or b"\0" in raw:
            raise ValueError("lease %s: at most %d bytes" % (key, size))
        names.append(raw)
    if rec["state"] not in (FREE, HELD) or (
            (rec["state"] == HELD) != bool(rec["owner_pool"] or
                                           rec["owner_host"])):
        raise ValueError("lease state %r with owner %r/%r" % (
            rec["state"], rec["owner_pool"], rec["owner_host"]))
    body = _FIXED.pack(MAGIC, VERSION, rec["state"], 0, rec["duration_ms"],
                       rec["generation"], rec["counter"],
                       rec["written_at_ms"], *names)
    body = body + b"\0" * (CRC_OFFSET - len(body))
    return body + struct.pack("<I", _crc(body))


def decode(sector):
    """A 512-byte sector -> a record dict; torn or foreign sectors raise."""
    if len(sector) != RECORD_SIZE:
        raise LeaseFormatError("lease sector of %d bytes" % len(sector))
    if sector[:8] != MAGIC:
        raise LeaseFormatError("lease magic %r" % (sector[:8],))
    found = struct.unpack_from("<I", sector, CRC_OFFSET)[0]
    if found != _crc(sector[:CRC_OFFSET]):
        raise LeaseFormatError("lease checksum 0x%08x does not match" % found)
    fields = _FIXED.unpack_from(sector, 0)
    if fields[1] != VERSION:
        raise LeaseFormatError("lease version %d" % fields[1])
    rec = {"state": fields[2], "duration_ms": fields[4],
           "generation": fields[5], "counter": fields[6],
           "written_at_ms": fields[7]}
    for (key, _), raw in zip(_NAMES, fields[8:]):
        rec[key] = _text(raw, key)
    if rec["state"] not in (FREE, HELD) or (
            (rec["state"] == HELD) != bool(rec["owner_pool"] or
                                           rec["owner_host"])):
        raise LeaseFormatError("lease state %d" % rec["state"])
    return rec


def latest_slot(records):
    """Slot of the newest valid record (ties: the higher slot), or None."""
    best = None
    for slot, rec in enumerate(records):
        if rec is not None and (best is None or (
                (rec["generation"], rec["counter"]) >=
                (records[best]["generation"], records[best]["counter"]))):
            best = slot
    return best


def decode_slots(raw_slots):
    """Raw slot bytes -> (records with None for invalid, errors)."""
    records, errors = [], []
    for raw in raw_slots:
        try:
            records.append(decode(raw[:RECORD_SIZE]))
            errors.append(None)
        except LeaseFormatError as exc:
            records.append(None)
            errors.append(str(exc))
    return records, errors


# --- LVM locator: label -> pv_header -> mda_header -> text -> LV -------------

def _lvm_crc(data, seed=0xF597A6CF):
    return (~zlib.crc32(data, ~seed & 0xFFFFFFFF)) & 0xFFFFFFFF


_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*"|#[^\n]*|[A-Za-z0-9_.+-]+|'
                    r'[{}\[\]=,])')


def parse_lvm_text(text):
    """libdm config text -> nested dicts (arrays become lists)."""
    tokens = [m.group(1) for m in _TOKEN.finditer(text)
              if not m.group(1).startswith("#")]
    pos = [0]

    def take():
        pos[0] += 1
        return tokens[pos[0] - 1]

    def scalar(tok):
        if tok.startswith('"'):
            return tok[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return int(tok) if re.match(r"^[-+]?[0-9]+$", tok) else tok

    def section():
        out = {}
        while pos[0] < len(tokens) and tokens[pos[0]] != "}":
            key = take()
            op = take()
            if op == "{":
                out[key] = section()
                take()
            elif tokens[pos[0]] == "[":
                take()
                items = []
                while tokens[pos[0]] != "]":
                    tok = take()
                    if tok != ",":
                        items.append(scalar(tok))
                take()
                out[key] = items
            else:
                out[key] = scalar(take())
        return out

    try:
        return section()
    except IndexError:
        raise LeaseFormatError("LVM metadata text ends early")


def _read_metadata_text(dev):
    head = dev.read(0, 4 * 512)
    for sector in range(4):
        lab = head[sector * 512:(sector + 1) * 512]
        if lab[:8] != b"LABELONE":
            continue
        xl, crc, off = struct.unpack_from("<QII", lab, 8)
        if xl != sector or crc != _lvm_crc(lab[20:]) or lab[24:32] != (
                b"LVM2 001"):
            raise LeaseFormatError("LVM label in sector %d is corrupt"
                                   % sector)
        pos = off + 32 + 8
        lists = []
        for _ in range(2):
            areas = []
            while True:
                a_off, a_size = struct.unpack_from("<QQ", lab, pos)
                pos += 16
                if a_off == 0:
                    break
                areas.append((a_off, a_size))
            lists.append(areas)
        for mda_off, _ in lists[1]:
            text = _read_mda(dev, mda_off)
            if text is not None:
                return text
        raise LeaseFormatError("no valid LVM metadata area")
    raise LeaseFormatError("no LVM label in sectors 0-3")


def _read_mda(dev, mda_off):
    hdr = dev.read(mda_off, 512)
    if struct.unpack_from("<I", hdr, 0)[0] != _lvm_crc(hdr[4:]) or (
            hdr[4:20] != b" LVM2 x[5A%r0N*>"):
        return None
    size = struct.unpack_from("<Q", hdr, 32)[0]
    r_off, r_size, r_crc, r_flags = struct.unpack_from("<QQII", hdr, 40)
    if r_off == 0 or r_flags & 1:
        return None
    first = min(r_size, size - r_off)
    text = dev.read(mda_off + r_off, first)
    if first < r_size:
        text += dev.read(mda_off + 512, r_size - first)
    if _lvm_crc(text) != r_crc:
        return None
    return text.rstrip(b"\0").decode("utf-8", "replace")


def locate(dev, sr_uuid):
    """Byte offset of the lease area of SR ``sr_uuid`` on ``dev``."""
    tree = parse_lvm_text(_read_metadata_text(dev))
    vg = tree.get(VG_PREFIX + sr_uuid)
    if not isinstance(vg, dict):
        raise LeaseFormatError("%s: VG %s%s not found (VGs: %s)" % (
            dev.path, VG_PREFIX, sr_uuid,
            ", ".join(k for k, v in tree.items() if isinstance(v, dict))))
    lv = vg.get("logical_volumes", {}).get(LEASE_LV)
    if lv is None:
        raise LeaseNotFound("%s: SR %s has no %s volume" % (
            dev.path, sr_uuid, LEASE_LV))
    seg = lv.get("segment1", {})
    stripes = seg.get("stripes", [])
    if (seg.get("start_extent") != 0 or seg.get("type") != "striped" or
            len(stripes) != 2):
        raise LeaseFormatError("%s: %s is not a linear volume" % (
            dev.path, LEASE_LV))
    pv = vg["physical_volumes"][stripes[0]]
    extent = vg["extent_size"] * 512
    if seg["extent_count"] * extent < AREA_SIZE:
        raise LeaseFormatError("%s: %s is too small" % (dev.path, LEASE_LV))
    return pv["pe_start"] * 512 + stripes[1] * extent


# --- device I/O --------------------------------------------------------------

class Device(object):
    """A LUN opened for lease I/O.

    A block device is opened O_DIRECT (through page-aligned buffers), so a
    read sees what another host wrote, never a cached copy; no O_EXCL, as
    the SR's LVs are active.  Writes are followed by fsync.
    """

    def __init__(self, path):
        self.path = path
        flags = os.O_RDWR
        if hasattr(os, "O_CLOEXEC"):
            flags |= os.O_CLOEXEC
        self.direct = stat.S_ISBLK(os.stat(path).st_mode)
        if self.direct:
            flags |= os.O_DIRECT
        self.fd = os.open(path, flags)
        self.file = io.FileIO(self.fd, "r+", closefd=False)

    def read(self, offset, length):
        start = offset - offset % 4096
        size = (offset + length - start + 4095) // 4096 * 4096
        buf = mmap.mmap(-1, size)
        try:
            os.lseek(self.fd, start, os.SEEK_SET)
            got = self.file.readinto(buf)
            data = buf[offset - start:offset - start + length]
        finally:
            buf.close()
        if got != size:
            raise IOError(errno.EIO, "%s: short read at %d" % (self.path,
                                                               offset))
        return data

    def write(self, offset, data):
        buf = mmap.mmap(-1, len(data))
        try:
            buf.write(data)
            os.lseek(self.fd, offset, os.SEEK_SET)
            if self.file.write(buf) != len(data):
                raise IOError(errno.EIO, "%s: short write at %d"
                              % (self.path, offset))
            os.fsync(self.fd)
        finally:
            buf.close()

    def close(self):
        self.file.close()
        os.close(self.fd)


class Store(object):
    """The two slots of one lease area."""

    def __init__(self, dev, offset):
        self.dev = dev
        self.offset = offset
        self.name = "%s (lease at byte %d)" % (dev.path, offset)

    def read_slots(self):
        area = self.dev.read(self.offset, AREA_SIZE)
        return tuple(area[i * SLOT_STRIDE:i * SLOT_STRIDE + RECORD_SIZE]
                     for i in range(SLOT_COUNT))

    def write_slot(self, slot, data):
        self.dev.write(self.offset + slot * SLOT_STRIDE,
                       data + b"\0" * (SLOT_STRIDE - len(data)))


# --- clocks ------------------------------------------------------------------

def _monotonic_clock():
    """time.monotonic, or CLOCK_MONOTONIC through ctypes on Python 2."""
    if hasattr(time, "monotonic"):
        return time.monotonic
    import ctypes
    import ctypes.util

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                       use_errno=True)
    ts = Timespec()

    def monotonic():
        if libc.clock_gettime(1, ctypes.byref(ts)) != 0:
            raise OSError(ctypes.get_errno(), "clock_gettime failed")
        return ts.tv_sec + ts.tv_nsec * 1e-9
    return monotonic


# The clocks the plugin functions use: module names, so that a simulated
# host (the project's embedded XAPI) can give each dom0 its own.
monotonic = _monotonic_clock()
sleep = time.sleep
wall_clock = time.time


# --- what this host holds ----------------------------------------------------

def _boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except (IOError, OSError):
        return "unknown"


class FileState(object):
    """The held record and its start time, one small file per SR."""

    def __init__(self, directory, sr_uuid):
        self.path = os.path.join(directory, "lease-%s.json" % sr_uuid)
        self.boot = _boot_id()

    def load(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (IOError, OSError, ValueError):
            return None
        return data if data.get("boot") == self.boot else None

    def save(self, held):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(held, boot=self.boot), f)
        os.rename(tmp, self.path)

    def clear(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass


class MemoryState(object):
    """The same, kept in memory (tests and the embedded XAPI)."""

    def __init__(self):
        self.held = None

    def load(self):
        return self.held

    def save(self, held):
        self.held = dict(held)

    def clear(self):
        self.held = None


# --- the delta lease (keep equal to nova_xenapi_resign/lease/protocol.py) ----

class Lease(object):
    """One host's view of one SR's lease, remembered across calls."""

    def __init__(self, store, sr_uuid, pool, host, duration, io_timeout,
                 state, clock=None, sleep=time.sleep, wall_clock=time.time):
        if io_timeout <= 0 or duration <= 4 * io_timeout:
            raise ValueError("lease duration %.3f must exceed 4 x io_timeout "
                             "%.3f" % (duration, io_timeout))
        self.store = store
        self.sr_uuid = sr_uuid
        self.pool = pool
        self.host = host
        self.duration = duration
        self.io_timeout = io_timeout
        self.state = state
        self.clock = clock or monotonic
        self.sleep = sleep
        self.wall_clock = wall_clock

    def read(self):
        raw = self.store.read_slots()
        records, errors = decode_slots(raw)
        slot = latest_slot(records)
        latest = None if slot is None else records[slot]
        if latest is not None and latest["sr_uuid"] != self.sr_uuid:
            raise LeaseFormatError("%s: lease of SR %s, expected %s" % (
                self.store.name, latest["sr_uuid"], self.sr_uuid))
        return {"raw": raw, "records": records, "errors": errors,
                "slot": slot, "latest": latest}

    def _wait(self, seconds):
        end = self.clock() + seconds
        while True:
            left = end - self.clock()
            if left <= 0:
                return
            self.sleep(left)

    def _record(self, state, generation, counter, owner=("", ""),
                next_owner=("", "")):
        return {"sr_uuid": self.sr_uuid, "state": state,
                "generation": generation, "counter": counter,
                "duration_ms": int(round(self.duration * 1000)),
                "written_at_ms": int(self.wall_clock() * 1000),
                "owner_pool": owner[0], "owner_host": owner[1],
                "next_pool": next_owner[0], "next_host": next_owner[1]}

    def _write(self, snap, rec):
        slot = 0 if snap["slot"] is None else (snap["slot"] + 1) % SLOT_COUNT
        started = self.clock()
        self.store.write_slot(slot, encode(rec))
        return started

    def _owner_of(self, rec):
        if rec is None or rec["state"] != HELD:
            return "nobody"
        return "host %s of pool %s" % (rec["owner_host"], rec["owner_pool"])

    def acquire(self):
        first, wait = self.begin()
        self._wait(wait)
        claim, since, wait = self.claim(first)
        self._wait(wait)
        return self.confirm(claim, since)

    def begin(self):
        """First read; the seconds to watch it before claim()."""
        first = self.read()
        latest = first["latest"]
        free_for_me = (latest is not None and latest["state"] == FREE and
                       (latest["next_pool"], latest["next_host"]) in
                       (("", ""), (self.pool, self.host)))
        return first, 0.0 if free_for_me else self.duration + self.io_timeout

    def claim(self, first):
        """Refuse if changed since first, else write the claim.

        No claim wait when the record was handed over to us by name.
        """
        me = (self.pool, self.host)
        last = self.read()
        if last["raw"] != first["raw"]:
            raise LeaseRefused("%s: held by %s: it was written while we "
                               "watched it" % (self.store.name,
                                               self._owner_of(last["latest"])))
        latest = first["latest"]
        generation = latest["generation"] + 1 if latest else 1
        claim = self._record(HELD, generation, 0, owner=me)
        since = self._write(last, claim)
        reserved = latest is not None and (
            latest["next_pool"], latest["next_host"]) == me
        return claim, since, 0.0 if reserved else 3 * self.io_timeout

    def confirm(self, claim, since):
        check = self.read()
        if check["latest"] != claim:
            raise LeaseRefused("%s: held by %s: another host claimed it at "
                               "the same time and won" % (
                                   self.store.name,
                                   self._owner_of(check["latest"])))
        self.state.save({"record": claim, "since": since,
                         "offset": getattr(self.store, "offset", None)})
        return claim

    def _check_owner(self):
        held = self.state.load()
        if held is not None and (held["record"]["owner_pool"],
                                 held["record"]["owner_host"]) != (
                                     self.pool, self.host):
            held = None
        if held is None:
            raise LeaseLost("%s: this host does not hold the lease"
                            % self.store.name)
        age = self.clock() - held["since"]
        if age >= self.duration:
            self.state.clear()
            raise LeaseLost("%s: lease expired %.1f s after the last "
                            "renewal (duration %.1f s); acquire it again"
                            % (self.store.name, age, self.duration))
        snap = self.read()
        if snap["latest"] != held["record"]:
            self.state.clear()
            raise LeaseLost("%s: the disk names %s: stop changing the SR"
                            % (self.store.name,
                               self._owner_of(snap["latest"])))
        return snap, held

    def renew(self):
        snap, held = self._check_owner()
        old = held["record"]
        new = self._record(HELD, old["generation"], old["counter"] + 1,
                           owner=(self.pool, self.host))
        since = self._write(snap, new)
        if self.clock() - held["since"] >= self.duration:
            self.state.clear()
            raise LeaseLost("%s: the renewal write took longer than the "
                            "lease duration" % self.store.name)
        self.state.save(dict(held, record=new, since=since))
        return new

    def release(self, next_owner=("", "")):
        snap, held = self._check_owner()
        old = held["record"]
        new = self._record(FREE, old["generation"], old["counter"] + 1,
                           next_owner=next_owner)
        self._write(snap, new)
        self.state.clear()
        return new


# --- XAPI plugin functions ---------------------------------------------------

def _arg(args, key, default=None):
    value = args.get(key, default)
    if value is None or value == "":
        raise ValueError("missing argument '%s'" % key)
    return value


def _lease_for(device, args, cached):
    """The Lease of ``args``, located afresh unless ``cached``.

    ``cached`` reuses the offset saved with the held record; a wrong one
    reads a record that is not ours, so it fails safe (LeaseLost).
    """
    sr_uuid = _arg(args, "sr_uuid")
    state = FileState(STATE_DIR, sr_uuid)
    held = state.load() if cached else None
    offset = held.get("offset") if held else None
    if offset is None:
        offset = locate(device, sr_uuid)
    return Lease(Store(device, offset), sr_uuid, args.get("pool", ""),
                 args.get("host", ""), float(args.get("duration") or 120.0),
                 float(args.get("io_timeout") or 10.0), state,
                 clock=monotonic, sleep=sleep, wall_clock=wall_clock)


def _run(args, action, cached=False):
    device = Device(_arg(args, "device"))
    try:
        return action(_lease_for(device, args, cached))
    finally:
        device.close()


def _with_lease(args, action, cached=False):
    return json.dumps(_run(args, action, cached), sort_keys=True)


def _for_owner(args):
    _arg(args, "pool")
    _arg(args, "host")
    return args


def read(session, args):
    def action(lease):
        snap = lease.read()
        return {"latest": snap["latest"], "slot": snap["slot"],
                "errors": snap["errors"]}
    return _with_lease(args, action)


def acquire(session, args):
    return _with_lease(_for_owner(args), lambda lease: lease.acquire())


def renew(session, args):
    return _with_lease(_for_owner(args), lambda lease: lease.renew(), True)


def _each(args):
    """(sr_uuid, item args) of ``leases``, a JSON list of {device, sr_uuid}."""
    _for_owner(args)
    for item in json.loads(_arg(args, "leases")):
        yield str(item.get("sr_uuid")), dict(
            args, device=item.get("device"), sr_uuid=item.get("sr_uuid"))


def _failed(exc):
    return [exc.__class__.__name__, str(exc)]


def renew_many(session, args):
    """Renew every lease in ``leases``, a JSON list of {device, sr_uuid}.

    One dom0 process per host and interval instead of one per SR.

    Never raises for one SR: the result maps each sr_uuid to its new record
    or to [error class, message], and the caller must act on each.
    """
    out = {}
    for sr_uuid, one in _each(args):
        try:
            out[sr_uuid] = _run(one, lambda lease: lease.renew(), True)
        except Exception as exc:  # reported per SR, see the docstring
            out[sr_uuid] = _failed(exc)
    return json.dumps(out, sort_keys=True)


def acquire_leases(leases):
    """acquire() for several Leases of one host, with one wait per step.

    Interleaved: every first read, the longest watch any needs, every
    claim, the longest claim wait, every check; N SRs wait one D + T and
    one 3T at most.  Never raises for one SR: {sr_uuid: claim or error}.
    """
    out, steps = {}, [(lease, None) for lease in leases]
    for step in ("begin", "claim", "confirm"):
        results, wait = [], 0.0
        for lease, arg in steps:
            try:
                if step == "begin":
                    first, seconds = lease.begin()
                    results.append((lease, first))
                elif step == "claim":
                    claim, since, seconds = lease.claim(arg)
                    results.append((lease, (claim, since)))
                else:
                    out[lease.sr_uuid] = lease.confirm(*arg)
                    seconds = 0.0
            except (LeaseFormatError, LeaseRefused, LeaseLost,
                    EnvironmentError) as exc:
                out[lease.sr_uuid] = exc
                continue
            wait = max(wait, seconds)
        if results:
            results[0][0]._wait(wait)
        steps = results
    return out


def acquire_many(session, args):
    """Acquire every lease in ``leases`` (acquire_leases); like renew_many."""
    out, devices, leases = {}, [], []
    try:
        for sr_uuid, one in _each(args):
            try:
                device = Device(_arg(one, "device"))
                devices.append(device)
                leases.append(_lease_for(device, one, False))
            except Exception as exc:  # reported per SR
                out[sr_uuid] = _failed(exc)
        for sr_uuid, result in acquire_leases(leases).items():
            out[sr_uuid] = (_failed(result) if isinstance(result, Exception)
                            else result)
    finally:
        for device in devices:
            device.close()
    return json.dumps(out, sort_keys=True)


def release(session, args):
    return _with_lease(_for_owner(args), lambda lease: lease.release(), True)


def hand_over(session, args):
    nxt = (_arg(args, "next_pool"), _arg(args, "next_host"))
    return _with_lease(_for_owner(args), lambda lease: lease.release(nxt),
                       True)


FUNCTIONS = {"read": read, "acquire": acquire, "acquire_many": acquire_many,
             "renew": renew, "renew_many": renew_many, "release": release,
             "hand_over": hand_over}


if __name__ == "__main__":
    import XenAPIPlugin
    XenAPIPlugin.dispatch(FUNCTIONS)
