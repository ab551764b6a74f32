"""Pre-write backups of a device, their restore, and the original view.

Before the first write of a resignature every byte range it will overwrite
(plus the whole LVM metadata region) is copied into one backup file, which
is fsynced together with its directory and every directory created for it.
Its name carries a digest of the original bytes, so clones of one LUN
(which share a PV id) never share a backup.  The file serves three
purposes:

* ``xenapi-resign restore`` puts the original bytes back;
* a resignature interrupted half-way (a crash, a torn sector) is resumed by
  reading the device *through* the backup (:class:`OriginalView`): every
  range the run may have changed reads as it was, so the plan is computed
  from exactly the original state and the rerun ends with the same bytes
  as an uninterrupted run;
* the header records what was done (source identity, target, ranges with
  their sha256), so an operator can tell what a file is for.

File layout: a magic line, one line of JSON (the header), then the raw
bytes of each range in header order.
"""

from __future__ import annotations

from collections.abc import Iterable
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import time

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import device as device_mod

MAGIC = b"XENAPI-RESIGN-BACKUP 1\n"
SUFFIX = ".resign-backup"


@dataclasses.dataclass(frozen=True)
class Range:
    offset: int
    length: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Backup:
    """A backup file's header and where its data starts."""

    path: str
    device: str
    device_size: int
    target_sr_uuid: str
    source_vg_name: str
    source_pv_id: str
    source_vg_id: str
    source_seqno: int
    journals: str
    created: float
    ranges: tuple[Range, ...]
    data_offset: int

    @property
    def fingerprint(self) -> str:
        """A digest of the original bytes: which device state this holds."""
        return fingerprint((r.offset, r.length, r.sha256)
                           for r in self.ranges)

    def covers(self, offset: int, length: int) -> bool:
        return any(r.offset <= offset and offset + length <= r.offset
                   + r.length for r in self.ranges)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def fingerprint(ranges: Iterable[tuple[int, int, str]]) -> str:
    """Short digest of (offset, length, sha256) of every backed-up range."""
    digest = hashlib.sha256()
    for offset, length, sha in ranges:
        digest.update(b"%d %d %s\n" % (offset, length, sha.encode()))
    return digest.hexdigest()[:16]


def backup_path(backup_dir: str, source_pv_id: str, target: str,
                original: str) -> str:
    """Where the backup of one resignature lives.

    Keyed by source PV id, target and the :func:`fingerprint` of the
    original bytes: SAN clones of one LUN share a PV id, and a later clone
    (with other LVs, tags or MGT records) must never find - and be
    "resumed" from - the backup of an earlier one.
    """
    return os.path.join(backup_dir, "%s-%s-%s%s" % (
        _safe(source_pv_id), _safe(target), original, SUFFIX))


def target_pattern(backup_dir: str, target: str | None) -> str:
    """A glob matching the backups in ``backup_dir`` (for one target)."""
    name = "*%s" % SUFFIX
    if target is not None:
        name = "*-%s-*%s" % (_safe(target), SUFFIX)
    return os.path.join(backup_dir, name)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_durable_dirs(directory: str) -> None:
    """Create ``directory`` (and its missing parents) durably.

    A directory entry is only on disk once its parent directory is
    fsynced: every directory created here is made durable by fsyncing its
    parent, so a power loss cannot take away the directory holding a
    backup whose device writes already landed.
    """
    directory = os.path.abspath(directory)
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        _fsync_dir(os.path.dirname(path))


def read_ranges(dev: device_mod.Device, ranges: Iterable[tuple[int, int]],
                gap: int = 0) -> list[tuple[int, int, bytes]]:
    """(offset, length, bytes) of the merged ``ranges`` of ``dev``.

    ``gap`` as for :func:`~.lvhd.device.merge_ranges`: reading a few
    bytes between two nearby ranges costs less than a second read (the
    kernel reads whole pages anyway).
    """
    return [(offset, length, dev.read(offset, length))
            for offset, length in device_mod.merge_ranges(ranges, gap)]


