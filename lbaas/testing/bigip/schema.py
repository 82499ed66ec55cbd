"""AS3 declaration checks, as BIG-IP AS3 makes them before it touches a tenant.

Contract:

- ``validate(declaration, existing)`` takes a parsed ADC declaration (class ``ADC``)
  and returns nothing when it is acceptable; otherwise it raises ``DeclarationInvalid``
  whose ``errors`` hold one AS3-style string (AS3 reports the first fault only) naming
  the JSON path of the fault first
  (``"/T1/app/pool/members/0: should have required property 'servicePort'"``).
- Only the classes a load-balancer driver needs are modelled, with the property names
  and ranges of F5's published AS3 schema: ADC, Tenant, Application (templates generic,
  shared, http, https, tcp, udp, l4), Service_HTTP / _HTTPS / _TCP / _UDP / _L4, Pool
  (and its members), Monitor, Persist, iRule, Certificate, TLS_Server, TLS_Client,
  Endpoint_Policy.  A few more (profiles, Service_Address, ...) are accepted with their
  ``class`` only.  Any other class, and any property a modelled class does not have,
  is refused: the emulator must never accept what a device would refuse.
- Names follow the schema's patterns: tenants and applications
  ``^[A-Za-z][0-9A-Za-z_.-]*$`` (190 characters at most), objects inside an
  application the same but not ending in ``-``.
- Pointers (``"pool": "web_pool"``, ``{"use": "/T/A/mon"}``) must name an object of the
  right class in the same application, the tenant's ``Shared`` application or
  ``/Common/Shared`` (of the declaration or of the ``existing`` tenants);
  ``{"bigip": "/Common/x"}`` names something already on the device and is accepted.
- Also refused as AS3 refuses them: a ``/T/A/object`` path over 255 characters, and one
  value twice in an iRules, persistenceMethods, monitors, certificates, members or
  rules array.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

TENANT_PATTERN: Final = "^[A-Za-z][0-9A-Za-z_.-]*$"
OBJECT_PATTERN: Final = "^[A-Za-z]([0-9A-Za-z_.-]{0,188}[0-9A-Za-z_.])?$"
TENANT_NAME: Final = re.compile(r"[A-Za-z][0-9A-Za-z_.-]{0,189}", re.ASCII)
OBJECT_NAME: Final = re.compile(r"[A-Za-z]([0-9A-Za-z_.-]{0,188}[0-9A-Za-z_.])?", re.ASCII)
MAX_PATH: Final = 255  # characters of /Tenant/Application/object
# Arrays AS3 refuses to hold one value twice ("declaration has duplicate values in ...").
UNIQUE_ARRAYS: Final = frozenset({"iRules", "persistenceMethods", "monitors", "certificates",
                                  "members", "rules"})
SCHEMA_VERSION: Final = re.compile(r"3[.]([0-9]|[1234][0-9]|5[0-6])([.][0-9]+)?", re.ASCII)
DECLARATION_ID: Final = re.compile(r"[^\x00-\x20\x22'<>\x5c^`|\x7f]{0,255}")
BIGIP_PATH: Final = re.compile(r"/[^\x00-\x19\x22#'*<>?\x5b-\x5d\x7b-\x7d\x7f]+")

ADC_PROPERTIES: Final = frozenset({"class", "schemaVersion", "id", "updateMode", "label", "remark",
                                   "controls", "constants", "target", "$schema", "scratch"})
TENANT_PROPERTIES: Final = frozenset({"class", "label", "remark", "enable", "defaultRouteDomain",
                                      "useCommonRouteDomainTenant", "constants", "controls",
                                      "optimisticLockKey", "verifiers"})
APPLICATION_PROPERTIES: Final = frozenset({"class", "template", "label", "remark", "enable",
                                           "constants", "schemaOverlay"})
# The class serviceMain must have under each template ("generic"/"shared": any or none).
TEMPLATES: Final[Mapping[str, str | None]] = {
    "generic": None, "shared": None, "http": "Service_HTTP", "https": "Service_HTTPS",
    "tcp": "Service_TCP", "udp": "Service_UDP", "l4": "Service_L4"}

LOAD_BALANCING_MODES: Final = (
    "dynamic-ratio-member", "dynamic-ratio-node", "fastest-app-response", "fastest-node",
    "least-connections-member", "least-connections-node", "least-sessions", "observed-member",
    "observed-node", "predictive-member", "predictive-node", "ratio-least-connections-member",
    "ratio-least-connections-node", "ratio-member", "ratio-node", "ratio-session", "round-robin",
    "weighted-least-connections-member", "weighted-least-connections-node")
MONITOR_TYPES: Final = ("dns", "external", "ftp", "http", "https", "http2", "icmp", "inband",
                        "ldap", "mysql", "postgresql", "radius", "sip", "smtp", "tcp",
                        "tcp-half-open", "udp")
BUILTIN_MONITORS: Final = ("http", "https", "http2", "icmp", "tcp", "tcp-half-open", "udp")
BUILTIN_PERSISTENCE: Final = ("cookie", "destination-address", "msrdp", "source-address",
                              "tls-session-id")
PERSISTENCE_METHODS: Final = ("cookie", "destination-address", "hash", "msrdp", "sip-info",
                              "source-address", "tls-session-id", "universal")
# Classes accepted with their "class" only: a driver may use them, nothing here reads them.
OPAQUE_CLASSES: Final = frozenset({
    "HTTP_Profile", "TCP_Profile", "UDP_Profile", "L4_Profile", "Multiplex_Profile",
    "HTTP_Compress", "Service_Address", "SNAT_Pool", "CA_Bundle", "Data_Group", "Cipher_Group",
    "Cipher_Rule", "Idle_Timeout_Policy", "WAF_Policy"})


class DeclarationInvalid(Exception):
    """The declaration breaks the schema: nothing of it may be applied."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class _Walk:
    """What one validation pass collects: errors, and pointers to resolve at the end."""

    errors: list[str] = field(default_factory=list)
    # (path of the pointer, tenant, application, target as written, expected class)
    pointers: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    tenant: str = ""
    application: str = ""

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")


