"""Every document that crosses a process boundary, typed once.

Three wires, two ends each:

* server -> agent -> appliance: the desired state of one load balancer
  (``DesiredState``).  A server builds it (``lbaas.controller.desired``), the
  agent passes it on unchanged, the appliance validates it into a
  ``LoadBalancer`` (``lbaas.appliance.schema``, which fills Octavia's
  defaults for what a sender left out and drops what it does not know).
* appliance -> agent: the ``StatusDocument`` of one load balancer
  (``lbaas.appliance.status``); the haproxy driver turns it into a
  ``DeviceReport``, the only form in which statuses leave an agent.
* agent <-> server: the messages on the controller queue and the agent's
  own queue, as frozen dataclasses (``Message``): the class names the
  method, its fields are the keyword arguments, and the handler of that
  method (``lbaas.controller.handlers``, ``lbaas.agent.service``) takes
  exactly those.

A new field is added here, where it is produced and where it is consumed;
nowhere else.  The documents are plain dicts and lists on the wire (JSON),
so the TypedDicts cost nothing at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Literal, NotRequired, TypedDict


# --- the desired state of one load balancer ---------------------------------

class SessionPersistence(TypedDict):
    type: str
    cookie_name: str | None     # APP_COOKIE only


class HealthMonitor(TypedDict):
    id: str | None
    type: str
    delay: int
    timeout: int
    max_retries: int
    max_retries_down: int
    # None from a server for monitors that send no request: the appliance's default then.
    http_method: str | None
    url_path: str | None
    expected_codes: str | None
    http_version: str | None    # "1.0" or "1.1"
    domain_name: str | None     # needs http_version "1.1"
    admin_state_up: bool


class Member(TypedDict):
    id: str
    name: str
    address: str
    protocol_port: int
    weight: int
    backup: bool
    admin_state_up: bool
    monitor_address: str | None
    monitor_port: int | None


class Pool(TypedDict):
    id: str
    name: str
    protocol: str
    lb_algorithm: str
    admin_state_up: bool
    session_persistence: SessionPersistence | None
    members: list[Member]
    healthmonitor: HealthMonitor | None
    tls: PoolTLS | None         # None: plain (or TLS passed through untouched)


class TLSCertificate(TypedDict):
    """A certificate with its private key and chain, PEM text, as a key manager resolved it.

    ``id`` is a digest of the reference it came from (``lbaas.keys.certificate_id``): a device
    names its files after it, so it never sees the reference itself.
    """

    id: str
    certificate: str
    private_key: str
    intermediates: list[str]


class ListenerTLS(TypedDict):
    """TLS termination of a TERMINATED_HTTPS listener."""

    default_certificate: TLSCertificate     # served without SNI, or when no SNI name matches
    sni_certificates: list[TLSCertificate]  # chosen by the names (CN, SANs) each holds
    client_authentication: str              # c.CLIENT_AUTH_MODES
    client_ca: str | None                   # PEM certificates; with NONE, None
    client_crl: str | None                  # PEM CRL of client_ca
    versions: list[str]                     # c.TLS_VERSIONS
    ciphers: str | None                     # OpenSSL names, colon-separated (lbaas.validate)
    alpn_protocols: list[str]               # c.ALPN_PROTOCOLS
    hsts_max_age: int | None                # seconds; None: no Strict-Transport-Security
    hsts_include_subdomains: bool
    hsts_preload: bool


class PoolTLS(TypedDict):
    """Re-encryption towards the members of a pool (``tls_enabled``)."""

    certificate: TLSCertificate | None      # presented to members that ask for one
    ca: str | None                          # PEM: members' certificates are verified against it
    crl: str | None                         # PEM CRL of ca
    versions: list[str]
    ciphers: str | None
    alpn_protocols: list[str]


class L7Rule(TypedDict):
    id: str
    type: str                   # c.L7RULE_TYPES
    compare_type: str           # c.L7RULE_COMPARE_TYPES
    key: str | None             # the header or cookie name, or the DN field (HEADER, COOKIE, SSL_DN_FIELD)
    value: str
    invert: bool
    admin_state_up: bool


class L7Policy(TypedDict):
    """Applied in ``position`` order (1 first); the first whose rules all match acts."""

    id: str
    action: str                 # c.L7POLICY_ACTIONS
    position: int
    redirect_pool_id: str | None     # REDIRECT_TO_POOL: a pool of the same load balancer
    redirect_url: str | None         # REDIRECT_TO_URL
    redirect_prefix: str | None      # REDIRECT_PREFIX
    redirect_http_code: int | None   # REDIRECT_TO_URL / REDIRECT_PREFIX: 301, 302, 303, 307, 308
    admin_state_up: bool
    rules: list[L7Rule]


class Listener(TypedDict):
    id: str
    name: str
    protocol: str
    protocol_port: int
    connection_limit: int
    admin_state_up: bool
    timeout_client_data: int
    timeout_member_connect: int
    timeout_member_data: int
    timeout_tcp_inspect: int
    default_pool_id: str | None
    insert_headers: dict[str, str]
    allowed_cidrs: list[str]
    l7policies: NotRequired[list[L7Policy]]   # by position; HTTP and TERMINATED_HTTPS listeners only
    tls: ListenerTLS | None     # TERMINATED_HTTPS only


class LoadBalancer(TypedDict):
    """What an appliance holds: the validated desired state."""

    id: str
    project_id: str
    revision: int
    name: str
    admin_state_up: bool
    vip_address: str
    listeners: list[Listener]
    pools: list[Pool]


class Present(LoadBalancer):
    """The desired state of a load balancer that should exist."""

    provider: str
    deleted: Literal[False]


class Deletion(TypedDict):
    """The desired state of one that should not: gone (``revision`` None) or on its way out."""

    id: str
    revision: int | None
    deleted: Literal[True]


DesiredState = Present | Deletion


# --- what comes back: statuses and counters -----------------------------------

class Counters(TypedDict):
    bytes_in: int
    bytes_out: int
    active_connections: int
    total_connections: int
    request_errors: int


class ObjectStatus(TypedDict):
    id: str
    operating_status: str


class PoolStatus(ObjectStatus):
    members: list[ObjectStatus]


class StatusDocument(TypedDict):
    """The appliance's answer to ``GET /loadbalancers/<id>/status``."""

    id: str
    revision: int
    operating_status: str
    listeners: list[ObjectStatus]
    pools: list[PoolStatus]
    stats: Counters                     # the sum over listeners
    listener_stats: dict[str, Counters]


