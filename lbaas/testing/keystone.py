"""A real Keystone on loopback, for tests and benchmarks.

Keystone comes from PyPI in a venv of its own (``scripts/keystone-venv.sh``,
run by ``make keystone``, which ``make test`` runs; ``.venv-keystone`` by default), since its
pinned libraries are not ours.  ``Keystone(workdir).start()``:

1. writes ``keystone.conf`` (SQLite, fernet tokens, key repositories under
   ``workdir``) and runs ``keystone-manage db_sync``, ``fernet_setup``,
   ``credential_setup`` and ``bootstrap`` (admin user and project, region
   ``RegionOne``, the identity endpoint on a free port);
2. serves Keystone's WSGI application with gunicorn on 127.0.0.1;
3. creates the users every test needs (``USERS``: members and readers of two
   projects, legacy load-balancer roles, the service user auth_token uses).

``register_lbaas(url)`` adds the ``load-balancer`` service and its endpoint,
so clients find the lbaas server through the catalog.  ``stop()`` ends
gunicorn by its pid; ``start()`` again serves the same data (a Keystone
outage in a test).  Passwords here are test fixtures, never real secrets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from typing import Any

import httpx

from lbaas.testing.polling import free_port, wait_for

DEFAULT_VENV = os.path.join(os.path.dirname(__file__), "..", "..", ".venv-keystone")
REGION = "RegionOne"
ADMIN_PASSWORD = "admin-secret"
SERVICE_USER = ("lbaas", "lbaas-secret")


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    project: str
    role: str
    password: str = "secret"


USERS = (
    User("alice", "project-a", "member"),
    User("reader-a", "project-a", "reader"),
    User("bob", "project-b", "member"),
    User("legacy-member", "project-a", "load-balancer_member"),
    User("legacy-observer", "project-a", "load-balancer_observer"),
    User("global-observer", "project-b", "load-balancer_global_observer"),
    User(SERVICE_USER[0], "service", "service", SERVICE_USER[1]),
)


class Keystone:
    """One Keystone process over one SQLite database in ``workdir``."""

    def __init__(self, workdir: str, venv: str = DEFAULT_VENV, token_lifetime: int = 3600) -> None:
        self.token_lifetime = token_lifetime
        self.workdir = os.path.abspath(workdir)
        self.venv = os.path.abspath(venv)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.conf = os.path.join(self.workdir, "keystone.conf")
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self.ids: dict[str, str] = {}  # project name -> id
        self._admin_cached, self._admin_made = "", -float("inf")

    def start(self) -> None:
        if not self._ready:
            self._write_conf()
            self._bootstrap()
        self._serve()
        try:
            if not self._ready:
                self._create_users()
                self._ready = True
        except BaseException:
            self.stop()  # never leave a gunicorn behind
            raise

    def stop(self) -> None:
        if self._process is not None:
            # SIGINT is gunicorn's quick shutdown; SIGTERM would wait out its graceful timeout.
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None

    # --- what tests use ---------------------------------------------------------------

    def token(self, user: str, password: str, project: str) -> str:
        """A project-scoped token (a fernet token) for ``user``."""
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        response = httpx.post(f"{self.url}/auth/tokens", json=body, timeout=30)
        response.raise_for_status()
        return response.headers["X-Subject-Token"]

    def admin_token(self) -> str:
        return self.token("admin", ADMIN_PASSWORD, "admin")

    def revoke(self, token: str) -> None:
        headers = {"X-Auth-Token": self._admin(), "X-Subject-Token": token}
        httpx.delete(f"{self.url}/auth/tokens", headers=headers, timeout=30).raise_for_status()

    def register_lbaas(self, url: str) -> None:
        """The ``load-balancer`` service with a public endpoint at ``url``, and ``network`` there too
        (the server answers the Neutron-shaped subnet lookups clients make)."""
        for name, kind in (("octavia", "load-balancer"), ("neutron", "network")):
            service = self._post("services", "service", {"name": name, "type": kind})
            self._post("endpoints", "endpoint", {"service_id": service["id"], "interface": "public",
                                                 "region_id": REGION, "url": url})

    def authtoken_options(self, **more: Any) -> dict[str, Any]:
        """``[keystone_authtoken]`` for an lbaas server behind this Keystone."""
        return {"www_authenticate_uri": self.url, "auth_url": self.url, "auth_type": "password",
                "username": SERVICE_USER[0], "password": SERVICE_USER[1], "project_name": "service",
                "user_domain_name": "Default", "project_domain_name": "Default", **more}

    def cloud(self, user: str, password: str, project: str) -> dict[str, Any]:
        """A clouds.yaml entry that authenticates with a password and finds lbaas in the catalog."""
        return {"auth_type": "password", "region_name": REGION, "identity_api_version": 3,
                "auth": {"auth_url": self.url, "username": user, "password": password, "project_name": project,
                         "user_domain_name": "Default", "project_domain_name": "Default"}}

    # --- setting up -------------------------------------------------------------------

    def _write_conf(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.conf, "w", encoding="utf-8") as handle:
            handle.write(textwrap.dedent(f"""\
                [DEFAULT]
                log_file = {self.workdir}/keystone.log
                [database]
                connection = sqlite:///{self.workdir}/keystone.sqlite
                [token]
                provider = fernet
                expiration = {self.token_lifetime}
                [fernet_tokens]
                key_repository = {self.workdir}/fernet-keys
                [fernet_receipts]
                key_repository = {self.workdir}/fernet-keys
                [credential]
                key_repository = {self.workdir}/credential-keys
                [cache]
                enabled = false
                [identity]
                # bcrypt's cheapest cost: test passwords need no protection, and every
                # password login (each openstack CLI call) pays this on a busy machine
                password_hash_rounds = 4
                """))

    def _manage(self, *args: str) -> None:
        command = [os.path.join(self.venv, "bin", "keystone-manage"), "--config-file", self.conf, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed: {result.stderr[-2000:]}")

    def _bootstrap(self) -> None:
        self._manage("db_sync")
        # Keystone keeps a read transaction open while it writes in some calls
        # (role creation); in SQLite's default journal mode that writer then
        # waits for itself ("database is locked").  WAL lets readers and one
        # writer overlap; the mode is stored in the file.
        with contextlib.closing(sqlite3.connect(os.path.join(self.workdir, "keystone.sqlite"))) as db:
            db.execute("PRAGMA journal_mode=WAL")
        user = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        self._manage("fernet_setup", *user)
        self._manage("credential_setup", *user)
        self._manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD, "--bootstrap-region-id", REGION,
                     "--bootstrap-admin-url", self.url, "--bootstrap-public-url", self.url,
                     "--bootstrap-internal-url", self.url)

    def _serve(self) -> None:
        gunicorn = os.path.join(self.venv, "bin", "gunicorn")
        env = {**os.environ, "OS_KEYSTONE_CONFIG_FILES": self.conf}
        # Keystone's configuration parses sys.argv, which would be gunicorn's.
        with open(os.path.join(self.workdir, "keystone_app.py"), "w", encoding="utf-8") as handle:
            handle.write("import sys\nsys.argv = sys.argv[:1]\nfrom keystone.wsgi.api import application\n")
        log = open(os.path.join(self.workdir, "gunicorn.log"), "ab")
        self._process = subprocess.Popen(
            [gunicorn, "--bind", f"127.0.0.1:{self.port}", "--workers", "1",  # one thread: SQLite allows one writer
             "--chdir", self.workdir, "keystone_app:application"], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def answering() -> bool:
            assert self._process is not None and self._process.poll() is None, "gunicorn exited"
            return httpx.get(self.url, timeout=2).status_code == 200

        try:
            wait_for(answering, timeout=60, what="Keystone", ignore=(httpx.HTTPError,))
        except BaseException:
            self.stop()
            raise

    def _admin(self) -> str:
        """An admin token younger than half the token lifetime (tests may make it short)."""
        if time.monotonic() - self._admin_made > self.token_lifetime / 2:
            self._admin_cached, self._admin_made = self.admin_token(), time.monotonic()
        return self._admin_cached

    def _post(self, collection: str, key: str, fields: dict[str, Any]) -> dict[str, Any]:
        headers = {"X-Auth-Token": self._admin()}
        response = httpx.post(f"{self.url}/{collection}", json={key: fields}, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()[key]

    def _role_ids(self) -> dict[str, str]:
        response = httpx.get(f"{self.url}/roles", headers={"X-Auth-Token": self._admin()}, timeout=30)
        response.raise_for_status()
        return {role["name"]: role["id"] for role in response.json()["roles"]}

    def _create_users(self) -> None:
        roles = self._role_ids()
        for name in {user.role for user in USERS} - set(roles):
            roles[name] = self._post("roles", "role", {"name": name})["id"]
        for project in dict.fromkeys(user.project for user in USERS):
            self.ids[project] = self._post("projects", "project", {"name": project, "domain_id": "default"})["id"]
        for user in USERS:
            made = self._post("users", "user", {"name": user.name, "password": user.password,
                                                "domain_id": "default", "default_project_id": self.ids[user.project]})
            grant = f"{self.url}/projects/{self.ids[user.project]}/users/{made['id']}/roles/{roles[user.role]}"
            httpx.put(grant, headers={"X-Auth-Token": self._admin()}, timeout=30).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    """``python -m lbaas.testing.keystone``: a Keystone to try ``auth_strategy = keystone``
    against, serving until interrupted; prints the server's configuration and a clouds.yaml."""
    import argparse
    import json
    import tempfile
    parser = argparse.ArgumentParser(description="Run a throw-away Keystone on loopback for lbaas.")
    parser.add_argument("--lbaas-url", default="http://127.0.0.1:9876",
                        help="where the lbaas server answers (registered in the catalog)")
    parser.add_argument("--workdir", help="where Keystone keeps its data (default: a temporary folder)")
    args = parser.parse_args(argv)
    keystone = Keystone(args.workdir or tempfile.mkdtemp(prefix="keystone-"))
    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)   # taken by sigwait below, not by handlers
    keystone.start()
    try:
        keystone.register_lbaas(args.lbaas_url)
        options = "\n".join(f"{k} = {v}" for k, v in keystone.authtoken_options().items())
        alice = next(u for u in USERS if u.name == "alice")
        cloud = json.dumps({"clouds": {"keystone-cloud": keystone.cloud(alice.name, alice.password,
                                                                          alice.project)}}, indent=2)
        print(f"Keystone serves {keystone.url} (users: {', '.join(u.name for u in USERS)}; "
              f"password '{User.password}' but for the service user).\n\n"
              f"Start lbaas with this in its configuration file:\n\n[api]\nauth_strategy = keystone\n\n"
              f"[keystone_authtoken]\n{options}\n\n"
              f"and this as ~/.config/openstack/clouds.yaml (JSON is YAML):\n\n{cloud}\n\n"
              f"then: openstack --os-cloud keystone-cloud loadbalancer create --vip-subnet-id <subnet> "
              f"--name web --wait\n", flush=True)
        signal.sigwait(stops)
    finally:
        keystone.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
