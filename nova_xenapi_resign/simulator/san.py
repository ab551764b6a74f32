"""A SAN: a directory of LUN image files shared by every pool of a test.

A LUN is addressed as (portal, target IQN, LUN number), like an iSCSI LUN.
The portal is ``host[:port]`` (port 3260 when omitted).  Its SCSI id is
derived from that address only, so every pool (and every SAN object opened on
the same directory) sees the same id.  CHAP credentials can be required per
target.  The layout on disk is ``<root>/<portal>/<iqn>/lun-<n>.img`` with the
portal and IQN percent-encoded, plus ``chap.json`` in a target directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
import uuid as uuidlib

DEFAULT_PORT = 3260
_CHUNK = 1024 * 1024


def normalize_portal(portal, port=None):
    """``host[:port]`` or (host, port) -> ``host:port``."""
    portal = str(portal)
    if port not in (None, ""):
        return "%s:%s" % (portal, port)
    if portal.startswith("["):  # [v6]:port
        if "]:" in portal:
            return portal
        return "%s:%d" % (portal, DEFAULT_PORT)
    if portal.count(":") == 1:
        return portal
    return "%s:%d" % (portal, DEFAULT_PORT)


def scsi_id(portal, iqn, lun):
    """A stable NAA-style SCSI id ("36" + 31 hex digits) for a LUN address."""
    key = "%s|%s|%d" % (normalize_portal(portal), iqn, int(lun))
    return "36" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:31]


def vdi_uuid_for_scsi_id(scsiid):
    """The uuid a raw iSCSI SR gives the VDI of a LUN (same in every pool)."""
    digest = hashlib.md5(scsiid.encode("utf-8")).hexdigest()
    return str(uuidlib.UUID(digest))


def _q(text):
    return urllib.parse.quote(str(text), safe="")


def sparse_copy(src, dst, length=None):
    """Copy ``src`` into ``dst`` (same size), leaving zero runs as holes."""
    size = os.path.getsize(src) if length is None else length
    if not os.path.exists(dst):
        open(dst, "wb").close()
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        fout.truncate(max(size, os.fstat(fout.fileno()).st_size))
        offset = 0
        zero = bytes(_CHUNK)
        while offset < size:
            chunk = fin.read(min(_CHUNK, size - offset))
            if not chunk:
                break
            if chunk != zero[:len(chunk)]:
                fout.seek(offset)
                fout.write(chunk)
            else:
                # The destination may hold old data here: punch it to zero.
                fout.seek(offset)
                existing = fout.read(len(chunk))
                if existing.strip(b"\0"):
                    fout.seek(offset)
                    fout.write(chunk)
            offset += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())


class San(object):
    """LUN image files under ``root``."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    # --- addressing ------------------------------------------------------

    def target_dir(self, portal, iqn):
        return os.path.join(self.root, _q(normalize_portal(portal)), _q(iqn))

    def path(self, portal, iqn, lun):
        return os.path.join(self.target_dir(portal, iqn),
                            "lun-%d.img" % int(lun))

    def scsi_id(self, portal, iqn, lun):
        return scsi_id(portal, iqn, lun)

    def portal_exists(self, portal):
        """Whether any target was ever created behind ``portal``."""
        return os.path.isdir(os.path.join(self.root,
                                          _q(normalize_portal(portal))))

    def target_exists(self, portal, iqn):
        return os.path.isdir(self.target_dir(portal, iqn))

    def targets(self, portal):
        """IQNs behind a portal."""
        pdir = os.path.join(self.root, _q(normalize_portal(portal)))
        if not os.path.isdir(pdir):
            return []
        return sorted(urllib.parse.unquote(n) for n in os.listdir(pdir)
                      if os.path.isdir(os.path.join(pdir, n)))

    def luns(self, portal, iqn):
        """LUN numbers behind a target, ascending."""
        tdir = self.target_dir(portal, iqn)
        if not os.path.isdir(tdir):
            return []
        out = []
        for name in os.listdir(tdir):
            if name.startswith("lun-") and name.endswith(".img"):
                out.append(int(name[4:-4]))
        return sorted(out)

    def find_scsi_id(self, portal, iqn, scsiid):
        for lun in self.luns(portal, iqn):
            if scsi_id(portal, iqn, lun) == scsiid:
                return lun
        return None

    def size(self, portal, iqn, lun):
        return os.path.getsize(self.path(portal, iqn, lun))

    # --- creation --------------------------------------------------------

    def create_lun(self, portal, iqn, lun, size):
        """A new sparse LUN of ``size`` bytes; returns its image path."""
        path = self.path(portal, iqn, lun)
        if os.path.exists(path):
            raise FileExistsError(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(int(size))
        return path

    def clone_lun(self, src, portal, iqn, lun):
        """A SAN clone of ``src`` (a path or an address tuple).

        A byte copy at a new address; holes stay holes.
        """
        if isinstance(src, (tuple, list)):
            src = self.path(*src)
        path = self.path(portal, iqn, lun)
        if os.path.exists(path):
            raise FileExistsError(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        sparse_copy(src, path)
        return path

    # --- CHAP ------------------------------------------------------------

    def set_chap(self, portal, iqn, user, password):
        tdir = self.target_dir(portal, iqn)
        os.makedirs(tdir, exist_ok=True)
        with open(os.path.join(tdir, "chap.json"), "w") as f:
            json.dump({"user": user, "password": password}, f)

    def chap(self, portal, iqn):
        try:
            with open(os.path.join(self.target_dir(portal, iqn),
                                   "chap.json")) as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        return data["user"], data["password"]
