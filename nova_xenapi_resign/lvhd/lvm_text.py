"""LVM2 text metadata: parse, serialize and edit, without any I/O.

An LVHD SR keeps its whole volume group description as text in the metadata
area of its single PV.  Resigning a cloned SR means rewriting a handful of
identifiers in that text (VG name and id, PV ids, LV names and ids, seqno)
while leaving every other byte alone, so the text written back must be what
LVM itself would have written.  This module provides the three layers that
make that safe:

1. **Grammar** -- :func:`parse` / :func:`serialize` for the libdm config
   grammar exactly as lvm2 reads and writes it (``libdm/libdm-config.c``,
   ``lib/format_text/export.c``): ``key = value``, ``name { ... }``, lists
   ``[a, b]``, double-quoted strings with ``\\"`` and ``\\\\`` escapes,
   single-quoted and bare strings, 64-bit integers, floats, ``#`` comments.
2. **Tree** -- :class:`Section`, an immutable ordered tree.  Its *content*
   (keys, values, order) defines equality; its *layout* (blank lines,
   comments, multi-line lists, indentation) rides along outside equality so
   that ``serialize(parse(text)) == text`` for text lvm2 wrote, byte for
   byte, while ``parse(serialize(tree)) == tree`` holds for every tree.
3. **Model** -- :class:`VolumeGroup` and friends, validated views of a tree
   (:func:`parse_vg`), plus :func:`reidentify`, the one pure edit the resign
   engine needs, and deterministic LVM ids (:func:`derive_lvm_id`).

Nothing here opens a file or a device: bytes or text in, objects or text out.
"""

from __future__ import annotations

import dataclasses
import decimal
import hashlib
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

from nova_xenapi_resign import exception

__all__ = [
    "Scalar", "Value", "Node", "Path",
    "EntryLayout", "SectionLayout", "Section",
    "parse", "serialize", "serialize_bytes",
    "PhysicalVolume", "Segment", "LogicalVolume", "VolumeGroup",
    "parse_vg", "render_vg", "reidentify",
    "LVM_ID_ALPHABET", "format_lvm_id", "unformat_lvm_id", "is_lvm_id",
    "derive_lvm_id", "is_valid_lvm_name",
    "CONTENTS", "MAX_DEPTH",
]

#: The value of the top-level ``contents`` key lvm2 requires.
CONTENTS = "Text Format Volume Group"

#: Deepest section nesting accepted.  lvm2 metadata is at most 5 deep; the
#: limit only keeps hostile input from exhausting the Python stack.
MAX_DEPTH = 64

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

Scalar = Union[str, int, float]
#: A value: a scalar, or a tuple of scalars for a ``[...]`` list.
Value = Union[Scalar, tuple]
Node = Union[Value, "Section"]
Path = Union[str, Sequence[str]]

_MISSING = object()

# ---------------------------------------------------------------------------
# Layout: everything that is not content.
# ---------------------------------------------------------------------------

_COMMENT_LINE_RE = re.compile(r"#[^\n\x00]*")
_TRAILING_COMMENT_RE = re.compile(r"[ \t]*#[^\n\x00]*")
_INDENT_RE = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class EntryLayout:
    """How one ``key = value`` or ``key {`` line was (or will be) written.

    ``before`` holds the lines just above the entry, ``""`` for a blank line
    or ``"# ..."`` for a comment line (indentation is not kept: it is
    regenerated from the nesting depth).  ``comment`` is the text after the
    entry on its own line, leading whitespace included (``"\\t# linear"``).
    ``list_lines`` says how many list elements go on each line of a
    multi-line list (lvm2 writes ``stripes`` as one ``"pv0", 0`` pair per
    line); ``None`` writes the list on one line.  ``offset`` is where the
    entry started in the parsed text (bytes), used only in error messages.
    """

    before: tuple[str, ...] = ()
    comment: str = ""
    list_lines: tuple[int, ...] | None = None
    offset: int | None = None

    def __post_init__(self) -> None:
        if not (self.before or self.comment or self.list_lines):
            return
        for line in self.before:
            if line and not _COMMENT_LINE_RE.fullmatch(line):
                raise ValueError("layout line must be blank or a '#' "
                                 "comment: %r" % (line,))
        if self.comment and not _TRAILING_COMMENT_RE.fullmatch(self.comment):
            raise ValueError("trailing comment must be whitespace then '#': "
                             "%r" % (self.comment,))
        if self.list_lines is not None and any(
                n <= 0 for n in self.list_lines):
            raise ValueError("list_lines must be positive counts")


_DEFAULT_ENTRY = EntryLayout()


