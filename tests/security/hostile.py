"""Hostile values a tenant can send, each with a short id for pytest.

The contract every caller relies on:

* ``strings(base)`` wraps a *valid* value of the field under attack (``base``) in each
  hostile form: a newline and a ``program`` section after ``/healthz`` is the dangerous case,
  a bare newline is rejected by accident of the first character. A few forms ignore
  ``base`` (empty string, non-ASCII digits) because their danger is the whole value.
* ``addresses()`` are the forbidden or non-canonical IP addresses (zone ids first: Python's
  ``ipaddress`` accepts ``::1%<anything but / and %>``, newlines included).
* ``cidrs()`` are the same attacks aimed at a CIDR field.
* ``integers()`` are hostile JSON numbers and their look-alikes (``"80"``, ``true``, NaN).
* ``must_reject(value)`` says whether a value holds something that must never reach
  haproxy.cfg: a control or non-ASCII character, a quote, backslash, space, ``#``, ``$``,
  ``%``, or nothing at all.
* ``body(document)`` is the request body as bytes. ``json.dumps(..., ensure_ascii=True)``
  writes a lone surrogate as the escape ``\\ud800``, which is exactly the raw JSON text a
  hostile client sends (httpx's own encoder would refuse to encode such a string).

The representative subset (``SUBSET``) is what runs on every database backend; the full
lists run on one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Characters haproxy.cfg gives a meaning to in an unquoted word (quoting, comments,
# ${VAR} expansion, %[sample] fetches, word separators).
CONFIG_METACHARACTERS = frozenset("\"'\\#$% ")

LONG_SIZES = (300, 4096, 70000)
PROGRAM_PAYLOAD = "global\n  master-worker\nprogram x\n  command sleep 47.25\nbackend zz #"

# The ids (of strings(), addresses(), cidrs() and integers()) run on every backend.
SUBSET = frozenset({
    "newline", "nul", "program", "surrogate", "long-70000", "arabic-digits", "emoji",
    "trailing-space", "zone-newline", "zone-program", "int-2p63", "int-str", "int-true",
})


@dataclass(frozen=True)
class Hostile:
    """One hostile value and its pytest id."""

    id: str
    value: Any

    def __repr__(self) -> str:  # pytest shows this in failure headers
        return f"Hostile({self.id})"


def _around(base: str) -> list[tuple[str, str]]:
    """(id, value) pairs: each hostile form built around a valid ``base``."""
    b = base
    return [
        # Line and word separators, and the other C0/C1 controls.
        ("newline", f"{b}\nx"), ("newline-trailing", f"{b}\n"), ("cr", f"{b}\rx"),
        ("crlf", f"{b}\r\nx"), ("nul", f"{b}\x00x"), ("tab", f"{b}\tx"),
        ("vtab", f"{b}\x0bx"), ("formfeed", f"{b}\x0cx"), ("del", f"{b}\x7f"),
        ("nel", f"{b}\x85x"), ("line-separator", f"{b}\u2028x"),
        # Quoting, escaping and comments.
        ("squote", f"{b}'x"), ("dquote", f'{b}"x'), ("backslash", f"{b}\\x"),
        ("hash", f"{b}#x"),
        # Escape sequences as literal text: harmless only if nothing decodes them later.
        ("lit-x2f", f"{b}\\x2f"), ("lit-backslash-n", f"{b}\\n"), ("pct-0a", f"{b}%0a"),
        ("lit-u000a", f"{b}\\u000a"),
        # HAProxy keywords and sections after a line break, expansions, block ends.
        ("program", f"{b}\nprogram x\n  command /bin/sh"),
        # A payload that works when it lands in haproxy.cfg (HAProxy 2.6 starts the sleep):
        # master-worker allows the program section, a new backend takes the lines after it,
        # '#' comments out the rest of its own line. No '/': Python's ipaddress accepts it
        # as an IPv6 zone id.
        ("program-sleep", f"{b}\n{PROGRAM_PAYLOAD}"),
        ("global", f"{b}\nglobal\n"), ("lua-load", f"{b}\nlua-load /tmp/x.lua"),
        ("external-check", f"{b}\n  external-check command /bin/sh"),
        ("brace", f"{b}}} "), ("env", f"{b}${{HOME}}"), ("sample-fetch", f"{b}%[env(HOME)]"),
        # Sizes.
        *[(f"long-{n}", b + "a" * max(0, n - len(b))) for n in LONG_SIZES],
        # Digits and letters outside ASCII (Python's \d and int() accept the digits).
        ("arabic-digits", "\u0662\u0660\u0660"), ("fullwidth-digits", "\uff12\uff10\uff10"),
        ("arabic-digit-suffix", f"{b}\u0662"), ("latin-letter", f"{b}\u00e9"),
        ("cyrillic-letter", f"{b}\u0430"),
        ("emoji", f"{b}\U0001f600"),
        # Lone surrogate: valid JSON text, not valid UTF-8.
        ("surrogate", f"{b}\ud800"),
        # Invisible and direction-changing characters.
        ("zero-width", f"{b}\u200b"), ("bidi-override", f"{b}\u202ex"), ("bom", f"\ufeff{b}"),
        # Spaces.
        ("space-inside", f"{b} x"), ("leading-space", f" {b}"), ("trailing-space", f"{b} "),
        ("empty", ""),
    ]


def strings(base: str = "hostile") -> list[Hostile]:
    """Every hostile string form, built around ``base`` (a valid value of the field)."""
    return [Hostile(ident, value) for ident, value in _around(base)]


ADDRESS_VALUES = [
    ("zone-program", "::1%eth0\nprogram"), ("zone-newline", "::1%\n"),
    ("zone-program-sleep", f"::1%eth0:9\n{PROGRAM_PAYLOAD}"),
    ("zone-pct25", "fe80::1%25eth0"), ("zone-plain", "fe80::1%eth0"),
    ("unspecified-v4", "0.0.0.0"), ("unspecified-v6", "::"),
    ("trailing-newline", "127.0.0.1\n"), ("leading-space", " 127.0.0.1"),
    ("short-form", "127.1"), ("hex-octet", "0x7f.1"), ("leading-zero", "127.0.0.01"),
    ("cidr", "1.2.3.4/32"), ("brackets", "[::1]"), ("v4-mapped", "::ffff:127.0.0.1"),
    ("multicast", "224.0.0.1"), ("broadcast", "255.255.255.255"), ("with-port", "1.2.3.4:80"),
]


def addresses() -> list[Hostile]:
    """Forbidden or non-canonical IP addresses (every one must be refused)."""
    return [Hostile(ident, value) for ident, value in ADDRESS_VALUES]


CIDR_VALUES = [
    ("zone-program", "::1%eth0\nprogram/128"), ("zone-newline", "::1%\n"),
    ("zone-pct25", "fe80::1%25eth0/64"), ("zone-bare", "fe80::1%eth0"),
    ("trailing-newline", "10.0.0.0/8\n"), ("leading-space", " 10.0.0.0/8"),
    ("short-form", "127.1/32"), ("hex-octet", "0x7f.0.0.0/8"), ("leading-zero", "10.0.0.01/32"),
    ("prefix-leading-zero", "10.0.0.0/08"), ("host-bits", "10.0.0.1/8"),
    ("prefix-too-long", "10.0.0.0/33"), ("brackets", "[::1]/128"), ("with-port", "1.2.3.4:80/32"),
    ("v4-mapped", "::ffff:127.0.0.1/128"), ("netmask-form", "10.0.0.0/255.0.0.0"),
]


def cidrs() -> list[Hostile]:
    """Forbidden or non-canonical networks for allowed_cidrs (every one must be refused)."""
    return [Hostile(ident, value) for ident, value in CIDR_VALUES]


INTEGER_VALUES: list[tuple[str, Any]] = [
    ("int-0", 0), ("int-minus-1", -1), ("int-65536", 65536), ("int-2p31", 2 ** 31),
    ("int-2p63", 2 ** 63), ("int-2p64", 2 ** 64), ("int-10p100", 10 ** 100),
    ("float-1e3", 1e3), ("float-80.5", 80.5), ("int-str", "80"), ("int-true", True),
    ("nan", float("nan")), ("infinity", float("inf")), ("list", [80]),
]


def integers() -> list[Hostile]:
    """Hostile numbers: out of every range, too big for the database, or not integers."""
    return [Hostile(ident, value) for ident, value in INTEGER_VALUES]


def is_integer_in(value: Any, low: int, high: int) -> bool:
    """True when ``value`` is a JSON integer (not a bool) within [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def must_reject(value: Any) -> bool:
    """True when ``value`` must never reach haproxy.cfg (see the module docstring)."""
    if not isinstance(value, str) or value == "":
        return True
    return any(not (0x21 <= ord(ch) <= 0x7e) or ch in CONFIG_METACHARACTERS for ch in value)


def subset(cases: list[Hostile]) -> list[Hostile]:
    """The representative cases of ``cases`` (see ``SUBSET``)."""
    return [case for case in cases if case.id in SUBSET]


def body(document: Any) -> bytes:
    """``document`` as raw JSON bytes; lone surrogates become ``\\ud800`` escapes and NaN
    and Infinity stay the non-standard tokens Python's parser accepts."""
    return json.dumps(document, ensure_ascii=True, allow_nan=True).encode("ascii")
