"""Processes: how the pieces are put together and started."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

from lbaas.api.app import create_app
from lbaas.api.auth import NoAuth, TokenStore
from lbaas.api.deps import State
from lbaas.config import Config
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.db.session import Database
from lbaas.vip import Subnets

LOG = logging.getLogger(__name__)


def setup_logging(config: Config) -> None:
    level = logging.DEBUG if config.default.debug else logging.INFO
    handler: logging.Handler = (logging.FileHandler(config.default.log_file) if config.default.log_file
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


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


def serve_api(state: State) -> None:
    """Serve the API until interrupted (blocks)."""
    config = state.config
    uvicorn.run(create_app(state), host=config.api.bind_host, port=config.api.bind_port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def run_server(config: Config) -> int:
    """An API server (and, with environments configured, a controller)."""
    db = open_database(config)
    state = api_state(config, db)
    LOG.info("lbaas server on http://%s:%s", config.api.bind_host, config.api.bind_port)
    try:
        serve_api(state)
    finally:
        for provider in state.providers.values():
            provider.stop()
    return 0