@dataclass(frozen=True)
class SectionLayout:
    """Layout of a section's own lines (see :class:`EntryLayout`).

    ``entries`` runs parallel to :attr:`Section.items` (missing entries use
    the default layout).  ``tail`` holds the blank/comment lines between the
    last entry and the closing ``}`` (or, for the document, the end of the
    text).  ``close_comment`` follows the ``}`` on its line.  ``indent`` is
    only meaningful on the document: the indentation unit it was written
    with (``""`` for lvm2's on-disk form, ``"\\t"`` for vgcfgbackup files).
    """

    entries: tuple[EntryLayout, ...] = ()
    tail: tuple[str, ...] = ()
    close_comment: str = ""
    indent: str | None = None

    def __post_init__(self) -> None:
        for line in self.tail:
            if line and not _COMMENT_LINE_RE.fullmatch(line):
                raise ValueError("layout line must be blank or a '#' "
                                 "comment: %r" % (line,))
        if (self.close_comment
                and not _TRAILING_COMMENT_RE.fullmatch(self.close_comment)):
            raise ValueError("trailing comment must be whitespace then '#': "
                             "%r" % (self.close_comment,))
        if self.indent is not None and not _INDENT_RE.fullmatch(self.indent):
            raise ValueError("indent must be spaces and tabs")


_DEFAULT_SECTION_LAYOUT = SectionLayout()

# ---------------------------------------------------------------------------
# The tree.
# ---------------------------------------------------------------------------


def _check_scalar(value: object) -> None:
    if isinstance(value, bool):
        raise TypeError("booleans are not LVM values: %r" % (value,))
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("LVM strings cannot contain NUL")
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError("LVM integers are 64-bit: %r" % (value,))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("LVM floats must be finite: %r" % (value,))
    else:
        raise TypeError("not an LVM value: %r" % (value,))


def _check_value(value: object) -> None:
    if isinstance(value, tuple):
        for element in value:
            _check_scalar(element)
    else:
        _check_scalar(value)


def _split_path(path: Path) -> tuple[str, ...]:
    if isinstance(path, str):
        parts = tuple(p for p in path.split("/") if p)
    else:
        parts = tuple(path)
    if not parts:
        raise KeyError("empty path")
    return parts


