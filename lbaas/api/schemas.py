"""Request bodies, validated before anything touches the database.

Unknown fields, wrong types (strict: "80" is not a port), out-of-range
values and bad enums are all rejected here with a message naming the
field.  Rules that span several fields live in the ``model_validator``s;
rules that need the database live in the routes.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      model_validator)

from lbaas import constants as c
from lbaas import validate
from lbaas.errors import BadRequest


# An allowed_cidrs list longer than this is refused: each entry is matched per connection.
MAX_CIDRS = 100


IP = Annotated[str, AfterValidator(validate.ip_address)]
Port = Annotated[int, Field(ge=1, le=65535)]
UrlPath = Annotated[str, AfterValidator(validate.url_path)]
# max_length: the width of health_monitor.expected_codes.
ExpectedCodes = Annotated[str, Field(max_length=64), AfterValidator(validate.expected_codes)]
HostName = Annotated[str, AfterValidator(validate.hostname)]
Cidrs = Annotated[list[Annotated[str, AfterValidator(validate.cidr)]], Field(max_length=MAX_CIDRS)]
Headers = Annotated[dict[str, str], Field(max_length=len(validate.INSERT_HEADERS))]
Name = Annotated[str | None, Field(max_length=255)]
# References to other services' objects (subnets, networks, flavors, zones, providers):
# identifiers, never free text.
Ident = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]
Tags = Annotated[list[Annotated[str, Field(max_length=255)]], Field(max_length=64)]
Timeout = Annotated[int | None, Field(ge=0, le=c.MAX_TIMEOUT)]
Weight = Annotated[int, Field(ge=0, le=256)]
Retries = Annotated[int, Field(ge=1, le=10)]

# Literal[<tuple>] is Literal[<its values>] at run time (pydantic checks them), so the
# constants stay the one list of values; mypy wants literal values written out, hence the
# ignores (mypy sees these types as Any).
ListenerProtocol = Literal[c.LISTENER_PROTOCOLS]  # type: ignore[valid-type]  # values from constants, see above
PoolProtocol = Literal[c.POOL_PROTOCOLS]  # type: ignore[valid-type]  # values from constants, see above
Algorithm = Literal[c.LB_ALGORITHMS]  # type: ignore[valid-type]  # values from constants, see above
MonitorType = Literal[c.HEALTH_MONITOR_TYPES]  # type: ignore[valid-type]  # values from constants, see above
HttpMethod = Literal[c.HTTP_METHODS]  # type: ignore[valid-type]  # values from constants, see above
L7Action = Literal[c.L7POLICY_ACTIONS]  # type: ignore[valid-type]  # values from constants, see above
RedirectCode = Literal[c.L7POLICY_REDIRECT_CODES]  # type: ignore[valid-type]  # values from constants, see above
RuleType = Literal[c.L7RULE_TYPES]  # type: ignore[valid-type]  # values from constants, see above
CompareType = Literal[c.L7RULE_COMPARE_TYPES]  # type: ignore[valid-type]  # values from constants, see above
# max_length: the widths of the l7policy.redirect_* columns.
RedirectUrl = Annotated[str, Field(max_length=2048), AfterValidator(validate.redirect_url)]
RedirectPrefix = Annotated[str, Field(max_length=2048), AfterValidator(validate.redirect_prefix)]
Position = Annotated[int, Field(ge=1, le=2**31 - 1)]
# A key manager's reference (a URL); what it points at is checked by the key manager.
Ref = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^https?://[!-~]+$")]
SniRefs = Annotated[list[Ref], Field(max_length=100)]
ClientAuth = Literal[c.CLIENT_AUTH_MODES]  # type: ignore[valid-type]  # values from constants, see above
TlsVersions = Annotated[list[Literal[c.TLS_VERSIONS]],  # type: ignore[valid-type]  # values from constants
                        Field(min_length=1, max_length=len(c.TLS_VERSIONS)), AfterValidator(validate.tls_versions)]
AlpnProtocols = Annotated[list[Literal[c.ALPN_PROTOCOLS]],  # type: ignore[valid-type]  # values from constants
                          Field(min_length=1, max_length=len(c.ALPN_PROTOCOLS))]
# max_length: the width of the tls_ciphers columns.
TlsCiphers = Annotated[str, Field(max_length=2048), AfterValidator(validate.tls_ciphers)]
HstsMaxAge = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Owned(Body):
    """Fields every created object accepts."""

    name: Name = None
    description: Name = None
    admin_state_up: bool = True
    tags: Tags = []
    project_id: str | None = Field(default=None, max_length=255)
    tenant_id: str | None = Field(default=None, max_length=255)


class SessionPersistence(Body):
    type: Literal[c.SESSION_PERSISTENCE_TYPES]  # type: ignore[valid-type]  # see ListenerProtocol
    cookie_name: Annotated[str, AfterValidator(validate.cookie_name)] | None = None
    persistence_timeout: int | None = None
    persistence_granularity: str | None = None

    @model_validator(mode="after")
    def _cookie(self) -> "SessionPersistence":
        if self.type == "APP_COOKIE" and not self.cookie_name:
            raise ValueError("APP_COOKIE session persistence requires a cookie_name")
        if self.type != "APP_COOKIE" and self.cookie_name:
            raise ValueError(f"cookie_name is only valid for APP_COOKIE, not {self.type}")
        return self


class HealthMonitorFields(Body):
    # At least a second each: HAProxy has no zero check interval.
    delay: int = Field(ge=1, le=c.MAX_TIMEOUT // 1000)
    timeout: int = Field(ge=1, le=c.MAX_TIMEOUT // 1000)
    max_retries: Retries
    max_retries_down: Retries = 3
    http_method: HttpMethod | None = None
    url_path: UrlPath | None = None
    expected_codes: ExpectedCodes | None = None
    http_version: float | None = Field(default=None)
    domain_name: HostName | None = None


class HealthMonitorCreate(Owned, HealthMonitorFields):
    type: MonitorType
    pool_id: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "HealthMonitorCreate":
        _check_monitor(self.type, self.delay, self.timeout, self.model_fields_set, self)
        return self


def _check_monitor(kind: str, delay: int, timeout: int, given: set[str], body: Any) -> None:
    if timeout > delay:
        raise ValueError("timeout must be less than or equal to delay")
    http_only = {"http_method", "url_path", "expected_codes", "http_version", "domain_name"}
    if kind not in ("HTTP", "HTTPS"):
        wrong = sorted(f for f in http_only & given if getattr(body, f) is not None)
        if wrong:
            raise ValueError(f"{', '.join(wrong)} only apply to HTTP and HTTPS monitors, not {kind}")
    if body.http_version is not None and body.http_version not in (1.0, 1.1):
        raise ValueError("http_version must be 1.0 or 1.1")
    if body.domain_name and body.http_version != 1.1:
        raise ValueError("domain_name requires http_version 1.1")


class HealthMonitorUpdate(Body):
    name: Name = None
    admin_state_up: bool | None = None
    delay: int | None = Field(default=None, ge=1, le=c.MAX_TIMEOUT // 1000)
    timeout: int | None = Field(default=None, ge=1, le=c.MAX_TIMEOUT // 1000)
    max_retries: Retries | None = None
    max_retries_down: Retries | None = None
    http_method: HttpMethod | None = None
    url_path: UrlPath | None = None
    expected_codes: ExpectedCodes | None = None
    http_version: float | None = None
    domain_name: HostName | None = None
    tags: Tags | None = None


class MemberFields(Owned):
    address: IP
    protocol_port: Port
    weight: Weight = 1
    backup: bool = False
    subnet_id: Ident | None = None
    monitor_address: IP | None = None
    monitor_port: Port | None = None


class MemberCreate(MemberFields):
    pass


class MemberUpdate(Body):
    name: Name = None
    admin_state_up: bool | None = None
    weight: Weight | None = None
    backup: bool | None = None
    monitor_address: IP | None = None
    monitor_port: Port | None = None
    tags: Tags | None = None


class PoolCreate(Owned):
    protocol: PoolProtocol
    lb_algorithm: Algorithm
    session_persistence: SessionPersistence | None = None
    listener_id: str | None = None
    loadbalancer_id: str | None = None
    tls_enabled: bool = False
    tls_container_ref: Ref | None = None
    ca_tls_container_ref: Ref | None = None
    crl_container_ref: Ref | None = None
    tls_versions: TlsVersions | None = None
    tls_ciphers: TlsCiphers | None = None
    alpn_protocols: AlpnProtocols | None = None
    # Only in a fully populated load balancer.
    members: list[MemberCreate] = []
    healthmonitor: HealthMonitorCreate | None = None


class PoolUpdate(Body):
    name: Name = None
    description: Name = None
    admin_state_up: bool | None = None
    lb_algorithm: Algorithm | None = None
    session_persistence: SessionPersistence | None = None
    tls_enabled: bool | None = None
    tls_container_ref: Ref | None = None
    ca_tls_container_ref: Ref | None = None
    crl_container_ref: Ref | None = None
    tls_versions: TlsVersions | None = None
    tls_ciphers: TlsCiphers | None = None
    alpn_protocols: AlpnProtocols | None = None
    tags: Tags | None = None


class L7RuleCreate(Body):
    """A rule's fields; type, key and value are checked together (``validate.l7_rule``)."""

    type: RuleType
    compare_type: CompareType
    key: Annotated[str, Field(max_length=255)] | None = None
    value: Annotated[str, Field(max_length=1024)]
    invert: bool = False
    admin_state_up: bool = True
    tags: Tags = []
    project_id: str | None = Field(default=None, max_length=255)
    tenant_id: str | None = Field(default=None, max_length=255)

    @model_validator(mode="after")
    def _check(self) -> "L7RuleCreate":
        self.key, self.value = validate.l7_rule(self.type, self.compare_type, self.key, self.value)
        return self


