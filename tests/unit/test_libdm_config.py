"""Unit tests for nova_xenapi_resign.lvhd.libdm_config (the grammar)."""

from hypothesis import given, strategies as st

from nova_xenapi_resign import exception
from nova_xenapi_resign.lvhd import libdm_config as cfg
from nova_xenapi_resign.lvhd import vg_metadata as vgm
from tests import base
from tests.fuzz import FUZZ
from tests.unit.lvm_text_samples import VG_NAME, XS_RAW


def typed(node):
    """A comparable form of a tree where 1, 1.0 and True all differ."""
    if isinstance(node, cfg.Section):
        return ("section", tuple((k, typed(v)) for k, v in node.items))
    if isinstance(node, tuple):
        return ("list", tuple(typed(v) for v in node))
    return (type(node).__name__, node)


class TestGrammar(base.TestCase):

    def test_scalars(self):
        tree = cfg.parse('i = 42\nn = -7\np = +3\nz = 0\nf = 1.5\n'
                         'g = -.25\nh = 2.\ns = "text"\n')
        self.assertEqual(
            [("i", 42), ("n", -7), ("p", 3), ("z", 0), ("f", 1.5),
             ("g", -0.25), ("h", 2.0), ("s", "text")], list(tree.items))
        self.assertIsInstance(tree.value("i"), int)
        self.assertIsInstance(tree.value("h"), float)

    def test_int64_limits(self):
        tree = cfg.parse("a = 9223372036854775807\nb = -9223372036854775808\n")
        self.assertEqual((2 ** 63 - 1, -2 ** 63),
                         (tree.value("a"), tree.value("b")))

    def test_escapes(self):
        tree = cfg.parse(r'a = "q\"uote b\\ack other\n\x"' + "\n")
        # Only \" and \\ are escapes (libdm dm_unescape_double_quotes).
        self.assertEqual('q"uote b\\ack other\\n\\x', tree.value("a"))
        self.assertEqual(r'a = "q\"uote b\\ack other\\n\\x"' + "\n",
                         cfg.serialize(tree))

    def test_string_with_newline_and_hash(self):
        tree = cfg.parse('a = "line1\nline2 # not a comment"\nb = 1\n')
        self.assertEqual("line1\nline2 # not a comment", tree.value("a"))
        self.assertEqual(1, tree.value("b"))

    def test_single_quoted_and_bare_strings(self):
        # As in libdm, a bare string ends only at space, '#', '=', '{', '}'.
        tree = cfg.parse("a = 'no \\ escapes'\nb = bare\nc = [x y ]\n")
        self.assertEqual("no \\ escapes", tree.value("a"))
        self.assertEqual("bare", tree.value("b"))
        self.assertEqual(("x", "y"), tree.value("c"))
        self.assertEqual(tree, cfg.parse(cfg.serialize(tree)))

    def test_lists(self):
        tree = cfg.parse('e = []\nm = ["a", 1, -2, 0.5]\n'
                         'n = [1 2,3,]\nml = [\n"pv0", 0,\n"pv1", 7\n]\n')
        self.assertEqual((), tree.value("e"))
        self.assertEqual(("a", 1, -2, 0.5), tree.value("m"))
        self.assertEqual((1, 2, 3), tree.value("n"))
        self.assertEqual(("pv0", 0, "pv1", 7), tree.value("ml"))
        self.assertEqual((2, 2), tree.entry_layout(3).list_lines)
        self.assertIn('ml = [\n"pv0", 0,\n"pv1", 7\n]\n', cfg.serialize(tree))

    def test_nested_sections_and_paths(self):
        tree = cfg.parse("a {\n b {\n  c = 1\n }\n d = \"x\"\n}\ne = 2\n")
        self.assertEqual(1, tree.value("a/b/c"))
        self.assertEqual(1, tree.value(("a", "b", "c")))
        self.assertEqual("x", tree.get("a/d"))
        self.assertIsInstance(tree.section("a/b"), cfg.Section)
        self.assertIsNone(tree.get("a/zz", None))
        self.assertRaises(KeyError, tree.get, "a/zz")
        self.assertRaises(KeyError, tree.get, "e/deeper")
        self.assertRaises(TypeError, tree.section, "e")
        self.assertRaises(TypeError, tree.value, "a")
        self.assertEqual(("a", "e"), tree.keys())
        self.assertTrue(tree.has("a/b"))
        self.assertIn("a", tree)

    def test_section_on_one_line(self):
        tree = cfg.parse("a{b=1 c=[1,2]}d=3")
        self.assertEqual((("a", cfg.Section((("b", 1), ("c", (1, 2))))),
                          ("d", 3)), tree.items)

    def test_quoted_keys(self):
        tree = cfg.parse('"a b" = 1\n"x\\"y" { }\n\'s q\' = 2\n')
        self.assertEqual(("a b", 'x"y', "s q"), tree.keys())
        text = cfg.serialize(tree)
        self.assertIn('"a b" = 1', text)
        self.assertIn('"x\\"y" {', text)
        self.assertEqual(tree, cfg.parse(text))

    def test_comments_are_layout_not_content(self):
        with_comments = cfg.parse("# head\na = 1 # one\n# above b\nb {\t# open"
                                  "\nc = 2\n# tail of b\n}  # close\n# end\n")
        plain = cfg.parse("a = 1\nb {\nc = 2\n}\n")
        self.assertEqual(plain, with_comments)
        self.assertEqual(hash(plain), hash(with_comments))
        self.assertEqual(("# head",), with_comments.entry_layout(0).before)
        self.assertEqual(" # one", with_comments.entry_layout(0).comment)
        self.assertEqual("\t# open", with_comments.entry_layout(1).comment)
        b = with_comments.section("b")
        self.assertEqual(("# tail of b",), b.layout.tail)
        self.assertEqual("  # close", b.layout.close_comment)
        self.assertEqual(("# end",), with_comments.layout.tail)

    def test_layout_round_trip(self):
        text = ("# head\n\na = 1 # one\n\n# above b\nb {\t# open\n\tc = 2\n"
                "\n\t# tail of b\n}  # close\n\n# end\n")
        self.assertEqual(text, cfg.serialize(cfg.parse(text)))

    def test_comment_without_final_newline(self):
        tree = cfg.parse("a = 1\n# end")
        self.assertEqual(("# end",), tree.layout.tail)
        self.assertEqual("a = 1\n# end\n", cfg.serialize(tree))

    def test_unknown_keys_kept_in_order(self):
        text = "z = 1\nweird_key = [\"x\"]\nsub { q = 2 }\na = 0\n"
        tree = cfg.parse(text)
        self.assertEqual(("z", "weird_key", "sub", "a"), tree.keys())

    def test_duplicate_keys_kept(self):
        tree = cfg.parse("a = 1\na = 2\n")
        self.assertEqual((("a", 1), ("a", 2)), tree.items)
        self.assertEqual(1, tree.value("a"))

    def test_bytes_and_trailing_nuls(self):
        self.assertEqual(cfg.parse("a = 1\n"), cfg.parse(b"a = 1\n\0\0\0"))
        self.assertEqual(cfg.parse("a = 1\n"), cfg.parse("a = 1\n\0"))
        self.assertEqual("é", cfg.parse('a = "é"'.encode()).value("a"))
        self.assertEqual(cfg.Section(), cfg.parse(b""))
        self.assertEqual(cfg.Section(), cfg.parse(b"\0" * 10))

    def test_float_serialization_is_positional(self):
        for number in (1e-05, 1e16, -0.0, 5e-324, 1.7976931348623157e308,
                       0.1, 123.456):
            text = cfg.serialize(cfg.Section((("f", number),)))
            self.assertNotIn("e", text.split("=")[1])
            self.assertEqual(number, cfg.parse(text).value("f"))

    def test_serialize_indent(self):
        tree = cfg.parse("a {\nb = [\n1\n]\n}\n")
        self.assertEqual("a {\n\tb = [\n\t\t1\n\t]\n}\n",
                         cfg.serialize(tree, indent="\t"))
        self.assertEqual("\t", cfg.parse(cfg.serialize(tree, indent="\t"))
                         .layout.indent)
        self.assertRaises(ValueError, cfg.serialize, tree, indent="x")

    def test_serialize_bytes(self):
        tree = cfg.parse("a = \"é\"\n")
        self.assertEqual('a = "é"\n'.encode() + b"\0",
                         cfg.serialize_bytes(tree))