@dataclass(frozen=True)
class Section:
    """An immutable, ordered ``key -> value | Section`` mapping.

    ``items`` is the content: ``(key, value)`` pairs in text order, where a
    value is ``str``, ``int``, ``float``, a ``tuple`` of those (a list), or a
    nested :class:`Section`.  Two sections are equal when their content is
    equal; ``layout`` (comments, blank lines...) is carried along for exact
    reproduction but ignored by ``==`` and ``hash``.

    Duplicate keys are kept as written; lookups return the first.  (lvm2
    itself merges or overrides duplicates, so :func:`parse_vg` rejects them.)
    Every ``with_*`` method returns a new tree and keeps the layout of what
    it did not touch.
    """

    items: tuple[tuple[str, Node], ...] = ()
    layout: SectionLayout = field(default=_DEFAULT_SECTION_LAYOUT,
                                  compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.items, tuple):
            object.__setattr__(self, "items", tuple(self.items))
        for item in self.items:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError("items must be (key, value) pairs: %r"
                                % (item,))
            key, value = item
            if not isinstance(key, str) or not key or "\x00" in key:
                raise ValueError("keys must be non-empty strings without "
                                 "NUL: %r" % (key,))
            if not isinstance(value, Section):
                _check_value(value)

    # -- reading -----------------------------------------------------------

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.items)

    def sections(self) -> tuple[tuple[str, Section], ...]:
        """The ``(key, Section)`` items, in order."""
        return tuple((k, v) for k, v in self.items if isinstance(v, Section))

    def values(self) -> tuple[tuple[str, Value], ...]:
        """The ``(key, value)`` items that are not sections, in order."""
        return tuple((k, v) for k, v in self.items
                     if not isinstance(v, Section))

    def index(self, key: str) -> int:
        """Position of the first item named ``key`` (``KeyError`` if none)."""
        for i, (k, _) in enumerate(self.items):
            if k == key:
                return i
        raise KeyError(key)

    def entry_layout(self, index: int) -> EntryLayout:
        entries = self.layout.entries
        return entries[index] if index < len(entries) else _DEFAULT_ENTRY

    def get(self, path: Path, default: object = _MISSING) -> Node:
        """The node at ``path`` (``"a/b/c"`` or ``("a", "b", "c")``)."""
        node: Node = self
        for key in _split_path(path):
            if not isinstance(node, Section):
                node = _MISSING
                break
            for k, v in node.items:
                if k == key:
                    node = v
                    break
            else:
                node = _MISSING
                break
        if node is _MISSING:
            if default is _MISSING:
                raise KeyError(path)
            return default  # type: ignore[return-value]
        return node

    def has(self, path: Path) -> bool:
        return self.get(path, None) is not None

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.items)

    def value(self, path: Path) -> Value:
        node = self.get(path)
        if isinstance(node, Section):
            raise TypeError("%s is a section, not a value" % (path,))
        return node

    def section(self, path: Path) -> Section:
        node = self.get(path)
        if not isinstance(node, Section):
            raise TypeError("%s is a value, not a section" % (path,))
        return node

    def walk(self, prefix: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], Node]]:
        """Every ``(path, node)`` below this section, depth first."""
        for key, value in self.items:
            path = prefix + (key,)
            yield path, value
            if isinstance(value, Section):
                yield from value.walk(path)

    # -- pure edits ----------------------------------------------------------

    def _replace_item(self, index: int, key: str, node: Node) -> Section:
        items = list(self.items)
        items[index] = (key, node)
        return Section(tuple(items), self.layout)

    def _edit(self, parts: tuple[str, ...], fn) -> Section:
        """Apply ``fn(parent_section, last_key) -> Section`` at ``parts``."""
        if len(parts) == 1:
            return fn(self, parts[0])
        i = self.index(parts[0])
        child = self.items[i][1]
        if not isinstance(child, Section):
            raise KeyError("%s is not a section" % parts[0])
        return self._replace_item(i, parts[0], child._edit(parts[1:], fn))

    def with_value(self, path: Path, value: Value) -> Section:
        """Set the value at ``path``; append it to its parent if missing.

        The entry keeps its line layout (comment, blank lines above).
        Replacing a whole section with a value is refused (``TypeError``).
        """
        _check_value(value)

        def set_value(parent: Section, key: str) -> Section:
            try:
                i = parent.index(key)
            except KeyError:
                return parent._appended(key, value)
            if isinstance(parent.items[i][1], Section):
                raise TypeError("%s is a section, not a value" % (key,))
            return parent._replace_item(i, key, value)

        return self._edit(_split_path(path), set_value)

    def with_section(self, path: Path, section: Section) -> Section:
        """Replace (or append) the section at ``path``."""
        if not isinstance(section, Section):
            raise TypeError("not a Section: %r" % (section,))

        def set_section(parent: Section, key: str) -> Section:
            try:
                i = parent.index(key)
            except KeyError:
                return parent._appended(key, section)
            if not isinstance(parent.items[i][1], Section):
                raise TypeError("%s is a value, not a section" % (key,))
            return parent._replace_item(i, key, section)

        return self._edit(_split_path(path), set_section)

    def renamed(self, path: Path, new_key: str) -> Section:
        """Rename the entry at ``path`` in place (position and layout kept).

        ``KeyError`` if it does not exist; ``ValueError`` if a sibling is
        already called ``new_key``.
        """
        def rename(parent: Section, key: str) -> Section:
            i = parent.index(key)
            if new_key != key and new_key in parent:
                raise ValueError("%r already exists" % (new_key,))
            return parent._replace_item(i, new_key, parent.items[i][1])

        return self._edit(_split_path(path), rename)

    def without(self, path: Path) -> Section:
        """Remove the entry at ``path`` (``KeyError`` if missing)."""
        def remove(parent: Section, key: str) -> Section:
            i = parent.index(key)
            items = parent.items[:i] + parent.items[i + 1:]
            entries = parent.layout.entries
            entries = entries[:i] + entries[i + 1:]
            return Section(items, dataclasses.replace(parent.layout,
                                                      entries=entries))

        return self._edit(_split_path(path), remove)

    def with_entry_layout(self, path: Path, layout: EntryLayout) -> Section:
        """Replace the line layout of the entry at ``path``."""
        def relayout(parent: Section, key: str) -> Section:
            i = parent.index(key)
            entries = list(parent._padded_entries())
            entries[i] = layout
            return Section(parent.items, dataclasses.replace(
                parent.layout, entries=tuple(entries)))

        return self._edit(_split_path(path), relayout)

    def with_layout(self, layout: SectionLayout) -> Section:
        return Section(self.items, layout)

    def _padded_entries(self) -> tuple[EntryLayout, ...]:
        entries = self.layout.entries[:len(self.items)]
        return entries + (_DEFAULT_ENTRY,) * (len(self.items) - len(entries))

    def _appended(self, key: str, node: Node) -> Section:
        entries = self._padded_entries() + (_DEFAULT_ENTRY,)
        return Section(self.items + ((key, node),),
                       dataclasses.replace(self.layout, entries=entries))


# ---------------------------------------------------------------------------
# Parser.
# ---------------------------------------------------------------------------

_NUMBER_START = "0123456789+-."
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
_UNESCAPE_RE = re.compile(r'\\(["\\])')
# Token shapes of libdm's tokenizer, as regular expressions for speed.
_GAP_RE = re.compile(r"(?:[ \t\n\r\v\f]+|#[^\n]*)*")
_IDENT_RE = re.compile(r"[^ \t\n\r\v\f#={}]*")
_NUMBER_TOKEN_RE = re.compile(r"[^ \t\n\r\v\f#={},\]]*")
_DOUBLE_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)


