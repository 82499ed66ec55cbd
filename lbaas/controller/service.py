"""The controller half of a server, as one part (``start``/``stop``).

It holds the providers (noop, and one agent provider per environment), the
consumers of the controller queues and the sweeper.  ``stop`` must not raise:
it stops the sweeper, then the consumers, then the providers, and closes the
broker last (providers cast through it until they stop).
"""

from __future__ import annotations

from lbaas import keys
from lbaas.config import Config
from lbaas.constants import controller_queue
from lbaas.controller.agent_provider import AgentProvider
from lbaas.controller.handlers import ControllerHandlers
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.controller.sweeps import Sweeper
from lbaas.db.session import Database
from lbaas.messaging import Broker, Consumer, broker_for, stop_all
from lbaas.scheduler import Scheduler


class Controller:
    """Agent providers, the consumers of the controller queues, and the sweeps."""

    def __init__(self, config: Config, db: Database, broker: Broker | None = None,
                 key_manager: keys.KeyManager | None = None) -> None:
        ctl = config.controller
        self.environments: list[str] = list(ctl.environments)
        self.broker = broker or broker_for(config, transient=database_errors())
        self.scheduler = Scheduler(ctl.agent_down_time, ctl.scheduler_policy, ctl.max_project_share)
        self.providers: dict[str, Provider] = {}
        if not self.environments or ctl.noop_provider:
            self.providers["noop"] = NoopProvider(db, ctl.noop_delay)
        for env in self.environments:
            self.providers[env] = AgentProvider(env, db, self.broker, self.scheduler)
        self.handlers = ControllerHandlers(db, self.scheduler, key_manager or keys.make(config, db))
        self.sweeper = Sweeper(db, self.scheduler, self.providers, ctl.pending_timeout,
                               ctl.pending_max_age, ctl.sweep_interval)
        self.workers: int = ctl.workers
        self.consumers: list[Consumer] = []

    def start(self) -> None:
        if self.environments:
            queues = [controller_queue(env) for env in self.environments]
            self.consumers = [self.broker.serve(queues, self.handlers.handlers(), name=f"controller-{i}")
                              for i in range(self.workers)]
            dead_letters = self.broker.serve_dead_letters()
            self.consumers += [dead_letters] if dead_letters else []
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        stop_all(self.consumers)
        for provider in self.providers.values():
            provider.stop()
        self.broker.close()


def database_errors() -> tuple[type[BaseException], ...]:
    """Exceptions after which a message is delivered again, not dropped."""
    from sqlalchemy.exc import InterfaceError, OperationalError, TimeoutError as PoolTimeout
    return (OperationalError, InterfaceError, PoolTimeout)