def write_backup(dev: device_mod.Device, backup_dir: str, *,
                 target_sr_uuid: str, source_vg_name: str,
                 source_pv_id: str, source_vg_id: str, source_seqno: int,
                 journals: str, ranges: Iterable[tuple[int, int]],
                 chunks: list[tuple[int, int, bytes]] | None = None
                 ) -> Backup:
    """Copy ``ranges`` of ``dev`` into a backup file in ``backup_dir``.

    ``chunks`` is :func:`read_ranges` of ``ranges``, when the caller has
    just read them for its own use (they are not read a second time).

    Written to a private temporary name, fsynced, renamed, and the
    directory fsynced (as is every directory created on the way): when
    this returns, file and directory entries survive a power loss.  A
    crash before leaves no backup at all.  An existing backup of the same
    original bytes for the same target is kept and returned instead.
    """
    if chunks is None:
        chunks = read_ranges(dev, ranges)
    header_ranges = [{"offset": offset, "length": length,
                      "sha256": hashlib.sha256(data).hexdigest()}
                     for offset, length, data in chunks]
    path = backup_path(backup_dir, source_pv_id, target_sr_uuid, fingerprint(
        (r["offset"], r["length"], r["sha256"]) for r in header_ranges))
    make_durable_dirs(backup_dir)
    if os.path.exists(path):
        return read_backup(path)
    header = {"device": dev.path, "device_size": dev.size,
              "target_sr_uuid": target_sr_uuid,
              "source_vg_name": source_vg_name,
              "source_pv_id": source_pv_id, "source_vg_id": source_vg_id,
              "source_seqno": source_seqno, "journals": journals,
              "created": time.time(), "ranges": header_ranges}
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".",
                               suffix=".tmp", dir=backup_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            for _, _, data in chunks:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(backup_dir)
    return read_backup(path)


def _bad(path: str, reason: str) -> exception.BackupError:
    return exception.BackupError(path=path, reason=reason)


def read_backup(path: str) -> Backup:
    """Read and check a backup file's header (not its data)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
            line = f.readline(1 << 20)
            data_offset = f.tell()
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise _bad(path, "cannot read: %s" % exc.strerror)
    if magic != MAGIC:
        raise _bad(path, "not a xenapi-resign backup (magic %r)" % magic)
    try:
        header = json.loads(line)
        ranges = tuple(Range(int(r["offset"]), int(r["length"]),
                             str(r["sha256"])) for r in header["ranges"])
        backup = Backup(path=path, device=str(header["device"]),
                        device_size=int(header["device_size"]),
                        target_sr_uuid=str(header["target_sr_uuid"]),
                        source_vg_name=str(header["source_vg_name"]),
                        source_pv_id=str(header["source_pv_id"]),
                        source_vg_id=str(header["source_vg_id"]),
                        source_seqno=int(header["source_seqno"]),
                        journals=str(header["journals"]),
                        created=float(header["created"]), ranges=ranges,
                        data_offset=data_offset)
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad(path, "corrupt header: %s" % exc)
    if data_offset + sum(r.length for r in ranges) != size:
        raise _bad(path, "truncated: %d bytes of range data expected, %d "
                   "present" % (sum(r.length for r in ranges),
                                size - data_offset))
    return backup


def range_data(backup: Backup) -> list[tuple[Range, bytes]]:
    """Every range with its original bytes, checked against its sha256."""
    out = []
    with open(backup.path, "rb") as f:
        f.seek(backup.data_offset)
        for r in backup.ranges:
            data = f.read(r.length)
            if hashlib.sha256(data).hexdigest() != r.sha256:
                raise _bad(backup.path, "range at byte %d fails its sha256"
                           % r.offset)
            out.append((r, data))
    return out


def restore(dev: device_mod.Device, backup: Backup) -> int:
    """Write the original bytes back; return the number of bytes written."""
    if dev.size != backup.device_size:
        raise exception.UnsafeOperation(
            device=dev.path,
            reason="backup %s is of a %d-byte device, this one has %d bytes"
            % (backup.path, backup.device_size, dev.size))
    written = 0
    for r, data in range_data(backup):
        dev.write(r.offset, data)
        written += len(data)
    dev.fsync()
    return written


class OriginalView(object):
    """Read-only view of a device as it was before a resignature began.

    Reads inside backed-up ranges come from the backup; everything else
    from the device (a resignature never writes outside the ranges it
    backed up).  Quacks like :class:`~.device.Device` for readers.
    """

    def __init__(self, dev: device_mod.Device, backup: Backup) -> None:
        self._dev = dev
        self.path = dev.path
        self.size = dev.size
        self._ranges = range_data(backup)

    @property
    def bytes_read(self) -> int:
        return self._dev.bytes_read

    def read(self, offset: int, length: int) -> bytes:
        buf = bytearray(self._dev.read(offset, length))
        end = offset + length
        for r, data in self._ranges:
            lo, hi = max(offset, r.offset), min(end, r.offset + r.length)
            if lo < hi:
                buf[lo - offset:hi - offset] = data[lo - r.offset:
                                                    hi - r.offset]
        return bytes(buf)
