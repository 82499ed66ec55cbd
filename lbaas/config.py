"""The one place that reads configuration.

Configuration comes from INI files (``--config-file``, repeatable, later
files win), then ``overrides`` (tests, the all-in-one), then environment
variables ``LBAAS_<SECTION>_<OPTION>`` (``LBAAS_DEFAULT_<OPTION>`` for
``[DEFAULT]``), which win over both.  Every option is declared in OPTIONS with
its type (kind), default and a one-line help; ``lbaas config-sample`` prints
them all as an example file.  Free-form sections (``[vip_subnets]``: id =
CIDR) are read as plain maps.

Contract of ``load``: it returns a fully checked Config or raises ConfigError
whose message is one line naming what is wrong and where (file or environment
variable, section, option, the allowed values).  Refused: a missing or
unreadable file, text that is not UTF-8, a section or option given twice in one
file, an unknown section or option (with the nearest known name), a value of
the wrong type, out of range or not among the choices, a [vip_subnets] value
that is not a CIDR, a log_file in a directory that does not exist.  Messages
never carry a password or token.  What needs a look outside the files
(database, broker, token file, HAProxy) is checked at start-up by
``lbaas.service``.

``[DEFAULT]`` is an ordinary section here: it holds the options declared under
DEFAULT and they are not inherited by other sections.  ``[device]`` serves the
appliance (``lbaas device``) and the agent's device drivers alike, so it
declares the options of both; each reads its own.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import dataclasses
import difflib
import ipaddress
import math
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from lbaas import constants as c
from lbaas.agent.drivers import DRIVERS


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message (one line) says which and where."""


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    kind: Callable[[str], Any] = str


# --- kinds: parse INI text, raise ValueError saying what is allowed ---------------

def parse_bool(value: str) -> bool:
    """The one boolean parser: 1/true/yes/on or 0/false/no/off, any case."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false (also yes/no, on/off, 1/0) (not {value!r})")


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclasses.dataclass(frozen=True)
class Integer:
    """A whole number, at least ``low`` and at most ``high`` when given."""

    low: int | None = None
    high: int | None = None

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"must be {self} (not {text!r})") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValueError(f"must be {self} (not {value})")
        return value

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer from {self.low} to {self.high}"
        return "an integer" if self.low is None else f"an integer of at least {self.low}"


@dataclasses.dataclass(frozen=True)
class Number:
    """A finite number above ``low`` (or at least ``low`` when ``inclusive``)."""

    low: float = 0.0
    inclusive: bool = False

    def __call__(self, text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"must be {self} (not {text!r})") from None
        in_range = value >= self.low if self.inclusive else value > self.low
        if not (math.isfinite(value) and in_range):
            raise ValueError(f"must be {self} (not {text.strip()})")
        return value

    def __str__(self) -> str:
        return f"a number {'of at least' if self.inclusive else 'above'} {self.low:g}"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of ``names`` (read when checked, so a registry may grow)."""

    names: Iterable[str]

    def __call__(self, text: str) -> str:
        value = text.strip()
        if value not in tuple(self.names):
            raise ValueError(f"must be {self} (not {value!r})")
        return value

    def __str__(self) -> str:
        return "one of: " + ", ".join(self.names)


TRANSPORT_SCHEMES = ("rabbit", "amqp", "amqps", "memory")


def _transport_url(value: str) -> str:
    scheme = value.strip().partition("://")[0]
    if "://" not in value or scheme not in TRANSPORT_SCHEMES:
        # Only the scheme is shown: the rest may hold a password.
        schemes = ", ".join(f"{s}://" for s in TRANSPORT_SCHEMES[:-1])
        raise ValueError(f"must be a {schemes} or {TRANSPORT_SCHEMES[-1]}:// URL "
                         f"(given: {scheme[:20]}://...)")
    nodes = value.strip().partition("://")[2].partition("/")[0].split(",")
    if scheme != "memory" and not all(node.rpartition("@")[2] for node in nodes):
        raise ValueError("names an empty host: give user:pass@host:port for each node, comma-separated")
    return value.strip()


def _url_list(value: str) -> list[str]:
    urls = _list(value)
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"must be http:// or https:// URLs separated by commas (not {url!r})")
    return urls