class TestErrors(base.TestCase):

    CASES = [
        # (text, offset, line, structure fragment)
        ("a = ", 4, 1, "value of 'a'"),
        ('a = "open', 4, 1, "string in 'a'"),
        ("a = 'open", 4, 1, "string in 'a'"),
        ("a {\nb = 1\n", 10, 3, "section"),
        ("a = 1\n}\n", 6, 2, "document"),
        ("a = 012\n", 4, 1, "integer in 'a'"),
        ("a = 1x\n", 4, 1, "number in 'a'"),
        ("a = -\n", 4, 1, "number in 'a'"),
        ("a = .\n", 4, 1, "number in 'a'"),
        ("a = [1, 2\n", 10, 2, "list 'a'"),
        ("a = [,]\n", 5, 1, "list 'a'"),
        ("= 1\n", 0, 1, "key"),
        ("a b\n", 2, 1, "entry 'a'"),
        ("a\n", 2, 2, "entry 'a'"),
        ("a = }\n", 4, 1, "value of 'a'"),
        ('"" = 1\n', 0, 1, "key"),
        ("a = 9223372036854775808\n", 4, 1, "integer in 'a'"),
        ("a = " + "9" * 400 + ".0\n", 4, 1, "number in 'a'"),
        ("x = 1\na = 1\0b = 2\n", 11, 2, "text"),
        ("[ = 1\n", 0, 1, "key"),
    ]

    def test_cases(self):
        for text, offset, line, structure in self.CASES:
            exc = self.assertRaises(exception.LvmTextError, cfg.parse, text,
                                    "/dev/sdx")
            self.assertEqual(offset, exc.kwargs["offset"], text)
            self.assertEqual(line, exc.kwargs["line"], text)
            self.assertIn(structure, exc.kwargs["structure"], text)
            self.assertEqual("/dev/sdx", exc.kwargs["device"])
            self.assertIn("line %d" % line, str(exc))
            self.assertIsInstance(exc, exception.FormatError)

    def test_offset_is_in_bytes(self):
        exc = self.assertRaises(exception.LvmTextError, cfg.parse,
                                'é = "ü" x')
        # 'é' and 'ü' are two bytes each in UTF-8.
        self.assertEqual(11, exc.kwargs["offset"])

    def test_invalid_utf8(self):
        exc = self.assertRaises(exception.LvmTextError, cfg.parse,
                                b'a = "\xff"')
        self.assertEqual(5, exc.kwargs["offset"])
        self.assertEqual("text encoding", exc.kwargs["structure"])

    def test_too_deep(self):
        text = "a {" * (cfg.MAX_DEPTH + 5) + "}" * (cfg.MAX_DEPTH + 5)
        self.assertRaises(exception.LvmTextError, cfg.parse, text)
        depth_ok = "a {" * 10 + "}" * 10
        self.assertEqual(1, len(cfg.parse(depth_ok).items))

    def test_not_text(self):
        self.assertRaises(TypeError, cfg.parse, 42)


