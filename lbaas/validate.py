"""The closed forms of every tenant value that can reach a device's configuration.

Both ends use these rules: the API (a ``ValueError`` becomes a 400 naming the field) and
the HAProxy appliance (an ``InvalidRequest``), so nothing is accepted at the API that the
appliance will refuse, and nothing reaches haproxy.cfg that was not checked twice.

Each function takes the value as given and returns its canonical form, or raises
``ValueError`` with a message that quotes nothing but what the rule allows. Patterns are
matched whole (``fullmatch``) and ASCII-only: ``$`` would accept a trailing newline and
``\\d`` would accept Arabic-Indic digits.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# Characters that mean something to HAProxy's configuration parser in an unquoted word:
# quotes and backslash (quoting), '#' (comment), '$' ("${VAR}" expansion), '%' ("%[...]"
# sample fetches in log-format words), space and every control character (word and line
# separators). Whatever is rendered is built from the allow-lists below, which exclude them.
CONFIG_METACHARACTERS: Final = frozenset("\"'\\#$% \t\r\n\x00")

# RFC 3986 path and query characters without the ones above (so no percent-escapes either).
_URL_PATH = re.compile(r"/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,1023}", re.ASCII)
# Cookie names: the RFC 6265 token characters that are also inert in haproxy.cfg.
_COOKIE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}", re.ASCII)
# "200", "200-204", "200,202,301" (Octavia's expected_codes forms) or a list mixing both.
_EXPECTED_CODES = re.compile(r"[0-9]{3}(?:-[0-9]{3})?(?:,[0-9]{3}(?:-[0-9]{3})?)*", re.ASCII)
# One DNS label: letters, digits, inner hyphens.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)", re.ASCII)
MAX_HOSTNAME: Final = 253

# insert_headers an HTTP listener can carry, and the values that turn them on or off.
BROADCAST: Final = ipaddress.ip_address("255.255.255.255")
INSERT_HEADERS: Final = ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")
_TRUE: Final = ("true", "True", "TRUE", "1", "yes")
_FALSE: Final = ("false", "False", "FALSE", "0", "no")


def ip_address(value: str) -> str:
    """A canonical IPv4 or IPv6 address: no zone id, no spaces, not 0.0.0.0/:: nor multicast.

    The zone id is refused outright: Python accepts ``::1%<almost anything>``, newlines
    included, and an address is rendered into a ``server`` or ``bind`` line.
    """
    if not isinstance(value, str) or "%" in value or value != value.strip():
        raise ValueError("must be an IP address without a zone id or spaces")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("is not an IP address") from None
    if address.is_unspecified:
        raise ValueError("must not be the unspecified address (0.0.0.0 or ::)")
    if address.is_multicast or address == BROADCAST:
        raise ValueError("must not be a multicast or broadcast address")
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        raise ValueError("must be given as IPv4, not as an IPv4-mapped IPv6 address")
    return str(address)


def cidr(value: str) -> str:
    """A network in canonical CIDR form, e.g. ``10.0.0.0/8``: no host bits, no netmask."""
    try:
        network = ipaddress.ip_network(value)
    except (TypeError, ValueError):
        network = None
    if network is None or str(network) != value:
        raise ValueError("must be a network in CIDR form such as 10.0.0.0/8, without host bits")
    return value


def url_path(value: str) -> str:
    """An absolute URL path (and query) such as ``/healthz?full=1``."""
    if not _URL_PATH.fullmatch(value):
        raise ValueError("must be an absolute URL path such as /healthz, of letters, digits, "
                         "-._~!&()*+,;=:@/? (at most 1024 characters)")
    return value


def cookie_name(value: str) -> str:
    if not _COOKIE_NAME.fullmatch(value):
        raise ValueError("must be 1 to 64 letters, digits, '_', '.' or '-'")
    return value


def expected_codes(value: str) -> str:
    """Status codes: one (200), a list (200,202), a range (200-204) or a list of codes and
    ranges (200-204,301), each in 100-599."""
    if not _EXPECTED_CODES.fullmatch(value):
        raise ValueError("must be a status code, a list (200,202) or a range (200-204)")
    for part in value.split(","):
        low, _, high = part.partition("-")
        if not 100 <= int(low) <= 599 or (high and not int(low) <= int(high) <= 599):
            raise ValueError(f"{part} is not a status code (100-599) or an ascending range of them")
    return value


def hostname(value: str) -> str:
    """A DNS name such as ``www.example.com`` (a trailing dot is dropped)."""
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > MAX_HOSTNAME or not all(
            _LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError("must be a host name of letters, digits, '-' and dots")
    return name


def insert_headers(value: dict[str, str], protocol: str) -> dict[str, str]:
    """The headers to insert as ``{name: "true"|"false"}``; only HTTP listeners insert any."""
    out: dict[str, str] = {}
    for name, flag in value.items():
        if name not in INSERT_HEADERS:
            raise ValueError(f"unsupported header; supported: {', '.join(INSERT_HEADERS)}")
        if flag not in _TRUE + _FALSE:
            raise ValueError(f"the value of {name} must be true or false")
        out[name] = "true" if flag in _TRUE else "false"
    if any(flag == "true" for flag in out.values()) and protocol != "HTTP":
        raise ValueError(f"headers can only be inserted by HTTP listeners, not {protocol}")
    return out


# --- L7 rules and redirects ---------------------------------------------------------------
# Rule values are rendered as single unquoted words after ``-m <match>``: every character
# below is inert there. A regex may use classes, groups, anchors and quantifiers but no
# backslash (HAProxy's parser would eat it: write [.] for a literal dot) and never "${".
_RULE_VALUE = {
    "HOST_NAME": re.compile(r"[A-Za-z0-9.\-*]{1,255}", re.ASCII),
    "PATH": re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/?]{1,1024}", re.ASCII),
    "FILE_TYPE": re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII),
    "HEADER": re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/?<>|^]{1,1024}", re.ASCII),
    "COOKIE": re.compile(r"[A-Za-z0-9\-._~!&()*+,:@/?=]{1,1024}", re.ASCII),
}
_REGEX = re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/?^$\[\]{}|<>]{1,1024}", re.ASCII)
# Header names: RFC 7230 tokens without the characters that mean something to HAProxy.
_HEADER_NAME = re.compile(r"[A-Za-z0-9\-_.!*+^|~]{1,64}", re.ASCII)
_KEYED = ("HEADER", "COOKIE")
# scheme://host[:port][path]: the host a DNS name, an IPv4 address or [IPv6].
_REDIRECT = re.compile(
    r"https?://(?:[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
    r"(?:/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,2000})?", re.ASCII)


def l7_rule(rule_type: str, compare_type: str, key: str | None,
            value: str) -> tuple[str | None, str]:
    """The (key, value) of an L7 rule in closed form.

    HEADER and COOKIE rules need a key (the header or cookie name), others take none;
    FILE_TYPE compares with EQUAL_TO or REGEX only; a REGEX value must compile.
    """
    if rule_type in _KEYED:
        if not key:
            raise ValueError(f"a {rule_type} rule needs a key (the {rule_type.lower()} name)")
        try:
            key = header_name(key) if rule_type == "HEADER" else cookie_name(key)
        except ValueError as exc:
            raise ValueError(f"the key {exc}") from None
    elif key:
        raise ValueError(f"a {rule_type} rule takes no key")
    if rule_type == "FILE_TYPE" and compare_type not in ("EQUAL_TO", "REGEX"):
        raise ValueError("a FILE_TYPE rule compares with EQUAL_TO or REGEX only")
    if compare_type == "REGEX":
        return key, _regex(value)
    pattern = _RULE_VALUE.get(rule_type)
    if pattern is None or not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"the value of a {rule_type} rule has a character it may not hold "
                         f"(allowed: {_allowed(pattern)})")
    return key, value


def header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError("must be a header name of 1 to 64 letters, digits and -_.!*+^|~")
    return value


def _regex(value: str) -> str:
    if not isinstance(value, str) or not _REGEX.fullmatch(value) or "${" in value:
        raise ValueError(f"the value (a regex) has a character it may not hold (allowed: "
                         f"{_allowed(_REGEX)}; no backslash: write [.] for a literal dot)")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"the value (a regex) does not compile: {exc}") from None
    return value


def _allowed(pattern: re.Pattern[str] | None) -> str:
    # The character class of the pattern, as written: "A-Za-z0-9\-._~...".
    return "nothing" if pattern is None else pattern.pattern[1:pattern.pattern.rindex("]")]


def redirect_url(value: str) -> str:
    """An absolute http(s) URL, e.g. ``https://www.example.com/moved``."""
    if not isinstance(value, str) or not _REDIRECT.fullmatch(value):
        raise ValueError("must be an absolute http:// or https:// URL of letters, digits "
                         "and -._~!&()*+,;=:@/? (no spaces, quotes or percent-escapes)")
    return value


def redirect_prefix(value: str) -> str:
    """A URL prefix for REDIRECT_PREFIX, e.g. ``https://www.example.com``."""
    return redirect_url(value)