class L7RuleUpdate(Body):
    """Checked against the rule's other fields once merged with them (``services.l7rules``)."""

    type: RuleType | None = None
    compare_type: CompareType | None = None
    key: Annotated[str, Field(max_length=255)] | None = None
    value: Annotated[str, Field(max_length=1024)] | None = None
    invert: bool | None = None
    admin_state_up: bool | None = None
    tags: Tags | None = None


class L7PolicyUpdate(Body):
    """Which redirect field an action needs is checked on the merged policy (``services.l7policies``)."""

    name: Name = None
    description: Name = None
    admin_state_up: bool | None = None
    action: L7Action | None = None
    position: Position | None = None
    redirect_pool_id: str | None = None
    redirect_url: RedirectUrl | None = None
    redirect_prefix: RedirectPrefix | None = None
    redirect_http_code: RedirectCode | None = None
    tags: Tags | None = None


class L7PolicyCreate(Owned):
    action: L7Action
    listener_id: str | None = None
    position: Position | None = None
    redirect_pool_id: str | None = None
    redirect_url: RedirectUrl | None = None
    redirect_prefix: RedirectPrefix | None = None
    redirect_http_code: RedirectCode | None = None
    rules: Annotated[list[L7RuleCreate], Field(max_length=c.MAX_L7RULES_PER_POLICY)] = []
    # Only in a fully populated load balancer: the pool REDIRECT_TO_POOL sends to.
    redirect_pool: PoolCreate | None = None

    @model_validator(mode="after")
    def _check(self) -> "L7PolicyCreate":
        if self.redirect_pool is not None and self.redirect_pool_id is not None:
            raise ValueError("give redirect_pool or redirect_pool_id, not both")
        return self