class TestTree(base.TestCase):

    def setUp(self):
        super().setUp()
        self.tree = cfg.parse("a = 1 # c\nb {\n\nc = [\n1, 2\n]\n}\n")

    def test_with_value_replaces_and_keeps_layout(self):
        new = self.tree.with_value("a", 5)
        self.assertEqual(5, new.value("a"))
        self.assertEqual(1, self.tree.value("a"))
        self.assertEqual("a = 5 # c\n", cfg.serialize(new).split("b")[0])
        new = self.tree.with_value("b/c", (3, 4))
        self.assertIn("c = [\n3, 4\n]", cfg.serialize(new))
        # A different length cannot keep the line grouping: inline list.
        new = self.tree.with_value("b/c", (3,))
        self.assertIn("c = [3]", cfg.serialize(new))

    def test_with_value_appends(self):
        new = self.tree.with_value("b/d", "x")
        self.assertEqual(("c", "d"), new.section("b").keys())
        self.assertRaises(KeyError, self.tree.with_value, "zz/d", 1)
        self.assertRaises(TypeError, self.tree.with_value, "b", 1)
        self.assertRaises(TypeError, self.tree.with_value, "a", True)
        self.assertRaises(ValueError, self.tree.with_value, "a",
                          float("nan"))
        self.assertRaises(ValueError, self.tree.with_value, "a", "x\0")
        self.assertRaises(ValueError, self.tree.with_value, "a", 2 ** 64)
        self.assertRaises(TypeError, self.tree.with_value, "a", [1])

    def test_with_section(self):
        sub = cfg.Section((("x", 1),))
        new = self.tree.with_section("b", sub)
        self.assertEqual(sub, new.section("b"))
        new = self.tree.with_section("n", sub)
        self.assertEqual(("a", "b", "n"), new.keys())
        self.assertRaises(TypeError, self.tree.with_section, "a", sub)

    def test_renamed(self):
        new = self.tree.renamed("b", "bb")
        self.assertEqual(("a", "bb"), new.keys())
        self.assertEqual(cfg.serialize(self.tree).replace("b {", "bb {"),
                         cfg.serialize(new))
        self.assertRaises(ValueError, self.tree.renamed, "b", "a")
        self.assertRaises(KeyError, self.tree.renamed, "q", "r")
        self.assertRaises(ValueError, self.tree.renamed, "b", "")

    def test_without(self):
        new = self.tree.without("a")
        self.assertEqual(("b",), new.keys())
        self.assertEqual("b {\n\nc = [\n1, 2\n]\n}\n", cfg.serialize(new))
        self.assertRaises(KeyError, self.tree.without, "zz")

    def test_walk(self):
        paths = [p for p, _ in self.tree.walk()]
        self.assertEqual([("a",), ("b",), ("b", "c")], paths)

    def test_construction_checks(self):
        self.assertRaises(TypeError, cfg.Section, (("a", None),))
        self.assertRaises(TypeError, cfg.Section, (("a", (cfg.Section(),)),))
        self.assertRaises(ValueError, cfg.Section, (("", 1),))
        self.assertRaises(TypeError, cfg.Section, (("a", 1, 2),))
        self.assertEqual(cfg.Section((("a", 1),)), cfg.Section([("a", 1)]))
        self.assertRaises(ValueError, cfg.EntryLayout, before=("not comment",))
        self.assertRaises(ValueError, cfg.EntryLayout, comment="x")
        self.assertRaises(ValueError, cfg.EntryLayout, list_lines=(0,))
        self.assertRaises(ValueError, cfg.SectionLayout, tail=("x",))
        self.assertRaises(ValueError, cfg.SectionLayout, indent="x")

    def test_layout_mismatch_tolerated(self):
        # A layout shorter than the items (hand-built tree) is fine.
        tree = cfg.Section((("a", 1), ("b", 2)),
                           cfg.SectionLayout(entries=(cfg.EntryLayout(
                               comment=" # one"),)))
        self.assertEqual("a = 1 # one\nb = 2\n", cfg.serialize(tree))