class _EntryBuilder:
    __slots__ = ("before", "comment", "list_lines", "offset")

    def __init__(self, before: tuple[str, ...], offset: int) -> None:
        self.before = before
        self.comment = ""
        self.list_lines: tuple[int, ...] | None = None
        self.offset = offset

    def freeze(self) -> EntryLayout:
        return EntryLayout(self.before, self.comment, self.list_lines,
                           self.offset)


class _SectionBuilder:
    """A section being parsed: frozen only once its close comment is known."""

    __slots__ = ("items", "entries", "tail", "close_comment")

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self.entries: list[_EntryBuilder] = []
        self.tail: tuple[str, ...] = ()
        self.close_comment = ""

    def freeze(self, indent: str | None = None) -> Section:
        items = tuple((k, v.freeze() if isinstance(v, _SectionBuilder)
                       else v) for k, v in self.items)
        return Section(items, SectionLayout(
            entries=tuple(e.freeze() for e in self.entries),
            tail=self.tail, close_comment=self.close_comment, indent=indent))


class _Parser:
    """Recursive-descent parser over a ``str``, following libdm's tokenizer.

    It is deliberately a little stricter than libdm where libdm silently
    guesses (octal integers with a leading zero, numbers glued to letters,
    NUL in the middle of the text, out-of-range integers): text that lvm2
    would read differently from us must be refused, not resigned.
    """

    def __init__(self, text: str, device: str) -> None:
        self.s = text
        self.n = len(text)
        self.pos = 0
        self.device = device
        self.ascii = text.isascii()
        self._byte_cursor = (0, 0)      # (char position, byte offset)
        self.indent: str | None = None
        # Where a trailing comment on the current line belongs.
        self.comment_slot: object = None

    # -- errors --------------------------------------------------------------

    def byte_offset(self, pos: int) -> int:
        """UTF-8 byte offset of ``pos``, in O(distance from the last call).

        Entry offsets are asked for in increasing order, so a cursor keeps
        the parse linear even for multi-megabyte non-ASCII text.
        """
        if self.ascii:
            return pos
        last_pos, last_byte = self._byte_cursor
        if pos < last_pos:
            last_pos, last_byte = 0, 0
        offset = last_byte + len(self.s[last_pos:pos].encode(
            "utf-8", "surrogatepass"))
        self._byte_cursor = (pos, offset)
        return offset

    def error(self, pos: int, structure: str, expected: str
              ) -> exception.LvmTextError:
        pos = min(pos, self.n)
        found = self.s[pos:pos + 20]
        found = repr(found) if found else "end of text"
        return _text_error(self.s, pos, self.device, structure, expected,
                           found)

    # -- whitespace, comments and layout --------------------------------

    def skip(self) -> str:
        """Consume whitespace and comments; return what was consumed."""
        start = self.pos
        self.pos = _GAP_RE.match(self.s, start).end()  # type: ignore
        return self.s[start:self.pos]

    def take_gap(self, gap: str, at_start: bool
                 ) -> tuple[tuple[str, ...], str]:
        """Split a gap into (full lines above the next token, indentation).

        The part of the gap before its first newline is the rest of the line
        the previous token ended on: a comment there is a trailing comment
        and goes to ``self.comment_slot``.
        """
        if at_start:
            lines = gap.split("\n")
        else:
            head, sep, rest = gap.partition("\n")
            if "#" in head:
                self._set_trailing_comment(head)
            if not sep:
                return (), ""
            lines = rest.split("\n")
        partial = lines.pop()
        out = []
        for line in lines:
            text = line.lstrip(" \t\r\v\f")
            out.append(text if text.startswith("#") else "")
        if "#" in partial:
            # A comment ending the text without a newline.
            out.append(partial.lstrip(" \t\r\v\f"))
            partial = ""
        return tuple(out), partial

    def _set_trailing_comment(self, head: str) -> None:
        stripped = head.lstrip(" \t\r\v\f")
        lead = head[:len(head) - len(stripped)]
        if not _INDENT_RE.fullmatch(lead):
            lead = "\t"
        comment = lead + stripped
        slot = self.comment_slot
        if isinstance(slot, _EntryBuilder):
            slot.comment = comment
        elif isinstance(slot, _SectionBuilder):
            slot.close_comment = comment

    # -- grammar ---------------------------------------------------------

    def document(self) -> Section:
        root = self.entries(depth=0, at_start=True)
        return root.freeze(indent=self.indent or "")

    def entries(self, depth: int, at_start: bool = False) -> _SectionBuilder:
        if depth > MAX_DEPTH:
            raise self.error(self.pos, "section", "at most %d nested sections"
                             % MAX_DEPTH)
        section = _SectionBuilder()
        while True:
            gap = self.skip()
            lines, partial = self.take_gap(gap, at_start)
            at_start = False
            if self.pos >= self.n:
                if depth:
                    raise self.error(self.pos, "section", "'}'")
                section.tail = lines
                return section
            c = self.s[self.pos]
            if c == "}":
                if not depth:
                    raise self.error(self.pos, "document",
                                     "a key (unbalanced '}')")
                section.tail = lines
                self.pos += 1
                return section
            if depth == 1 and self.indent is None:
                self.indent = partial if _INDENT_RE.fullmatch(partial) else ""
            start = self.pos
            key = self.key()
            self.skip()                      # comments here are dropped
            builder = _EntryBuilder(lines, self.byte_offset(start))
            if self.pos >= self.n:
                raise self.error(self.pos, "entry %r" % key, "'=' or '{'")
            c = self.s[self.pos]
            if c == "{":
                self.pos += 1
                self.comment_slot = builder
                node: object = self.entries(depth + 1)
                self.comment_slot = node
            elif c == "=":
                self.pos += 1
                node = self.value(key, builder)
                self.comment_slot = builder
            else:
                raise self.error(self.pos, "entry %r" % key, "'=' or '{'")
            section.items.append((key, node))
            section.entries.append(builder)

    def key(self) -> str:
        s, pos = self.s, self.pos
        c = s[pos]
        if c == '"':
            key = self.double_quoted("key")
        elif c == "'":
            key = self.single_quoted("key")
        elif c in "[],=":
            raise self.error(pos, "key", "a key or '}'")
        else:
            self.pos = _IDENT_RE.match(s, pos).end()  # type: ignore
            key = s[pos:self.pos]
        if not key:
            raise self.error(pos, "key", "a non-empty key")
        return key

    def double_quoted(self, what: str) -> str:
        # A backslash protects the next character (libdm's tokenizer); only
        # \" and \\ are unescaped afterwards (dm_unescape_double_quotes).
        match = _DOUBLE_QUOTED_RE.match(self.s, self.pos)
        if match is None:
            raise self.error(self.pos, what, "a closing '\"'")
        self.pos = match.end()
        text = match.group(1)
        return _UNESCAPE_RE.sub(r"\1", text) if "\\" in text else text

    def single_quoted(self, what: str) -> str:
        start = self.pos
        end = self.s.find("'", start + 1)
        if end < 0:
            raise self.error(start, what, "a closing \"'\"")
        self.pos = end + 1
        return self.s[start + 1:end]

    def value(self, key: str, builder: _EntryBuilder) -> Value:
        gap = self.skip()
        if self.pos >= self.n:
            raise self.error(self.pos, "value of %r" % key, "a value")
        if self.s[self.pos] != "[":
            return self.scalar(key)
        self.pos += 1
        elements: list[Scalar] = []
        groups: list[int] = []
        multiline = False
        while True:
            gap = self.skip()
            if self.pos >= self.n:
                raise self.error(self.pos, "list %r" % key, "']'")
            c = self.s[self.pos]
            if c == "]":
                self.pos += 1
                multiline = multiline or "\n" in gap
                break
            if c == ",":
                raise self.error(self.pos, "list %r" % key, "a value")
            if "\n" in gap or not groups:
                multiline = multiline or "\n" in gap
                groups.append(0)
            elements.append(self.scalar(key))
            groups[-1] += 1
            gap = self.skip()
            if self.pos < self.n and self.s[self.pos] == ",":
                self.pos += 1
            elif "\n" in gap:
                # libdm allows elements without commas; keep the line break.
                multiline = True
                groups.append(0)
        if multiline and elements:
            builder.list_lines = tuple(g for g in groups if g)
        return tuple(elements)

    def scalar(self, key: str) -> Scalar:
        s, pos = self.s, self.pos
        c = s[pos]
        if c == '"':
            return self.double_quoted("string in %r" % key)
        if c == "'":
            return self.single_quoted("string in %r" % key)
        if c in "{}[],=#":
            raise self.error(pos, "value of %r" % key, "a value")
        if c in _NUMBER_START:
            end = _NUMBER_TOKEN_RE.match(s, pos).end()  # type: ignore
        else:
            end = _IDENT_RE.match(s, pos).end()  # type: ignore
        token = s[pos:end]
        if c in _NUMBER_START:
            if _INT_RE.fullmatch(token):
                digits = token.lstrip("+-")
                if len(digits) > 1 and digits[0] == "0":
                    raise self.error(pos, "integer in %r" % key,
                                     "a decimal integer without leading "
                                     "zeros (lvm2 would read it as octal)")
                number = int(token)
                if not _INT64_MIN <= number <= _INT64_MAX:
                    raise self.error(pos, "integer in %r" % key,
                                     "a 64-bit integer")
                self.pos = end
                return number
            if _FLOAT_RE.fullmatch(token):
                number = float(token)
                if not math.isfinite(number):
                    raise self.error(pos, "number in %r" % key,
                                     "a finite number")
                self.pos = end
                return number
            raise self.error(pos, "number in %r" % key, "a number")
        # A bare (unquoted) string, as libdm reads it.
        self.pos = end
        return token