Check = Callable[[Any, str, _Walk], None]


def _any(value: Any, path: str, walk: _Walk) -> None:
    return None


def _typed(kind: type | tuple[type, ...], name: str) -> Check:
    def check(value: Any, path: str, walk: _Walk) -> None:
        # bool is an int in Python but not in JSON Schema
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            walk.fail(path, f"should be {name}")
    return check


_BOOL = _typed(bool, "boolean")
_STR = _typed(str, "string")


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any, path: str, walk: _Walk) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            walk.fail(path, "should be integer")
        elif value < low:
            walk.fail(path, f"should be >= {low}")
        elif high is not None and value > high:
            walk.fail(path, f"should be <= {high}")
    return check


def _enum(*allowed: Any) -> Check:
    def check(value: Any, path: str, walk: _Walk) -> None:
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in allowed:
            walk.fail(path, f"should be equal to one of the allowed values {json.dumps(list(allowed))}")
    return check


def _array(item: Check, unique: bool = False) -> Check:
    def check(value: Any, path: str, walk: _Walk) -> None:
        if not isinstance(value, list):
            walk.fail(path, "should be array")
            return
        for index, element in enumerate(value):
            item(element, f"{path}/{index}", walk)
        if unique and len({repr(element) for element in value}) != len(value):
            walk.fail(path, "should NOT have duplicate items")
    return check