# --- Property tests ---------------------------------------------------------

_NO_NUL = st.characters(blacklist_categories=("Cs",),
                        blacklist_characters="\x00")
_COMMENT = st.text(st.characters(blacklist_categories=("Cs",),
                                 blacklist_characters="\x00\n"),
                   max_size=10).map(lambda t: "#" + t)
KEYS = st.one_of(st.text(_NO_NUL, min_size=1, max_size=8),
                 st.sampled_from(["id", "pv0", "segment1", "a-b", "1",
                                  VG_NAME, "x.y+z", "-", "#", "[", "'"]))
SCALARS = st.one_of(st.text(_NO_NUL, max_size=12),
                    st.integers(-2 ** 63, 2 ** 63 - 1),
                    st.floats(allow_nan=False, allow_infinity=False))
LINES = st.lists(st.one_of(st.just(""), _COMMENT), max_size=2).map(tuple)
TRAILING = st.one_of(st.just(""), st.builds(
    lambda ws, c: ws + c, st.sampled_from(["", " ", "\t", "\t\t "]),
    _COMMENT))


@st.composite
def list_layouts(draw, length):
    if not length or draw(st.booleans()):
        return None
    cuts = sorted(draw(st.sets(st.integers(1, length - 1), max_size=3))
                  if length > 1 else set())
    bounds = [0] + cuts + [length]
    return tuple(b - a for a, b in zip(bounds, bounds[1:]))


