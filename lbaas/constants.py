"""Every name, status, queue and default that more than one module uses.

Values that an operator may change live in ``lbaas.config``; this module
holds the vocabulary of the domain and the wire.
"""

from typing import Final

# --- provisioning / operating status (Octavia v2 vocabulary) -------------
ACTIVE: Final = "ACTIVE"
DELETED: Final = "DELETED"
ERROR: Final = "ERROR"
PENDING_CREATE: Final = "PENDING_CREATE"
PENDING_UPDATE: Final = "PENDING_UPDATE"
PENDING_DELETE: Final = "PENDING_DELETE"
PENDING_STATUSES: Final = frozenset({PENDING_CREATE, PENDING_UPDATE, PENDING_DELETE})
# A load balancer in one of these may take a new change.
MUTABLE_STATUSES: Final = frozenset({ACTIVE, ERROR})

ONLINE: Final = "ONLINE"
OFFLINE: Final = "OFFLINE"
DEGRADED: Final = "DEGRADED"
NO_MONITOR: Final = "NO_MONITOR"
DRAINING: Final = "DRAINING"
OPERATING_STATUSES: Final = (ONLINE, OFFLINE, DEGRADED, ERROR, NO_MONITOR, DRAINING)

# --- protocols, algorithms, persistence, monitors --------------------------
PROTOCOL_HTTP: Final = "HTTP"
PROTOCOL_HTTPS: Final = "HTTPS"
PROTOCOL_TCP: Final = "TCP"
PROTOCOL_UDP: Final = "UDP"
PROTOCOL_SCTP: Final = "SCTP"
PROTOCOL_PROXY: Final = "PROXY"
PROTOCOL_PROXYV2: Final = "PROXYV2"
PROTOCOL_TERMINATED_HTTPS: Final = "TERMINATED_HTTPS"
# Octavia API 2.25: the load balancer's own metrics (HAProxy's exporter) at /metrics; no pools.
PROTOCOL_PROMETHEUS: Final = "PROMETHEUS"
LISTENER_PROTOCOLS: Final = (PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_TCP, PROTOCOL_UDP,
                             PROTOCOL_SCTP, PROTOCOL_TERMINATED_HTTPS, PROTOCOL_PROMETHEUS)
POOL_PROTOCOLS: Final = (PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_TCP, PROTOCOL_UDP,
                         PROTOCOL_SCTP, PROTOCOL_PROXY, PROTOCOL_PROXYV2)

# Which pool protocols a listener protocol may forward to (as Octavia allows).
VALID_LISTENER_POOL_PROTOCOLS: Final = {
    PROTOCOL_TCP: (PROTOCOL_TCP, PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_PROXY, PROTOCOL_PROXYV2),
    PROTOCOL_HTTP: (PROTOCOL_HTTP, PROTOCOL_PROXY, PROTOCOL_PROXYV2),
    PROTOCOL_HTTPS: (PROTOCOL_HTTPS, PROTOCOL_PROXY, PROTOCOL_PROXYV2, PROTOCOL_TCP),
    PROTOCOL_TERMINATED_HTTPS: (PROTOCOL_HTTP, PROTOCOL_PROXY, PROTOCOL_PROXYV2),
    PROTOCOL_UDP: (PROTOCOL_UDP,),
    PROTOCOL_SCTP: (PROTOCOL_SCTP,),
    PROTOCOL_PROMETHEUS: (),  # it has no child objects
}

LB_ALGORITHMS: Final = ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP", "SOURCE_IP_PORT")
SESSION_PERSISTENCE_TYPES: Final = ("SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE")
HEALTH_MONITOR_TYPES: Final = ("HTTP", "HTTPS", "TCP", "PING", "TLS-HELLO", "UDP-CONNECT", "SCTP")
HTTP_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "PATCH", "CONNECT")

# --- L7 policies and rules (Octavia's vocabulary) ------------------------------
L7POLICY_ACTIONS: Final = ("REDIRECT_TO_POOL", "REDIRECT_TO_URL", "REDIRECT_PREFIX", "REJECT")
L7POLICY_REDIRECT_CODES: Final = (301, 302, 303, 307, 308)
L7RULE_TYPES: Final = ("HOST_NAME", "PATH", "FILE_TYPE", "HEADER", "COOKIE",
                        "SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT", "SSL_DN_FIELD")
