"""The one place that reads configuration.

Configuration comes from INI files (``--config-file``, repeatable, later
files win).  Every option is declared below with its type, default and a
one-line help; ``lbaas config-sample`` prints them all as an example file.
Free-form sections (``[vip_subnets]``: id = CIDR) are read as plain maps.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    kind: Callable[[str], Any] = str


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


OPTIONS: dict[str, tuple[Option, ...]] = {
    "DEFAULT": (
        Option("transport_url", "memory://", "Message broker: rabbit://user:pass@host:5672/vhost, amqp://..., or memory:// (one process only)."),
        Option("state_dir", "./lbaas-data", "Where the all-in-one keeps its SQLite file, token file and device state."),
        Option("debug", False, "Log at DEBUG level.", _bool),
        Option("log_file", "", "Log to this file instead of standard error."),
    ),
    "api": (
        Option("bind_host", "127.0.0.1", "Address the API listens on."),
        Option("bind_port", 9876, "Port the API listens on.", int),
        Option("public_url", "", "Base URL advertised in version links (default: derived from the request)."),
        Option("auth_strategy", "token", "token (token file) or noauth (every caller is admin of project 'admin'; for development only)."),
        Option("token_file", "./lbaas-data/tokens.json", "JSON file of tokens: {token: {project_id, roles}}."),
        Option("workers", 1, "Number of API worker threads' pool size hint (uvicorn runs one process).", int),
        Option("pagination_max_limit", 1000, "Largest page a list returns.", int),
    ),
    "database": (
        Option("connection", "sqlite:///./lbaas-data/lbaas.sqlite", "SQLAlchemy URL: sqlite:///path, postgresql+psycopg://..., mysql+pymysql://..."),
        Option("pool_size", 10, "Connections kept open per process (not for SQLite).", int),
        Option("max_overflow", 20, "Extra connections allowed under load (not for SQLite).", int),
        Option("check_schema", True, "Refuse to start when the schema is not at the newest migration.", _bool),
    ),
    "quotas": (
        Option("default_load_balancer_quota", -1, "Load balancers per project; -1 is unlimited.", int),
        Option("default_listener_quota", -1, "Listeners per project; -1 is unlimited.", int),
        Option("default_pool_quota", -1, "Pools per project; -1 is unlimited.", int),
        Option("default_member_quota", -1, "Members per project; -1 is unlimited.", int),
        Option("default_health_monitor_quota", -1, "Health monitors per project; -1 is unlimited.", int),
    ),
    "controller": (
        Option("environments", "", "Environments (providers) this server serves, comma-separated; empty: none besides noop.", _list),
        Option("default_provider", "", "Provider used when a load balancer names none (default: the first environment, else noop)."),
        Option("noop_provider", False, "Offer the noop provider even when environments are configured.", _bool),
        Option("noop_delay", 0.05, "Seconds the noop provider waits before completing a change.", float),
        Option("agent_down_time", 30.0, "Seconds without a heartbeat after which an agent is dead.", float),
        Option("scheduler_policy", "least_loaded", "How a new load balancer picks among agents without tenant affinity: least_loaded or random."),
        Option("pending_timeout", 30.0, "Seconds a change may stay PENDING before it is dispatched again.", float),
        Option("pending_max_age", 300.0, "Seconds after which a still PENDING change goes to ERROR.", float),
        Option("sweep_interval", 5.0, "Seconds between periodic sweeps.", float),
        Option("rpc_timeout", 10.0, "Seconds an RPC call waits for its reply.", float),
        Option("workers", 4, "Consumers of the controller queues in this server (handlers run in parallel).", int),
    ),
    "agent": (
        Option("host", socket.gethostname(), "This agent's host name; unique per environment."),
        Option("environment_prefix", "default", "Environment (provider) this agent serves."),
        Option("environment_group_number", 1, "Group of agents that manage one device cluster.", int),
        Option("report_interval", 10.0, "Seconds between state reports.", float),
        Option("resync_interval", 300.0, "Seconds between full resyncs of bound load balancers.", float),
        Option("stats_interval", 10.0, "Seconds between statistics reports.", float),
        Option("device_driver", "noop", "Device driver: noop, haproxy or bigip."),
        Option("max_loadbalancers", 0, "Capacity: load balancers this agent takes; 0 is unlimited.", int),
        Option("workers", 4, "Load balancers this agent converges in parallel.", int),
    ),
}

FREE_FORM_SECTIONS = ("vip_subnets", "device")


class Section:
    """Typed, read-only view of one INI section."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"[{self._name}] has no option {key!r}") from None