def _pointer(target_class: str, builtins: tuple[str, ...] = ()) -> Check:
    """A pointer to a declared object (name, path or {"use": ...}) or {"bigip": path}."""
    def check(value: Any, path: str, walk: _Walk) -> None:
        if isinstance(value, str) and value in builtins:
            return
        if isinstance(value, dict) and set(value) == {"bigip"}:
            if not isinstance(value["bigip"], str) or not BIGIP_PATH.fullmatch(value["bigip"]):
                walk.fail(f"{path}/bigip", 'should match format "f5bigip"')
            return
        target = value.get("use") if isinstance(value, dict) and set(value) == {"use"} else value
        if not isinstance(target, str) or not target:
            walk.fail(path, f"should be a pointer to a {target_class} (name, path, use or bigip)")
            return
        walk.pointers.append((path, walk.tenant, walk.application, target, target_class))
    return check


def _one_or_many(item: Check) -> Check:
    many = _array(item)

    def check(value: Any, path: str, walk: _Walk) -> None:
        (many if isinstance(value, list) else item)(value, path, walk)
    return check


def _ip(value: Any, path: str, walk: _Walk) -> None:
    """F5's address form: an IPv4/IPv6 address with optional %route-domain and /mask."""
    if not isinstance(value, str) or not is_f5_address(value):
        walk.fail(path, 'should match format "f5ip"')


def is_f5_address(value: str) -> bool:
    """``address[%route-domain][/mask]`` with an IPv4 or IPv6 address."""
    address, slash, mask = value.partition("/")
    address, percent, route_domain = address.partition("%")
    if percent and not (route_domain.isascii() and route_domain.isdigit()):
        return False
    try:
        ipaddress.ip_interface(address + slash + mask)
    except ValueError:
        return False
    return True


def _virtual_address(value: Any, path: str, walk: _Walk) -> None:
    if isinstance(value, list):  # [address, accept-from subnet]
        if len(value) != 2:
            walk.fail(path, "should NOT have fewer/more than 2 items")
        for index, element in enumerate(value):
            _ip(element, f"{path}/{index}", walk)
    elif isinstance(value, dict):
        _pointer("Service_Address")(value, path, walk)
    else:
        _ip(value, path, walk)


def _virtual_addresses(value: Any, path: str, walk: _Walk) -> None:
    if isinstance(value, list) and not value:
        walk.fail(path, "should NOT have fewer than 1 items")
        return
    _array(_virtual_address, unique=True)(value, path, walk)


@dataclass(frozen=True)
class Spec:
    """The properties an object may have, each with its check, and those it must have."""

    properties: Mapping[str, Check]
    required: tuple[str, ...] = ()
    open: bool = False  # accept properties not listed (checked structurally only)

    def check(self, value: Any, path: str, walk: _Walk) -> None:
        if not isinstance(value, dict):
            walk.fail(path, "should be object")
            return
        for name in self.required:
            if name not in value:
                walk.fail(path, f"should have required property '{name}'")
        for name, element in value.items():
            check = self.properties.get(name)
            if check is not None:
                check(element, f"{path}/{name}", walk)
            elif not self.open:
                walk.fail(path, f"should NOT have additional properties ('{name}')")


def _props(*names: str) -> dict[str, Check]:
    return {name: _any for name in names}


_LABELS = {"class": _STR, "label": _STR, "remark": _STR}

_SERVICE_COMMON = {
    **_props("addressStatus", "allowVlans", "clonePools", "fallbackPersistenceMethod",
             "httpMrfRoutingEnabled", "include", "ipIntelligencePolicy", "lastHop", "layer4",
             "maximumBandwidth", "metadata", "mirroring", "nat64Enabled", "policyBandwidthControl",
             "policyFirewallEnforced", "policyFirewallStaged", "policyIdleTimeout", "policyNAT",
             "profileClassification", "profileDNS", "profileDiameterEndpoint", "profileEnforcement",
             "profileIPOther", "profileIntegratedBotDefense", "profileProtocolInspection",
             "profileRewrite", "profileStatistics", "profileSubscriberManagement",
             "profileTrafficLog", "rateLimit", "rejectVlans", "securityLogProfiles",
             "serversslUseSni", "serviceDownImmediateAction", "shareAddresses", "sourceAddress",
             "translateClientPort", "translateServerAddress", "translateServerPort"),
    **_LABELS,
    "virtualAddresses": _virtual_addresses,
    "virtualPort": _int(0, 65535),
    "enable": _BOOL,
    "adminState": _enum("enable", "disable"),
    "maxConnections": _int(0),
    "pool": _pointer("Pool"),
    "iRules": _array(_pointer("iRule")),
    "persistenceMethods": _array(_pointer("Persist", BUILTIN_PERSISTENCE)),
    "snat": _pointer("SNAT_Pool", ("none", "self", "auto")),
}
_TLS = {"serverTLS": _one_or_many(_pointer("TLS_Server")),
        "clientTLS": _one_or_many(_pointer("TLS_Client")),
        "policyEndpoint": _one_or_many(_pointer("Endpoint_Policy"))}
