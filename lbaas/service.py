"""Processes: how the pieces are put together and started.

Each process is a ``runtime.Process`` of parts started in a declared order and
stopped in reverse: the server is the controller, then the API; the agent is
its broker (closed last), then the agent; the appliance is its HTTP server;
the all-in-one is assembled in ``lbaas.allinone`` from the same parts.

Start-up checks: before a process serves anything it looks at what its
configuration points to, and refuses with ConfigError (``lbaas: <one line>``,
exit 2) rather than start and answer 500 or 401 to every request:

* server: the database URL parses and a connection opens (then the schema is
  checked); the token file (auth_strategy = token) exists and holds hashed
  tokens, or [keystone_authtoken] names a service user (auth_strategy = keystone); the broker (rabbit:// or amqp://) accepts the credentials
  and the vhost; ``[certificates]`` has an encryption_key (backend = local) or a
  barbican_endpoint (backend = barbican);
* agent: the broker, as above; the device driver's options;
* appliance: a real token (not empty, not the sample), a runnable haproxy_bin,
  a writable state_dir, readable TLS files.

No message carries a password or a token; each probe waits at most
``constants.STARTUP_PROBE_TIMEOUT`` seconds.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lbaas.api.app import create_app
from lbaas.api import tokens
from lbaas.api.auth import NoAuth, TokenStore
from lbaas.api.keystone import KeystoneAuth
from lbaas.api.policy import Policy
from lbaas.api.deps import State
from lbaas import constants as c
from lbaas import keys
from lbaas import logs, metrics
from lbaas.config import Config, ConfigError
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.controller.service import Controller
from lbaas.db.session import Database, SchemaError  # Database: used by all-in-one too
from lbaas.services import Services
from lbaas.services.vips import Subnets
from lbaas.metrics import Listener
from lbaas.runtime import HttpServer, Hook, Process, listen, run_workers

if TYPE_CHECKING:
    import socket

    from sqlalchemy import Engine
    from sqlalchemy.engine import URL
    from lbaas.agent.service import Agent, AgentSettings
    from lbaas.appliance.service import DeviceConfig
    from lbaas.messaging import Broker
    from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)


def setup_logging(config: Config, log_format: str = "text") -> None:
    """The common format (``lbaas.logs``) to stderr or ``[DEFAULT] log_file``."""
    try:
        logs.setup(config.default.debug, config.default.log_file, log_format)
    except OSError as exc:
        raise ConfigError(f"[DEFAULT] log_file {config.default.log_file} cannot be opened: "
                          f"{exc.strerror or exc}") from None


def open_database(config: Config) -> Database:
    # The threads that hold a connection: API routes, controller consumers, sweeps, health and metrics.
    pool_size = config.database.pool_size or config.api.threads + config.controller.workers + 4
    db = Database(config.database.connection, pool_size, config.database.max_overflow)
    if config.database.check_schema:
        try:
            db.check_schema()
        except SchemaError as exc:
            raise ConfigError(str(exc)) from None
    return db


def api_state(config: Config, db: Database, providers: dict[str, Provider] | None = None,
              key_manager: keys.KeyManager | None = None) -> State:
    rules = Policy(config.api.policy_file)
    auth: TokenStore | KeystoneAuth | NoAuth
    if config.api.auth_strategy == "noauth":
        LOG.warning("auth_strategy = noauth: every caller is an administrator")
        auth = NoAuth(rules)
    elif config.api.auth_strategy == "keystone":
        auth = KeystoneAuth(config.keystone_authtoken, rules)
    elif config.api.auth_strategy == "token":
        auth = TokenStore(config.api.token_file, rules)
    else:
        raise ValueError(f"[api] auth_strategy must be token, keystone or noauth, not {config.api.auth_strategy!r}")
    if providers is None:
        providers = {"noop": NoopProvider(db, config.controller.noop_delay)}
    key_manager = key_manager or keys.make(config, db)
    return State(Services(config, db, providers, Subnets(config.vip_subnets), key_manager), auth)


def api_server(state: State, scheduler: "Scheduler | None" = None,
               sock: "socket.socket | None" = None) -> HttpServer:
    """The part that serves the API (on ``sock`` when the port is bound already)."""
    api = state.services.config.api
    if api.metrics_enabled:
        metrics.watch_database(state.services.db)
    return HttpServer("API", create_app(state, scheduler), api.bind_host, api.bind_port, sock=sock,
                      log_level="warning", access_log=False, timeout_graceful_shutdown=5)


def reread_files(state: State) -> None:
    """SIGHUP: read the token file (auth_strategy = token) and the policy file again now."""
    if isinstance(state.auth, TokenStore):
        state.auth.reload()
    state.auth.policy.reload()


def run_server(config: Config) -> int:
    """An API server and controller, until interrupted; with ``[api] workers`` > 1, that
    many worker processes, each a whole server, sharing one listening socket."""
    # In the order an operator sets things up: database, schema, tokens, broker.
    check_database(config.database.connection)
    if config.api.workers == 1:
        return _serve(config, open_database(config))
    db = open_database(config)  # the schema check
    make_key_manager(config, db)  # its settings
    db.dispose()  # no connection may cross the fork
    check_token_file(config)
    check_keystone(config)
    check_broker(config.default.transport_url)
    sock = listen("API", config.api.bind_host, config.api.bind_port)
    return run_workers("lbaas server", config.api.workers, lambda: _serve(config, open_database(config), sock))


def _serve(config: Config, db: Database, sock: "socket.socket | None" = None) -> int:
    check_token_file(config)
    check_keystone(config)
    check_broker(config.default.transport_url)
    key_manager = make_key_manager(config, db)
    controller = Controller(config, db, key_manager=key_manager)
    state = api_state(config, db, controller.providers, key_manager)
    api = api_server(state, controller.scheduler, sock)
    announce = Hook(start=lambda: LOG.info(
        "lbaas server on http://%s:%s serving environments %s (pid %d)", config.api.bind_host,
        config.api.bind_port, ", ".join(controller.environments) or "(noop only)", os.getpid()))
    Process("server", [controller, announce, api], on_hangup=[lambda: reread_files(state)]).run()
    return 0


def agent_settings(config: Config, host: str | None = None) -> "AgentSettings":
    from lbaas.agent.service import AgentSettings
    a = config.agent
    return AgentSettings(host=host or a.host, environment=a.environment_prefix, group=a.environment_group_number,
                         report_interval=a.report_interval, resync_interval=a.resync_interval,
                         stats_interval=a.stats_interval, rpc_timeout=config.controller.rpc_timeout,
                         workers=a.workers)


def make_agent(config: Config, broker: "Broker | None" = None, driver_options: dict | None = None,
               host: str | None = None, driver: str | None = None) -> "Agent":
    from lbaas.agent import drivers
    from lbaas.agent.service import Agent
    from lbaas.messaging import CallTimeout, broker_for
    options = {**config.device, **(driver_options or {})}
    if options.get("max_loadbalancers") is None:  # [device] says nothing: the agent's capacity
        options["max_loadbalancers"] = config.agent.max_loadbalancers
    # Drivers that name device objects after the environment (bigip) learn it here.
    options.setdefault("environment", config.agent.environment_prefix)
    device = drivers.load(driver or config.agent.device_driver, options)
    broker = broker or broker_for(config, transient=(CallTimeout,))
    settings = agent_settings(config, host)
    # An in-process broker reaches no other process: no other agent can serve this host.
    settings.exclusive = not broker.url.startswith("memory://")
    return Agent(settings, broker, device)


def run_agent(config: Config) -> int:
    """An agent, until interrupted (0), or refused because another agent serves its host (2).
    A device that is not ready is waited for, never a reason to exit."""
    from lbaas.agent.service import AgentRefused
    check_broker(config.default.transport_url)
    try:
        agent = make_agent(config)
    except ValueError as exc:  # a driver's options: ConfigError, or a driver's own ValueError
        raise ConfigError(str(exc)) from None
    try:
        # Until a signal, or until a server gives this agent's host to another.
        Process("agent", [Hook(stop=agent.broker.close), *_metrics_listener(config), agent]).run(
            until=agent.stopping)
    except AgentRefused as exc:
        print(f"lbaas: {exc}", file=sys.stderr)
        return 2
    if agent.refusal:
        print(f"lbaas: {agent.refusal}", file=sys.stderr)
        return 2
    return 0


def _metrics_listener(config: Config) -> list[Listener]:
    """The agent's metrics listener, when ``[agent] metrics_port`` asks for one."""
    port = config.agent.metrics_port
    return [Listener(config.agent.metrics_host, port)] if port else []


