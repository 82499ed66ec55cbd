"""The device management API: JSON over HTTP(S), one shared token.

``create_app(config)`` builds the FastAPI application (tests use it directly);
``server(config)`` is the part that serves it (``lbaas.runtime.HttpServer``), and
``start_in_thread`` serves one inside another process. HAProxy processes are never stopped on shutdown:
the data plane must keep forwarding while the management process is down.

Errors are answered as ``{"faultcode": "Client"|"Server", "faultstring": ..., "debuginfo":
null}`` with 400 (malformed request), 401 (no or wrong token), 404, 409 (endpoint used by
another load balancer), 422 (HAProxy rejected the rendered configuration) or 500.

``GET /metrics`` answers Prometheus' text format (``lbaas.metrics``), behind the token like
every other route: a scraper sends it in X-Auth-Token.
"""

import contextlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import lbaas
from lbaas import config as cfg
from lbaas import constants as c
from lbaas import metrics, wire
from lbaas.api.schemas import decode
from lbaas.errors import BadRequest
from lbaas.appliance.errors import DeviceFault, InvalidRequest
from lbaas.appliance import selfsigned
from lbaas.appliance.process import haproxy_version
from lbaas.appliance.manager import Manager
from lbaas.appliance.schema import validate
from lbaas.runtime import HttpServer, Timer, free_port

LOG = logging.getLogger(__name__)
D = TypeVar("D")


@dataclass
class DeviceConfig:
    """Settings of one device service (the ``[device]`` part of device.ini).

    ``token`` is required: every request must carry it in ``X-Auth-Token``.
    ``tls_cert``/``tls_key`` (both or neither) switch the API to HTTPS.
    ``check_interval`` is the seconds between watchdog passes that start again any HAProxy
    that died; 0 turns the watchdog off.
    ``bind_transparent`` lets listeners bind VIPs that are not (yet) on this host, as the
    standby of a device pair must; turn it off to have such a PUT fail instead.
    ``haproxy_user``: when the service runs as root, HAProxy's workers run as this user
    (and group of the same name) in an empty chroot.
    """

    token: str
    bind_host: str = "127.0.0.1"
    bind_port: int = c.DEVICE_DEFAULT_PORT
    state_dir: str = c.DEVICE_DEFAULT_STATE_DIR
    haproxy_bin: str = "haproxy"
    tls_cert: str | None = None
    tls_key: str | None = None
    check_interval: float = 10.0
    bind_transparent: bool = True
    haproxy_user: str = "haproxy"

    def __post_init__(self) -> None:
        """Accept INI strings too ("9443", "false", ""), checked as ``[device]`` options are
        (lbaas.config); raise ValueError (a ConfigError) naming the option."""
        for name, value in cfg.typed("device", vars(self), vars(self)).items():
            setattr(self, name, value)
        if not self.token:
            raise cfg.ConfigError("[device] token is required")
        self.tls_cert = self.tls_cert or None
        self.tls_key = self.tls_key or None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise cfg.ConfigError("[device] tls_cert and tls_key go together (HTTPS needs both)")


def server(config: DeviceConfig, timeout: float | None = None, **options: Any) -> HttpServer:
    """The part that serves the device API (HAProxy processes outlive its stop)."""
    # Agents keep connections open between requests: a stop waits for them 5 s at most.
    options.setdefault("timeout_graceful_shutdown", 5)
    return HttpServer("device service", create_app(config), config.bind_host, config.bind_port, timeout,
                      ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key, **options)


def embedded(state_dir: str, host: str = "127.0.0.1", port: int = 0) -> tuple[HttpServer, dict[str, str]]:
    """A device over ``state_dir`` to serve inside another process (the all-in-one), with
    a fresh random token, over HTTPS with a self-signed certificate kept in ``state_dir``:
    the part (its ``start`` raises ``RuntimeError`` when the service does not come up within
    30 s) and the ``HAProxyDriver`` options reaching it (verifying that certificate)."""
    cert, key = selfsigned.ensure(state_dir, host)
    config = DeviceConfig(token=secrets.token_urlsafe(24), bind_host=host, bind_port=port or free_port(host),
                          state_dir=state_dir, tls_cert=cert, tls_key=key)
    return (server(config, timeout=30, log_level="warning"),
            {"devices": f"https://{host}:{config.bind_port}", "device_token": config.token, "ca_file": cert})


def start_in_thread(state_dir: str, host: str = "127.0.0.1", port: int = 0) -> dict[str, str]:
    """Serve a device as ``embedded`` does, started now; return the driver options."""
    part, options = embedded(state_dir, host, port)
    part.start()
    return options