class ListenerCreate(Owned):
    protocol: ListenerProtocol
    protocol_port: Port
    loadbalancer_id: str | None = None
    connection_limit: int = Field(default=-1, ge=-1, le=c.MAX_CONNECTION_LIMIT)
    default_pool_id: str | None = None
    timeout_client_data: Timeout = None
    timeout_member_connect: Timeout = None
    timeout_member_data: Timeout = None
    timeout_tcp_inspect: Timeout = None
    insert_headers: Headers = {}
    allowed_cidrs: Cidrs | None = None
    default_tls_container_ref: Ref | None = None
    sni_container_refs: SniRefs = []
    client_authentication: ClientAuth = c.CLIENT_AUTH_NONE
    client_ca_tls_container_ref: Ref | None = None
    client_crl_container_ref: Ref | None = None
    tls_versions: TlsVersions | None = None
    tls_ciphers: TlsCiphers | None = None
    alpn_protocols: AlpnProtocols | None = None
    hsts_max_age: HstsMaxAge | None = None
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    # Only in a fully populated load balancer.
    default_pool: PoolCreate | None = None
    l7policies: list[L7PolicyCreate] = []

    @model_validator(mode="after")
    def _check(self) -> "ListenerCreate":
        if self.default_pool is not None and self.default_pool_id is not None:
            raise ValueError("give default_pool or default_pool_id, not both")
        return self


