"""The command line, configuration and the schema guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lbaas import config as cfg
from lbaas.db.models import Base
from lbaas.db.session import Database


def lbaas(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lbaas.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def newest_migration() -> str:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from lbaas.db.session import MIGRATIONS
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    return str(ScriptDirectory.from_config(alembic).get_current_head())


def test_server_refuses_an_out_of_date_schema(tmp_path: Any) -> None:
    path = tmp_path / "server.ini"
    path.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/empty.sqlite\n[api]\nbind_port = 1\n")
    result = lbaas("server", "--config-file", str(path))
    assert result.returncode == 2
    assert "lbaas db upgrade" in result.stderr and "empty database" in result.stderr


def test_db_upgrade_then_token_create(tmp_path: Any) -> None:
    path = tmp_path / "lbaas.ini"
    tokens = tmp_path / "tokens.json"
    path.write_text(f"[database]\nconnection = sqlite:///{tmp_path}/db.sqlite\n[api]\ntoken_file = {tokens}\n")
    upgraded = lbaas("db", "upgrade", "--config-file", str(path))
    assert upgraded.returncode == 0 and upgraded.stdout.strip() == newest_migration(), upgraded.stderr
    made = lbaas("token", "create", "--project", "p1", "--role", "reader", "--expires-in", "60",
                 "--config-file", str(path))
    token = made.stdout.strip()
    ident, _, secret = token.partition(".")
    assert made.returncode == 0 and len(secret) > 30
    stored = json.loads(tokens.read_text())["tokens"]
    assert stored[ident]["project_id"] == "p1" and stored[ident]["roles"] == ["reader"]
    assert stored[ident]["expires"] and secret not in tokens.read_text()  # only a salted hash is kept
    assert oct(tokens.stat().st_mode & 0o777) == "0o600"
    listed = lbaas("token", "list", "--config-file", str(path))
    assert listed.returncode == 0 and ident in listed.stdout and "p1" in listed.stdout
    assert secret not in listed.stdout
    assert lbaas("token", "revoke", ident, "--config-file", str(path)).returncode == 0
    assert ident not in json.loads(tokens.read_text())["tokens"]
    again = lbaas("token", "revoke", ident, "--config-file", str(path))
    assert again.returncode == 1 and "no token with id" in again.stderr


def test_version_prints_the_package_version() -> None:
    from lbaas import __version__
    result = lbaas("--version")
    assert (result.returncode, result.stdout) == (0, f"lbaas {__version__}\n"), result.stderr


def test_policy_sample_lists_every_rule_with_its_default() -> None:
    result = lbaas("policy-sample")
    assert result.returncode == 0, result.stderr
    assert '#"os_load-balancer_api:loadbalancer:post": "rule:load-balancer:write"' in result.stdout
    assert '#"os_load-balancer_api:agent:rebind": "rule:load-balancer:admin"' in result.stdout
    assert "# List Load Balancers\n# GET  /v2/lbaas/loadbalancers\n" in result.stdout
    # Regenerate with: lbaas policy-sample > etc/policy.yaml.sample
    assert (Path(__file__).parent.parent / "etc" / "policy.yaml.sample").read_text() == result.stdout


def test_later_files_and_environment_win(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "a.ini"
    second = tmp_path / "b.ini"
    first.write_text("[api]\nbind_port = 1111\nauth_strategy = noauth\n[vip_subnets]\nx = 10.0.0.0/24\n")
    second.write_text("[api]\nbind_port = 2222\n")
    config = cfg.load([str(first), str(second)])
    assert (config.api.bind_port, config.api.auth_strategy) == (2222, "noauth")
    assert config.vip_subnets == {"x": "10.0.0.0/24"}
    monkeypatch.setenv("LBAAS_API_BIND_PORT", "3333")
    assert cfg.load([str(first), str(second)]).api.bind_port == 3333


def test_bad_configuration_is_a_clear_error(tmp_path: Any) -> None:
    path = tmp_path / "bad.ini"
    path.write_text("[api]\nbind_port = eighty\n")
    result = lbaas("db", "current", "--config-file", str(path))
    assert result.returncode == 2 and "bind_port" in result.stderr
    missing = lbaas("db", "current", "--config-file", str(tmp_path / "nope.ini"))
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_config_sample_lists_every_option() -> None:
    sample = lbaas("config-sample").stdout
    for section, options in cfg.OPTIONS.items():
        assert f"[{section}]" in sample
        for option in options:
            assert f"#{option.name} = " in sample


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb"])
def test_migrations_match_the_models(backend: str, temp_database: Any) -> None:
    db = Database(temp_database(backend).url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []
