"""Configuration that refuses to start: every refusal is exit code 2 and one line on
standard error, ``lbaas: <what is wrong and where>``, without a traceback or a password.

Refusals run the installed ``lbaas`` command as an operator would; what config.load
alone decides is also tested in-process where that is quicker.  Real PostgreSQL,
MariaDB and RabbitMQ answer the start-up checks.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
import httpx
import pytest
from cryptography.fernet import Fernet

from lbaas import config as cfg
from lbaas.db.session import Database
from lbaas.testing.polling import free_port, wait_for

LBAAS = str(Path(sys.executable).with_name("lbaas"))
ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-pw"          # appears in configurations, never in a message
RABBIT = "127.0.0.1:5672"


def lbaas(command: str, config: str | bytes | None, tmp_path: Path, *more: str,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``lbaas <command> --config-file <tmp>/x.conf``; ``config`` None: no such file."""
    path = tmp_path / "x.conf"
    if isinstance(config, bytes):
        path.write_bytes(config)
    elif config is not None:
        path.write_text(config, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LBAAS_")}
    return subprocess.run([LBAAS, *command.split(), "--config-file", str(path), *more],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**clean, **(env or {})})


def assert_refused(result: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, exactly one non-empty line on stderr starting "lbaas: " that names each of
    ``names``, and no secret anywhere."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("lbaas: "), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert SECRET not in result.stderr + result.stdout
    return lines[0]


# --- the files themselves -----------------------------------------------------------

FILE_CASES = {
    "duplicate section": ("[api]\nbind_port = 1\n[api]\n", ["section [api] appears twice", "x.conf"]),
    "duplicate option": ("[api]\nbind_port = 9000\nbind_port = 9001\n", ["[api]", "'bind_port'", "twice", "x.conf"]),
    "unknown section": ("[apii]\nbind_port = 9000\n", ["unknown section [apii]", "did you mean [api]?", "x.conf"]),
    "unknown option": ("[api]\nbind_prot = 9000\n", ["[api] unknown option 'bind_prot'",
                                                     "did you mean 'bind_port'?", "x.conf"]),
    "unknown option, no near name": ("[database]\nflavour = x\n", ["[database] unknown option 'flavour'",
                                                                     "known: connection"]),
    "unknown option in [device]": ("[device]\ndevice_tokn = x\n", ["[device] unknown option 'device_tokn'",
                                                                    "did you mean 'device_token'?"]),
    "option before any section": ("bind_port = 9000\n", ["line 1", "[section]", "x.conf"]),
    "not an option line": (f"[api]\n{SECRET}\n", ["line 2", "x.conf"]),
    "DEFAULT is not inherited": ("[DEFAULT]\nbind_port = 9000\n", ["[DEFAULT] unknown option 'bind_port'"]),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_a_broken_file_is_refused(case: str, tmp_path: Path) -> None:
    text, names = FILE_CASES[case]
    assert_refused(lbaas("server", text, tmp_path), *names)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    assert_refused(lbaas("server", None, tmp_path), "not found", str(tmp_path / "x.conf"))


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    assert_refused(lbaas("agent", b"[agent]\nhost = caf\xe9\n", tmp_path), "not UTF-8", "x.conf")


# --- values -------------------------------------------------------------------------

VALUE_CASES = {
    "api port 0": ("server", "[api]\nbind_port = 0\n", "[api] bind_port", "from 1 to 65535"),
    "api port too big": ("server", "[api]\nbind_port = 70000\n", "[api] bind_port", "from 1 to 65535"),
    "device port": ("device", "[device]\ntoken = t\nbind_port = 99999\n", "[device] bind_port", "from 1 to 65535"),
    "not a number": ("server", "[api]\nbind_port = eighty\n", "[api] bind_port", "an integer"),
    "zero sweep interval": ("server", "[controller]\nsweep_interval = 0\n", "sweep_interval", "above 0"),
    "negative down time": ("server", "[controller]\nagent_down_time = -5\n", "agent_down_time", "above 0"),
    "zero rpc timeout": ("server", "[controller]\nrpc_timeout = 0\n", "rpc_timeout", "above 0"),
    "infinite pending timeout": ("server", "[controller]\npending_timeout = inf\n", "pending_timeout", "above 0"),
    "zero report interval": ("agent", "[agent]\nreport_interval = 0\n", "[agent] report_interval", "above 0"),
    "negative watchdog": ("device", "[device]\ntoken = t\ncheck_interval = -1\n", "check_interval", "at least 0"),
    "zero device timeout": ("agent", "[device]\ntimeout = 0\n", "[device] timeout", "above 0"),
    "negative pool size": ("server", "[database]\npool_size = -1\n", "[database] pool_size", "at least 0"),
    "zero api workers": ("server", "[api]\nworkers = 0\n", "[api] workers", "at least 1"),
    "negative controller workers": ("server", "[controller]\nworkers = -2\n", "[controller] workers", "at least 1"),
    "zero agent workers": ("agent", "[agent]\nworkers = 0\n", "[agent] workers", "at least 1"),
    "zero page": ("server", "[api]\npagination_max_limit = 0\n", "pagination_max_limit", "at least 1"),
    "negative agent capacity": ("agent", "[agent]\nmax_loadbalancers = -1\n", "[agent] max_loadbalancers", "at least 0"),
    "negative device capacity": ("agent", "[device]\nmax_loadbalancers = -1\n", "[device] max_loadbalancers", "at least 0"),
    "quota below -1": ("server", "[quotas]\ndefault_pool_quota = -2\n", "default_pool_quota", "at least -1"),
    "auth strategy": ("server", "[api]\nauth_strategy = ldap\n", "[api] auth_strategy", "token, keystone, noauth"),
    "scheduler policy": ("server", "[controller]\nscheduler_policy = fair\n", "scheduler_policy", "least_loaded, random"),
    "device driver": ("agent", "[agent]\ndevice_driver = f5\n", "[agent] device_driver", "noop, haproxy"),
    "vip subnet": ("server", "[vip_subnets]\npublic = 10.0.0.0/33\n", "[vip_subnets] public", "not a CIDR"),
    "log file directory": ("server", "[DEFAULT]\nlog_file = /nonexistent/dir/lbaas.log\n", "[DEFAULT] log_file",
                           "/nonexistent/dir does not exist"),
    "boolean": ("server", "[DEFAULT]\ndebug = maybe\n", "[DEFAULT] debug", "true or false"),
    "device boolean": ("device", "[device]\ntoken = t\nbind_transparent = maybe\n", "bind_transparent", "true or false"),
    "broker scheme": ("agent", f"[DEFAULT]\ntransport_url = redis://u:{SECRET}@h/0\n", "transport_url", "rabbit://"),
    "broker empty node": ("agent", f"[DEFAULT]\ntransport_url = rabbit://u:{SECRET}@h1,/v\n", "transport_url",
                          "empty host"),
    "delivery limit": ("server", "[messaging]\ndelivery_limit = 0\n", "[messaging] delivery_limit", "at least 1"),
    "device url": ("agent", "[device]\ndevices = 127.0.0.1:9443\n", "[device] devices", "http://"),
}


@pytest.mark.parametrize("case", VALUE_CASES)
def test_a_bad_value_is_refused(case: str, tmp_path: Path) -> None:
    command, text, *names = VALUE_CASES[case]
    assert_refused(lbaas(command, text, tmp_path), *names, "x.conf")


def test_a_bad_environment_override_is_refused(tmp_path: Path) -> None:
    result = lbaas("device", "[device]\ntoken = t\n", tmp_path, env={"LBAAS_DEVICE_BIND_PORT": "0"})
    assert_refused(result, "[device] bind_port", "LBAAS_DEVICE_BIND_PORT", "from 1 to 65535")


# --- what the file points to: database, broker, token file, appliance -----------------

@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database the server checks pass over (nothing writes to it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db')}/lbaas.sqlite"
    db = Database(url)
    db.upgrade()
    db.dispose()
    return url


def server_conf(db_url: str, tokens: str = "[api]\nauth_strategy = noauth\n",
                transport: str = "memory://") -> str:
    return f"[DEFAULT]\ntransport_url = {transport}\n[database]\nconnection = {db_url}\n{tokens}"


DATABASE_CASES = {
    "unparsable url": (f"postgresql+psycopg://u:{SECRET}@host:notaport/db", ["[database] connection",
                                                                              "not a database URL"]),
    "postgresql unreachable": (f"postgresql+psycopg://lbaas:{SECRET}@127.0.0.1:{free_port()}/lbaas",
                               ["cannot reach the database at postgresql+psycopg://lbaas:***@127.0.0.1",
                                "Connection refused"]),
    "postgresql unknown database": ("postgresql+psycopg://postgres@127.0.0.1:5432/lbaas_no_such_db",
                                    ["cannot reach the database", "lbaas_no_such_db", "does not exist"]),
    "mariadb wrong password": (f"mysql+pymysql://root:{SECRET}@127.0.0.1:3306/mysql",
                               ["cannot reach the database at mysql+pymysql://root:***@", "Access denied"]),
    "unknown dialect": ("oracle9://scott@host/db", ["[database] connection", "unsupported"]),
}


@pytest.mark.parametrize("case", DATABASE_CASES)
def test_a_database_that_cannot_be_used_is_refused(case: str, tmp_path: Path) -> None:
    url, names = DATABASE_CASES[case]
    assert_refused(lbaas("server", server_conf(url), tmp_path), *names)


def test_db_commands_check_the_database_too(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://lbaas:{SECRET}@127.0.0.1:{free_port()}/lbaas"
    assert_refused(lbaas("db upgrade", server_conf(url), tmp_path), "cannot reach the database")


def rabbit(credentials: str, vhost: str = "", address: str = RABBIT) -> str:
    return f"rabbit://{credentials}@{address}/{vhost}"


BROKER_CASES = {
    "wrong password": (rabbit(f"guest:{SECRET}"), ["message broker", "rabbit://guest:****@",
                                                    "refused the user name or password"]),
    "unknown vhost": (rabbit("guest:guest", "no-such-vhost"), ["message broker", "refused the vhost",
                                                               "no-such-vhost"]),
    "unreachable": (rabbit(f"guest:{SECRET}", address=f"127.0.0.1:{free_port()}"),
                    ["message broker", "Connection refused"]),
    "no node of a cluster answers": (rabbit(f"guest:{SECRET}", address=f"127.0.0.1:{free_port()},"
                                                                       f"guest:{SECRET}@127.0.0.1:{free_port()}"),
                                     ["message broker", "Connection refused; 127.0.0.1"]),
}


def test_one_live_node_of_a_cluster_is_enough_to_start() -> None:
    """A server restarted while one broker node is down starts on the others."""
    from lbaas.service import check_broker
    check_broker(rabbit("guest:guest", address=f"127.0.0.1:{free_port()},guest:guest@{RABBIT}"))


@pytest.mark.parametrize("command", ["agent", "server"])
@pytest.mark.parametrize("case", BROKER_CASES)
def test_a_broker_that_cannot_be_used_is_refused(case: str, command: str, tmp_path: Path, migrated: str) -> None:
    url, names = BROKER_CASES[case]
    result = lbaas(command, server_conf(migrated, transport=url), tmp_path)
    assert_refused(result, *names, "transport_url")


TOKEN_CASES = {
    "missing": (None, ["tokens.json does not exist",
                       "lbaas token create --config-file {conf} --project P --role admin"]),
    "malformed": ('{"abc": ', ["tokens.json is not valid JSON"]),
    "a list": ('["abc"]', ['tokens.json is not {{"format": 2, "tokens"']),
    "tokens in clear": (f'{{"{SECRET}": {{"project_id": "p", "roles": ["admin"]}}}}',
                        ["tokens.json holds tokens in clear (the old format)", "lbaas token create"]),
    "no roles": ('{"format": 2, "tokens": {"0123456789abcdef": {"project_id": "p"}}}',
                 ["tokens.json: entry 1 is malformed"]),
    "empty": ("{}", ["tokens.json holds no tokens"]),
}


@pytest.mark.parametrize("case", TOKEN_CASES)
def test_a_token_file_that_cannot_be_used_is_refused(case: str, tmp_path: Path, migrated: str) -> None:
    content, names = TOKEN_CASES[case]
    if content is not None:
        (tmp_path / "tokens.json").write_text(content)
    result = lbaas("server", server_conf(migrated, "[api]\ntoken_file = tokens.json\n"), tmp_path)
    assert_refused(result, str(tmp_path / "tokens.json"),
                   *(name.format(conf=tmp_path / "x.conf") for name in names))


def test_keystone_without_a_service_user_is_refused(tmp_path: Path, migrated: str) -> None:
    result = lbaas("server", server_conf(migrated, "[api]\nauth_strategy = keystone\n"), tmp_path)
    assert_refused(result, "[keystone_authtoken] auth_url, username, password not set")


def test_a_broken_policy_file_is_refused(tmp_path: Path, migrated: str) -> None:
    (tmp_path / "policy.yaml").write_text("{{{ not yaml")
    conf = server_conf(migrated, f"[api]\nauth_strategy = noauth\npolicy_file = {tmp_path / 'policy.yaml'}\n"
                                 f"[certificates]\nencryption_key = {Fernet.generate_key().decode()}\n")
    assert_refused(lbaas("server", conf, tmp_path), "[api] policy_file", "cannot be used")


APPLIANCE_CASES = {
    "sample token": ("token = change-me\n", ["[device] token", "sample", "secrets.token_urlsafe"]),
    "empty token": ("token =\n", ["[device] token is empty"]),
    "no token": ("bind_port = 9443\n", ["[device] token is empty"]),
    "haproxy missing": ("token = t\nhaproxy_bin = /nonexistent/haproxy\n",
                        ["[device] haproxy_bin '/nonexistent/haproxy' cannot be run"]),
    "not haproxy": ("token = t\nhaproxy_bin = /bin/true\n", ["[device] haproxy_bin '/bin/true' cannot be run",
                                                             "version"]),
    "tls half": ("token = t\ntls_cert = /etc/hostname\n", ["[device] tls_cert and tls_key go together"]),
    "tls unreadable": ("token = t\ntls_cert = /nonexistent.pem\ntls_key = /nonexistent.key\n",
                       ["[device] tls_cert /nonexistent.pem does not exist"]),
    "state dir": ("token = t\nstate_dir = /proc/lbaas-device\n", ["[device] state_dir /proc/lbaas-device",
                                                                  "cannot be created"]),
}


@pytest.mark.parametrize("case", APPLIANCE_CASES)
def test_an_appliance_that_cannot_serve_is_refused(case: str, tmp_path: Path) -> None:
    lines, names = APPLIANCE_CASES[case]
    state = "" if "state_dir" in lines else f"state_dir = {tmp_path}/state\n"
    assert_refused(lbaas("device", f"[device]\n{state}{lines}", tmp_path), *names)


AGENT_DEVICE_CASES = {
    "no devices": ("device_token = t\n", ["[device] devices must name at least one"]),
    "no token": ("devices = http://127.0.0.1:1\n", ["[device] device_token is required"]),
    "ca file": ("devices = https://127.0.0.1:1\ndevice_token = t\nca_file = /nonexistent/ca.pem\n",
                ["[device] ca_file /nonexistent/ca.pem cannot be used"]),
}


@pytest.mark.parametrize("case", AGENT_DEVICE_CASES)
def test_an_agent_with_bad_driver_options_is_refused(case: str, tmp_path: Path) -> None:
    lines, names = AGENT_DEVICE_CASES[case]
    result = lbaas("agent", f"[agent]\ndevice_driver = haproxy\n[device]\n{lines}", tmp_path)
    assert_refused(result, *names)


# --- what still loads -----------------------------------------------------------------

# The configuration files (etc/ also holds systemd units, logrotate and policy samples).
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "etc").iterdir()
                                        if p.name.endswith((".ini", ".conf", ".conf.sample"))))
def test_the_shipped_files_load(name: str) -> None:
    config = cfg.load([str(ROOT / "etc" / name)])
    assert config.files == (str(ROOT / "etc" / name),)


def test_the_shipped_sample_is_what_config_sample_prints() -> None:
    # Regenerate with: lbaas config-sample > etc/lbaas.conf.sample
    assert (ROOT / "etc" / "lbaas.conf.sample").read_text(encoding="utf-8") == cfg.sample() + "\n"


def test_the_committed_reference_is_what_config_reference_prints(capsys: pytest.CaptureFixture[str]) -> None:
    # Regenerate with: lbaas config-reference > docs/configuration.md
    from lbaas.cli import main
    assert main(["config-reference"]) == 0
    printed = capsys.readouterr().out
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == printed
    assert all(f"`{option.name}`" in printed for options in cfg.OPTIONS.values() for option in options)


def test_device_options_are_declared_for_appliance_and_driver(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from lbaas.appliance.service import DeviceConfig
    declared = {option.name for option in cfg.OPTIONS["device"]}
    assert {field.name for field in dataclasses.fields(DeviceConfig)} <= declared
    assert {"devices", "device_token", "ca_file", "timeout", "max_loadbalancers"} <= declared
    path = tmp_path / "both.ini"
    path.write_text("[device]\ntoken = t\nbind_port = 9444\ndevices = http://a:1, https://b:2/\n"
                    "device_token = d\ntimeout = 2.5\nbind_transparent = off\n")
    monkeypatch.setenv("LBAAS_DEVICE_CHECK_INTERVAL", "0")
    device = cfg.load([str(path)]).device
    assert (device.bind_port, device.devices, device.timeout) == (9444, ["http://a:1", "https://b:2/"], 2.5)
    assert (device.bind_transparent, device.check_interval, device.max_loadbalancers) == (False, 0.0, None)
    assert "#device_token = " in cfg.sample() and "#haproxy_bin = haproxy" in cfg.sample()


def test_choices_follow_the_registries() -> None:
    from lbaas.agent.drivers import DRIVERS
    from lbaas.scheduler import POLICIES
    kinds = {(s, o.name): o.kind for s, options in cfg.OPTIONS.items() for o in options}
    assert tuple(kinds["controller", "scheduler_policy"].names) == POLICIES
    assert tuple(kinds["agent", "device_driver"].names) == tuple(DRIVERS)


def test_free_form_sections_stay_free_and_default_is_not_inherited(tmp_path: Path) -> None:
    path = tmp_path / "a.ini"
    path.write_text("[DEFAULT]\ndebug = yes\n[vip_subnets]\nanything-at-all = 10.1.0.0/16\n"
                    "v6 = 2001:db8::/64\n")
    config = cfg.load([str(path)])
    assert config.default.debug is True
    assert config.vip_subnets == {"anything-at-all": "10.1.0.0/16", "v6": "2001:db8::/64"}


def test_constructors_accept_strings_and_check_them_the_same_way() -> None:
    from lbaas.appliance.service import DeviceConfig
    from lbaas.agent.drivers.haproxy import HAProxyDriver
    device = DeviceConfig(token="t", bind_port="9443", check_interval="0", bind_transparent="no")
    assert (device.bind_port, device.check_interval, device.bind_transparent) == (9443, 0.0, False)
    with pytest.raises(ValueError, match=r"\[device\] bind_port: must be an integer from 1 to 65535"):
        DeviceConfig(token="t", bind_port=0)
    driver = HAProxyDriver({"devices": "http://127.0.0.1:1/", "device_token": "t", "timeout": "3"})
    assert (driver.devices, driver.timeout, driver.max_loadbalancers) == (["http://127.0.0.1:1"], 3.0, 0)
    driver.close()
    with pytest.raises(ValueError, match=r"\[device\] timeout"):
        HAProxyDriver({"devices": "http://127.0.0.1:1", "device_token": "t", "timeout": "-1"})


@pytest.mark.parametrize("device_section, expected", [("", 7), ("[device]\nmax_loadbalancers = 3\n", 3)])
def test_agent_capacity_comes_from_device_else_agent(device_section: str, expected: int, tmp_path: Path) -> None:
    from lbaas import service
    from lbaas.messaging import Broker
    path = tmp_path / "agent.ini"
    path.write_text(f"[agent]\nmax_loadbalancers = 7\n{device_section}")
    broker = Broker("memory://")
    agent = service.make_agent(cfg.load([str(path)]), broker)
    assert agent.driver.max_loadbalancers == expected
    broker.close()


# --- token create writes what the server reads ------------------------------------------

def test_token_create_writes_the_file_the_server_reads(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "server.conf"
    # Relative paths, given in the file: both commands run from the same directory.
    conf.write_text(f"[api]\nbind_port = {port}\ntoken_file = tokens.json\n"
                    "[database]\nconnection = sqlite:///lbaas.sqlite\n"
                    f"[certificates]\nencryption_key = {Fernet.generate_key().decode()}\n")
    for command in ("db upgrade", "token create --project p1 --role admin"):
        done = subprocess.run([LBAAS, *command.split(), "--config-file", "server.conf"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert (tmp_path / "tokens.json").exists()
    server = subprocess.Popen([LBAAS, "server", "--config-file", "server.conf"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v2/lbaas/loadbalancers"
        assert wait_for_http(url, server) == 401
        answer = httpx.get(url, headers={"X-Auth-Token": token}, timeout=5)
        assert answer.status_code == 200 and answer.json()["loadbalancers"] == []
    finally:
        server.terminate()
        server.wait(timeout=15)


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 30) -> int:
    """The status of the first answer from ``url``; fails if ``proc`` exits first."""
    def status() -> int:
        assert proc.poll() is None, proc.communicate()[1]
        return httpx.get(url, timeout=1).status_code
    return wait_for(status, timeout, 0.1, f"{url} to answer", ignore=(httpx.TransportError,))


def test_load_is_quick_to_refuse_without_a_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_text("[agent]\nreport_intervall = 3\n")
    with pytest.raises(cfg.ConfigError, match=r"did you mean 'report_interval'\?\) in .*x\.conf$"):
        cfg.load([str(path)])
    with pytest.raises(cfg.ConfigError, match=r"\[api\] unknown option 'bind_prot'.* in the overrides"):
        cfg.load(overrides={"api": {"bind_prot": 1}})
