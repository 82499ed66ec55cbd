"""From a validated desired state to haproxy.cfg text, and the runtime-only change set.

Names in the configuration come from the ids only (``listener_<id>``, ``pool_<id>``,
``member_<id>``): user-chosen names never reach haproxy.cfg, and the same object always has
the same name, which the server state file and runtime commands rely on.
"""

import copy
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from pathlib import Path

from dataclasses import dataclass

import jinja2

from lbaas import constants as c
from lbaas import wire
from lbaas.appliance import grammar, tlsfiles
from lbaas.appliance.schema import HTTP_LISTENER_PROTOCOLS, pool_mode, pool_users

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # haproxy.cfg, not HTML; inputs are pattern-checked in schema.py
)
TEMPLATE_NAME = "haproxy.cfg.j2"

# HAProxy reads at most 64 words a line: allowed_cidrs go in several ``acl`` lines of one name.
CIDRS_PER_LINE = 32
_BALANCE = {"ROUND_ROBIN": "roundrobin", "LEAST_CONNECTIONS": "leastconn",
            "SOURCE_IP": "source"}
_SEND_PROXY = {c.PROTOCOL_PROXY: "send-proxy", c.PROTOCOL_PROXYV2: "send-proxy-v2"}
# L7 rules: the sample each rule type fetches ("{key}" is the header or cookie name) and the
# match method of each compare type. A Host header may carry a port: field(1,:) drops it;
# host names compare case-insensitively.
_L7_FETCH = {"HOST_NAME": "req.hdr(host),field(1,:) -i", "PATH": "path", "FILE_TYPE": "path",
             "HEADER": "req.hdr({key})", "COOKIE": "req.cook({key})",
             "SSL_CONN_HAS_CERT": "ssl_c_used", "SSL_VERIFY_RESULT": "ssl_c_verify",
             "SSL_DN_FIELD": "ssl_c_s_dn({key})"}
# Rules whose value is not a string: a boolean (always "True") and an integer.
_L7_TYPED_MATCH = {"SSL_CONN_HAS_CERT": "bool", "SSL_VERIFY_RESULT": "int"}
# The client certificate headers (Octavia's names and values), in the order rendered.
_SSL_CLIENT_HEADERS = {
    "X-SSL-Client-Verify": "%[ssl_c_verify]",
    "X-SSL-Client-Has-Cert": "%[ssl_c_used]",
    "X-SSL-Client-DN": "%{+Q}[ssl_c_s_dn]",
    "X-SSL-Client-CN": "%{+Q}[ssl_c_s_dn(cn)]",
    "X-SSL-Issuer": "%{+Q}[ssl_c_i_dn]",
    "X-SSL-Client-SHA1": "%{+Q}[ssl_c_sha1,hex]",
    "X-SSL-Client-Not-Before": "%{+Q}[ssl_c_notbefore]",
    "X-SSL-Client-Not-After": "%{+Q}[ssl_c_notafter]",
}
# HAProxy's names of the TLS versions (ssl-min-ver/ssl-max-ver), in protocol order.
_TLS_VERSION_NAMES = {"SSLv3": "SSLv3", "TLSv1": "TLSv1.0", "TLSv1.1": "TLSv1.1",
                      "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3"}
_VERIFY = {c.CLIENT_AUTH_OPTIONAL: "optional", c.CLIENT_AUTH_MANDATORY: "required"}
_L7_MATCH = {"EQUAL_TO": "str", "STARTS_WITH": "beg", "ENDS_WITH": "end", "CONTAINS": "sub",
             "REGEX": "reg"}


def frontend_name(listener_id: str) -> str:
    """The HAProxy frontend of a listener."""
    return f"listener_{listener_id}"


def backend_name(pool_id: str) -> str:
    """The HAProxy backend of a pool."""
    return f"pool_{pool_id}"


def acl_name(rule_id: str) -> str:
    """The HAProxy ACL of an L7 rule."""
    return f"rule_{rule_id}"