def _log_file(value: str) -> str:
    directory = os.path.dirname(os.path.abspath(value)) if value else ""
    if directory and not os.path.isdir(directory):
        raise ValueError(f"directory {directory} does not exist")
    return value


def _fernet_key(value: str) -> str:
    """Empty, or a Fernet key: urlsafe base64 of exactly 32 bytes (never echoed: it is a secret)."""
    key = value.strip()
    if not key:
        return ""
    try:
        ok = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ValueError("must be a Fernet key: urlsafe base64 of 32 bytes (44 characters ending in '=')")
    return key


def _optional_url(value: str) -> str:
    url = value.strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL (not {url[:60]!r})")
    return url.rstrip("/")


PORT = Integer(1, 65535)
POSITIVE = Integer(1)
SECONDS = Number(0)
QUOTA = Integer(-1)

OPTIONS: dict[str, tuple[Option, ...]] = {
    "DEFAULT": (
        Option("transport_url", "memory://", "Message broker: rabbit://user:pass@host:5672/vhost, amqp://..., or memory:// (one process only). A RabbitMQ cluster: rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost (connections fail over between the nodes).", _transport_url),
        Option("state_dir", "./lbaas-data", "Where the all-in-one keeps its SQLite file, token file, key store encryption key and device state."),
        Option("debug", False, "Log at DEBUG level.", parse_bool),
        Option("log_file", "", "Log to this file instead of standard error (its directory must exist).", _log_file),
    ),
    "api": (
        Option("bind_host", "127.0.0.1", "Address the API listens on."),
        Option("bind_port", 9876, "Port the API listens on.", PORT),
        Option("public_url", "", "Base URL advertised in version links (default: derived from the request)."),
        Option("auth_strategy", "token", "token (token file), keystone (Keystone tokens, see [keystone_authtoken]) or noauth (every caller is admin of project 'admin'; for development only).", Choice(("token", "keystone", "noauth"))),
        Option("token_file", "./lbaas-data/tokens.json", "JSON file of hashed tokens (lbaas token create|list|revoke); a relative path is relative to the working directory."),
        Option("policy_file", "/etc/lbaas/policy.yaml", "oslo.policy YAML overriding any rule (lbaas policy-sample lists them); absent: the defaults. Re-read when it changes."),
        Option("workers", 1, "Server processes sharing bind_port, each a whole server (API, controller consumers, sweeps); one per core uses the cores a single process cannot (the GIL).", POSITIVE),
        Option("threads", 16, "Threads serving API requests at once in each server process (more requests wait their turn).", POSITIVE),
        Option("pagination_max_limit", 1000, "Largest page a list returns.", POSITIVE),
        Option("admin_vip_anywhere", False, "Let admins take a vip_address outside every [vip_subnets] CIDR (tenants never can).", parse_bool),
        Option("max_request_body_size", 1048576, "Largest request body in bytes; a larger one answers 413 unread.", POSITIVE),
        Option("write_rate_limit", 10.0, "Writes (POST/PUT/DELETE) per second per project, in each server; 0 disables. Admins are not limited.", Number(0, inclusive=True)),
        Option("write_rate_burst", 50, "Writes a project may make at once before write_rate_limit applies.", POSITIVE),
        Option("metrics_enabled", True, "Serve Prometheus metrics at GET /metrics, without authentication (counts and agent host names, no tenant objects): keep it behind your network policy, or turn it off.", parse_bool),
    ),
    # Passed to keystonemiddleware's auth_token as its configuration (auth_strategy = keystone).
    "keystone_authtoken": (
        Option("www_authenticate_uri", "", "Public Keystone URL clients are sent to in WWW-Authenticate."),
        Option("auth_url", "", "Keystone URL the service user authenticates against."),
        Option("auth_type", "password", "Authentication plugin of the service user."),
        Option("username", "", "Service user that validates tokens."),
        Option("password", "", "Its password."),
        Option("project_name", "service", "Its project."),
        Option("user_domain_name", "Default", "Its domain."),
        Option("project_domain_name", "Default", "Its project's domain."),
        Option("region_name", "", "Region of the identity endpoint (optional)."),
        Option("memcached_servers", "", "host:port,... to share validated tokens between servers (default: a cache in each process)."),
        Option("token_cache_time", 300, "Seconds a validated token is trusted without asking Keystone again (also while Keystone is down).", Integer(0)),
        Option("service_token_roles_required", True, "A service token (X-Service-Token) counts only with a service role.", parse_bool),
        Option("http_connect_timeout", 5, "Seconds to wait for Keystone.", POSITIVE),
        Option("http_request_max_retries", 3, "Retries of a failed request to Keystone before the API answers 503.", Integer(0)),
    ),
    "messaging": (
        Option("quorum_queues", False, "Declare the controller and agent queues as RabbitMQ quorum queues (replicated over a cluster; a classic queue of the same name must be deleted first).", parse_bool),
        Option("delivery_limit", 10, "Quorum queues: deliveries after which a message is dead-lettered to lbaas.dead-letter, logged and counted (lbaas_dead_letters_total) instead of redelivered forever.", POSITIVE),
    ),
    "database": (
        Option("connection", "sqlite:///./lbaas-data/lbaas.sqlite", "SQLAlchemy URL: sqlite:///path, postgresql+psycopg://..., mysql+pymysql://... A PostgreSQL primary and standbys: postgresql+psycopg://user:pass@/dbname?host=h1:5432&host=h2:5432 (the read-write one is used)."),
        Option("pool_size", 0, "Connections kept open per process (not for SQLite); 0: one per thread that uses the database ([api] threads + [controller] workers + 4), so none is opened and closed under load.", Integer(0)),
        Option("max_overflow", 10, "Extra connections allowed in bursts beyond pool_size (not for SQLite).", Integer(0)),
        Option("check_schema", True, "Refuse to start when the schema is not at the newest migration.", parse_bool),
    ),
    "quotas": (
        Option("default_load_balancer_quota", 100, "Load balancers per project; -1 is unlimited.", QUOTA),
        Option("default_listener_quota", 500, "Listeners per project; -1 is unlimited.", QUOTA),
        Option("default_pool_quota", 500, "Pools per project; -1 is unlimited.", QUOTA),
        Option("default_member_quota", 5000, "Members per project; -1 is unlimited.", QUOTA),
        Option("default_health_monitor_quota", 500, "Health monitors per project; -1 is unlimited.", QUOTA),
        Option("default_l7policy_quota", 500, "L7 policies per project; -1 is unlimited.", QUOTA),
        Option("default_l7rule_quota", 5000, "L7 rules per project; -1 is unlimited.", QUOTA),
    ),
    "controller": (
        Option("environments", "", "Environments (providers) this server serves, comma-separated; empty: none besides noop.", _list),
        Option("default_provider", "", "Provider used when a load balancer names none (default: the first environment, else noop)."),
        Option("noop_provider", False, "Offer the noop provider even when environments are configured.", parse_bool),
        Option("noop_delay", 0.05, "Seconds the noop provider waits before completing a change.", Number(0, inclusive=True)),
        Option("agent_down_time", 30.0, "Seconds without a heartbeat after which an agent is dead.", SECONDS),
        # Kept equal to lbaas.scheduler.POLICIES (a test checks) without importing the database layer.
        Option("scheduler_policy", "least_loaded", "How a new load balancer picks among agents without tenant affinity: least_loaded or random.", Choice(("least_loaded", "random"))),
        Option("max_project_share", 0.5, "Tenant affinity yields when the agent already holds more than this share of the project's load balancers in the environment (the least loaded other agent takes it); 1.0 or more turns this off.", Number(0)),
        Option("pending_timeout", 30.0, "Seconds a change may stay PENDING before it is dispatched again.", SECONDS),
        Option("pending_max_age", 300.0, "Seconds after which a still PENDING change goes to ERROR.", SECONDS),
        Option("sweep_interval", 5.0, "Seconds between periodic sweeps.", SECONDS),
        Option("rpc_timeout", 10.0, "Seconds an RPC call waits for its reply.", SECONDS),
        Option("workers", 4, "Consumers of the controller queues in this server (handlers run in parallel).", POSITIVE),
    ),
    "agent": (
        Option("host", socket.gethostname(), "This agent's host name; unique per environment."),
        Option("environment_prefix", "default", "Environment (provider) this agent serves."),
        Option("environment_group_number", 1, "Group of agents that manage one device cluster.", POSITIVE),
        Option("report_interval", 10.0, "Seconds between state reports.", SECONDS),
        Option("resync_interval", 300.0, "Seconds between full resyncs of bound load balancers.", SECONDS),
        Option("stats_interval", 10.0, "Seconds between statistics reports.", SECONDS),
        Option("device_driver", "noop", "Device driver (see [device] for its options).", Choice(DRIVERS)),
        Option("max_loadbalancers", 0, "Capacity: load balancers this agent takes; 0 is unlimited.", Integer(0)),
        Option("workers", 4, "Load balancers this agent converges in parallel.", POSITIVE),
        Option("metrics_host", "127.0.0.1", "Address the Prometheus metrics listener binds."),
        Option("metrics_port", 0, "Port of the Prometheus metrics listener (GET /metrics); 0 turns it off.", Integer(0, 65535)),
    ),
    "device": (
        Option("token", "", f"Appliance: the token every request must carry in {c.DEVICE_AUTH_HEADER} (required; not the sample '{c.DEVICE_SAMPLE_TOKEN}')."),
        Option("bind_host", "127.0.0.1", "Appliance: address the management API listens on."),
        Option("bind_port", c.DEVICE_DEFAULT_PORT, "Appliance: port the management API listens on.", PORT),
        Option("state_dir", c.DEVICE_DEFAULT_STATE_DIR, "Appliance: where each load balancer's HAProxy configuration and state live."),
        Option("haproxy_bin", "haproxy", "Appliance: the HAProxy binary (2.4 or later)."),
        Option("tls_cert", "", "Appliance: PEM certificate; with tls_key, the API is served over HTTPS."),
        Option("tls_key", "", "Appliance: PEM private key of tls_cert."),
        Option("check_interval", 10.0, "Appliance: seconds between watchdog passes that restart a dead HAProxy; 0 turns the watchdog off.", Number(0, inclusive=True)),
        Option("bind_transparent", True, "Appliance: listeners may bind VIPs not (yet) on this host, as a standby must.", parse_bool),
        Option("haproxy_user", "haproxy", "Appliance: when it runs as root, HAProxy's workers run as this user (and group of that name) in an empty chroot."),
        Option("devices", [], "haproxy driver: base URLs of the appliances of this group, comma-separated (required).", _url_list),
        Option("device_token", "", "haproxy driver: the appliances' token (required)."),
        Option("ca_file", "", "haproxy driver: CA bundle that verifies https:// appliances (default: the system's)."),
        Option("timeout", 10.0, "haproxy driver: seconds per request to an appliance.", SECONDS),
        Option("allow_plaintext_keys", False, "haproxy driver: send certificates' private keys to http:// appliances too (only for an appliance on the same host: keys then cross the connection in clear).", parse_bool),
        Option("max_loadbalancers", None, "haproxy driver: load balancers per appliance for the capacity score; 0 is unlimited (default: [agent] max_loadbalancers).", Integer(0)),
        Option("latency", 0.0, "noop driver: seconds each change takes.", Number(0, inclusive=True)),
        Option("bigip_hosts", [], "bigip driver: https:// URLs of the group's BIG-IP devices, comma-separated: one, or two for a pair (required).", _url_list),
        Option("bigip_username", "", "bigip driver: the account that logs in to iControl REST and AS3 (required)."),
        Option("bigip_password", "", "bigip driver: its password (required; never logged)."),
        Option("bigip_ca_file", "", "bigip driver: CA bundle that verifies the devices' certificates (default: the system's)."),
        Option("bigip_verify", True, "bigip driver: verify the devices' certificates; false only for lab devices.", parse_bool),
        Option("bigip_ha_mode", "standalone", "bigip driver: standalone (one device) or pair (two devices in one sync-failover group: declared on the active one, then synced).", Choice(("standalone", "pair"))),
        Option("bigip_timeout", 10.0, "bigip driver: seconds per request to a device.", SECONDS),
        Option("bigip_task_timeout", 60.0, "bigip driver: seconds one change may take, AS3 task and retries of a busy device included.", SECONDS),
        Option("bigip_max_loadbalancers", 0, "bigip driver: load balancers per device for the capacity score; 0: max_loadbalancers.", Integer(0)),
    ),
    "certificates": (
        Option("backend", "local", "Key manager that listeners' and pools' certificate references point at: local (this server's own Barbican-compatible store, its v1 API under /key-manager/v1) or barbican.", Choice(("local", "barbican"))),
        Option("encryption_key", "", "local: the Fernet key (urlsafe base64 of 32 bytes) that encrypts stored secrets; required on a server with backend = local; make one with: python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'.", _fernet_key),
        Option("barbican_endpoint", "", "barbican: Barbican's base URL, e.g. http://barbican.example.net:9311 (required with backend = barbican).", _optional_url),
        Option("barbican_timeout", 10.0, "barbican: seconds per request to Barbican.", SECONDS),
    ),
}

