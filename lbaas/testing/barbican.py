"""A real Barbican on loopback, for the key manager tests.

Barbican comes from PyPI into a virtualenv of its own (``scripts/barbican-venv.sh``,
``.venv-barbican`` at the top of the checkout, or ``LBAAS_BARBICAN_VENV``); ``start`` creates
the venv when it is missing or incomplete.  Each ``Barbican`` writes a barbican.conf (SQLite, created on
start; the simple_crypto plugin with a KEK of its own; ``host_href`` pointing at itself) and a
paste pipeline without Keystone (Barbican's unauthenticated context: the project comes in
``X-Project-Id``), then serves Barbican's WSGI application on 127.0.0.1 and a free port from a
child process of the venv's Python, stopped by its pid.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
from pathlib import Path

import httpx

from lbaas.testing.polling import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("LBAAS_BARBICAN_VENV", ROOT / ".venv-barbican"))
SETUP_SCRIPT = ROOT / "scripts" / "barbican-venv.sh"

# Run by the venv's Python: parse our barbican.conf, load our pipeline, serve it (one
# thread: barbican's SQLite sessions are per thread, and the tests send one request at a time).
RUNNER = """\
import sys
import uuid
from wsgiref.simple_server import WSGIRequestHandler, make_server

from barbican.common import config

config.parse_args(config.CONF, default_config_files=[sys.argv[1]])
from paste import deploy  # noqa: E402  (after the configuration, as barbican expects)

pipeline = deploy.loadapp("config:" + sys.argv[2])


def application(environ, start_response):
    # Barbican's unauthenticated context reads req.request_id, which nothing in its own
    # pipeline sets (23.0.0): give it one as a webob ad hoc attribute.
    environ.setdefault("webob.adhoc_attrs", {})["request_id"] = "req-" + uuid.uuid4().hex
    return pipeline(environ, start_response)


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


make_server("127.0.0.1", int(sys.argv[3]), application, handler_class=Quiet).serve_forever()
"""

PASTE = """\
[composite:main]
use = egg:Paste#urlmap
/: versions
/v1: api

[pipeline:versions]
pipeline = request_id microversion versionapp

[pipeline:api]
pipeline = request_id unauthenticated-context microversion apiapp

[app:apiapp]
paste.app_factory = barbican.api.app:create_main_app

[app:versionapp]
paste.app_factory = barbican.api.app:create_version_app

[filter:unauthenticated-context]
paste.filter_factory = barbican.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:microversion]
paste.filter_factory = barbican.api.middleware.microversion:MicroversionMiddleware.factory

[filter:request_id]
paste.filter_factory = oslo_middleware.request_id:RequestId.factory
"""


def ensure_venv() -> Path:
    """The venv's Python, the venv made (or completed) first when it is not whole; the
    script returns at once when it is."""
    subprocess.run(["bash", str(SETUP_SCRIPT), str(VENV)], check=True, cwd=ROOT, timeout=900)
    return VENV / "bin" / "python"


class Barbican:
    """One Barbican API process with its own database and KEK under ``workdir``."""

    def __init__(self, workdir: str) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _write_files(self) -> tuple[Path, Path, Path]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        kek = base64.b64encode(secrets.token_bytes(32)).decode()
        # Barbican's plugins each parse the configuration again from the default places,
        # ~/.barbican/barbican.conf among them: the child's HOME is the workdir.
        (self.workdir / ".barbican").mkdir(exist_ok=True)
        conf = self.workdir / ".barbican" / "barbican.conf"
        conf.write_text(f"""[DEFAULT]
host_href = {self.url}
db_auto_create = true
log_file = {self.workdir / 'barbican.log'}

[database]
connection = sqlite:///{self.workdir / 'barbican.sqlite'}

[secretstore]
enabled_secretstore_plugins = store_crypto

[crypto]
enabled_crypto_plugins = simple_crypto

[simple_crypto_plugin]
kek = {kek}
""", encoding="utf-8")
        conf.chmod(0o600)  # it holds the KEK
        paste = self.workdir / "barbican-api-paste.ini"
        paste.write_text(PASTE, encoding="utf-8")
        runner = self.workdir / "run_barbican.py"
        runner.write_text(RUNNER, encoding="utf-8")
        return conf, paste, runner

    def start(self, timeout: float = 60) -> str:
        """Start Barbican and wait until it answers; its base URL."""
        python = ensure_venv()
        conf, paste, runner = self._write_files()
        log = open(self.workdir / "barbican.out", "ab")
        self.process = subprocess.Popen([str(python), str(runner), str(conf), str(paste), str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "HOME": str(self.workdir)}, cwd=self.workdir)
        log.close()
        wait_for(self._ready, timeout=timeout, interval=0.2, what=f"Barbican on {self.url}",
                 ignore=(httpx.HTTPError,))
        return self.url

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            output = (self.workdir / "barbican.out").read_text(errors="replace")[-3000:]
            raise AssertionError(f"Barbican exited with {self.process.returncode}:\n{output}")
        return httpx.get(self.url + "/", timeout=2).status_code in (200, 300)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
