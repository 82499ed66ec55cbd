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