def _text_error(text: str, pos: int, device: str, structure: str,
                expected: str, found: str) -> exception.LvmTextError:
    offset = len(text[:pos].encode("utf-8", "surrogatepass"))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    message = ("%s: LVM metadata text: %s at byte %d (line %d, column %d): "
               "expected %s, found %s"
               % (device, structure, offset, line, column, expected, found))
    return exception.LvmTextError(message, device=device, structure=structure,
                                  offset=offset, expected=expected,
                                  found=found, line=line, column=column)


def _decode(data: str | bytes | bytearray | memoryview, device: str) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("LVM text must be str or bytes, not %s"
                        % type(data).__name__)
    raw = bytes(data)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise exception.LvmTextError(
            "%s: LVM metadata text: invalid UTF-8 at byte %d"
            % (device, exc.start),
            device=device, structure="text encoding", offset=exc.start,
            expected="UTF-8", found=repr(raw[exc.start:exc.start + 4]))


def parse(data: str | bytes, device: str = "<text>") -> Section:
    """Parse LVM metadata text (either form) into a :class:`Section` tree.

    ``data`` is ``str`` or UTF-8 ``bytes``; trailing NUL bytes (the on-disk
    terminator, counted in the raw_locn size) are ignored, a NUL anywhere
    else is an error.  Raises :class:`~exception.LvmTextError` -- and only
    that -- for malformed input, with the byte offset and line.
    """
    text = _decode(data, device)
    stripped = text.rstrip("\x00")
    nul = stripped.find("\x00")
    if nul >= 0:
        raise _text_error(stripped, nul, device, "text", "no NUL before the "
                          "end of the text", repr(stripped[nul:nul + 20]))
    parser = _Parser(stripped, device)
    try:
        tree = parser.document()
    except RecursionError:
        raise _text_error(stripped, parser.pos, device, "section",
                          "less deeply nested sections", "too deep nesting")
    return tree


