"""The operator dashboard in a real headless Chromium (Debian's, driven by Playwright)
against one ``lbaas server`` and two ``lbaas agent`` processes on PostgreSQL and
RabbitMQ: the page asks for a token, shows both agents alive, turns a killed agent
red without a reload, and refuses a member's token. Screenshots land in the test's
tmp dir and in ./test-artifacts/."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.testing.cluster import Cluster, wait_lb

HOSTS = ["dash-a", "dash-b"]
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
REASON = "device refused: <script>alert(1)</script>"
RED = "rgb(207, 34, 46)"      # --dead in the page's CSS
GREEN = "rgb(26, 127, 55)"    # --alive


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("dashboard")), db.url, agent_down_time=3.0)
    try:
        yield cluster.start_all(["server-1"], HOSTS)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make chromium` installs it"
    with sync_playwright() as playwright:
        # --no-sandbox: the suite may run as root (in a container), where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def _log_in(browser: Browser, cluster: Cluster, token: str, **context: Any) -> Page:
    page = browser.new_context(**context).new_page()
    page.goto(cluster.url() + "/dashboard")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", cluster.tokens[token])
    page.click("#token-form button")
    return page


def _liveness(page: Page, host: str) -> Any:
    return page.locator(f'tr[data-host="{host}"] [data-testid="liveness"]')


def _save(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)


def _failed(cluster: Cluster, admin: Any) -> str:
    """A load balancer left in ERROR, as a device that refused its configuration leaves it."""
    body = {"vip_subnet_id": "cluster", "project_id": "p1", "name": "failed"}
    lb_id = admin.post("/v2/lbaas/loadbalancers", json={"loadbalancer": body}).json()["loadbalancer"]["id"]
    wait_lb(admin, lb_id)
    db = Database(cluster.db_url)
    try:
        with db.transaction() as session:
            lb = session.get(m.LoadBalancer, lb_id)
            assert lb is not None
            lb.provisioning_status, lb.status_reason = "ERROR", REASON
    finally:
        db.dispose()
    return lb_id


def test_json_is_admin_only_and_names_the_bindings(cluster: Cluster) -> None:
    with cluster.client() as admin:
        body = {"vip_subnet_id": "cluster", "project_id": "p1", "name": "<b>shown-as-text</b>"}
        lb = admin.post("/v2/lbaas/loadbalancers", json={"loadbalancer": body}).json()["loadbalancer"]
        wait_lb(admin, lb["id"])
        failed = _failed(cluster, admin)
        dashboard = admin.get("/v2.0/dashboard").json()["dashboard"]
    agents = {agent["host"]: agent for agent in dashboard["agents"]}
    assert set(agents) == set(HOSTS) and all(agent["alive"] for agent in agents.values())
    bound = [agent for agent in agents.values() if agent["loadbalancer_count"]]
    assert {b["id"] for agent in bound for b in agent["bindings"]} == {lb["id"], failed}
    assert dashboard["pending"] == {"count": 0, "loadbalancers": []}
    [error] = dashboard["error"]["loadbalancers"]
    assert dashboard["error"]["count"] == 1 and error["id"] == failed and error["status_reason"] == REASON
    assert 0 <= error["age"] < 60
    with cluster.client(token="p1") as member:
        refused = member.get("/v2.0/dashboard")
    assert refused.status_code == 403 and "faultstring" in refused.json()
    with cluster.client(token="not-a-token") as stranger:
        assert stranger.get("/v2/dashboard").status_code == 401


def test_page_shows_agents_alive_then_a_killed_one_dead_without_reload(
        cluster: Cluster, browser: Browser, tmp_path: Path) -> None:
    page = _log_in(browser, cluster, "admin")
    for host in HOSTS:
        expect(_liveness(page, host)).to_have_text("alive")
        expect(_liveness(page, host)).to_have_css("background-color", GREEN)
    # Tenant and device strings are text, never markup.
    page.locator("details summary", has_text="2").click()
    expect(page.get_by_text("<b>shown-as-text</b> (ACTIVE)")).to_be_visible()
    expect(page.locator("#error")).to_contain_text(REASON)
    expect(page.locator("#error-count")).to_have_text("1")
    assert page.locator("main b, main script").count() == 0
    page.evaluate("window.notReloaded = true")
    cluster.kill_agent(HOSTS[1])
    killed = time.monotonic()
    expect(_liveness(page, HOSTS[1])).to_have_text("dead", timeout=(cluster.agent_down_time + 2) * 1000)
    assert time.monotonic() - killed <= cluster.agent_down_time + 2
    expect(_liveness(page, HOSTS[1])).to_have_css("background-color", RED)
    expect(_liveness(page, HOSTS[0])).to_have_text("alive")
    assert page.evaluate("window.notReloaded") is True
    _save(page, tmp_path, "dashboard.png")


def test_page_fits_a_phone(cluster: Cluster, browser: Browser, tmp_path: Path) -> None:
    page = _log_in(browser, cluster, "admin", viewport={"width": 390, "height": 844}, is_mobile=True)
    expect(_liveness(page, HOSTS[0])).to_have_text("alive")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _save(page, tmp_path, "dashboard-phone.png")


def test_page_refuses_a_member_token(cluster: Cluster, browser: Browser) -> None:
    page = _log_in(browser, cluster, "p1")
    expect(page.locator("#problem")).to_contain_text("Refused (403)")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#agents-section")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
