"""``[certificates]`` at start-up: ``lbaas server`` refuses, with one line and exit 2, a
local key store without an encryption_key or with a malformed one (never echoing it), and
a Barbican backend without its endpoint; with a key it serves the key manager API."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from lbaas.testing.polling import free_port, wait_for
from tests.test_config import LBAAS, SECRET, assert_refused, lbaas, migrated, server_conf  # noqa: F401

CASES = {
    "no key": ("", ["[certificates] encryption_key is not set", "urlsafe_b64encode"]),
    "malformed key": (f"encryption_key = {SECRET}\n", ["[certificates] encryption_key", "Fernet key", "x.conf"]),
    "key of 16 bytes": ("encryption_key = MDEyMzQ1Njc4OWFiY2RlZg==\n", ["Fernet key", "32 bytes"]),
    "barbican without endpoint": ("backend = barbican\n", ["[certificates]", "barbican_endpoint"]),
    "barbican endpoint not a url": ("backend = barbican\nbarbican_endpoint = barbican:9311\n",
                                    ["barbican_endpoint", "http://"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_key_store_that_cannot_work_is_refused(case: str, tmp_path: Path, migrated: str) -> None:  # noqa: F811
    lines, names = CASES[case]
    assert_refused(lbaas("server", server_conf(migrated) + f"[certificates]\n{lines}", tmp_path), *names)


def test_a_server_with_a_key_serves_the_key_manager(tmp_path: Path, migrated: str) -> None:  # noqa: F811
    port = free_port()
    conf = tmp_path / "x.conf"
    conf.write_text(server_conf(migrated, f"[api]\nauth_strategy = noauth\nbind_port = {port}\n") +
                    f"[certificates]\nencryption_key = {Fernet.generate_key().decode()}\n")
    server = subprocess.Popen([LBAAS, "server", "--config-file", str(conf)], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/key-manager/v1/secrets"
        answer = wait_for(lambda: httpx.get(url, headers={"X-Project-Id": "p"}, timeout=2), timeout=30,
                          ignore=(httpx.HTTPError,), what="the server")
        assert answer.status_code == 200 and answer.json() == {"secrets": [], "total": 0}
    finally:
        server.terminate()
        server.wait(timeout=15)