FREE_FORM_SECTIONS = ("vip_subnets",)
SECTION_NOTES = {
    "device": "The appliance (lbaas device) and the agent's device driver share this section; each reads its own options.",
}

# Raw values: section -> option -> (text, where it came from, e.g. "in /etc/lbaas/x.conf").
Raw = dict[str, dict[str, tuple[str, str]]]

# configparser would merge [DEFAULT] into every section; naming its default
# section something no file can spell makes [DEFAULT] an ordinary section.
_NO_DEFAULT_SECTION = "\x00"


class Section(Mapping[str, Any]):
    """Typed, read-only view of one section: ``section.bind_port`` or ``section["bind_port"]``."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("_values", {})
        if key in values:
            return values[key]
        raise AttributeError(f"[{self.__dict__.get('_name')}] has no option {key!r}")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Config:
    """All configuration of one process; ``files`` are the files it was read from."""

    def __init__(self, sections: dict[str, Section], vip_subnets: dict[str, str],
                 files: tuple[str, ...] = ()) -> None:
        self.sections = sections
        self.files = files
        self._vip_subnets = vip_subnets

    def __getattr__(self, name: str) -> Section:
        key = "DEFAULT" if name == "default" else name
        try:
            return self.__dict__["sections"][key]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def vip_subnets(self) -> dict[str, str]:
        return dict(self._vip_subnets)


def load(files: Iterable[str] = (), overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Read ``files`` in order (later wins), then apply ``overrides``; check everything.

    Environment variables ``LBAAS_<SECTION>_<OPTION>`` win over both.
    Raises ConfigError (one line: what, where).
    """
    files = tuple(files)
    raw: Raw = {}
    for path in files:
        _merge(raw, _read_file(path))
    given = {section: {str(k).lower(): (str(v), "in the overrides") for k, v in values.items()}
             for section, values in (overrides or {}).items()}
    _merge(raw, given)
    for section, values in given.items():
        _check_names(section, values, "in the overrides")
    sections = {name: Section(name, _typed(name, raw.get(name, {}))) for name in OPTIONS}
    return Config(sections, _vip_subnets(raw.get("vip_subnets", {})), files)


