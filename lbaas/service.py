"""Processes: how the pieces are put together and started."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import uvicorn

from lbaas.api.app import create_app
from lbaas.api.auth import NoAuth, TokenStore
from lbaas.api.deps import State
from lbaas.config import Config
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.db.session import Database  # noqa: F401  (used by all-in-one)
from lbaas.constants import controller_queue
from lbaas.vip import Subnets

if TYPE_CHECKING:
    from lbaas.agent.service import Agent, AgentSettings
    from lbaas.messaging import Broker
    from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)


def setup_logging(config: Config) -> None:
    level = logging.DEBUG if config.default.debug else logging.INFO
    handler: logging.Handler = (logging.FileHandler(config.default.log_file) if config.default.log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # One line per HTTP request between our own processes is noise.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def open_database(config: Config) -> Database:
    db = Database(config.database.connection, config.database.pool_size, config.database.max_overflow)
    if config.database.check_schema:
        db.check_schema()
    return db


def api_state(config: Config, db: Database, providers: dict[str, Provider] | None = None) -> State:
    if config.api.auth_strategy == "noauth":
        LOG.warning("auth_strategy = noauth: every caller is an administrator")
        auth: TokenStore | NoAuth = NoAuth()
    elif config.api.auth_strategy == "token":
        auth = TokenStore(config.api.token_file)
    else:
        raise ValueError(f"[api] auth_strategy must be token or noauth, not {config.api.auth_strategy!r}")
    if providers is None:
        providers = {"noop": NoopProvider(db, config.controller.noop_delay)}
    return State(config=config, db=db, providers=providers, auth=auth, subnets=Subnets(config.vip_subnets))


def serve_api(state: State, scheduler: "Scheduler | None" = None) -> None:
    """Serve the API until interrupted (blocks)."""
    import gc
    # Everything loaded at start-up lives as long as the process: keep it out
    # of the collector's way, so collections stay short under load.
    gc.freeze()
    config = state.config
    uvicorn.run(create_app(state, scheduler), host=config.api.bind_host, port=config.api.bind_port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)



class Controller:
    """The controller half of a server: agent providers, the consumer of
    the controller queues, and the sweeps."""

    def __init__(self, config: Config, db: Database, broker: "Broker | None" = None) -> None:
        from lbaas.controller.agent_provider import AgentProvider
        from lbaas.controller.handlers import ControllerHandlers
        from lbaas.controller.sweeps import Sweeper
        from lbaas.scheduler import Scheduler

        ctl = config.controller
        self.environments: list[str] = list(ctl.environments)
        self.broker = broker or make_broker(config, transient=database_errors())
        self.scheduler = Scheduler(ctl.agent_down_time, ctl.scheduler_policy)
        self.providers: dict[str, Provider] = {}
        if not self.environments or ctl.noop_provider:
            self.providers["noop"] = NoopProvider(db, ctl.noop_delay)
        for env in self.environments:
            self.providers[env] = AgentProvider(env, db, self.broker, self.scheduler)
        self.handlers = ControllerHandlers(db, self.scheduler)
        self.sweeper = Sweeper(db, self.scheduler, self.providers, ctl.pending_timeout,
                               ctl.pending_max_age, ctl.sweep_interval)
        self.workers = ctl.workers
        self.consumers: list = []

    def start(self) -> None:
        if self.environments:
            queues = [controller_queue(env) for env in self.environments]
            self.consumers = [self.broker.serve(queues, self.handlers.handlers(), name=f"controller-{i}")
                              for i in range(self.workers)]
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        for consumer in self.consumers:
            consumer.stop()
        for provider in self.providers.values():
            provider.stop()
        self.broker.close()


def database_errors() -> tuple[type[BaseException], ...]:
    """Exceptions after which a message is delivered again, not dropped."""
    from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeout
    return (OperationalError, InterfaceError, PoolTimeout)


def make_broker(config: Config, transient: tuple[type[BaseException], ...] = ()) -> "Broker":
    from lbaas.messaging import Broker
    return Broker(config.default.transport_url, transient=transient)


def run_server(config: Config) -> int:
    """An API server and controller, until interrupted."""
    db = open_database(config)
    controller = Controller(config, db)
    state = api_state(config, db, controller.providers)
    controller.start()
    LOG.info("lbaas server on http://%s:%s serving environments %s", config.api.bind_host,
             config.api.bind_port, ", ".join(controller.environments) or "(noop only)")
    try:
        serve_api(state, controller.scheduler)
    finally:
        controller.stop()
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
    from lbaas import devices
    from lbaas.agent.service import Agent
    from lbaas.messaging import CallTimeout
    options = {"max_loadbalancers": str(config.agent.max_loadbalancers), **config.device, **(driver_options or {})}
    device = devices.load(driver or config.agent.device_driver, options)
    return Agent(agent_settings(config, host), broker or make_broker(config, transient=(CallTimeout,)), device)


def run_agent(config: Config) -> int:
    """An agent, until interrupted."""
    import signal
    import threading
    from lbaas.devices.base import DeviceNotReady
    agent = make_agent(config)
    try:
        agent.start()
    except DeviceNotReady as exc:
        LOG.error("the device does not meet the minimal requirements: %s", exc)
        print(f"lbaas agent: device not ready: {exc}", file=sys.stderr)
        return 3
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    agent.stop()
    agent.broker.close()
    return 0


def run_device(config: Config) -> int:
    from lbaas.device.service import DeviceConfig, run
    options = config.device
    run(DeviceConfig(**{k: v for k, v in options.items() if k in DeviceConfig.__dataclass_fields__}))
    return 0