# ---------------------------------------------------------------------------
# Serializer.
# ---------------------------------------------------------------------------

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_.+\-:@/%]+")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_key(key: str) -> str:
    return key if _BARE_KEY_RE.fullmatch(key) else _quote(key)


def _format_float(number: float) -> str:
    # Positional notation only: libdm's tokenizer knows no exponent.  The
    # shortest repr, expanded exactly, reads back to the same float.
    text = format(decimal.Decimal(repr(number)), "f")
    if "." not in text:
        text += ".0"
    return text


def _format_scalar(value: Scalar) -> str:
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, float):
        return _format_float(value)
    return str(value)


def _format_value(value: Value, layout: EntryLayout, indent: str,
                  depth: int) -> str:
    if not isinstance(value, tuple):
        return _format_scalar(value)
    lines = layout.list_lines
    if not value or lines is None or sum(lines) != len(value):
        return "[" + ", ".join(_format_scalar(v) for v in value) + "]"
    out = ["["]
    pos = 0
    for i, count in enumerate(lines):
        chunk = ", ".join(_format_scalar(v) for v in value[pos:pos + count])
        pos += count
        out.append(indent * (depth + 1) + chunk
                   + ("," if i < len(lines) - 1 else ""))
    out.append(indent * depth + "]")
    return "\n".join(out)


def _emit_lines(lines: tuple[str, ...], prefix: str, out: list[str]) -> None:
    for line in lines:
        out.append((prefix + line if line else "") + "\n")


def _emit(section: Section, indent: str, depth: int, out: list[str]) -> None:
    prefix = indent * depth
    for (key, value), layout in zip(section.items,
                                    section._padded_entries()):
        _emit_lines(layout.before, prefix, out)
        if isinstance(value, Section):
            out.append("%s%s {%s\n" % (prefix, _format_key(key),
                                       layout.comment))
            _emit(value, indent, depth + 1, out)
            _emit_lines(value.layout.tail, indent * (depth + 1), out)
            out.append("%s}%s\n" % (prefix, value.layout.close_comment))
        else:
            out.append("%s%s = %s%s\n" % (
                prefix, _format_key(key),
                _format_value(value, layout, indent, depth), layout.comment))


def serialize(tree: Section, *, indent: str | None = None) -> str:
    """Write ``tree`` as LVM metadata text (no NUL terminator).

    ``indent`` is the indentation unit: ``""`` (lvm2's on-disk form) or
    ``"\\t"`` (vgcfgbackup files).  By default the unit the tree was parsed
    with is reused, so text written by lvm2 comes back byte for byte.
    """
    if indent is None:
        indent = tree.layout.indent or ""
    elif not _INDENT_RE.fullmatch(indent):
        raise ValueError("indent must be spaces and tabs")
    out: list[str] = []
    _emit(tree, indent, 0, out)
    _emit_lines(tree.layout.tail, "", out)
    return "".join(out)