@st.composite
def sections(draw, depth=0, root=False):
    items, entries = [], []
    for _ in range(draw(st.integers(0, 4 if depth < 3 else 0) if depth < 3
                        else st.just(0))):
        key = draw(KEYS)
        kind = draw(st.integers(0, 2)) if depth < 3 else draw(
            st.integers(0, 1))
        list_lines = None
        if kind == 0:
            value = draw(SCALARS)
        elif kind == 1:
            value = tuple(draw(st.lists(SCALARS, max_size=5)))
            list_lines = draw(list_layouts(len(value)))
        else:
            value = draw(sections(depth + 1))
        items.append((key, value))
        entries.append(cfg.EntryLayout(before=draw(LINES),
                                       comment=draw(TRAILING),
                                       list_lines=list_lines))
    layout = cfg.SectionLayout(
        entries=tuple(entries), tail=draw(LINES),
        close_comment="" if root else draw(TRAILING),
        indent=draw(st.sampled_from(["", "\t", "  "])) if root else None)
    return cfg.Section(tuple(items), layout)


class TestProperties(base.TestCase):

    @FUZZ
    @given(sections(root=True))
    def test_fuzz_tree_round_trip(self, tree):
        text = cfg.serialize(tree)
        back = cfg.parse(text)
        self.assertEqual(tree, back)
        self.assertEqual(typed(tree), typed(back))
        # Layout survives too: writing it again gives the same text.
        self.assertEqual(text, cfg.serialize(back, indent=tree.layout.indent))
        self.assertEqual(back, cfg.parse(cfg.serialize_bytes(tree)))

    @FUZZ
    @given(st.text(max_size=200))
    def test_fuzz_arbitrary_text(self, text):
        try:
            vgm.parse_vg(text)
        except exception.LvmTextError:
            pass

    @FUZZ
    @given(st.text(alphabet='{}[],="\'#\\\n\t\r\x0b .+-0123456789abé\x00',
                   max_size=80))
    def test_fuzz_grammar_soup(self, text):
        try:
            tree = cfg.parse(text)
        except exception.LvmTextError:
            return
        self.assertEqual(tree, cfg.parse(cfg.serialize(tree)))

    @FUZZ
    @given(st.binary(max_size=200))
    def test_fuzz_arbitrary_bytes(self, data):
        try:
            cfg.parse(data)
        except exception.LvmTextError:
            pass

    @FUZZ
    @given(st.lists(st.tuples(st.integers(0, len(XS_RAW) - 1),
                              st.integers(0, 3),
                              st.sampled_from('{}[],="\'#\\\n 0-9ax\x00')),
                    min_size=1, max_size=4))
    def test_fuzz_mutated_real_text(self, edits):
        text = XS_RAW
        for pos, op, char in edits:
            pos = min(pos, len(text))
            if op == 0:
                text = text[:pos] + text[pos + 1:]
            elif op == 1:
                text = text[:pos] + char + text[pos:]
            else:
                text = text[:pos] + char + text[pos + 1:]
        try:
            vg = vgm.parse_vg(text)
        except exception.LvmTextError:
            return
        self.assertEqual(vg, vgm.parse_vg(vgm.render_vg(vg)))
