"""Traffic through real HAProxy: algorithms, persistence, health monitors, dead members."""

import threading

import httpx

import pytest

from tests.appliance.helpers import (answers, bump, fetch, loadbalancer, member, monitor,
                                  url_of, wait_for)

pytestmark = [pytest.mark.integration]


def member_states(status: dict) -> list[str]:
    return [m["operating_status"] for m in status["pools"][0]["members"]]


def test_round_robin_alternates(device, backends):
    lb = loadbalancer([member(backends("a")), member(backends("b"))])
    assert device.apply(lb) == "started"

    seen = answers(url_of(lb), 6)

    assert sorted(set(seen)) == ["a", "b"]
    assert all(x != y for x, y in zip(seen, seen[1:])), seen


def test_least_connections_avoids_the_busy_member(device, backends):
    a, b = backends("a"), backends("b")
    lb = loadbalancer([member(a), member(b)], algorithm="LEAST_CONNECTIONS")
    device.apply(lb)
    held = threading.Thread(target=fetch, args=(url_of(lb) + "hold",), kwargs={"timeout": 30})
    held.start()
    try:
        busy = wait_for(lambda: a if a.holding else b if b.holding else None,
                        what="a held request")
        idle = b if busy is a else a

        # With one connection open on the busy member, every new one goes to the idle one
        # (once HAProxy has released the previous request, or the two would tie).
        for _ in range(4):
            wait_for(lambda: device.status(lb["id"])["stats"]["active_connections"] == 1,
                     what="only the held connection open")
            assert fetch(url_of(lb)).text == idle.name
    finally:
        a.release(), b.release()
        held.join(timeout=30)


def test_source_ip_algorithm_pins_each_client(device, backends):
    lb = loadbalancer([member(backends("a")), member(backends("b"))], algorithm="SOURCE_IP")
    device.apply(lb)

    chosen = {}
    for n in range(2, 14):
        source = f"127.0.0.{n}"
        seen = set(answers(url_of(lb), 3, source=source))
        assert len(seen) == 1, (source, seen)
        chosen[source] = seen.pop()

    # Twelve clients hashed over two members: both get some.
    assert set(chosen.values()) == {"a", "b"}


def test_source_ip_persistence_sticks(device, backends):
    lb = loadbalancer([member(backends("a")), member(backends("b"))],
                      persistence={"type": "SOURCE_IP", "cookie_name": None})
    device.apply(lb)

    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        assert len(set(answers(url_of(lb), 5, source=source))) == 1, source


def test_http_cookie_persistence_sticks(device, backends):
    lb = loadbalancer([member(backends("a")), member(backends("b"))],
                      persistence={"type": "HTTP_COOKIE", "cookie_name": None})
    device.apply(lb)

    first = fetch(url_of(lb))
    cookie = next(c.split(";")[0] for c in first.headers.get_list("set-cookie")
                  if c.startswith("SRV="))
    assert cookie.startswith("SRV=member_")

    assert set(answers(url_of(lb), 6, cookie=cookie)) == {first.text}
    # Without the cookie, round robin goes on.
    assert set(answers(url_of(lb), 4)) == {"a", "b"}


def test_app_cookie_persistence_sticks(device, backends):
    lb = loadbalancer([member(backends("a")), member(backends("b"))],
                      persistence={"type": "APP_COOKIE", "cookie_name": "JSESSIONID"})
    device.apply(lb)

    sessions = {}
    for _ in range(2):  # round robin hands out one session from each member
        response = fetch(url_of(lb))
        sessions[response.text] = next(c.split(";")[0] for c in response.headers.get_list(
            "set-cookie") if c.startswith("JSESSIONID="))
    assert set(sessions) == {"a", "b"}

    for name, cookie in sessions.items():
        assert set(answers(url_of(lb), 5, cookie=cookie)) == {name}


@pytest.mark.parametrize("kind", ["HTTP", "TCP", "PING"])
def test_monitor_marks_members(device, backends, kind):
    """One healthy member, one failing the check: ONLINE / OFFLINE, pool DEGRADED."""
    good, bad = backends("good"), backends("bad")
    if kind == "HTTP":
        bad.health_status = 500  # alive, but its health URL fails the expected codes
        hm = monitor("HTTP", expected_codes="200-204")
    else:
        bad.stop()  # a connect check only notices a closed port
        hm = monitor(kind)
    lb = loadbalancer([member(good), member(bad)], healthmonitor=hm)
    device.apply(lb)

    status = wait_for(lambda: (s := device.status(lb["id"]))
                      and member_states(s) == ["ONLINE", "OFFLINE"] and s,
                      what="member statuses")

    assert status["pools"][0]["operating_status"] == "DEGRADED"
    assert status["listeners"][0]["operating_status"] == "DEGRADED"
    assert status["operating_status"] == "DEGRADED"
    assert set(answers(url_of(lb), 4)) == {"good"}


