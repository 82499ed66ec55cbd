"""The grammar of the haproxy.cfg our template produces, checked on every rendered text.

Validation (``schema.py``, ``lbaas.validate``) keeps hostile values out; this is the second,
independent wall: a rendered configuration is refused unless every line is one the template
can produce, in the section it belongs to, with every argument in its closed form. A value
that slipped through validation could then at worst fail a render, never add a directive,
a section, a ``program``/``lua-load``/``external-check``, an environment expansion or a
comment to the configuration.

``check(text)`` returns nothing or raises ``ConfigRejected`` naming the line number.
"""

from __future__ import annotations

import re

from lbaas.appliance.errors import ConfigRejected

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_INT = r"[0-9]{1,10}"
_MS = _INT + "ms"
_PATH = r"/[A-Za-z0-9_./-]{1,200}"
_WORD = r"[a-z_][a-z0-9_-]{0,31}"
_IP = r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-f:.]{2,45})"
_ENDPOINT = rf"(?:ipv6@)?{_IP}:[0-9]{{1,5}}"
_CIDR = rf"{_IP}/[0-9]{{1,3}}"
_URL = r"/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,1023}"
_HOST = r"[A-Za-z0-9.-]{1,253}"
_COOKIE = r"[A-Za-z0-9_.-]{1,64}"
_METHOD = r"(?:GET|HEAD|POST|PUT|DELETE|TRACE|OPTIONS|PATCH|CONNECT)"
# L7 rules and policies, mirroring lbaas.validate's closed forms (which keep their patterns
# private): a rule value is one word of the regex alphabet (a superset of every rule type's),
# never holding "${"; a header name an RFC 7230 token without HAProxy's metacharacters.
_L7_VALUE = r"(?:(?!\$\{)[A-Za-z0-9\-._~!&()*+,;=:@/?^$\[\]{}|<>]){1,1025}"
_HEADER_NAME = r"[A-Za-z0-9\-_.!*+^|~]{1,64}"
_DN_FIELD = r"(?:SN|GN|C|ST|L|O|OU|CN|DC|EMAIL|UID|serialNumber|title)"
_L7_FETCH = (rf"(?:req\.hdr\(host\),field\(1,:\) -i|path|req\.hdr\({_HEADER_NAME}\)"
             rf"|req\.cook\({_COOKIE}\)|ssl_c_s_dn\({_DN_FIELD}\))")
_REDIRECT = (r"https?://(?:[A-Za-z0-9.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
             r"(?:/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,2000})?")
_CONDITION = rf"!?rule_{_ID}(?: !?rule_{_ID}){{0,49}}"
# TLS: versions, OpenSSL cipher names (lbaas.validate.tls_ciphers), ALPN protocol names.
_TLS_VERSION = r"(?:SSLv3|TLSv1\.[0-3])"
_CIPHER = r"[A-Z0-9][A-Za-z0-9_-]{0,63}"
_CIPHERS = rf"{_CIPHER}(?::{_CIPHER}){{0,199}}"
_ALPN_NAME = r"(?:h2|http/1\.[01])"
_TLS_OPTIONS = (rf" ssl-min-ver {_TLS_VERSION} ssl-max-ver {_TLS_VERSION}(?: ciphers {_CIPHERS})?"
                rf"(?: ciphersuites {_CIPHERS})?(?: alpn {_ALPN_NAME}(?:,{_ALPN_NAME}){{0,2}})?")
_BIND_TLS = (rf" ssl crt {_PATH}(?: crt-list {_PATH})?"
             rf"(?: ca-file {_PATH} verify (?:optional|required)(?: crl-file {_PATH})?)?{_TLS_OPTIONS}")
_SERVER_TLS = (rf" ssl(?: verify required ca-file {_PATH}(?: crl-file {_PATH})?| verify none)"
               rf"(?: crt {_PATH})?{_TLS_OPTIONS}")
# The client certificate headers, each with its fixed value (render._SSL_CLIENT_HEADERS).
_SSL_HEADER = (r"(?:X-SSL-Client-Verify %\[ssl_c_verify\]|X-SSL-Client-Has-Cert %\[ssl_c_used\]"
               r"|X-SSL-Client-DN %\{\+Q\}\[ssl_c_s_dn\]|X-SSL-Client-CN %\{\+Q\}\[ssl_c_s_dn\(cn\)\]"
               r"|X-SSL-Issuer %\{\+Q\}\[ssl_c_i_dn\]|X-SSL-Client-SHA1 %\{\+Q\}\[ssl_c_sha1,hex\]"
               r"|X-SSL-Client-Not-Before %\{\+Q\}\[ssl_c_notbefore\]"
               r"|X-SSL-Client-Not-After %\{\+Q\}\[ssl_c_notafter\])")