_HTTP_EXTRA = _props(
    "policyIAM", "policyPerRequestAccess", "policyWAF", "profileAccess", "profileAnalytics",
    "profileAnalyticsTcp", "profileApiProtection", "profileBotDefense", "profileConnectivity",
    "profileConnector", "profileDOS", "profileFIX", "profileFPS", "profileHTML",
    "profileHTTPAcceleration", "profileHTTPCompression", "profileJSON", "profileMultiplex",
    "profileNTLM", "profilePingAccess", "profileRequestAdapt", "profileResponseAdapt",
    "profileSSE", "profileSSHProxy", "profileService", "profileSplitsessionClient",
    "profileStream", "profileTCP", "profileVdi", "profileWebSocket", "virtualType")
_HTTP_SERVICE = {**_SERVICE_COMMON, **_TLS, **_HTTP_EXTRA,
                 "profileHTTP": _pointer("HTTP_Profile", ("basic",))}

_MONITOR_BASE = {**_LABELS, **_props("adaptive", "adaptiveDivergenceType",
                                     "adaptiveDivergenceMilliseconds",
                                     "adaptiveDivergencePercentage", "adaptiveLimitMilliseconds",
                                     "adaptiveWindow", "transparent", "targetAddress", "dscp"),
                 "monitorType": _enum(*MONITOR_TYPES), "interval": _int(0, 3600),
                 "timeout": _int(0, 900), "timeUntilUp": _int(0, 1800),
                 "upInterval": _int(0, 3600), "targetPort": _int(0, 65535)}
_MONITOR_SEND = {**_MONITOR_BASE, "send": _STR, "receive": _STR, "receiveDown": _STR,
                 "reverse": _BOOL}
_MONITOR_HTTP = {**_MONITOR_SEND, "username": _STR, **_props("passphrase")}
MONITORS: Final[Mapping[str, Spec]] = {
    "http": Spec(_MONITOR_HTTP, ("class", "monitorType")),
    "https": Spec({**_MONITOR_HTTP, "ciphers": _STR, **_props("clientCertificate", "clientTLS")},
                  ("class", "monitorType")),
    "tcp": Spec(_MONITOR_SEND, ("class", "monitorType")),
    "udp": Spec(_MONITOR_SEND, ("class", "monitorType")),
    "icmp": Spec(_MONITOR_BASE, ("class", "monitorType")),
    "tcp-half-open": Spec(_MONITOR_BASE, ("class", "monitorType")),
}
# The other monitor types are checked for their type and accepted structurally.
_MONITOR_OTHER = Spec(_MONITOR_BASE, ("class", "monitorType"), open=True)

_SERVER = Spec({"address": _ip, "name": _STR}, ("address",))
_MEMBER = Spec({
    **_props("remark", "metadata", "rateLimit", "dynamicRatio", "minimumMonitors", "shareNodes",
             "routeDomain"),
    "servers": _array(_SERVER.check),
    "servicePort": _int(0, 65535),
    "serverAddresses": _array(_ip, unique=True),
    "bigip": _STR,
    "enable": _BOOL,
    "connectionLimit": _int(0, 2147483647),
    "ratio": _int(0, 100),
    "priorityGroup": _int(0, 65535),
    "monitors": _array(_pointer("Monitor", BUILTIN_MONITORS)),
    "adminState": _enum("enable", "disable", "offline"),
    "addressDiscovery": _enum("static"),  # service discovery is not modelled
}, ("servicePort",))

