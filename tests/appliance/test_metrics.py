"""The appliance's own /metrics (behind its token) and PROMETHEUS listeners: HAProxy's
exporter served on a load balancer's VIP, scraped over real HTTP."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lbaas.appliance import grammar, render, schema
from lbaas.appliance.errors import ConfigRejected
from tests.appliance.helpers import fetch, loadbalancer, member, uid, url_of


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def prometheus_listener(desired: dict) -> dict:
    """A PROMETHEUS listener on the VIP of ``desired``, added to it (returned)."""
    listener = {**desired["listeners"][0], "id": uid("listener"), "protocol": "PROMETHEUS",
                "protocol_port": desired["listeners"][0]["protocol_port"] + 1, "default_pool_id": None}
    desired["listeners"].append(listener)
    return listener


def test_appliance_metrics_need_the_token_and_count_applies(device, backends) -> None:
    assert httpx.get(f"{device.url}/metrics").status_code == 401
    before = samples(device.client.get("/metrics").text)
    device.apply(loadbalancer([member(backends("a"))]))
    response = device.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    assert after[("lbaas_appliance_loadbalancers", ())] == 1
    started = ("lbaas_appliance_applies_total", (("outcome", "started"),))
    assert after[started] == before.get(started, 0) + 1


def test_prometheus_listener_serves_haproxys_exporter(device, backends) -> None:
    desired = loadbalancer([member(backends("a"))])
    listener = prometheus_listener(desired)
    device.apply(desired)
    fetch(url_of(desired))  # one request through the HTTP listener, for the exporter to count
    base = f"http://{desired['vip_address']}:{listener['protocol_port']}"
    response = fetch(f"{base}/metrics")
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "haproxy_frontend_http_requests" in names
    assert "haproxy_backend_up" in names or "haproxy_server_status" in names
    assert fetch(f"{base}/other").status_code == 503  # only /metrics is served


def test_prometheus_listener_renders_exactly_the_exporter_line() -> None:
    listener = {**loadbalancer([])["listeners"][0], "protocol": "PROMETHEUS", "default_pool_id": None}
    desired = {**loadbalancer([]), "listeners": [listener], "pools": []}
    lines = render.render(schema.validate(desired), "/tmp/lbd-x/stats.sock", "/tmp/lbd-x/state").split("\n")
    frontend = lines[lines.index(f"frontend listener_{listener['id']}"):]
    assert "    mode http" in frontend
    assert "    http-request use-service prometheus-exporter if { path /metrics }" in frontend
    assert not any("backend" in line for line in frontend)


@pytest.mark.parametrize("line", [
    "    http-request use-service prometheus-exporter if { path /admin }",
    "    http-request use-service lua.evil",
    "    http-request use-service prometheus-exporter",
])
def test_grammar_admits_no_other_use_service(line: str) -> None:
    with pytest.raises(ConfigRejected):
        grammar.check(f"frontend listener_x\n{line}\n")


def test_device_refuses_a_pool_or_policies_on_a_prometheus_listener(device, backends) -> None:
    desired = loadbalancer([member(backends("a"))])
    desired["listeners"][0]["protocol"] = "PROMETHEUS"  # with its default pool: refused
    response = device.put(desired)
    assert response.status_code == 400, response.text
    assert "PROMETHEUS" in response.json()["faultstring"]
    listener = prometheus_listener(loadbalancer([]))
    listener["l7policies"] = [{"id": uid("policy"), "position": 1, "action": "REJECT", "rules": [
        {"id": uid("rule"), "type": "PATH", "compare_type": "STARTS_WITH", "value": "/x", "invert": False}]}]
    desired = {**loadbalancer([]), "listeners": [listener], "pools": []}
    response = device.put(desired)
    assert response.status_code == 400, response.text