def _merge(into: Raw, more: Raw) -> None:
    for section, values in more.items():
        into.setdefault(section, {}).update(values)


def _read_file(path: str) -> Raw:
    parser = configparser.ConfigParser(interpolation=None, strict=True,
                                       default_section=_NO_DEFAULT_SECTION)
    try:
        parser.read_string(_file_text(path), source=path)
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(f"section [{exc.section}] appears twice in {path} (line {exc.lineno})") from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(f"[{exc.section}] option {exc.option!r} is set twice in {path} "
                          f"(line {exc.lineno})") from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(f"{path} line {exc.lineno}: an option before any [section] header") from None
    except configparser.ParsingError as exc:
        # The line itself is not shown: it may hold a password.
        raise ConfigError(f"{path} line {exc.errors[0][0]}: not 'option = value', "
                          "a [section] header or a comment") from None
    raw: Raw = {}
    for section in parser.sections():
        values = {name: (parser.get(section, name, raw=True), f"in {path}")
                  for name in parser.options(section)}
        _check_names(section, values, f"in {path}")
        raw[section] = values
    return raw


def _file_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text "
                          f"(byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def _check_names(section: str, values: Mapping[str, Any], where: str) -> None:
    """Refuse an unknown section, or an unknown option in a declared section."""
    if section in FREE_FORM_SECTIONS:
        return
    if section not in OPTIONS:
        known = [*OPTIONS, *FREE_FORM_SECTIONS]
        guess = _nearest(section, known)
        hint = f" (did you mean [{guess}]?)" if guess else f"; known sections: {', '.join(known)}"
        raise ConfigError(f"unknown section [{section}]{hint} {where}")
    names = [option.name for option in OPTIONS[section]]
    for name in values:
        if name not in names:
            guess = _nearest(name, names)
            hint = f" (did you mean {guess!r}?)" if guess else f"; known: {', '.join(names)}"
            raise ConfigError(f"[{section}] unknown option {name!r}{hint} {where}")