def run_device(config: Config) -> int:
    """The HAProxy appliance, until interrupted."""
    from lbaas.appliance.service import DeviceConfig, server
    token = config.device.token
    if not token or token == c.DEVICE_SAMPLE_TOKEN:
        raise ConfigError(f"[device] token is {'the sample ' + repr(token) if token else 'empty'}; "
                          "set a secret of your own, e.g. the output of: "
                          "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    device = DeviceConfig(**{name: config.device[name] for name in DeviceConfig.__dataclass_fields__})
    check_appliance(device)
    # uvicorn logs every request (an agent polls each load balancer) at INFO: only with debug.
    part = server(device, log_level="debug" if config.default.debug else "warning")
    scheme = "https" if device.tls_cert else "http"
    announce = Hook(start=lambda: LOG.info("lbaas device on %s://%s:%s, state in %s", scheme, device.bind_host,
                                           device.bind_port, device.state_dir))
    Process("device", [part, announce]).run()
    return 0


# --- start-up checks -------------------------------------------------------------------

def make_key_manager(config: Config, db: Database) -> keys.KeyManager:
    """The key manager, refused when ``[certificates]`` lacks what its backend needs:
    ``local`` an encryption_key (a malformed one is refused when the file is read),
    ``barbican`` an endpoint."""
    certificates = config.certificates
    if certificates.backend == "local" and not certificates.encryption_key:
        raise ConfigError("[certificates] encryption_key is not set: backend = local encrypts stored secrets "
                          "with it; make one with: python3 -c 'import base64, os; "
                          "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'")
    return keys.make(config, db)


def check_keystone(config: Config) -> None:
    """With auth_strategy = keystone: what auth_token needs to validate tokens is set."""
    if config.api.auth_strategy != "keystone":
        return
    missing = [name for name in ("auth_url", "username", "password") if not config.keystone_authtoken[name]]
    if missing:
        raise ConfigError(f"[keystone_authtoken] {', '.join(missing)} not set: auth_strategy = keystone validates "
                          "tokens as that service user (see README, Behind Keystone)")


def check_token_file(config: Config) -> None:
    """With auth_strategy = token: the token file exists, is in the hashed format and holds a token."""
    if config.api.auth_strategy != "token":
        return
    path = os.path.abspath(config.api.token_file)
    files = "".join(f"--config-file {f} " for f in config.files)
    create = f"create a token with: lbaas token create {files}--project P --role admin"
    if not os.path.exists(path):
        raise ConfigError(f"[api] token file {path} does not exist; {create}")
    try:
        entries = tokens.read(path)
    except tokens.TokenFileError as exc:
        raise ConfigError(f"[api] {exc}") from None
    if not entries:
        raise ConfigError(f"[api] token file {path} holds no tokens; {create}")


def check_database(connection: str) -> None:
    """The ``[database] connection`` URL parses, its driver loads and a connection opens."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError
    try:
        url = make_url(connection)
    except (ArgumentError, ValueError):  # a bad port is a ValueError; the value may hold a password
        raise ConfigError("[database] connection is not a database URL such as "
                          "postgresql+psycopg://user:password@host:5432/lbaas") from None
    shown = url.render_as_string(hide_password=True)
    engine = None
    try:
        engine = _probe_engine(url)
        with engine.connect():
            pass
    except (ArgumentError, ImportError) as exc:
        raise ConfigError(f"[database] connection {shown}: unsupported database or driver ({exc})") from None
    except (DBAPIError, OSError) as exc:
        reason = _scrub(_first_line(getattr(exc, "orig", None) or exc), url.password)
        raise ConfigError(f"cannot reach the database at {shown}: {reason}") from None
    finally:
        if engine is not None:
            engine.dispose()


def _probe_engine(url: URL) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    from lbaas.db.session import make_engine
    if url.get_backend_name() == "sqlite":
        return make_engine(url.render_as_string(hide_password=False))
    timeout = {"connect_timeout": c.STARTUP_PROBE_TIMEOUT} \
        if url.get_backend_name() in ("postgresql", "mysql", "mariadb") else {}
    return create_engine(url, poolclass=NullPool, connect_args=timeout)


def check_broker(transport_url: str) -> None:
    """A ``rabbit://``/``amqp://`` broker accepts a connection with these credentials and
    vhost (``memory://`` needs no check); of a cluster, one node answering is enough."""
    if transport_url.startswith("memory://"):
        return
    from lbaas.messaging import node_urls, safe_url
    reasons = []
    for url in node_urls(transport_url):
        reason, final = _probe_broker(url)
        if reason is None:
            return
        reasons.append(f"{urlsplit(url).netloc.rpartition('@')[2]}: {reason}")
        if final:
            break
    raise ConfigError(f"cannot connect to the message broker at {safe_url(transport_url)} "
                      f"([DEFAULT] transport_url): {'; '.join(reasons)}")


def _probe_broker(url: str) -> tuple[str | None, bool]:
    """(None, _) when one node accepts us; else (why not, whether another node would say the same)."""
    import amqp.exceptions
    from kombu import Connection
    from kombu.exceptions import OperationalError
    conn = Connection(url, connect_timeout=c.STARTUP_PROBE_TIMEOUT)
    try:
        conn.ensure_connection(max_retries=0)
        return None, True
    except amqp.exceptions.AccessRefused:
        return "the broker refused the user name or password", True
    except amqp.exceptions.NotAllowed as exc:
        return f"the broker refused the vhost ({getattr(exc, 'reply_text', exc)})", True
    except (OperationalError, amqp.exceptions.AMQPError, OSError) as exc:
        return _scrub(_first_line(exc), urlsplit(url).password), False
    finally:
        conn.release()


def check_appliance(device: "DeviceConfig") -> None:
    """haproxy_bin runs, state_dir is writable, the TLS files can be read."""
    from lbaas.appliance.errors import HAProxyFailure
    from lbaas.appliance.process import haproxy_version
    try:
        haproxy_version(device.haproxy_bin)
    except HAProxyFailure as exc:
        raise ConfigError(f"[device] haproxy_bin {device.haproxy_bin!r} cannot be run: "
                          f"{_first_line(exc.__cause__ or exc)}") from None
    try:
        os.makedirs(device.state_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"[device] state_dir {device.state_dir} cannot be created: {exc.strerror or exc}") from None
    if not os.access(device.state_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"[device] state_dir {device.state_dir} is not writable by this user")
    for name in ("tls_cert", "tls_key"):
        path = getattr(device, name)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"[device] {name} {path} does not exist or cannot be read")


def _first_line(exc: object) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(exc).__name__


def _scrub(text: str, password: str | None) -> str:
    """``text`` without ``password`` (drivers may echo parts of the URL)."""
    return text.replace(password, "****") if password else text