def server_name(member_id: str) -> str:
    """The HAProxy server of a member (also its HTTP_COOKIE value)."""
    return f"member_{member_id}"


@dataclass(frozen=True)
class Confinement:
    """Where HAProxy's workers are confined: an unprivileged user and group, and an empty
    directory as their root."""

    user: str
    group: str
    chroot: str


def render(desired: wire.LoadBalancer, stats_socket: str, server_state_file: str,
           transparent: bool = False, confinement: Confinement | None = None,
           tls_folder: Path | None = None) -> str:
    """The haproxy.cfg text for ``desired`` (validated by ``schema.validate``).

    ``transparent`` adds the bind option of that name, which lets a listener bind its VIP
    before the address is on the host (a standby device; Linux falls back to IP_FREEBIND
    when IP_TRANSPARENT needs privileges HAProxy lacks).
    ``tls_folder`` is where the TLS files are (``tlsfiles``; by default the ``tls`` folder
    beside the stats socket).
    Deterministic: the same desired state (ignoring names, project and revision) always
    gives the same text. TLS files are named, not included: equal text means nothing to do
    only when ``tlsfiles.differs`` says their content is in place too.
    Raises ``ConfigRejected`` when the text strays from the template's grammar.
    """
    context = _context(desired, stats_socket, server_state_file, tls_folder)
    context["bind_options"] = " transparent" if transparent else ""
    context["run_as"] = confinement
    text = _ENV.get_template(TEMPLATE_NAME).render(context)
    grammar.check(text)
    return text


def with_runtime_values(new: wire.LoadBalancer, old: wire.LoadBalancer) -> wire.LoadBalancer:
    """``new`` with every member's weight and admin state taken from ``old`` where it exists.

    If this renders to the running configuration, ``new`` differs from it only in what the
    runtime API can change without a reload.
    """
    probe = copy.deepcopy(new)
    old_members = dict(_members(old))
    for key, member in _members(probe):
        if key in old_members:
            member["weight"] = old_members[key]["weight"]
            member["admin_state_up"] = old_members[key]["admin_state_up"]
    return probe


def runtime_commands(old: wire.LoadBalancer, new: wire.LoadBalancer) -> list[str]:
    """Stats-socket commands that move the members of ``old`` to the weights and admin
    states of ``new`` (only members present in both are considered)."""
    old_members = dict(_members(old))
    commands = []
    for (pool_id, member_id), member in _members(new):
        before = old_members.get((pool_id, member_id))
        if before is None:
            continue
        target = f"{backend_name(pool_id)}/{server_name(member_id)}"
        if member["weight"] != before["weight"]:
            commands.append(f"set server {target} weight {member['weight']}")
        if member["admin_state_up"] != before["admin_state_up"]:
            state = "ready" if member["admin_state_up"] else "maint"
            commands.append(f"set server {target} state {state}")
    return commands


def expect_regex(expected_codes: str) -> str | None:
    """An anchored regex matching the codes of ``expected_codes`` ("200-204,301"), or None
    when it is a single code (rendered as ``expect status``).

    Codes are grouped by their first two digits so a wide range stays well under HAProxy's
    line length limit.
    """
    codes = sorted(_expand_codes(expected_codes))
    if len(codes) == 1:
        return None
    tens: dict[str, list[str]] = {}
    for code in codes:
        tens.setdefault(str(code)[:2], []).append(str(code)[2])
    parts = []
    for hundred in sorted({prefix[0] for prefix in tens}):
        prefixes = [p for p in tens if p[0] == hundred]
        if len(prefixes) == 10 and all(len(tens[p]) == 10 for p in prefixes):
            parts.append(f"{hundred}[0-9][0-9]")
            continue
        parts.extend(_digit_class(p, tens[p]) for p in prefixes)
    return "^(" + "|".join(parts) + ")$"