def create_app(config: DeviceConfig) -> FastAPI:
    """The device API over the state directory of ``config``.

    On startup every load balancer found there is adopted or started again; the watchdog
    runs while the application does.
    """
    manager = Manager(Path(config.state_dir), config.haproxy_bin, config.bind_transparent,
                      config.haproxy_user)
    app = FastAPI(title="lbaas device", version=lbaas.__version__,
                  lifespan=_lifespan(manager, config.check_interval),
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.manager = manager
    app.state.haproxy_bin = config.haproxy_bin
    _install_auth(app, config.token)
    _install_error_handlers(app)
    _install_routes(app, manager)
    return app


def capabilities() -> dict:
    """What this device can serve (the agent compares it with its minimal requirements)."""
    return {
        "protocols": sorted(set(c.DEVICE_LISTENER_PROTOCOLS) | set(c.DEVICE_POOL_PROTOCOLS)),
        "listener_protocols": list(c.DEVICE_LISTENER_PROTOCOLS),
        "pool_protocols": list(c.DEVICE_POOL_PROTOCOLS),
        "lb_algorithms": list(c.DEVICE_LB_ALGORITHMS),
        "session_persistence": list(c.DEVICE_SESSION_PERSISTENCE_TYPES),
        "health_monitors": list(c.DEVICE_HEALTH_MONITOR_TYPES),
    }


def _lifespan(manager: Manager, interval: float) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(manager.recover)
        # The watchdog must outlive any single failure: the timer logs it and goes on.
        watchdog = Timer("device-watchdog", interval, manager.watchdog, log=LOG)
        if interval > 0:
            watchdog.start()
        try:
            yield
        finally:
            watchdog.stop(timeout=30)
    return lifespan


def _install_auth(app: FastAPI, token: str) -> None:
    expected = token.encode()

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        given = request.headers.get(c.DEVICE_AUTH_HEADER, "").encode()
        # Constant-time compare; the token itself is never logged.
        if not hmac.compare_digest(given, expected):
            LOG.warning("rejected %s %s from %s: missing or wrong token", request.method,
                        request.url.path, request.client.host if request.client else "?")
            return _fault(401, "Client", f"missing or invalid {c.DEVICE_AUTH_HEADER}")
        return await call_next(request)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DeviceFault)
    async def device_fault(request: Request, exc: DeviceFault) -> JSONResponse:
        if exc.faultcode == "Server":
            LOG.error("%s %s failed: %s", request.method, request.url.path, exc)
        return _fault(exc.status_code, exc.faultcode, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _fault(400, "Client", "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "Client" if exc.status_code < 500 else "Server"
        return _fault(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the caller's fault: the details go to the log, not to the client.
        LOG.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
        return _fault(500, "Server", "the device failed unexpectedly; its log has the details")


def _install_routes(app: FastAPI, manager: Manager) -> None:
    version_cache: dict[str, str] = {}

    @app.get("/")
    def root() -> dict:
        if "haproxy" not in version_cache:
            version_cache["haproxy"] = haproxy_version(app.state.haproxy_bin)
        return {"version": lbaas.__version__, "haproxy_version": version_cache["haproxy"],
                "capabilities": capabilities()}

    # The documents are typed by the wire contract and built by the manager; response_model=None
    # keeps FastAPI from validating them again on the way out.
    @app.get("/loadbalancers", response_model=None)
    def list_loadbalancers() -> dict[str, list[wire.Held]]:
        return {"loadbalancers": manager.list()}

    @app.put("/loadbalancers/{lb_id}", response_model=None)
    async def put_loadbalancer(lb_id: str, request: Request) -> wire.Applied:
        desired = validate(_json(await request.body()))
        if desired["id"] != lb_id:
            raise InvalidRequest(f"body id {desired['id']} does not match the URL id {lb_id}")
        return await run_in_threadpool(manager.apply, desired)

    @app.get("/loadbalancers/{lb_id}", response_model=None)
    def get_loadbalancer(lb_id: str) -> wire.LoadBalancer:
        return _found(manager.get(lb_id), lb_id)

    @app.delete("/loadbalancers/{lb_id}", status_code=204)
    def delete_loadbalancer(lb_id: str) -> Response:
        manager.delete(lb_id)
        return Response(status_code=204)

    @app.get("/loadbalancers/{lb_id}/status", response_model=None)
    def loadbalancer_status(lb_id: str) -> wire.StatusDocument:
        return _found(manager.status(lb_id), lb_id)

    registry = metrics.appliance_registry(lambda: len(manager.list()))

    @app.get("/metrics", response_model=None)
    def prometheus_metrics() -> Response:  # behind the token, like every other route
        return metrics.exposition(registry)


def _json(body: bytes) -> object:
    """The body as JSON, refused as the API refuses it (not UTF-8, too deep, NUL, lone surrogates)."""
    try:
        return decode(body)
    except BadRequest as exc:
        raise InvalidRequest(exc.message) from None


def _found(document: D | None, lb_id: str) -> D:
    if document is None:
        raise StarletteHTTPException(404, f"load balancer {lb_id} is not on this device")
    return document


def _fault(status: int, faultcode: str, faultstring: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={
        "faultcode": faultcode, "faultstring": faultstring, "debuginfo": None})