class ListenerUpdate(Body):
    name: Name = None
    description: Name = None
    admin_state_up: bool | None = None
    connection_limit: int | None = Field(default=None, ge=-1, le=c.MAX_CONNECTION_LIMIT)
    default_pool_id: str | None = None
    timeout_client_data: Timeout = None
    timeout_member_connect: Timeout = None
    timeout_member_data: Timeout = None
    timeout_tcp_inspect: Timeout = None
    insert_headers: Headers | None = None
    allowed_cidrs: Cidrs | None = None
    default_tls_container_ref: Ref | None = None
    sni_container_refs: SniRefs | None = None
    client_authentication: ClientAuth | None = None
    client_ca_tls_container_ref: Ref | None = None
    client_crl_container_ref: Ref | None = None
    tls_versions: TlsVersions | None = None
    tls_ciphers: TlsCiphers | None = None
    alpn_protocols: AlpnProtocols | None = None
    hsts_max_age: HstsMaxAge | None = None
    hsts_include_subdomains: bool | None = None
    hsts_preload: bool | None = None
    tags: Tags | None = None


class LoadBalancerCreate(Owned):
    vip_address: IP | None = None
    vip_subnet_id: Ident | None = None
    vip_network_id: Ident | None = None
    vip_port_id: Ident | None = None
    vip_qos_policy_id: Ident | None = None
    provider: Annotated[Ident, Field(max_length=64)] | None = None
    flavor_id: Ident | None = None
    availability_zone: Ident | None = None
    listeners: list[ListenerCreate] = []
    pools: list[PoolCreate] = []

    @model_validator(mode="after")
    def _check(self) -> "LoadBalancerCreate":
        if not (self.vip_address or self.vip_subnet_id):
            raise ValueError("a VIP is required: give vip_address or vip_subnet_id")
        return self


class LoadBalancerUpdate(Body):
    name: Name = None
    description: Name = None
    admin_state_up: bool | None = None
    vip_qos_policy_id: Ident | None = None
    tags: Tags | None = None


# The quota columns are 32-bit signed integers; -1 is unlimited.
QuotaValue = Annotated[int | None, Field(ge=-1, le=2**31 - 1)]


class QuotaUpdate(Body):
    load_balancer: QuotaValue = None
    loadbalancer: QuotaValue = None
    listener: QuotaValue = None
    pool: QuotaValue = None
    member: QuotaValue = None
    health_monitor: QuotaValue = None
    healthmonitor: QuotaValue = None
    l7policy: QuotaValue = None
    l7rule: QuotaValue = None