# Rule types that read the client's certificate: TERMINATED_HTTPS listeners only.
L7RULE_SSL_TYPES: Final = ("SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT", "SSL_DN_FIELD")
# The distinguished-name fields an SSL_DN_FIELD rule may name (its key), as Octavia has them.
DISTINGUISHED_NAME_FIELDS: Final = ("SN", "GN", "C", "ST", "L", "O", "OU", "CN", "DC",
                                    "EMAIL", "UID", "serialNumber", "title")
L7RULE_COMPARE_TYPES: Final = ("REGEX", "EQUAL_TO", "CONTAINS", "STARTS_WITH", "ENDS_WITH")
MAX_L7RULES_PER_POLICY: Final = 50

# --- TLS (Octavia's vocabulary and defaults) --------------------------------------
CLIENT_AUTH_NONE: Final = "NONE"
CLIENT_AUTH_OPTIONAL: Final = "OPTIONAL"
CLIENT_AUTH_MANDATORY: Final = "MANDATORY"
CLIENT_AUTH_MODES: Final = (CLIENT_AUTH_NONE, CLIENT_AUTH_OPTIONAL, CLIENT_AUTH_MANDATORY)
TLS_VERSIONS: Final = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
DEFAULT_TLS_VERSIONS: Final = ("TLSv1.2", "TLSv1.3")
ALPN_PROTOCOLS: Final = ("h2", "http/1.1", "http/1.0")
DEFAULT_LISTENER_ALPN_PROTOCOLS: Final = ("h2", "http/1.1", "http/1.0")
DEFAULT_POOL_ALPN_PROTOCOLS: Final = ("http/1.1", "http/1.0")
# Octavia's default cipher string (TLS 1.3 suites are set apart by their TLS_ prefix).
DEFAULT_TLS_CIPHERS: Final = (
    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:"
    "ECDHE-RSA-AES128-SHA256")
# The headers a TERMINATED_HTTPS listener may add about the client's certificate.
SSL_CLIENT_HEADERS: Final = ("X-SSL-Client-Verify", "X-SSL-Client-Has-Cert", "X-SSL-Client-DN",
                             "X-SSL-Client-CN", "X-SSL-Issuer", "X-SSL-Client-SHA1",
                             "X-SSL-Client-Not-Before", "X-SSL-Client-Not-After")

# --- listener defaults (milliseconds, as Octavia) --------------------------
DEFAULT_TIMEOUT_CLIENT_DATA: Final = 50000
DEFAULT_TIMEOUT_MEMBER_CONNECT: Final = 5000
DEFAULT_TIMEOUT_MEMBER_DATA: Final = 50000
DEFAULT_TIMEOUT_TCP_INSPECT: Final = 0
MAX_TIMEOUT: Final = 24 * 60 * 60 * 1000
MAX_CONNECTION_LIMIT: Final = 1_000_000

# --- roles ------------------------------------------------------------------
ROLE_ADMIN: Final = "admin"
ROLE_MEMBER: Final = "member"
ROLE_READER: Final = "reader"
ROLES: Final = (ROLE_ADMIN, ROLE_MEMBER, ROLE_READER)
# Octavia's roles before secure RBAC; the policy still honours them.
LEGACY_ROLES: Final = ("load-balancer_admin", "load-balancer_member", "load-balancer_observer",
                       "load-balancer_global_observer", "load-balancer_quota_admin")

# --- providers ----------------------------------------------------------------
NOOP_PROVIDER: Final = "noop"

# --- messaging ----------------------------------------------------------------
EXCHANGE: Final = "lbaas"
REPLY_EXCHANGE: Final = "lbaas.reply"
# Quorum queues send a message delivered too often here (fanout), to be logged and dropped.
DEAD_LETTER_EXCHANGE: Final = "lbaas.dead-letter"
DEAD_LETTER_QUEUE: Final = "lbaas.dead-letter"


def controller_queue(environment: str) -> str:
    """The queue all servers of ``environment`` compete on."""
    return f"lbaas.controller.{environment}"


def agent_queue(environment: str, host: str) -> str:
    """The task queue of the one agent on ``host`` in ``environment``."""
    return f"lbaas.agent.{environment}.{host}"