@pytest.mark.parametrize("kind", ["HTTPS", "TLS-HELLO"])
def test_tls_monitors_and_pass_through(device, backends, tls_context, kind):
    """HTTPS listener = TLS pass-through to TLS members, checked over TLS."""
    a, b = backends("a", tls=tls_context), backends("b", tls=tls_context)
    lb = loadbalancer([member(a), member(b)], protocol="HTTPS", healthmonitor=monitor(kind))
    device.apply(lb)
    config = (device.folder(lb["id"]) / "haproxy.cfg").read_text()
    if kind == "HTTPS":
        assert "check-ssl verify none" in config and "option httpchk" in config
    else:
        assert "option ssl-hello-chk" in config

    wait_for(lambda: member_states(device.status(lb["id"])) == ["ONLINE", "ONLINE"],
             what="TLS members online")
    b.stop()
    wait_for(lambda: member_states(device.status(lb["id"])) == ["ONLINE", "OFFLINE"],
             what="stopped TLS member offline")

    assert set(answers(url_of(lb, "https"), 3)) == {"a"}


def test_killed_member_goes_offline_and_traffic_moves(device, backends):
    a, b = backends("a"), backends("b")
    lb = loadbalancer([member(a), member(b)], healthmonitor=monitor())
    device.apply(lb)
    wait_for(lambda: device.status(lb["id"])["operating_status"] == "ONLINE",
             what="load balancer online")
    assert set(answers(url_of(lb), 4)) == {"a", "b"}

    b.stop()

    # Even before the check notices, redispatch sends every request to the live member.
    assert set(answers(url_of(lb), 6)) == {"a"}
    status = wait_for(lambda: (s := device.status(lb["id"]))
                      and s["pools"][0]["operating_status"] == "DEGRADED" and s,
                      what="pool degraded")
    assert member_states(status) == ["ONLINE", "OFFLINE"]
    assert status["operating_status"] == "DEGRADED"

    a.stop()
    status = wait_for(lambda: (s := device.status(lb["id"]))
                      and s["pools"][0]["operating_status"] == "ERROR" and s,
                      what="pool in error")
    assert status["listeners"][0]["operating_status"] == "ERROR"
    assert status["operating_status"] == "DEGRADED"


def test_no_monitor_and_counters(device, backends):
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    answers(url_of(lb), 3)

    status = device.status(lb["id"])

    assert member_states(status) == ["NO_MONITOR"]
    assert status["operating_status"] == "ONLINE"
    listener_id = lb["listeners"][0]["id"]
    counters = status["listener_stats"][listener_id]
    assert counters["total_connections"] >= 3
    assert counters["bytes_in"] > 0 and counters["bytes_out"] > 0
    assert status["stats"] == counters  # one listener: the totals are its counters


def test_allowed_cidrs_and_inserted_headers(device, backends):
    """allowed_cidrs drops other sources at connect; X-Forwarded-* reach the member."""
    backend = backends("a")
    lb = loadbalancer([member(backend)])
    lb["listeners"][0]["allowed_cidrs"] = ["127.0.0.2/32"]
    lb["listeners"][0]["insert_headers"] = {"X-Forwarded-For": "true", "X-Forwarded-Port": "true",
                                            "X-Forwarded-Proto": "true"}
    device.apply(lb)
    url = url_of(lb)
    assert fetch(url, source="127.0.0.2").text == "a"
    headers = {k.lower(): v for k, v in backend.last_headers.items()}
    assert headers["x-forwarded-for"] == "127.0.0.2"
    assert headers["x-forwarded-port"] == str(lb["listeners"][0]["protocol_port"])
    assert headers["x-forwarded-proto"] == "http"
    with pytest.raises(httpx.HTTPError):
        fetch(url, source="127.0.0.3")
    lb["listeners"][0]["allowed_cidrs"] = []
    device.apply(bump(lb))
    assert fetch(url, source="127.0.0.3").text == "a"