CLASSES: Final[Mapping[str, Spec]] = {
    "Service_HTTP": Spec(_HTTP_SERVICE, ("class", "virtualAddresses")),
    "Service_HTTPS": Spec({**_HTTP_SERVICE, "redirect80": _BOOL, **_props("profileHTTP2")},
                          ("class", "virtualAddresses")),
    "Service_TCP": Spec({**_SERVICE_COMMON, **_TLS, **_props(
        "mqttEnabled", "profileAnalyticsTcp", "profileConnector", "profileFIX", "profileFTP",
        "profileICAP", "profileILX", "profilePPTP", "profileRTSP", "profileSIP", "profileSOCKS",
        "profileSSHProxy", "profileService", "profileSplitsessionClient", "profileStream",
        "profileTCP", "virtualType")}, ("class", "virtualAddresses", "virtualPort")),
    "Service_UDP": Spec({**_SERVICE_COMMON, **_TLS, **_props(
        "profileRADIUS", "profileSIP", "profileTFTP", "profileUDP", "virtualType")},
        ("class", "virtualAddresses", "virtualPort")),
    "Service_L4": Spec({**_SERVICE_COMMON, **_props(
        "profileAnalyticsTcp", "profileFIX", "profileL4", "profileSplitsessionClient")},
        ("class", "virtualAddresses", "virtualPort")),
    "Pool": Spec({
        **_LABELS, **_props("allowNATEnabled", "allowSNATEnabled", "metadata", "minimumMonitors"),
        "loadBalancingMode": _enum(*LOAD_BALANCING_MODES),
        "minimumMembersActive": _int(0, 65535),
        "monitors": _array(_pointer("Monitor", BUILTIN_MONITORS)),
        "members": _array(lambda value, path, walk: _member(value, path, walk)),
        "reselectTries": _int(0, 65535),
        "serviceDownAction": _enum("drop", "none", "reselect", "reset"),
        "slowRampTime": _int(0, 900),
    }, ("class",)),
    "Persist": Spec({**_LABELS, "persistenceMethod": _enum(*PERSISTENCE_METHODS), **_props(
        "addressMask", "bufferLimit", "cookieMethod", "cookieName", "count", "duration",
        "endPattern", "hashAlgorithm", "header", "iRule", "matchAcrossPools",
        "matchAcrossVirtualAddresses", "matchAcrossVirtualPorts", "mirror",
        "overrideConnectionLimit", "sessionBroker", "startAt", "startPattern")},
        ("class", "persistenceMethod")),
    "iRule": Spec({**_LABELS, **_props("iRule", "expand")}, ("class", "iRule")),
    "Certificate": Spec({**_LABELS, **_props(
        "certificate", "chainCA", "issuerCertificate", "passphrase", "pkcs12", "pkcs12Options",
        "privateKey", "staplerOCSP")}, ("class",)),
    "TLS_Server": Spec({**_LABELS, "certificates": _array(
        lambda value, path, walk: _server_certificate(value, path, walk))},
        ("class", "certificates"), open=True),
    "TLS_Client": Spec(dict(_LABELS), ("class",), open=True),
    "Endpoint_Policy": Spec({**_LABELS, **_props("customStrategy", "rules", "strategy")},
                            ("class",)),
}

_SERVER_CERTIFICATE = Spec({"certificate": _pointer("Certificate"), "matchToSNI": _STR,
                            "sniDefault": _BOOL, **_props("enabled", "proxyCertificate")},
                           ("certificate",))


def _member(value: Any, path: str, walk: _Walk) -> None:
    _MEMBER.check(value, path, walk)
    if isinstance(value, dict) and not ({"serverAddresses", "servers", "bigip"} & set(value)):
        walk.fail(path, "should have required property 'serverAddresses'")


