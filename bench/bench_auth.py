"""9. What authentication costs a request: Keystone (a token auth_token has
cached) against the local token file.

Two ``lbaas server`` processes on one SQLite database, one with
``auth_strategy = token``, one with ``auth_strategy = keystone`` behind a
real Keystone (lbaas.testing.keystone, from .venv-keystone).  Each gets the
same request, ``GET /v2/lbaas/loadbalancers`` as a member of a project with
no load balancers (so the answer is the same small body and the difference
is the authentication), over one keep-alive connection, after a warm-up
that puts the Keystone token in auth_token's cache.  Both go through the
same policy.  Target: the Keystone p50 is less than 1 ms above the token
file's.

    .venv/bin/python bench/run.py --only auth
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet

from bench.common import Result, ServerProcess, expect, median_of, summary_ms, temp_database
from lbaas.testing.keystone import USERS, Keystone

NAME = "auth"
PATH = "/v2/lbaas/loadbalancers"


def _latencies(server: ServerProcess, token: str, rounds: int, reps: int) -> list[dict[str, float]]:
    out = []
    with server.client(token) as http:
        for _ in range(50):  # warm-up: connection, caches (auth_token's included)
            expect(http.get(PATH), 200)
        for _ in range(rounds):
            lat = []
            for _ in range(reps):
                started = time.perf_counter()
                response = http.get(PATH)
                lat.append(time.perf_counter() - started)
                expect(response, 200)
            out.append(summary_ms(lat))
    return out


@contextlib.contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """Options for the servers started inside, as LBAAS_<SECTION>_<OPTION> (ServerProcess writes the file)."""
    os.environ.update(variables)
    try:
        yield
    finally:
        for name in variables:
            del os.environ[name]


def _authenticate_alone(token_dir: str, local_token: str, keystone: Keystone, token: str,
                        calls: int = 2000) -> dict[str, float]:
    """Seconds per call of each strategy's check in this process, the token already cached."""
    from lbaas.api.auth import TokenStore
    from lbaas.api.keystone import KeystoneAuth
    store = TokenStore(os.path.join(token_dir, "tokens.json"))
    checks: dict[str, tuple[Any, Any]] = {
        "token file": (store.authenticate, local_token),
        "keystone (cached)": (KeystoneAuth(keystone.authtoken_options()).authenticate, {"X-Auth-Token": token})}
    out = {}
    for name, (check, argument) in checks.items():
        check(argument)  # the first call fills the cache
        started = time.perf_counter()
        for _ in range(calls):
            check(argument)
        out[name] = (time.perf_counter() - started) / calls
    return out


def _keystone_server(workdir: str, db_url: str, keystone: Keystone) -> ServerProcess:
    options = "\n".join(f"{key} = {value}" for key, value in keystone.authtoken_options().items())
    with _environment(LBAAS_API_AUTH_STRATEGY="keystone"):
        return ServerProcess(workdir, db_url, extra=f"[keystone_authtoken]\n{options}\n")


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    rounds, reps = (2, 100) if quick else (5, 300)
    member = next(user for user in USERS if user.role == "member")
    tmp, workdir = temp_database("sqlite")
    folders = {name: os.path.join(workdir, name) for name in ("token", "keystone")}
    for folder in folders.values():
        os.makedirs(folder)
    keystone = Keystone(tempfile.mkdtemp(prefix="bench-keystone-"))
    servers: list[ServerProcess] = []
    try:
        keystone.start()
        with _environment(LBAAS_CERTIFICATES_ENCRYPTION_KEY=Fernet.generate_key().decode()):
            servers.append(ServerProcess(folders["token"], tmp.url))
            servers.append(_keystone_server(folders["keystone"], tmp.url, keystone))
        token = keystone.token(member.name, member.password, member.project)
        figures: dict[str, Any] = {"token file": _latencies(servers[0], "bench-a", rounds, reps),
                                   "keystone (cached)": _latencies(servers[1], token, rounds, reps)}
        alone = _authenticate_alone(folders["token"], servers[0].tokens["bench-a"], keystone, token)
    finally:
        for server in servers:
            server.stop()
        keystone.stop()
        tmp.drop()
    p50 = {name: median_of(rounds_out, "p50") for name, rounds_out in figures.items()}
    for name, rounds_out in figures.items():
        result.add(f"GET {PATH} ({name})", "p50", p50[name], "ms", p95=median_of(rounds_out, "p95"))
    extra = p50["keystone (cached)"] - p50["token file"]
    result.add("keystone - token file", "p50 difference", extra, "ms", target="< 1 ms", met=extra < 1.0)
    for name, seconds in alone.items():
        result.add(f"authenticate() alone ({name})", "mean", seconds * 1e6, "us")
    result.details = {"rounds": figures}
    result.note("one keep-alive connection, member of a project without load balancers, after 50 warm-up GETs")
    return result
