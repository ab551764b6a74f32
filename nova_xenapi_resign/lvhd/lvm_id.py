"""LVM identifiers and names: lvm2's rules, in one place.

An LVM id is 32 characters of ``0-9a-zA-Z!#``.  The PV label stores it
bare; metadata text and lvm2's reports print it dashed 6-4-4-4-4-4-6.
Every malformed id is refused with :class:`~nova_xenapi_resign.exception.
InvalidInput`, whichever layer (label sector or metadata text) met it.
"""

from __future__ import annotations

import hashlib
import re

from nova_xenapi_resign import exception

__all__ = [
    "LVM_ID_ALPHABET", "format_lvm_id", "parse_lvm_id", "is_lvm_id",
    "is_undashed_lvm_id",
    "derive_lvm_id", "is_valid_lvm_name",
]


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


def _as_text(value: str | bytes) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value


def format_lvm_id(raw: str | bytes) -> str:
    """``32 chars`` -> the dashed 6-4-4-4-4-4-6 text form lvm2 prints."""
    text = _as_text(raw)
    if len(text) != 32 or not set(text) <= _LVM_ID_VALID:
        raise exception.InvalidInput(
            reason="not a 32-character LVM id: %r" % (raw,))
    parts, pos = [], 0
    for size in _LVM_ID_GROUPS:
        parts.append(text[pos:pos + size])
        pos += size
    return "-".join(parts)


def parse_lvm_id(text: str | bytes) -> str:
    """The 32-character label form of an id, read as lvm2 reads it.

    lvm2 (``_id_read_format``) just drops every dash and wants exactly 32
    valid characters; ``InvalidInput`` otherwise.
    """
    raw = _as_text(text).replace("-", "")
    if len(raw) != 32 or not set(raw) <= _LVM_ID_VALID:
        raise exception.InvalidInput(reason="not an LVM id: %r" % (text,))
    return raw


def is_undashed_lvm_id(raw: str | bytes) -> bool:
    """Whether ``raw`` is an id in the 32-character form a PV label holds."""
    text = _as_text(raw)
    return len(text) == 32 and set(text) <= _LVM_ID_VALID


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