def _digit_class(prefix: str, units: list[str]) -> str:
    if len(units) == 10:
        return f"{prefix}[0-9]"
    if len(units) == 1:
        return prefix + units[0]
    return f"{prefix}[{''.join(units)}]"


# --- context -----------------------------------------------------------------------------

def _context(desired: wire.LoadBalancer, stats_socket: str, server_state_file: str,
             tls_folder: Path | None = None) -> dict[str, Any]:
    tls_folder = tls_folder or tlsfiles.folder_of(Path(stats_socket).parent)
    listeners = desired["listeners"]
    data_timeouts = [ln[k] for ln in listeners
                     for k in ("timeout_client_data", "timeout_member_data")]
    return {
        "lb_id": desired["id"],
        "stats_socket": stats_socket,
        "server_state_file": server_state_file,
        "hard_stop_after_ms": max([c.DEVICE_MIN_HARD_STOP_AFTER_MS, *data_timeouts]),
        "default_timeout_connect_ms": c.DEFAULT_TIMEOUT_MEMBER_CONNECT,
        "default_timeout_client_ms": c.DEFAULT_TIMEOUT_CLIENT_DATA,
        "default_timeout_server_ms": c.DEFAULT_TIMEOUT_MEMBER_DATA,
        "stick_table_size": c.DEVICE_STICK_TABLE_SIZE,
        "cidrs_per_line": CIDRS_PER_LINE,
        "persistence_timeout_ms": c.DEVICE_PERSISTENCE_TIMEOUT_MS,
        "http_cookie_name": c.DEVICE_HTTP_COOKIE_NAME,
        "frontends": [_frontend(desired, ln, tls_folder) for ln in listeners],
        "backends": [_backend(desired, pool, tls_folder) for pool in desired["pools"]],
    }


def _frontend(desired: wire.LoadBalancer, listener: wire.Listener,
              tls_folder: Path) -> dict[str, Any]:
    pool_id = listener["default_pool_id"]
    headers = listener["insert_headers"]
    tls = listener["tls"]
    return {
        "name": frontend_name(listener["id"]),
        "mode": "http" if listener["protocol"] in HTTP_LISTENER_PROTOCOLS + (c.PROTOCOL_PROMETHEUS,) else "tcp",
        # HAProxy's own exporter answers /metrics; every other path finds no backend (503).
        "prometheus": listener["protocol"] == c.PROTOCOL_PROMETHEUS,
        "allowed_cidrs": listener["allowed_cidrs"],
        "forwardfor": headers.get("X-Forwarded-For") == "true",
        "forwarded_port": headers.get("X-Forwarded-Port") == "true",
        "forwarded_proto": ("https" if tls else "http")
        if headers.get("X-Forwarded-Proto") == "true" else None,
        "tls": _bind_tls(listener["id"], tls, tls_folder) if tls else None,
        "ssl_headers": [(name, value) for name, value in _SSL_CLIENT_HEADERS.items()
                        if headers.get(name) == "true"],
        "hsts": _hsts(tls) if tls else None,
        "bind": _endpoint(desired["vip_address"], listener["protocol_port"]),
        # -1 (and 0) mean "no limit of our own": HAProxy then uses its global maxconn.
        "maxconn": listener["connection_limit"] if listener["connection_limit"] > 0 else None,
        "timeout_client_ms": listener["timeout_client_data"],
        "inspect_delay_ms": listener["timeout_tcp_inspect"],
        "disabled": not (listener["admin_state_up"] and desired["admin_state_up"]),
        "backend": backend_name(pool_id) if pool_id else None,
        **_l7(listener.get("l7policies", [])),
    }