class MemberBatch(Body):
    members: list[MemberFields]


# --- parsing ------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


# Deeper than any body here (a fully populated load balancer is 8 levels).
MAX_DEPTH = 32
# What no database stores as text: NUL and lone surrogates.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def decode(raw: bytes) -> Any:
    """The JSON document of a request body, or BadRequest.

    Refused: a body that is not UTF-8, not JSON, nested deeper than
    MAX_DEPTH, with NaN/Infinity or a number too large for a float, or with
    NUL or a lone surrogate in any string (the message names the field).
    """
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON document is required.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The request body is not valid UTF-8.") from None
    try:
        document = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise BadRequest(f"The request body is nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    _check_tree(document)
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _check_tree(document: Any) -> None:
    """Depth and strings of a decoded document, without recursion."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(document, ())]
    while stack:
        value, where = stack.pop()
        if len(where) > MAX_DEPTH:
            raise BadRequest(f"The request body is nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, str) and _UNSTORABLE.search(value):
            field = ".".join(where) or "the request body"
            raise BadRequest(f"Invalid input for {field}: NUL and lone surrogate characters are not allowed.")
        if isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    field = ".".join(where) or "the request body"
                    raise BadRequest(f"Invalid attribute name in {field}: NUL and lone surrogate "
                                     f"characters are not allowed.")
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, str(i))) for i, item in enumerate(value))


def parse(document: Any, key: str, model: type[M]) -> M:
    """Validate ``document[key]`` as ``model``; BadRequest names the field."""
    if not isinstance(document, dict) or key not in document:
        raise BadRequest(f"The request body must be a JSON object with the key '{key}'.")
    extra = sorted(set(document) - {key})
    if extra:
        raise BadRequest(f"Unknown attribute(s) in the request body: {', '.join(extra)}")
    try:
        return model.model_validate(document[key])
    except ValidationError as exc:
        raise BadRequest(describe(exc, key)) from None


def describe(exc: ValidationError, key: str) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in (key, *error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"Unknown attribute for argument {key}: {where}"
    if kind == "missing":
        return f"Mandatory field missing: {where}"
    message = error["msg"].removeprefix("Value error, ")
    if error["loc"] and kind != "value_error":
        return f"Invalid input for field/attribute {where}. Value: {error.get('input')!r}. {message}"
    return f"Invalid input for {where}: {message}"


# --- the operator's catalogue: flavors, availability zones and their profiles --------------

RequiredName = Annotated[str, Field(min_length=1, max_length=255)]
ProviderName = Annotated[Ident, Field(max_length=64)]
# A profile's data: a JSON object in a string, as Octavia takes it; its keys are judged
# against the provider's capabilities by the service.
ProfileData = Annotated[str, Field(min_length=2, max_length=4096)]


class FlavorProfileCreate(Body):
    name: RequiredName
    provider_name: ProviderName
    flavor_data: ProfileData


class FlavorProfileUpdate(Body):
    name: RequiredName | None = None
    provider_name: ProviderName | None = None
    flavor_data: ProfileData | None = None


class FlavorCreate(Body):
    name: RequiredName
    description: Name = None
    flavor_profile_id: Ident
    enabled: bool = True


class FlavorUpdate(Body):
    name: RequiredName | None = None
    description: Name = None
    enabled: bool | None = None


class AvailabilityZoneProfileCreate(Body):
    name: RequiredName
    provider_name: ProviderName
    availability_zone_data: ProfileData


class AvailabilityZoneProfileUpdate(Body):
    name: RequiredName | None = None
    provider_name: ProviderName | None = None
    availability_zone_data: ProfileData | None = None


class AvailabilityZoneCreate(Body):
    # The zone's name is its key (and a path segment): an identifier, never free text.
    name: Ident
    description: Name = None
    availability_zone_profile_id: Ident
    enabled: bool = True


class AvailabilityZoneUpdate(Body):
    description: Name = None
    enabled: bool | None = None