# The kinds of child an OperatingReport maps id -> status for.
OperatingKind = Literal["listeners", "pools", "members", "healthmonitors"]


class OperatingReport(TypedDict):
    """Operating statuses by kind and id, as a server writes them (``db.lifecycle``)."""

    loadbalancer: str
    listeners: dict[str, str]
    pools: dict[str, str]
    members: dict[str, str]
    healthmonitors: dict[str, str]


class DeviceReport(TypedDict):
    """What a device driver reports of one load balancer: statuses and counters."""

    operating: OperatingReport
    stats: Counters
    listener_stats: dict[str, Counters]


class Held(TypedDict):
    """One load balancer an appliance holds, as ``GET /loadbalancers`` lists it."""

    id: str
    revision: int


class Applied(Held):
    """The appliance's answer to ``PUT /loadbalancers/<id>``."""

    applied: str                        # constants.APPLIED_*


def zero_counters() -> Counters:
    return Counters(bytes_in=0, bytes_out=0, active_connections=0, total_connections=0, request_errors=0)


# --- what an agent tells a server of itself --------------------------------------

class Inventory(TypedDict, total=False):
    """A device driver's ``verify``: what the device(s) are and can do."""

    devices: int
    haproxy_version: str
    tmos_version: str                   # bigip driver
    as3_version: str                    # bigip driver
    loadbalancers: int
    capabilities: dict[str, list[str]]  # capability -> values every device offers


class Configurations(Inventory, total=False):
    """The ``configurations`` of a state report: the inventory and the device's health.

    ``loadbalancers`` is what the agent's device(s) hold: the whole group's when agents share
    devices, and a peer's work included.  It is not the agent's load, which is the number of
    load balancers bound to it (the agent row's ``loadbalancer_count``, kept by the scheduler).
    """

    device_state: str                   # constants.DEVICE_STATE_*
    device_error: str | None
    device_state_since: str
    report_interval: float


class Probe(TypedDict):
    """A device driver's cheap periodic look."""

    loadbalancers: int
    capacity_score: float