_SECTION = re.compile(rf"(global|defaults|frontend listener_{_ID}|backend pool_{_ID})",
                      re.ASCII)
# A comment of the template's own (the only one with a value in it names the load balancer).
_COMMENT = re.compile(r" *# [\x20-\x7e]*", re.ASCII)

_GLOBAL = (
    rf"stats socket {_PATH} mode 600 level admin expose-fd listeners",
    r"stats timeout 30s",
    rf"server-state-file {_PATH}",
    rf"hard-stop-after {_MS}",
    r"nbthread 1",
    rf"user {_WORD}",
    rf"group {_WORD}",
    rf"chroot {_PATH}",
)
_DEFAULTS = (
    r"retries 3",
    r"option redispatch",
    r"load-server-state-from-file global",
    rf"timeout (?:connect|client|server) {_MS}",
)
_FRONTEND = (
    r"mode (?:http|tcp)",
    rf"bind {_ENDPOINT}(?: transparent)?(?:{_BIND_TLS})?",
    r"option idle-close-on-response",
    rf"maxconn {_INT}",
    rf"timeout client {_MS}",
    rf"tcp-request inspect-delay {_MS}",
    r"disabled",
    rf"default_backend pool_{_ID}",
    rf"acl allowed_cidr src {_CIDR}(?: {_CIDR}){{0,31}}",
    r"tcp-request connection reject if !allowed_cidr",
    r"option forwardfor",
    r"http-request set-header X-Forwarded-Port %\[dst_port\]",
    r"http-request set-header X-Forwarded-Proto https?",
    rf"acl rule_{_ID} {_L7_FETCH} -m (?:str|beg|end|sub|reg) -- {_L7_VALUE}",
    rf"acl rule_{_ID} ssl_c_used -m bool",
    rf"acl rule_{_ID} ssl_c_verify -m int -- [0-9]{{1,5}}",
    rf"http-request set-header {_SSL_HEADER}",
    (r'http-response set-header Strict-Transport-Security '
     r'"max-age=[0-9]{1,10}(?:; includeSubDomains)?(?:; preload)?"'),
    rf"http-request deny deny_status 403 if {_CONDITION}",
    rf"http-request redirect (?:location|prefix) {_REDIRECT} code 30[12378] if {_CONDITION}",
    rf"use_backend pool_{_ID} if {_CONDITION}",
    r"http-request use-service prometheus-exporter if \{ path /metrics \}",
)
_BACKEND = (
    r"mode (?:http|tcp)",
    r"balance (?:roundrobin|leastconn|source)",
    r"hash-type consistent",
    rf"timeout (?:connect|server) {_MS}",
    rf"timeout check {_INT}s",
    r"disabled",
    rf"stick-table type (?:ip|ipv6|string len 64) size [0-9]{{1,6}}k expire {_MS}",
    r"stick on src",
    r"cookie SRV insert indirect nocache",
    rf"stick (?:store-response res|match req)\.cook\({_COOKIE}\)",
    r"option httpchk",
    rf"http-check send meth {_METHOD} uri {_URL}(?: ver HTTP/1\.[01])?(?: hdr Host {_HOST})?",
    r"http-check expect rstatus \^\([0-9\[\]|-]{1,2000}\)\$",
    r"http-check expect status [0-9]{3}",
    r"option ssl-hello-chk",
    (rf"server member_{_ID} {_ENDPOINT} weight {_INT}(?: backup)?(?: disabled)?"
     rf"(?: cookie member_{_ID})?(?: send-proxy(?:-v2)?)?(?:{_SERVER_TLS})?"
     rf"(?: check inter {_INT}s fall {_INT} rise {_INT}(?: check-ssl(?: verify none)?)?"
     rf"(?: check-send-proxy)?(?: addr (?:{_IP}|\[{_IP}\]))?(?: port {_INT})?)?"),
)


def _compile(lines: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("    (?:" + "|".join(lines) + ")", re.ASCII)


_DIRECTIVES = {"global": _compile(_GLOBAL), "defaults": _compile(_DEFAULTS),
               "frontend": _compile(_FRONTEND), "backend": _compile(_BACKEND)}


def check(text: str) -> None:
    """Raise ``ConfigRejected`` unless every line of ``text`` belongs to the grammar."""
    if not text.isascii():
        raise ConfigRejected("rendered configuration refused: it holds a non-ASCII character")
    section = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or _COMMENT.fullmatch(line):
            continue
        if _SECTION.fullmatch(line):
            section = line.split(" ")[0]
            continue
        if section is None or not _DIRECTIVES[section].fullmatch(line):
            raise ConfigRejected(f"rendered configuration refused: line {number} is not one "
                                 f"the template produces")