def _bind_tls(listener_id: str, tls: wire.ListenerTLS, folder: Path) -> dict[str, Any]:
    """The ``ssl`` options of a listener's ``bind`` line."""
    owner = frontend_name(listener_id)
    mode = tls["client_authentication"]
    return {
        "crt": tlsfiles.certificate_file(folder, tls["default_certificate"]),
        "crt_list": tlsfiles.crt_list_file(folder, listener_id) if tls["sni_certificates"] else None,
        "ca_file": tlsfiles.ca_file(folder, owner) if tls["client_ca"] else None,
        "verify": _VERIFY.get(mode),
        "crl_file": tlsfiles.crl_file(folder, owner) if tls["client_crl"] else None,
        **_tls_options(tls["versions"], tls["ciphers"], tls["alpn_protocols"]),
    }


def _tls_options(versions: list[str], ciphers: str | None, alpn: list[str]) -> dict[str, Any]:
    """Versions, ciphers and ALPN, as ``bind`` and ``server`` lines take them alike.

    OpenSSL enforces a range of versions, not a set: a gap in ``versions`` is served too.
    Cipher names of TLS 1.3 (``TLS_*``) go to ``ciphersuites``, the others to ``ciphers``.
    """
    order = list(_TLS_VERSION_NAMES)
    chosen = sorted(versions, key=order.index)
    names = ciphers.split(":") if ciphers else []
    suites = [name for name in names if name.startswith("TLS_")]
    legacy = [name for name in names if not name.startswith("TLS_")]
    return {
        "min_version": _TLS_VERSION_NAMES[chosen[0]],
        "max_version": _TLS_VERSION_NAMES[chosen[-1]],
        "ciphers": ":".join(legacy) or None,
        "ciphersuites": ":".join(suites) or None,
        "alpn": ",".join(alpn) or None,
    }


def _hsts(tls: wire.ListenerTLS) -> str | None:
    """The Strict-Transport-Security value, None without ``hsts_max_age``."""
    if tls["hsts_max_age"] is None:
        return None
    value = f"max-age={tls['hsts_max_age']}"
    if tls["hsts_include_subdomains"]:
        value += "; includeSubDomains"
    if tls["hsts_preload"]:
        value += "; preload"
    return value


def _l7(policies: list[wire.L7Policy]) -> dict[str, Any]:
    """The frontend's ``acls`` (one per enabled rule of an enabled policy) and ``policies``
    (position order, each with its HAProxy ``condition``).

    A policy whose rules are all disabled (or that has none) never matches in Octavia, so
    nothing of it is rendered; a disabled rule does not take part in its policy's match.
    """
    acls: list[dict[str, str | None]] = []
    rendered: list[dict[str, Any]] = []
    for policy in policies:
        rules = [r for r in policy["rules"] if r["admin_state_up"]]
        if not (policy["admin_state_up"] and rules):
            continue
        acls.extend(_acl(rule) for rule in rules)
        pool_id = policy["redirect_pool_id"]
        rendered.append({
            "action": policy["action"],
            "backend": backend_name(pool_id) if pool_id else None,
            "location": policy["redirect_url"] or policy["redirect_prefix"],
            "code": policy["redirect_http_code"],
            # ACLs named one after another must all match; "!" inverts one.
            "condition": " ".join(("!" if r["invert"] else "") + acl_name(r["id"]) for r in rules),
        })
    return {"acls": acls, "policies": rendered}


def _acl(rule: wire.L7Rule) -> dict[str, str | None]:
    fetch = _L7_FETCH[rule["type"]].format(key=rule["key"])
    typed = _L7_TYPED_MATCH.get(rule["type"])
    if typed == "bool":
        # SSL_CONN_HAS_CERT's value is always "True": the fetch is the condition.
        return {"name": acl_name(rule["id"]), "fetch": fetch, "match": typed, "value": None}
    if typed:
        return {"name": acl_name(rule["id"]), "fetch": fetch, "match": typed,
                "value": rule["value"]}
    value = rule["value"]
    match = _L7_MATCH[rule["compare_type"]]
    if rule["type"] == "FILE_TYPE" and rule["compare_type"] == "EQUAL_TO":
        # "jpg" is the path's extension: compare the end of the path with ".jpg".
        value, match = f".{value}", "end"
    return {"name": acl_name(rule["id"]), "fetch": fetch, "match": match, "value": value}


