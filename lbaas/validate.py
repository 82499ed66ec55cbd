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

import functools
import ipaddress
import re
import ssl
from typing import Final

from lbaas import constants

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
# What a TERMINATED_HTTPS listener may add about the client's certificate.
SSL_CLIENT_HEADERS: Final = constants.SSL_CLIENT_HEADERS
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
    """The headers to insert as ``{name: "true"|"false"}``: HTTP and TERMINATED_HTTPS
    listeners insert the X-Forwarded-* ones, only TERMINATED_HTTPS the client certificate
    ones (``SSL_CLIENT_HEADERS``); other listeners insert none."""
    supported = INSERT_HEADERS + SSL_CLIENT_HEADERS
    out: dict[str, str] = {}
    for name, flag in value.items():
        if name not in supported:
            raise ValueError(f"unsupported header; supported: {', '.join(supported)}")
        if flag not in _TRUE + _FALSE:
            raise ValueError(f"the value of {name} must be true or false")
        out[name] = "true" if flag in _TRUE else "false"
    inserted = [name for name, flag in out.items() if flag == "true"]
    if inserted and protocol not in ("HTTP", "TERMINATED_HTTPS"):
        raise ValueError(f"headers can only be inserted by HTTP and TERMINATED_HTTPS listeners, "
                         f"not {protocol}")
    if protocol != "TERMINATED_HTTPS" and any(name in SSL_CLIENT_HEADERS for name in inserted):
        raise ValueError("client certificate headers need a TERMINATED_HTTPS listener")
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
    # A DN field's value, e.g. a CN or an O: no spaces (match "Example Inc" with a REGEX
    # such as Example.Inc).
    "SSL_DN_FIELD": re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/?]{1,1024}", re.ASCII),
}
_REGEX = re.compile(r"[A-Za-z0-9\-._~!&()*+,;=:@/?^$\[\]{}|<>]{1,1024}", re.ASCII)
# Header names: RFC 7230 tokens without the characters that mean something to HAProxy.
_HEADER_NAME = re.compile(r"[A-Za-z0-9\-_.!*+^|~]{1,64}", re.ASCII)
_KEYED = ("HEADER", "COOKIE")
_SSL_FLAG_TYPES = ("SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT")
# OpenSSL's X509_V_ERR_* codes are small integers.
_VERIFY_RESULT = re.compile(r"[0-9]{1,5}", re.ASCII)
# scheme://host[:port][path]: the host a DNS name, an IPv4 address or [IPv6].
_REDIRECT = re.compile(
    r"https?://(?:[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
    r"(?:/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,2000})?", re.ASCII)


def l7_rule(rule_type: str, compare_type: str, key: str | None,
            value: str) -> tuple[str | None, str]:
    """The (key, value) of an L7 rule in closed form.

    HEADER and COOKIE rules need a key (the header or cookie name), others take none;
    FILE_TYPE compares with EQUAL_TO or REGEX only; a REGEX value must compile. The rules on
    the client's certificate follow Octavia: SSL_CONN_HAS_CERT is ``EQUAL_TO`` "True" (its
    canonical spelling; ``invert`` asks for no certificate), SSL_VERIFY_RESULT is ``EQUAL_TO``
    an OpenSSL verify result (a non-negative integer, 0 = verified), SSL_DN_FIELD names a
    field of the subject's distinguished name as its key and compares its value any way.
    """
    if rule_type in _SSL_FLAG_TYPES:
        return None, _ssl_flag_rule(rule_type, compare_type, key, value)
    if rule_type == "SSL_DN_FIELD":
        if key not in constants.DISTINGUISHED_NAME_FIELDS:
            raise ValueError(f"an SSL_DN_FIELD rule needs a key naming a distinguished name "
                             f"field: {', '.join(constants.DISTINGUISHED_NAME_FIELDS)}")
    elif rule_type in _KEYED:
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


def _ssl_flag_rule(rule_type: str, compare_type: str, key: str | None, value: str) -> str:
    """The value of an SSL_CONN_HAS_CERT or SSL_VERIFY_RESULT rule."""
    if key:
        raise ValueError(f"a {rule_type} rule takes no key")
    if compare_type != "EQUAL_TO":
        raise ValueError(f"a {rule_type} rule compares with EQUAL_TO only")
    if rule_type == "SSL_CONN_HAS_CERT":
        if not isinstance(value, str) or value.lower() != "true":
            raise ValueError("the value of an SSL_CONN_HAS_CERT rule must be True "
                             "(invert the rule to match connections without a certificate)")
        return "True"
    if not isinstance(value, str) or not _VERIFY_RESULT.fullmatch(value):
        raise ValueError("the value of an SSL_VERIFY_RESULT rule must be an integer from 0 "
                         "to 99999 (an OpenSSL verify result; 0 means verified)")
    return str(int(value))


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


# --- TLS ----------------------------------------------------------------------------------
MAX_CIPHERS: Final = 2048


@functools.cache
def known_ciphers() -> frozenset[str]:
    """Every cipher and TLS 1.3 suite name this host's OpenSSL knows (the allow-list)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers("ALL:@SECLEVEL=0")
    return frozenset(cipher["name"] for cipher in context.get_ciphers())


def tls_ciphers(value: str) -> str:
    """An OpenSSL cipher list written as names only, e.g. ``TLS_AES_128_GCM_SHA256:ECDHE-RSA-
    AES128-GCM-SHA256``: each name one OpenSSL knows, no ``!``/``+``/``@`` operators, no spaces.
    TLS 1.3 suites are told apart by their ``TLS_`` prefix."""
    names = value.split(":") if isinstance(value, str) and len(value) <= MAX_CIPHERS else [""]
    unknown = [name for name in names if name not in known_ciphers()]
    if unknown:
        shown = unknown[0] if re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", unknown[0], re.ASCII) else "a name"
        raise ValueError(f"must be cipher names known to OpenSSL separated by ':'; {shown} is not one")
    return ":".join(dict.fromkeys(names))


def tls_versions(value: list[str]) -> list[str]:
    """TLS versions without repeats; SSLv3 alone is refused (today's OpenSSL has none, so a
    listener offering only SSLv3 could not be served)."""
    versions = list(dict.fromkeys(value))
    if versions == ["SSLv3"]:
        raise ValueError("SSLv3 alone cannot be served (OpenSSL no longer has it); add a TLS version")
    return versions