def _server_certificate(value: Any, path: str, walk: _Walk) -> None:
    _SERVER_CERTIFICATE.check(value, path, walk)


def validate(declaration: Any, existing: Mapping[str, Any] | None = None) -> None:
    """Raise DeclarationInvalid unless ``declaration`` is a valid ADC declaration;
    pointers may also name objects of the ``existing`` tenants (e.g. /Common/Shared/x)."""
    walk = _Walk()
    if not isinstance(declaration, dict):
        raise DeclarationInvalid(["/: should be object"])
    _adc(declaration, walk)
    if not walk.errors:  # pointers only mean something in a well-formed declaration
        _resolve({**(existing or {}), **declaration}, walk)
    if not walk.errors:
        _duplicates(declaration, "", walk)
    if walk.errors:
        # AS3 reports the first fault only
        raise DeclarationInvalid(walk.errors[:1])


def _adc(declaration: dict[str, Any], walk: _Walk) -> None:
    if declaration.get("class") != "ADC":
        walk.fail("/class", 'should be equal to constant "ADC"')
    version = declaration.get("schemaVersion")
    if "schemaVersion" not in declaration:
        walk.fail("", "should have required property 'schemaVersion'")
    elif not isinstance(version, str) or not SCHEMA_VERSION.fullmatch(version):
        walk.fail("/schemaVersion", "should match some schema in anyOf")
    if "id" in declaration and not (isinstance(declaration["id"], str)
                                    and DECLARATION_ID.fullmatch(declaration["id"])):
        walk.fail("/id", f'data {json.dumps(declaration["id"])[:300]} should match pattern')
    if "updateMode" in declaration:
        _enum("complete", "selective")(declaration["updateMode"], "/updateMode", walk)
    for name, tenant in declaration.items():
        if name not in ADC_PROPERTIES:
            _tenant(name, tenant, walk)


def tenant_names(declaration: Mapping[str, Any]) -> list[str]:
    """The tenants a (valid) declaration names, in its order."""
    return [name for name in declaration if name not in ADC_PROPERTIES]