def _backend(desired: wire.LoadBalancer, pool: wire.Pool, tls_folder: Path) -> dict[str, Any]:
    # Member timeouts are a listener's: its default listener's, else the first listener's
    # whose policies redirect to it.
    listener = next(iter(pool_users(desired, pool["id"])), None)
    persistence: Mapping[str, object] = pool["session_persistence"] or {}
    hm = pool["healthmonitor"]
    monitor = _monitor(hm) if hm and hm["admin_state_up"] else None
    return {
        "name": backend_name(pool["id"]),
        "mode": pool_mode(desired, pool),
        "balance": _BALANCE[pool["lb_algorithm"]],
        "timeout_connect_ms": listener["timeout_member_connect"] if listener else 0,
        "timeout_server_ms": listener["timeout_member_data"] if listener else 0,
        "disabled": not pool["admin_state_up"],
        "persistence": persistence.get("type"),
        "cookie_name": persistence.get("cookie_name"),
        "stick_key_type": "ipv6" if ":" in desired["vip_address"] else "ip",
        "send_proxy": _SEND_PROXY.get(pool["protocol"]),
        "tls": _server_tls(pool["id"], pool["tls"], tls_folder) if pool["tls"] else None,
        "monitor": monitor,
        "servers": [_server(m) for m in pool["members"]],
    }


def _server_tls(pool_id: str, tls: wire.PoolTLS, folder: Path) -> dict[str, Any]:
    """The ``ssl`` options of a re-encrypting pool's ``server`` lines: members verified
    against the pool's CA (and CRL), not at all without one."""
    owner = backend_name(pool_id)
    certificate = tls["certificate"]
    return {
        "ca_file": tlsfiles.ca_file(folder, owner) if tls["ca"] else None,
        "crl_file": tlsfiles.crl_file(folder, owner) if tls["crl"] else None,
        "crt": tlsfiles.certificate_file(folder, certificate) if certificate else None,
        **_tls_options(tls["versions"], tls["ciphers"], tls["alpn_protocols"]),
    }


def _monitor(hm: wire.HealthMonitor) -> dict[str, Any]:
    codes = hm["expected_codes"]
    assert codes is not None  # schema.validate fills in the default
    return dict(hm, expect_regex=expect_regex(codes), single_code=min(_expand_codes(codes)))


def _server(member: wire.Member) -> dict[str, Any]:
    return {
        "name": server_name(member["id"]),
        "address": _endpoint(member["address"], member["protocol_port"]),
        "weight": member["weight"],
        "backup": member["backup"],
        "disabled": not member["admin_state_up"],
        "monitor_address": _bare_address(member["monitor_address"]),
        "monitor_port": member["monitor_port"],
    }


def _endpoint(address: str, port: int) -> str:
    # HAProxy splits address and port at the last colon, which also works for IPv6;
    # the "ipv6@" prefix makes the family explicit for readers of the file.
    if ipaddress.ip_address(address).version == 6:
        return f"ipv6@{address}:{port}"
    return f"{address}:{port}"


def _members(desired: wire.LoadBalancer) -> Iterable[tuple[tuple[str, str], wire.Member]]:
    for pool in desired["pools"]:
        for member in pool["members"]:
            yield (pool["id"], member["id"]), member


def _bare_address(address: str | None) -> str | None:
    # A check address has no port: HAProxy wants IPv6 in brackets there.
    if address is None or ":" not in address:
        return address
    return f"[{address}]"


def _expand_codes(expected_codes: str) -> set[int]:
    codes: set[int] = set()
    for part in expected_codes.split(","):
        low, _, high = part.partition("-")
        codes.update(range(int(low), int(high or low) + 1))
    return codes
