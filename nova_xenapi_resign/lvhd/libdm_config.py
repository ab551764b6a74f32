"""The libdm config grammar: parse and serialize, without any I/O.

lvm2 stores a volume group's description as text in the libdm config
grammar (``libdm/libdm-config.c``, written by ``lib/format_text/export.c``):
``key = value``, ``name { ... }``, lists ``[a, b]``, double-quoted strings
with ``\\"`` and ``\\\\`` escapes, single-quoted and bare strings, 64-bit
integers, floats, ``#`` comments.  This module knows that grammar and
nothing about volume groups (:mod:`nova_xenapi_resign.lvhd.vg_metadata`
gives the text its meaning):

* :func:`parse` / :func:`serialize` read and write it exactly as lvm2 does.
* :class:`Section` is an immutable ordered tree.  Its *content* (keys,
  values, order) defines equality; its *layout* (blank lines, comments,
  multi-line lists, indentation) rides along outside equality so that
  ``serialize(parse(text)) == text`` for text lvm2 wrote, byte for byte,
  while ``parse(serialize(tree)) == tree`` holds for every tree.

Nothing here opens a file or a device: bytes or text in, objects or text out.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Union

from nova_xenapi_resign import exception

__all__ = [
    "Scalar", "Value", "Node", "Path",
    "EntryLayout", "SectionLayout", "Section",
    "parse", "serialize", "serialize_bytes", "MAX_DEPTH",
]

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

    @classmethod
    def _parsed(cls, items: tuple, layout: SectionLayout) -> Section:
        """A section built by :func:`parse`, without checking it again.

        The parser refuses every key and value ``__post_init__`` would
        (empty keys, NUL, integers beyond 64 bits, non-finite floats), so
        checking the tree a second time only costs time.
        """
        section = object.__new__(cls)
        object.__setattr__(section, "items", items)
        object.__setattr__(section, "layout", layout)
        return section

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
            entries = list(parent.padded_entries())
            entries[i] = layout
            return Section(parent.items, dataclasses.replace(
                parent.layout, entries=tuple(entries)))

        return self._edit(_split_path(path), relayout)

    def padded_entries(self) -> tuple[EntryLayout, ...]:
        """One entry layout per item (the default for items without one)."""
        entries = self.layout.entries[:len(self.items)]
        return entries + (_DEFAULT_ENTRY,) * (len(self.items) - len(entries))

    def _appended(self, key: str, node: Node) -> Section:
        entries = self.padded_entries() + (_DEFAULT_ENTRY,)
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
# The shapes lvm2 itself writes, each matched in one step (anything else
# takes the general token-by-token path, which gives the same result):
# ``key =`` or ``key {`` on one line, and as a value a decimal integer of
# at most 18 digits, a string without escapes or a one-line list of those.
_ENTRY_HEAD_RE = re.compile(r"([^ \t\n\r\v\f#={}\"'\[\],][^ \t\n\r\v\f#={}]*)"
                            r"[ \t]*(?:(\{)|=[ \t]*)")
_PLAIN_VALUE_RE = re.compile(
    r'"([^"\\]*)"'
    r"|(-?(?:0|[1-9][0-9]{0,17}))(?=[ \t\n\r\v\f#={},\]]|\Z)"
    r'|\[((?:"[^"\\]*"(?:, "[^"\\]*")*)?)\]')


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
        return Section._parsed(items, SectionLayout(
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
        if "#" not in gap:
            # Only blank lines (the usual case): count them.
            breaks = gap.count("\n")
            if not (breaks or at_start):
                return (), ""
            return (("",) * (breaks if at_start else breaks - 1),
                    gap[gap.rfind("\n") + 1:])
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
            key, c = self.entry_head()
            builder = _EntryBuilder(lines, self.byte_offset(start))
            if c == "{":
                self.comment_slot = builder
                node: object = self.entries(depth + 1)
                self.comment_slot = node
            else:
                node = self.value(key, builder)
                self.comment_slot = builder
            section.items.append((key, node))
            section.entries.append(builder)

    def entry_head(self) -> tuple[str, str]:
        """An entry's key and what follows it, ``"="`` or ``"{"``."""
        head = _ENTRY_HEAD_RE.match(self.s, self.pos)
        if head is not None:
            self.pos = head.end()
            return head.group(1), "{" if head.group(2) else "="
        key = self.key()
        self.skip()                      # comments here are dropped
        if self.pos >= self.n or self.s[self.pos] not in "={":
            raise self.error(self.pos, "entry %r" % key, "'=' or '{'")
        self.pos += 1
        return key, self.s[self.pos - 1]

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
        plain = _PLAIN_VALUE_RE.match(self.s, self.pos)
        if plain is not None:
            self.pos = plain.end()
            kind = plain.lastindex
            if kind == 1:
                return plain.group(1)
            if kind == 2:
                return int(plain.group(2))
            inner = plain.group(3)
            return tuple(inner[1:-1].split('", "')) if inner else ()
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
                                    section.padded_entries()):
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
