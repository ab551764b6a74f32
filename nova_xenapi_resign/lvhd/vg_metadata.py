"""The LVM volume group model and the resign edit, without any I/O.

An LVHD SR keeps its whole volume group description as text in the metadata
area of its single PV.  Resigning a cloned SR means rewriting a handful of
identifiers in that text (VG name and id, PV ids, LV names and ids, seqno)
while leaving every other byte alone, so the text written back must be what
LVM itself would have written.  The grammar lives in
:mod:`~nova_xenapi_resign.lvhd.libdm_config`; this module gives it meaning:
:class:`VolumeGroup` and friends are validated views of a parsed tree
(:func:`parse_vg`), :func:`render_vg` writes one back in lvm2's raw or
backup form, and :func:`reidentify` is the one pure edit the resign engine
needs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import libdm_config
from nova_xenapi_resign.lvhd import lvm_id

__all__ = [
    "PhysicalVolume", "Segment", "LogicalVolume", "VolumeGroup",
    "parse_vg", "render_vg", "reidentify", "CONTENTS",
]

#: The value of the top-level ``contents`` key lvm2 requires.
CONTENTS = "Text Format Volume Group"

_MISSING = object()


class _Reader:
    """Typed access to one section, raising LvmTextError with context."""

    def __init__(self, section: libdm_config.Section, structure: str,
                 device: str,
                 offset: int | None) -> None:
        self.section = section
        self.structure = structure
        self.device = device
        self.offset = offset
        # First item of each key, as Section.get: one pass, not one per key.
        self._by_key = dict(reversed(section.items))

    def fail(self, key: str | None, expected: str, found: object
             ) -> exception.LvmTextError:
        offset = self.offset
        structure = self.structure
        if key is not None:
            structure = "%s key %r" % (structure, key)
            try:
                i = self.section.index(key)
            except KeyError:
                pass
            else:
                offset = self.section.entry_layout(i).offset
        offset_text = "?" if offset is None else offset
        message = ("%s: LVM metadata: %s at byte %s: expected %s, found %s"
                   % (self.device, structure, offset_text, expected, found))
        return exception.LvmTextError(message, device=self.device,
                                      structure=structure,
                                      offset=offset_text, expected=expected,
                                      found=found)

    def _get(self, key: str, required: bool) -> object:
        node = self._by_key.get(key)
        if node is None:
            if required:
                raise self.fail(key, "the key to be present", "nothing")
            return _MISSING
        return node

    def int(self, key: str, required: bool = True, minimum: int = 0
            ) -> int | None:
        node = self._get(key, required)
        if node is _MISSING:
            return None
        if not isinstance(node, int) or node < minimum:
            raise self.fail(key, "an integer >= %d" % minimum, repr(node))
        return node

    def str(self, key: str, required: bool = True) -> str | None:
        node = self._get(key, required)
        if node is _MISSING:
            return None
        if not isinstance(node, str):
            raise self.fail(key, "a string", repr(node))
        return node

    def id(self, key: str = "id") -> str:
        node = self.str(key)
        try:
            lvm_id.parse_lvm_id(node)  # type: ignore[arg-type]
        except exception.InvalidInput:
            raise self.fail(key, "an LVM id (32 characters of 0-9a-zA-Z!#)",
                            repr(node))
        return node  # type: ignore[return-value]

    def strings(self, key: str, required: bool = True) -> tuple[str, ...]:
        node = self._get(key, required)
        if node is _MISSING:
            return ()
        if not isinstance(node, tuple) or not all(
                isinstance(v, str) for v in node):
            raise self.fail(key, "a list of strings", repr(node))
        return node

    def sub(self, key: str, required: bool = True
            ) -> libdm_config.Section | None:
        node = self._get(key, required)
        if node is _MISSING:
            return None
        if not isinstance(node, libdm_config.Section):
            raise self.fail(key, "a section", repr(node))
        return node

    def child(self, key: str, structure: str, required: bool = True
              ) -> _Reader | None:
        """A reader for the subsection ``key`` (None if optional, absent)."""
        if self.sub(key, required) is None:
            return None
        i = self.section.index(key)
        return _Reader(self.section.items[i][1], structure,  # type: ignore
                       self.device, self.section.entry_layout(i).offset)

    def children(self, structure: str) -> Iterator[tuple[str, _Reader]]:
        """``(key, reader)`` for every item, each of which must be a section.

        Walks by position: a VG may have thousands of LVs, so no per-key
        lookups here.
        """
        for i, (key, node) in enumerate(self.section.items):
            if not isinstance(node, libdm_config.Section):
                raise self.fail(key, "a section", repr(node))
            yield key, _Reader(node, structure % (key,), self.device,
                               self.section.entry_layout(i).offset)


def _check_unique_keys(section: libdm_config.Section, path: tuple[str, ...],
                       device: str) -> None:
    seen = set()
    for i, (key, value) in enumerate(section.items):
        if key in seen:
            offset = section.entry_layout(i).offset
            structure = "/".join(path + (key,))
            raise exception.LvmTextError(
                "%s: LVM metadata: duplicate key %r at byte %s"
                % (device, structure, "?" if offset is None else offset),
                device=device, structure=structure,
                offset="?" if offset is None else offset,
                expected="unique keys", found="a duplicate")
        seen.add(key)
        if isinstance(value, libdm_config.Section):
            _check_unique_keys(value, path + (key,), device)


@dataclass(frozen=True)
class PhysicalVolume:
    """One ``physical_volumes/pvN`` section (sizes in 512-byte sectors)."""

    key: str
    id: str
    device: str | None
    status: tuple[str, ...]
    flags: tuple[str, ...]
    dev_size: int | None
    pe_start: int
    pe_count: int

    @classmethod
    def _read(cls, r: _Reader, key: str) -> PhysicalVolume:
        return cls(key=key, id=r.id(), device=r.str("device", False),
                   status=r.strings("status"),
                   flags=r.strings("flags", False),
                   dev_size=r.int("dev_size", False),
                   pe_start=r.int("pe_start"),  # type: ignore[arg-type]
                   pe_count=r.int("pe_count"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Segment:
    """One ``segmentN`` section of an LV.

    ``stripes`` pairs each PV *section key* (``"pv0"``) with the first
    physical extent used on it.  Segment types other than ``striped`` may
    have no stripes (their other keys stay in the tree).
    """

    key: str
    start_extent: int
    extent_count: int
    type: str
    stripe_count: int | None
    stripes: tuple[tuple[str, int], ...]

    @classmethod
    def _read(cls, r: _Reader, key: str, pv_keys: frozenset[str]
              ) -> Segment:
        seg_type = r.str("type")
        stripe_count = r.int("stripe_count", seg_type == "striped",
                             minimum=1)
        raw = r._get("stripes", seg_type == "striped")
        stripes: list[tuple[str, int]] = []
        if raw is not _MISSING:
            if (not isinstance(raw, tuple) or len(raw) % 2
                    or not all(isinstance(raw[i], str)
                               and isinstance(raw[i + 1], int)
                               and not isinstance(raw[i + 1], bool)
                               and raw[i + 1] >= 0
                               for i in range(0, len(raw), 2))):
                raise r.fail("stripes", "a list of (\"pvN\", extent) pairs",
                             repr(raw))
            stripes = [(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]
            if stripe_count is not None and len(stripes) != stripe_count:
                raise r.fail("stripes", "%d stripes (stripe_count)"
                             % stripe_count, "%d" % len(stripes))
            for pv_key, _ in stripes:
                if pv_key not in pv_keys:
                    raise r.fail("stripes", "a PV of this VG (%s)"
                                 % ", ".join(sorted(pv_keys)), repr(pv_key))
        return cls(key=key,
                   start_extent=r.int("start_extent"),  # type: ignore
                   extent_count=r.int(  # type: ignore[arg-type]
                       "extent_count", minimum=1),
                   type=seg_type,  # type: ignore[arg-type]
                   stripe_count=stripe_count, stripes=tuple(stripes))


@dataclass(frozen=True)
class LogicalVolume:
    """One ``logical_volumes/<name>`` section.

    ``id`` is only the LV half of lvm2's lvid (the VG id is the other half).
    Read-only LVs lack ``WRITE`` in ``status``; SM marks hidden raw VDIs
    with the ``hidden`` tag.
    """

    name: str
    id: str
    status: tuple[str, ...]
    flags: tuple[str, ...]
    tags: tuple[str, ...]
    creation_host: str | None
    creation_time: int | None
    segment_count: int
    segments: tuple[Segment, ...]

    @property
    def extent_count(self) -> int:
        return sum(s.extent_count for s in self.segments)

    @property
    def read_only(self) -> bool:
        return "WRITE" not in self.status

    @classmethod
    def _read(cls, r: _Reader, name: str, pv_keys: frozenset[str]
              ) -> LogicalVolume:
        count = r.int("segment_count", minimum=1)
        segments = []
        for n in range(1, count + 1):  # type: ignore[operator]
            key = "segment%d" % n
            segments.append(Segment._read(
                r.child(key, "%s %s" % (r.structure, key)),  # type: ignore
                key, pv_keys))
        creation_host = r.str("creation_host", False)
        creation_time = r.int("creation_time", creation_host is not None)
        return cls(name=name, id=r.id(), status=r.strings("status"),
                   flags=r.strings("flags", False),
                   tags=r.strings("tags", False),
                   creation_host=creation_host, creation_time=creation_time,
                   segment_count=count,  # type: ignore[arg-type]
                   segments=tuple(segments))


@dataclass(frozen=True)
class VolumeGroup:
    """A validated view of one VG's metadata text.

    ``tree`` is the whole document and the only source of truth: the other
    fields are read from it, and every edit goes through the tree so keys
    the model does not know about survive untouched.  Build one with
    :func:`parse_vg` or :meth:`from_tree`; write it with :func:`render_vg`.
    """

    name: str
    id: str
    seqno: int
    format: str | None
    extent_size: int
    status: tuple[str, ...]
    flags: tuple[str, ...]
    tags: tuple[str, ...]
    max_lv: int | None
    max_pv: int | None
    pvs: tuple[PhysicalVolume, ...]
    lvs: tuple[LogicalVolume, ...]
    historical_lvs: tuple[str, ...]
    description: str | None
    creation_host: str | None
    creation_time: int | None
    tree: libdm_config.Section = field(repr=False)

    def lv(self, name: str) -> LogicalVolume:
        for lv in self.lvs:
            if lv.name == name:
                return lv
        raise KeyError(name)

    def pv(self, key: str) -> PhysicalVolume:
        for pv in self.pvs:
            if pv.key == key:
                return pv
        raise KeyError(key)

    @property
    def lv_names(self) -> tuple[str, ...]:
        return tuple(lv.name for lv in self.lvs)

    @classmethod
    def from_tree(cls, tree: libdm_config.Section, device: str = "<text>"
                  ) -> VolumeGroup:
        """Validate ``tree`` as one VG's metadata and build the model.

        Rules (after lvm2's ``import_vsn1.c``, a little stricter): exactly
        one top-level section, the VG; ``contents`` and ``version = 1`` at
        top level; no duplicate keys anywhere; the keys lvm2 requires are
        present with the right types; every stripe names a PV of the VG.
        """
        top = _Reader(tree, "document", device, 0)
        sections = tree.sections()
        if len(sections) != 1:
            raise top.fail(None, "exactly one top-level section (the VG)",
                           "%d: %s" % (len(sections),
                                       ", ".join(k for k, _ in sections)
                                       or "none"))
        _check_unique_keys(tree, (), device)
        contents = top.str("contents")
        if contents != CONTENTS:
            raise top.fail("contents", repr(CONTENTS), repr(contents))
        version = top.int("version")
        if version != 1:
            raise top.fail("version", "1", repr(version))
        name = sections[0][0]
        if not lvm_id.is_valid_lvm_name(name):
            raise top.fail(name, "a valid VG name", repr(name))
        vg: _Reader = top.child(name, "VG %r" % name)  # type: ignore
        pvs_r: _Reader = vg.child(  # type: ignore[assignment]
            "physical_volumes", "VG %r physical_volumes" % name)
        pvs = [PhysicalVolume._read(r, key)
               for key, r in pvs_r.children("PV %r")]
        if not pvs:
            raise vg.fail("physical_volumes", "at least one PV", "none")
        pv_keys = frozenset(pv.key for pv in pvs)
        lvs = []
        lvs_r = vg.child("logical_volumes", "VG %r logical_volumes" % name,
                         False)
        if lvs_r is not None:
            lvs = [LogicalVolume._read(r, key, pv_keys)
                   for key, r in lvs_r.children("LV %r")]
        historical: tuple[str, ...] = ()
        hist_r = vg.child("historical_logical_volumes",
                          "VG %r historical_logical_volumes" % name, False)
        if hist_r is not None:
            historical = tuple(key for key, _ in hist_r.children(
                "historical LV %r"))
        return cls(name=name, id=vg.id(), seqno=vg.int("seqno"),
                   format=vg.str("format", False),
                   extent_size=vg.int("extent_size", minimum=1),
                   status=vg.strings("status"),
                   flags=vg.strings("flags", False),
                   tags=vg.strings("tags", False),
                   max_lv=vg.int("max_lv", False),
                   max_pv=vg.int("max_pv", False),
                   pvs=tuple(pvs), lvs=tuple(lvs),
                   historical_lvs=historical,
                   description=top.str("description", False),
                   creation_host=top.str("creation_host", False),
                   creation_time=top.int("creation_time", False),
                   tree=tree)  # type: ignore[arg-type]


def parse_vg(data: str | bytes, device: str = "<text>") -> VolumeGroup:
    """Parse and validate one VG's metadata text (either form)."""
    return VolumeGroup.from_tree(libdm_config.parse(data, device), device)


def _reordered(tree: libdm_config.Section, vg_name: str, vg_first: bool
               ) -> libdm_config.Section:
    index = tree.index(vg_name)
    entries = list(tree.padded_entries())
    items = list(tree.items)
    if index == (0 if vg_first else len(items) - 1):
        return tree
    vg_item, vg_layout = items.pop(index), entries.pop(index)
    vg_layout = dataclasses.replace(vg_layout,
                                    before=() if vg_first else ("",))
    if vg_first:
        items.insert(0, vg_item)
        entries.insert(0, vg_layout)
    else:
        items.append(vg_item)
        entries.append(vg_layout)
    # lvm2 ends its on-disk text with a blank line, a backup file without.
    return libdm_config.Section(tuple(items), dataclasses.replace(
        tree.layout, entries=tuple(entries),
        tail=("",) if vg_first else ()))


def render_vg(vg: VolumeGroup, *, form: str = "raw") -> str:
    """The metadata text of ``vg`` (without the on-disk NUL terminator).

    ``form="raw"`` is what lvm2 stores in the metadata area: VG section
    first, then ``contents``/``version``/``description``/``creation_*``, no
    indentation.  ``form="backup"`` is a vgcfgbackup-style file (header
    first, tab indentation) that ``vgcfgrestore -f`` reads.  A tree parsed
    from lvm2's own text in the same form is written back byte for byte.
    """
    if form == "raw":
        return libdm_config.serialize(_reordered(vg.tree, vg.name, True),
                                      indent="")
    if form == "backup":
        return libdm_config.serialize(_reordered(vg.tree, vg.name, False),
                                      indent="\t")
    raise ValueError("form must be 'raw' or 'backup', not %r" % (form,))


# ---------------------------------------------------------------------------
# The resign edit.
# ---------------------------------------------------------------------------


def ctime(seconds: int) -> str:
    """The ``ctime()`` text lvm2 writes in comments, always in UTC.

    UTC keeps every function that renders metadata pure and deterministic.
    """
    return time.asctime(time.gmtime(seconds))


def ctime_comment(seconds: int) -> str:
    """What lvm2 writes after ``creation_time`` on the same line."""
    return "\t# " + ctime(seconds)


def _segment_strings(section: libdm_config.Section) -> Iterator[str]:
    for path, node in section.walk():
        if path[-1] == "type":
            continue
        if isinstance(node, str):
            yield node
        elif isinstance(node, tuple):
            yield from (v for v in node if isinstance(v, str))


def _invalid(reason: str) -> exception.InvalidInput:
    return exception.InvalidInput(reason=reason)


def reidentify(vg: VolumeGroup, *, name: str, vg_id: str,
               pv_ids: Mapping[str, str],
               lvs: Mapping[str, tuple[str, str]], seqno: int,
               description: str | None = None,
               creation_host: str | None = None,
               creation_time: int | None = None) -> VolumeGroup:
    """Give ``vg`` a new identity; change nothing else.

    Changes exactly: the VG section key (``name``), the VG ``id``, the
    ``id`` of each PV named in ``pv_ids`` (by section key, ``"pv0"``), the
    section key and ``id`` of each LV named in ``lvs`` (old name ->
    ``(new_name, new_id)``), ``seqno``, and -- when given -- the top-level
    ``description``, ``creation_host`` and ``creation_time``.  Tags, flags,
    status, segments, PV device hints and unknown keys are untouched, as is
    the layout (blank lines, comments), except that a new creation_time
    gets a fresh ctime comment and a new creation_host loses the old host's
    uname comment.

    Refuses (``InvalidInput``) malformed names or ids, unknown PV/LV keys,
    name or id collisions, and renaming an LV that another segment refers
    to by name (thin pools, snapshots...: not an LVHD layout).
    """
    _check_identity(name, vg_id, seqno)
    _check_pv_ids(vg, pv_ids)
    _check_lv_map(vg, lvs)
    tree = _with_new_ids(vg, vg_id, seqno, pv_ids, lvs)
    if name != vg.name:
        tree = tree.renamed((vg.name,), name)
    tree = _with_header(tree, description, creation_host, creation_time)
    return _reidentified_model(vg, tree, name, vg_id, seqno, pv_ids, lvs,
                               description, creation_host, creation_time)


def _reidentified_model(vg: VolumeGroup, tree: libdm_config.Section,
                        name: str, vg_id: str, seqno: int,
                        pv_ids: Mapping[str, str],
                        lvs: Mapping[str, tuple[str, str]],
                        description: str | None, creation_host: str | None,
                        creation_time: int | None) -> VolumeGroup:
    """The model of ``tree``, from ``vg`` and the edit made to its tree.

    ``vg`` was validated when parsed and the edit only replaces ids, names
    and header values that :func:`reidentify` has checked, so validating
    the whole tree again (:meth:`VolumeGroup.from_tree`, thousands of LVs)
    would find nothing new; the tests compare the two models.
    """
    header = {k: v for k, v in (("description", description),
                                ("creation_host", creation_host),
                                ("creation_time", creation_time))
              if v is not None}
    return dataclasses.replace(
        vg, name=name, id=vg_id, seqno=seqno, tree=tree,
        pvs=tuple(dataclasses.replace(pv, id=pv_ids[pv.key])
                  if pv.key in pv_ids else pv for pv in vg.pvs),
        lvs=tuple(dataclasses.replace(lv, name=lvs[lv.name][0],
                                      id=lvs[lv.name][1])
                  if lv.name in lvs else lv for lv in vg.lvs),
        **header)


def _check_identity(name: str, vg_id: str, seqno: int) -> None:
    if not lvm_id.is_valid_lvm_name(name):
        raise _invalid("invalid VG name %r" % (name,))
    if not lvm_id.is_lvm_id(vg_id):
        raise _invalid("invalid VG id %r" % (vg_id,))
    if isinstance(seqno, bool) or not isinstance(seqno, int) or not (
            0 <= seqno <= 0xFFFFFFFF):
        raise _invalid("seqno must be a 32-bit unsigned integer, not %r"
                       % (seqno,))


def _check_pv_ids(vg: VolumeGroup, pv_ids: Mapping[str, str]) -> None:
    pv_keys = {pv.key for pv in vg.pvs}
    for key, new_id in pv_ids.items():
        if key not in pv_keys:
            raise _invalid("no PV %r in VG %s" % (key, vg.name))
        if not lvm_id.is_lvm_id(new_id):
            raise _invalid("invalid id %r for PV %s" % (new_id, key))
    final_pv_ids = [pv_ids.get(pv.key, pv.id) for pv in vg.pvs]
    if len({lvm_id.parse_lvm_id(i) for i in final_pv_ids}) != len(
            final_pv_ids):
        raise _invalid("PV ids would not be unique: %s" % final_pv_ids)


def _check_lv_map(vg: VolumeGroup,
                  lvs: Mapping[str, tuple[str, str]]) -> None:
    lv_names = set(vg.lv_names)
    for old, new in lvs.items():
        if old not in lv_names:
            raise _invalid("no LV %r in VG %s" % (old, vg.name))
        if not (isinstance(new, tuple) and len(new) == 2):
            raise _invalid("LV %r: expected (new_name, new_id), got %r"
                           % (old, new))
        if not lvm_id.is_valid_lvm_name(new[0]):
            raise _invalid("invalid LV name %r" % (new[0],))
        if not lvm_id.is_lvm_id(new[1]):
            raise _invalid("invalid id %r for LV %s" % (new[1], old))
    final_names = [lvs[lv.name][0] if lv.name in lvs else lv.name
                   for lv in vg.lvs]
    if len(set(final_names) | set(vg.historical_lvs)) != (
            len(final_names) + len(vg.historical_lvs)):
        raise _invalid("LV names would not be unique: %s" % final_names)
    final_ids = [lvs[lv.name][1] if lv.name in lvs else lv.id
                 for lv in vg.lvs]
    if len({lvm_id.parse_lvm_id(i) for i in final_ids}) != len(final_ids):
        raise _invalid("LV ids would not be unique")
    _check_not_referenced(vg, {old for old, (new, _) in lvs.items()
                               if new != old})


def _check_not_referenced(vg: VolumeGroup, renamed: set[str]) -> None:
    """Refuse renaming an LV another LV's segments name (not LVHD)."""
    if not renamed:
        return
    lvs_section = vg.tree.section((vg.name, "logical_volumes"))
    for lv_name, lv_section in lvs_section.sections():
        for text in _segment_strings(lv_section):
            if text in renamed:
                raise _invalid("LV %r is referenced by name from LV %r; "
                               "renaming it would break the VG"
                               % (text, lv_name))


def _with_new_ids(vg: VolumeGroup, vg_id: str, seqno: int,
                  pv_ids: Mapping[str, str],
                  lvs: Mapping[str, tuple[str, str]]
                  ) -> libdm_config.Section:
    """The tree with the VG, PV and LV ids (and LV names) replaced."""
    vg_section = vg.tree.section((vg.name,))
    vg_section = vg_section.with_value(("id",), vg_id)
    vg_section = vg_section.with_value(("seqno",), seqno)
    for key, new_id in pv_ids.items():
        vg_section = vg_section.with_value(("physical_volumes", key, "id"),
                                           new_id)
    if lvs:
        old_lvs = vg_section.section(("logical_volumes",))
        items = []
        for key, lv_section in old_lvs.items:
            if key in lvs and isinstance(lv_section, libdm_config.Section):
                new_name, new_id = lvs[key]
                items.append((new_name, lv_section.with_value(("id",),
                                                              new_id)))
            else:
                items.append((key, lv_section))
        vg_section = vg_section.with_section(
            ("logical_volumes",),
            libdm_config.Section(tuple(items), old_lvs.layout))
    return vg.tree.with_section((vg.name,), vg_section)


def _with_header(tree: libdm_config.Section, description: str | None,
                 creation_host: str | None, creation_time: int | None
                 ) -> libdm_config.Section:
    """The top-level description/creation_* replaced where given."""
    if description is not None:
        tree = tree.with_value(("description",), description)
    if creation_host is not None:
        tree = tree.with_value(("creation_host",), creation_host)
        i = tree.index("creation_host")
        tree = tree.with_entry_layout(("creation_host",), dataclasses.replace(
            tree.entry_layout(i), comment=""))
    if creation_time is not None:
        if isinstance(creation_time, bool) or not isinstance(
                creation_time, int) or creation_time < 0:
            raise _invalid("creation_time must be a non-negative integer")
        tree = tree.with_value(("creation_time",), creation_time)
        i = tree.index("creation_time")
        tree = tree.with_entry_layout(("creation_time",), dataclasses.replace(
            tree.entry_layout(i), comment=ctime_comment(creation_time)))
    return tree