# The largest desired state (its JSON, in bytes) a Converge cast carries; the agent fetches a
# larger one (GetLoadBalancer), so casts stay small in the durable agent queues.
CARRIED_STATE_MAX_BYTES: Final = 32 * 1024
# Each Broker's private reply queue is this prefix plus a random hex id.
REPLY_QUEUE_PREFIX: Final = "lbaas.reply."
# Seconds a start-up check waits for the database or the broker to answer.
STARTUP_PROBE_TIMEOUT: Final = 5
# Seconds GET /healthcheck waits for each of the database and the broker.
HEALTHCHECK_TIMEOUT: Final = 3.0

# --- agents and their devices ---------------------------------------------------
# configurations["device_state"] in an agent's heartbeat.
DEVICE_STATE_UP: Final = "up"
DEVICE_STATE_DOWN: Final = "down"
DEVICE_STATE_UNKNOWN: Final = "unknown"   # not looked at yet
# Why a load balancer's last change failed (load_balancer.error_kind).
ERROR_KIND_DEVICE: Final = "device"       # unreachable or failing: converged again once it answers
ERROR_KIND_REJECTED: Final = "rejected"   # the device refused the configuration: never retried by itself
# A new load balancer's revision (every change adds one): a cast at it is the create's.
FIRST_REVISION: Final = 1


# --- API ----------------------------------------------------------------------
API_MIN_VERSION: Final = "2.0"
API_MAX_VERSION: Final = "2.27"

# --- device ---------------------------------------------------------------------
# The HAProxy data plane ("device") and its agent-side driver.
DEVICE_AUTH_HEADER: Final = "X-Auth-Token"
DEVICE_DEFAULT_PORT: Final = 9443
DEVICE_DEFAULT_STATE_DIR: Final = "/var/lib/lbaas-device"
# The token etc/device.ini ships with; an appliance refuses to start with it.
DEVICE_SAMPLE_TOKEN: Final = "change-me"
DEVICE_MIN_HAPROXY_VERSION: Final = (2, 4)
# What one device can serve; UDP/SCTP need more than HAProxy 2.6 + this template.
DEVICE_LISTENER_PROTOCOLS: Final = (PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_TCP,
                                    PROTOCOL_TERMINATED_HTTPS, PROTOCOL_PROMETHEUS)
DEVICE_POOL_PROTOCOLS: Final = (PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_TCP, PROTOCOL_PROXY,
                                PROTOCOL_PROXYV2)
DEVICE_LB_ALGORITHMS: Final = ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP")
DEVICE_SESSION_PERSISTENCE_TYPES: Final = SESSION_PERSISTENCE_TYPES
DEVICE_HEALTH_MONITOR_TYPES: Final = ("HTTP", "HTTPS", "TCP", "PING", "TLS-HELLO")
# The least a device must offer before an agent uses it (HAProxyDriver.verify()).
DEVICE_REQUIRED_CAPABILITIES: Final = {
    "protocols": (PROTOCOL_HTTP, PROTOCOL_HTTPS, PROTOCOL_TCP, PROTOCOL_PROXY),
    "lb_algorithms": ("ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP"),
    "session_persistence": SESSION_PERSISTENCE_TYPES,
    "health_monitors": ("HTTP", "HTTPS", "TCP", "PING"),
}
# Device answers that refuse a document (malformed, clashing, refused by HAProxy): sending
# the same document again fails the same way.
DEVICE_REJECTED_STATUSES: Final = (400, 409, 422)
# Seconds an agent's periodic look at its device may take.
DEVICE_PROBE_TIMEOUT: Final = 3.0
# How PUT /loadbalancers/{id} reached the desired state.
APPLIED_STARTED: Final = "started"
APPLIED_RELOADED: Final = "reloaded"
APPLIED_RUNTIME: Final = "runtime"
APPLIED_UNCHANGED: Final = "unchanged"
DEVICE_HTTP_COOKIE_NAME: Final = "SRV"
DEVICE_PERSISTENCE_TIMEOUT_MS: Final = 30 * 60 * 1000
DEVICE_STICK_TABLE_SIZE: Final = "10k"
# Old HAProxy workers keep draining long connections after a reload at most this long (or the
# longest listener data timeout when that is longer).
DEVICE_MIN_HARD_STOP_AFTER_MS: Final = 60 * 1000