def applications(tenant: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A tenant's applications by name."""
    return {name: app for name, app in tenant.items() if name not in TENANT_PROPERTIES}


def _tenant(name: str, tenant: Any, walk: _Walk) -> None:
    path = f"/{name}"
    if not TENANT_NAME.fullmatch(name):
        walk.fail("/", f"propertyName {_quoted(name)} should match pattern \"{TENANT_PATTERN}\" (190 characters at most)")
        return
    if not isinstance(tenant, dict):
        walk.fail(path, "should be object")
        return
    if tenant.get("class") != "Tenant":
        walk.fail(path, "should have required property 'class'" if "class" not in tenant
                  else 'should be equal to constant "Tenant" at /class')
    walk.tenant = name
    for key in ("enable",):
        if key in tenant:
            _BOOL(tenant[key], f"{path}/{key}", walk)
    if "defaultRouteDomain" in tenant:
        _int(0, 65535)(tenant["defaultRouteDomain"], f"{path}/defaultRouteDomain", walk)
    for app_name, app in applications(tenant).items():
        if name == "Common" and app_name != "Shared":
            walk.fail(f"{path}/{app_name}", "should NOT have additional properties "
                      "(tenant Common holds application Shared only)")
            continue
        _application(app_name, app, walk)


def _application(name: str, app: Any, walk: _Walk) -> None:
    path = f"/{walk.tenant}/{name}"
    if not TENANT_NAME.fullmatch(name):
        walk.fail(f"/{walk.tenant}", f"propertyName {_quoted(name)} should match pattern \"{TENANT_PATTERN}\" "
                  "(190 characters at most)")
        return
    if not isinstance(app, dict):
        walk.fail(path, "should be object")
        return
    if app.get("class") != "Application":
        walk.fail(path, "should have required property 'class'" if "class" not in app
                  else 'should be equal to constant "Application" at /class')
    walk.application = name
    template = app.get("template", "generic")
    if not isinstance(template, str) or template not in TEMPLATES:
        walk.fail(f"{path}/template", f"should be equal to one of the allowed values {json.dumps(list(TEMPLATES))}")
    elif TEMPLATES[template] is not None:
        main = app.get("serviceMain")
        if main is None:
            walk.fail(path, "should have required property 'serviceMain'")
        elif not isinstance(main, dict) or main.get("class") != TEMPLATES[template]:
            walk.fail(f"{path}/serviceMain/class", f'should be equal to constant "{TEMPLATES[template]}"')
    if "enable" in app:
        _BOOL(app["enable"], f"{path}/enable", walk)
    for object_name, value in app.items():
        if object_name not in APPLICATION_PROPERTIES:
            _object(object_name, value, f"{path}/{object_name}", walk)


def _object(name: str, value: Any, path: str, walk: _Walk) -> None:
    if not OBJECT_NAME.fullmatch(name):
        walk.fail(path.rsplit("/", 1)[0], f"propertyName {_quoted(name)} should match pattern \"{OBJECT_PATTERN}\"")
        return
    if len(path) > MAX_PATH:
        walk.fail(path, f"The path {path} exceeds the {MAX_PATH} full path character limit")
        return
    if not isinstance(value, dict) or "class" not in value:
        walk.fail(path, "should have required property 'class'")
        return
    kind = value["class"]
    if not isinstance(kind, str):
        walk.fail(f"{path}/class", "should be string")
        return
    if kind == "Monitor":
        spec = MONITORS.get(str(value.get("monitorType")), _MONITOR_OTHER)
    elif kind in OPAQUE_CLASSES:
        spec = Spec({"class": _STR}, ("class",), open=True)
    elif kind in CLASSES:
        spec = CLASSES[kind]
    else:
        walk.fail(f"{path}/class", f"should be equal to one of the allowed values (unknown class {_quoted(kind)})")
        return
    spec.check(value, path, walk)


def _resolve(declaration: Mapping[str, Any], walk: _Walk) -> None:
    for path, tenant, application, target, expected in walk.pointers:
        if target.startswith("/") and not _in_scope(target, tenant, application):
            walk.fail(path, "must contain path pointing into same Application "
                            "(or /same-Tenant/Shared or /Common/Shared)")
            continue
        found = find_object(declaration, tenant, application, target)
        if found is None:
            walk.fail(path, f"contains path to non-existent object {target.rsplit('/', 1)[-1][:190]}")
        elif found.get("class") != expected:
            walk.fail(path, f"AS3 pointer {target[:255]} does not point to required object type")


def _in_scope(target: str, tenant: str, application: str) -> bool:
    parts = target.split("/")
    return len(parts) == 4 and (parts[1:3] in ([tenant, application], [tenant, "Shared"], ["Common", "Shared"]))


def _duplicates(value: Any, path: str, walk: _Walk) -> None:
    """AS3 refuses an iRules, monitors, members... array holding one value twice."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        if key in UNIQUE_ARRAYS and isinstance(child, list) and _has_duplicate(child):
            walk.fail(f"{path}/{key}", f"declaration has duplicate values in {key}")
        _duplicates(child, f"{path}/{key}", walk)


def _has_duplicate(items: list[Any]) -> bool:
    seen = [json.dumps(item, sort_keys=True) for item in items]
    return len(set(seen)) != len(seen)


def _quoted(text: str) -> str:
    return json.dumps(text[:200])


def find_object(declaration: Mapping[str, Any], tenant: str, application: str,
                target: str) -> dict[str, Any] | None:
    """The object a pointer names: ``name`` (same application) or ``/T/A/name``."""
    parts = target.split("/")
    if len(parts) == 1:
        parts = ["", tenant, application, target]
    if len(parts) != 4 or parts[0]:
        return None
    found: Any = declaration
    for part in parts[1:]:
        found = found.get(part) if isinstance(found, dict) else None
    return found if isinstance(found, dict) else None