def _nearest(name: str, known: list[str]) -> str | None:
    by_lower = {k.lower(): k for k in known}
    found = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def _typed(section: str, given: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """Every declared option of ``section``: environment, else ``given``, else the default."""
    values = {}
    for option in OPTIONS[section]:
        var = f"LBAAS_{section.upper()}_{option.name.upper()}"
        if var in os.environ:
            text, where = os.environ[var], f"from environment variable {var}"
        elif option.name in given:
            text, where = given[option.name]
        else:
            values[option.name] = option.default
            continue
        try:
            values[option.name] = option.kind(text)
        except ValueError as exc:
            raise ConfigError(f"[{section}] {option.name} {where}: {exc}") from None
    return values


def _vip_subnets(given: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    for ident, (cidr, where) in given.items():
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"[vip_subnets] {ident} {where}: {cidr!r} is not a CIDR "
                              "such as 10.0.0.0/24") from None
    return {ident: cidr for ident, (cidr, _) in given.items()}


def typed(section: str, given: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """Options ``names`` (default: all) of ``section`` taken from ``given``, as their
    declared types; the default for each one absent.  For code handed options directly
    (DeviceConfig, device drivers): text is parsed as a file's would be, numbers and
    booleans are checked the same way, other values (lists, None) are taken as they are.
    Raises ConfigError naming the option."""
    declared = {option.name: option for option in OPTIONS[section]}
    values = {}
    for name in names if names is not None else declared:
        option = declared[name]
        value = given.get(name, option.default)
        if isinstance(value, (str, int, float)):  # bool is an int
            try:
                value = option.kind(str(value))
            except ValueError as exc:
                raise ConfigError(f"[{section}] {name}: {exc}") from None
        values[name] = value
    return values


def sample() -> str:
    """An example INI file with every option, its default and its help."""
    lines = []
    for section, options in OPTIONS.items():
        lines.append(f"[{section}]")
        if section in SECTION_NOTES:
            lines.append(f"# {SECTION_NOTES[section]}")
        for option in options:
            allowed = f" ({option.kind})" if isinstance(option.kind, (Integer, Number, Choice)) else ""
            lines.append(f"# {option.help}{allowed}")
            lines.append(f"#{option.name} = {_sample_value(section, option)}")
        lines.append("")
    lines += ["[vip_subnets]", "# subnet id = CIDR from which VIP addresses are allocated",
              "#loopback = 127.0.100.0/24", ""]
    return "\n".join(lines)


def reference() -> str:
    """docs/configuration.md: every section and option with its default, allowed values and help."""
    lines = ["# Configuration reference", "",
             "Generated by `lbaas config-reference > docs/configuration.md` from `lbaas/config.py`; "
             "do not edit by hand. Every process reads INI files given with `--config-file` "
             "(later files win); `etc/lbaas.conf.sample` is the same list as an example file.", ""]
    for section, options in OPTIONS.items():
        lines += [f"## [{section}]", ""]
        if section in SECTION_NOTES:
            lines += [SECTION_NOTES[section], ""]
        lines += ["| Option | Default | Allowed | Description |", "|---|---|---|---|"]
        for option in options:
            default = _sample_value(section, option)
            allowed = str(option.kind) if isinstance(option.kind, (Integer, Number, Choice)) else ""
            cells = (f"`{option.name}`", f"`{default}`" if default else "(empty)", allowed, option.help)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    lines += ["## [vip_subnets]", "", "Each option names a subnet (its id in the API, `vip_subnet_id`) and the "
              "CIDR its VIP addresses are allocated from, e.g. `loopback = 127.0.100.0/24`.", ""]
    return "\n".join(lines)


def _sample_value(section: str, option: Option) -> str:
    default = option.default
    if section == "agent" and option.name == "host":
        return "<this host's name>"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return ",".join(default)
    return "" if default is None else str(default)


def default_of(section: str, name: str) -> Any:
    """The built-in default of one option."""
    return next(o.default for o in OPTIONS[section] if o.name == name)


def default_provider(config: Config) -> str:
    """The provider of load balancers that name none."""
    return config.controller.default_provider or next(iter(config.controller.environments), "noop")