class Answer(TypedDict):
    """A server's answer to a state report.

    ``accepts_batches``: the server handles ``UpdateStatuses``.  Servers older than it leave
    it out, and an agent sends them single ``UpdateStatus`` casts."""

    accepted: bool
    reason: NotRequired[str]
    accepts_batches: NotRequired[bool]


class Bound(TypedDict):
    """One load balancer bound to an agent, as ``get_bound_loadbalancers`` lists it."""

    id: str
    revision: int
    status: str
    error_kind: str | None


# --- messages --------------------------------------------------------------------

@dataclass(frozen=True)
class Message:
    """A method on a queue and its keyword arguments (the fields)."""

    method: ClassVar[str]

    def args(self) -> dict[str, object]:
        """The keyword arguments, shallow (``dataclasses.asdict`` would copy documents)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ReportState(Message):
    """Call: the agent's heartbeat (``start_flag`` on its first); answered with ``Answer``."""

    method: ClassVar[str] = "report_state"
    host: str
    environment: str
    group: int
    device_driver: str
    configurations: Configurations
    capacity_score: float
    start_flag: bool
    instance_id: str
    exclusive: bool


@dataclass(frozen=True)
class AgentStopped(Message):
    """Cast: the agent stopped cleanly, its host is free."""

    method: ClassVar[str] = "agent_stopped"
    host: str
    environment: str
    instance_id: str


@dataclass(frozen=True)
class GetLoadBalancer(Message):
    """Call: answered with the ``DesiredState``."""

    method: ClassVar[str] = "get_loadbalancer"
    loadbalancer_id: str


@dataclass(frozen=True)
class GetBoundLoadBalancers(Message):
    """Call: answered with a list of ``Bound``."""

    method: ClassVar[str] = "get_bound_loadbalancers"
    host: str
    environment: str


@dataclass(frozen=True)
class FilterExisting(Message):
    """Call: answered with those of the ids that still exist."""

    method: ClassVar[str] = "filter_existing"
    loadbalancer_ids: list[str]


@dataclass(frozen=True)
class UpdateStatus(Message):
    """Cast: the outcome of a converge that reached ``revision``."""

    method: ClassVar[str] = "update_status"
    loadbalancer_id: str
    revision: int
    error: str | None = None
    operating: OperatingReport | None = None
    error_kind: str | None = None      # constants.ERROR_KIND_*, with ``error``
    request_id: str | None = None      # the Converge's: the API request that made the change


class StatusReport(TypedDict):
    """One outcome in an ``UpdateStatuses``: the fields of an ``UpdateStatus``."""

    loadbalancer_id: str
    revision: int
    error: str | None
    operating: OperatingReport | None
    error_kind: str | None
    request_id: str | None


@dataclass(frozen=True)
class UpdateStatuses(Message):
    """Cast: the outcomes of several converges that finished close together, applied in one
    transaction.  Sent only to servers whose ``Answer`` said ``accepts_batches``; one
    outcome alone still goes as an ``UpdateStatus``."""

    method: ClassVar[str] = "update_statuses"
    reports: list[StatusReport]


@dataclass(frozen=True)
class UpdateStats(Message):
    """Cast: a ``DeviceReport`` that changed since the last one."""

    method: ClassVar[str] = "update_stats"
    loadbalancer_id: str
    stats: Counters
    listener_stats: dict[str, Counters]
    operating: OperatingReport


@dataclass(frozen=True)
class Converge(Message):
    """Cast to an agent's queue: converge this load balancer (the change reached ``revision``).

    ``desired``, when a server carries it (``lbaas.controller.agent_provider.carried_state``:
    an update's state, small and without key material), is the state the change was made from,
    at ``revision``; the agent may apply it instead of asking a server (``GetLoadBalancer``).
    An agent that does not know the field drops it (``messaging._accepted``) and fetches.
    """

    method: ClassVar[str] = "converge"
    loadbalancer_id: str
    revision: int | None = None
    request_id: str | None = None      # x-openstack-request-id of the API request that made the change
    desired: Present | None = None

# The controller queue's methods; an agent's queue takes only ``Converge``.
CONTROLLER_MESSAGES: tuple[type[Message], ...] = (ReportState, AgentStopped, GetLoadBalancer,
                                                  GetBoundLoadBalancers, FilterExisting, UpdateStatus,
                                                  UpdateStatuses, UpdateStats)