class Config:
    """All configuration of one process."""

    def __init__(self, parser: configparser.ConfigParser) -> None:
        self.sections: dict[str, Section] = {}
        for section, options in OPTIONS.items():
            self.sections[section] = Section(section, _read_section(parser, section, options))
        self.free: dict[str, dict[str, str]] = {
            name: dict(parser.items(name, raw=True)) if parser.has_section(name) else {}
            for name in FREE_FORM_SECTIONS
        }
        for name in self.free:  # configparser mixes DEFAULT keys into every section
            for key in parser.defaults():
                self.free[name].pop(key, None)

    def __getattr__(self, name: str) -> Section:
        key = "DEFAULT" if name == "default" else name
        try:
            return self.sections[key]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def vip_subnets(self) -> dict[str, str]:
        return self.free["vip_subnets"]

    @property
    def device(self) -> dict[str, str]:
        return self.free["device"]


def _read_section(parser: configparser.ConfigParser, section: str,
                  options: Iterable[Option]) -> dict[str, Any]:
    values = {}
    for option in options:
        raw = _raw(parser, section, option.name)
        if raw is None:
            values[option.name] = option.default
            continue
        try:
            values[option.name] = option.kind(raw)
        except ValueError as exc:
            raise ConfigError(f"[{section}] {option.name}: {exc}") from None
    return values


def _raw(parser: configparser.ConfigParser, section: str, name: str) -> str | None:
    env = os.environ.get(f"LBAAS_{section.upper()}_{name.upper()}")
    if env is not None:
        return env
    if section == "DEFAULT":
        return parser.defaults().get(name)
    if parser.has_section(section):
        return parser.get(section, name, fallback=None, raw=True)
    return None


class ConfigError(Exception):
    """A configuration file or value is wrong; the message says which."""


def load(files: Iterable[str] = (), overrides: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Read ``files`` in order (later wins), then apply ``overrides``.

    Environment variables ``LBAAS_<SECTION>_<OPTION>`` win over files.
    """
    parser = configparser.ConfigParser(interpolation=None)
    for path in files:
        if not os.path.exists(path):
            raise ConfigError(f"config file not found: {path}")
        parser.read(path)
    for section, values in (overrides or {}).items():
        if section != "DEFAULT" and not parser.has_section(section):
            parser.add_section(section)
        for key, value in values.items():
            parser.set(section, key, str(value))
    return Config(parser)


def sample() -> str:
    """An example INI file with every option, its default and its help."""
    lines = []
    for section, options in OPTIONS.items():
        lines.append(f"[{section}]")
        for option in options:
            lines.append(f"# {option.help}")
            default = option.default
            if isinstance(default, list):
                default = ",".join(default)
            if section == "agent" and option.name == "host":
                default = "<this host's name>"
            lines.append(f"#{option.name} = {str(default).lower() if isinstance(default, bool) else default}")
        lines.append("")
    lines += ["[vip_subnets]", "# subnet id = CIDR from which VIP addresses are allocated",
              "#loopback = 127.0.100.0/24", "",
              "[device]", "# options of the agent's device driver (see README)", ""]
    return "\n".join(lines)


def default_of(section: str, name: str) -> Any:
    """The built-in default of one option."""
    return next(o.default for o in OPTIONS[section] if o.name == name)


def default_provider(config: Config) -> str:
    """The provider of load balancers that name none."""
    return config.controller.default_provider or next(iter(config.controller.environments), "noop")