def serialize_bytes(tree: Section, *, indent: str | None = None) -> bytes:
    """The on-disk bytes of ``tree``: UTF-8 text plus the NUL terminator.

    Its length is the ``size`` lvm2 records in the raw_locn.
    """
    return serialize(tree, indent=indent).encode("utf-8") + b"\x00"


# ---------------------------------------------------------------------------
# LVM identifiers and names.
# ---------------------------------------------------------------------------

#: lvm2 ``lib/id/id.c``: ids are made from the first 62 characters of
#: ``"0-9a-zA-Z!#"`` (``id_create`` takes each random byte modulo 62);
#: readers also accept ``!`` and ``#``.
LVM_ID_ALPHABET = ("0123456789abcdefghijklmnopqrstuvwxyz"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LVM_ID_VALID = frozenset(LVM_ID_ALPHABET + "!#")
_LVM_ID_GROUPS = (6, 4, 4, 4, 4, 4, 6)
_LVM_ID_RE = re.compile(r"[0-9a-zA-Z!#]{6}(?:-[0-9a-zA-Z!#]{4}){5}"
                        r"-[0-9a-zA-Z!#]{6}")
_DERIVE_DOMAIN = b"nova-xenapi-resign lvm id v1\x00"
_NAME_RE = re.compile(r"[A-Za-z0-9+_.\-]+")
_NAME_MAX = 127


def format_lvm_id(raw: str) -> str:
    """``32 chars`` -> the dashed 6-4-4-4-4-4-6 text form lvm2 prints."""
    if len(raw) != 32 or not set(raw) <= _LVM_ID_VALID:
        raise ValueError("not a 32-character LVM id: %r" % (raw,))
    parts, pos = [], 0
    for size in _LVM_ID_GROUPS:
        parts.append(raw[pos:pos + size])
        pos += size
    return "-".join(parts)


def unformat_lvm_id(text: str) -> str:
    """The 32-character label form of an id, read as lvm2 reads it.

    lvm2 (``_id_read_format``) just drops every dash and wants exactly 32
    valid characters; ``ValueError`` otherwise.
    """
    raw = text.replace("-", "")
    if len(raw) != 32 or not set(raw) <= _LVM_ID_VALID:
        raise ValueError("not an LVM id: %r" % (text,))
    return raw


def is_lvm_id(text: object) -> bool:
    """Whether ``text`` is an id in lvm2's canonical dashed form."""
    return isinstance(text, str) and bool(_LVM_ID_RE.fullmatch(text))


def derive_lvm_id(*parts: str) -> str:
    """A deterministic LVM id (dashed) from ``parts``.

    The resign engine derives every new identifier from the target SR UUID
    so that a re-run, or a resumed crashed run, produces the same bytes.
    The parts are length-prefixed (so ``("ab", "c")`` and ``("a", "bc")``
    differ), hashed with SHA-256 under a fixed domain string, and the digest
    is written as 32 base-62 digits in lvm2's own alphabet (``lib/id/id.c``:
    ``0-9a-z A-Z``), so the result is exactly what ``id_create`` could have
    produced.  Changing this function changes every derived id: don't.
    """
    if not parts:
        raise ValueError("derive_lvm_id needs at least one part")
    digest = hashlib.sha256(_DERIVE_DOMAIN)
    for part in parts:
        if not isinstance(part, str):
            raise TypeError("parts must be strings: %r" % (part,))
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    number = int.from_bytes(digest.digest(), "big")
    chars = []
    for _ in range(32):
        number, digit = divmod(number, 62)
        chars.append(LVM_ID_ALPHABET[digit])
    return format_lvm_id("".join(chars))


def is_valid_lvm_name(name: object) -> bool:
    """lvm2's rule for VG and LV names (``lvm-string.c`` ``validate_name``).

    Characters ``a-zA-Z0-9+_.-``, not starting with ``-``, not ``.`` or
    ``..``, at most 127 characters.
    """
    return (isinstance(name, str) and bool(_NAME_RE.fullmatch(name))
            and not name.startswith("-") and name not in (".", "..")
            and len(name) <= _NAME_MAX)


# ---------------------------------------------------------------------------
# Domain model.
# ---------------------------------------------------------------------------


class _Reader:
    """Typed access to one section, raising LvmTextError with context."""

    def __init__(self, section: Section, structure: str, device: str,
                 offset: int | None) -> None:
        self.section = section
        self.structure = structure
        self.device = device
        self.offset = offset

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
        node = self.section.get((key,), None)
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
            unformat_lvm_id(node)  # type: ignore[arg-type]
        except ValueError:
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

    def sub(self, key: str, required: bool = True) -> Section | None:
        node = self._get(key, required)
        if node is _MISSING:
            return None
        if not isinstance(node, Section):
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
            if not isinstance(node, Section):
                raise self.fail(key, "a section", repr(node))
            yield key, _Reader(node, structure % (key,), self.device,
                               self.section.entry_layout(i).offset)


def _check_unique_keys(section: Section, path: tuple[str, ...],
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
        if isinstance(value, Section):
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

    @property
    def visible(self) -> bool:
        return "VISIBLE" in self.status

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
    tree: Section = field(repr=False)

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
    def from_tree(cls, tree: Section, device: str = "<text>"
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
        if not is_valid_lvm_name(name):
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
    return VolumeGroup.from_tree(parse(data, device), device)


def _reordered(tree: Section, vg_name: str, vg_first: bool) -> Section:
    index = tree.index(vg_name)
    entries = list(tree._padded_entries())
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
    return Section(tuple(items), dataclasses.replace(
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
        return serialize(_reordered(vg.tree, vg.name, True), indent="")
    if form == "backup":
        return serialize(_reordered(vg.tree, vg.name, False), indent="\t")
    raise ValueError("form must be 'raw' or 'backup', not %r" % (form,))


# ---------------------------------------------------------------------------
# The resign edit.
# ---------------------------------------------------------------------------


def _ctime_comment(seconds: int) -> str:
    # What lvm2 writes after creation_time: ctime(), here always in UTC so
    # that the function stays pure and deterministic.
    return "\t# " + time.asctime(time.gmtime(seconds))


def _segment_strings(section: Section) -> Iterator[str]:
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
    if not is_valid_lvm_name(name):
        raise _invalid("invalid VG name %r" % (name,))
    if not is_lvm_id(vg_id):
        raise _invalid("invalid VG id %r" % (vg_id,))
    if isinstance(seqno, bool) or not isinstance(seqno, int) or not (
            0 <= seqno <= 0xFFFFFFFF):
        raise _invalid("seqno must be a 32-bit unsigned integer, not %r"
                       % (seqno,))
    pv_keys = {pv.key for pv in vg.pvs}
    for key, new_id in pv_ids.items():
        if key not in pv_keys:
            raise _invalid("no PV %r in VG %s" % (key, vg.name))
        if not is_lvm_id(new_id):
            raise _invalid("invalid id %r for PV %s" % (new_id, key))
    final_pv_ids = [pv_ids.get(pv.key, pv.id) for pv in vg.pvs]
    if len({unformat_lvm_id(i) for i in final_pv_ids}) != len(final_pv_ids):
        raise _invalid("PV ids would not be unique: %s" % final_pv_ids)

    lv_names = set(vg.lv_names)
    for old, new in lvs.items():
        if old not in lv_names:
            raise _invalid("no LV %r in VG %s" % (old, vg.name))
        if not (isinstance(new, tuple) and len(new) == 2):
            raise _invalid("LV %r: expected (new_name, new_id), got %r"
                           % (old, new))
        if not is_valid_lvm_name(new[0]):
            raise _invalid("invalid LV name %r" % (new[0],))
        if not is_lvm_id(new[1]):
            raise _invalid("invalid id %r for LV %s" % (new[1], old))
    final_names = [lvs[lv.name][0] if lv.name in lvs else lv.name
                   for lv in vg.lvs]
    if len(set(final_names) | set(vg.historical_lvs)) != (
            len(final_names) + len(vg.historical_lvs)):
        raise _invalid("LV names would not be unique: %s" % final_names)
    final_ids = [lvs[lv.name][1] if lv.name in lvs else lv.id
                 for lv in vg.lvs]
    if len({unformat_lvm_id(i) for i in final_ids}) != len(final_ids):
        raise _invalid("LV ids would not be unique")
    renamed = {old for old, (new, _) in lvs.items() if new != old}
    if renamed:
        lvs_section = vg.tree.section((vg.name, "logical_volumes"))
        for lv_name, lv_section in lvs_section.sections():
            for text in _segment_strings(lv_section):
                if text in renamed:
                    raise _invalid("LV %r is referenced by name from LV %r; "
                                   "renaming it would break the VG"
                                   % (text, lv_name))

    tree = vg.tree
    vg_section = tree.section((vg.name,))
    vg_section = vg_section.with_value(("id",), vg_id)
    vg_section = vg_section.with_value(("seqno",), seqno)
    for key, new_id in pv_ids.items():
        vg_section = vg_section.with_value(("physical_volumes", key, "id"),
                                           new_id)
    if lvs:
        old_lvs = vg_section.section(("logical_volumes",))
        items = []
        for key, lv_section in old_lvs.items:
            if key in lvs and isinstance(lv_section, Section):
                new_name, new_id = lvs[key]
                items.append((new_name, lv_section.with_value(("id",),
                                                              new_id)))
            else:
                items.append((key, lv_section))
        vg_section = vg_section.with_section(
            ("logical_volumes",), Section(tuple(items), old_lvs.layout))
    tree = tree.with_section((vg.name,), vg_section)
    if name != vg.name:
        tree = tree.renamed((vg.name,), name)

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
            tree.entry_layout(i), comment=_ctime_comment(creation_time)))
    return VolumeGroup.from_tree(tree, "<reidentified %s>" % name)
