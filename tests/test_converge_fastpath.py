"""The desired state carried in a Converge cast (the fast path, issue 14).

A server carries an update's desired state when it names no certificate and
is small; an agent applies it without a ``GetLoadBalancer`` call only over an
older revision its device holds, and fetches whenever in doubt.  On a whole
control plane in one process (SQLite, the in-memory broker, a noop device).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import update

from lbaas import constants as c
from lbaas import wire
from lbaas.agent.service import Agent, well_formed
from lbaas.controller.agent_provider import AgentProvider, carried_state
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.messaging import _accepted
from tests.test_agents_api import Plane

ENVIRONMENT = "fastpath"
HOST = "a1"


class Traced:
    """A plane with one agent whose calls to a server, and the casts it is sent, are recorded."""

    def __init__(self, plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
        self.plane = plane
        plane.start_agent(HOST)
        plane.wait_alive(HOST, True)
        self.agent: Agent = plane.agents[HOST]
        self.calls: Counter[str] = Counter()
        self.casts: list[dict[str, Any]] = []
        provider = plane.controller.providers[ENVIRONMENT]
        assert isinstance(provider, AgentProvider)
        self.db: Database = provider.db
        call, cast = self.agent._call, provider.broker.cast

        def traced_call(message: wire.Message) -> Any:
            self.calls[message.method] += 1
            return call(message)

        def traced_cast(queue: str, method: str, **args: Any) -> None:
            if method == wire.Converge.method:
                self.casts.append(args)
            cast(queue, method, **args)

        monkeypatch.setattr(self.agent, "_call", traced_call)
        monkeypatch.setattr(provider.broker, "cast", traced_cast)

    def create(self) -> str:
        """A load balancer with a listener, a pool and two members, ACTIVE."""
        response = self.plane.client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "net", "project_id": "p1", "name": "graph",
            "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {
                "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "192.0.2.10", "protocol_port": 8080},
                            {"address": "192.0.2.11", "protocol_port": 8080}]}}]}})
        assert response.status_code == 201, response.text
        lb_id: str = response.json()["loadbalancer"]["id"]
        self.plane.wait(lb_id)
        return lb_id

    def rename(self, lb_id: str, name: str) -> int:
        """Rename (an update) and wait for ACTIVE; the revision it reached."""
        response = self.plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": name}})
        assert response.status_code == 200, response.text
        self.plane.wait(lb_id)
        return self.held(lb_id)["revision"]

    def held(self, lb_id: str) -> wire.Present:
        """What the agent's (noop) device holds of ``lb_id``."""
        held: wire.Present = self.agent.driver._held[lb_id]  # type: ignore[attr-defined]
        return held


@pytest.fixture
def traced(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Traced]:
    plane = Plane(str(tmp_path), ENVIRONMENT)
    try:
        yield Traced(plane, monkeypatch)
    finally:
        plane.stop()


# --- the server's decision ---------------------------------------------------------

def test_an_update_without_certificates_is_carried_up_to_the_limit(traced: Traced,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    lb_id = traced.create()
    revision = traced.rename(lb_id, "renamed")
    carried = carried_state(traced.db, lb_id, revision)
    assert carried is not None and carried["name"] == "renamed" and carried["revision"] == revision
    assert len(carried["pools"][0]["members"]) == 2
    assert carried == traced.casts[-1]["desired"]   # what the cast of the rename held
    size = len(orjson.dumps(carried))  # the size as sent: compact JSON
    monkeypatch.setattr(c, "CARRIED_STATE_MAX_BYTES", size)
    assert carried_state(traced.db, lb_id, revision) == carried
    monkeypatch.setattr(c, "CARRIED_STATE_MAX_BYTES", size - 1)
    assert carried_state(traced.db, lb_id, revision) is None


def test_creates_older_revisions_and_deletes_are_not_carried(traced: Traced) -> None:
    lb_id = traced.create()
    assert traced.casts[-1]["desired"] is None      # the create's cast
    revision = traced.rename(lb_id, "renamed")
    assert carried_state(traced.db, lb_id, c.FIRST_REVISION) is None
    assert carried_state(traced.db, lb_id, revision - 1) is None   # a newer change casts its own
    response = traced.plane.client.delete(f"/v2/lbaas/loadbalancers/{lb_id}?cascade=true")
    assert response.status_code == 204, response.text
    assert traced.casts[-1]["desired"] is None
    assert carried_state(traced.db, lb_id, revision + 1) is None


@pytest.mark.parametrize("names", ["listener certificate", "pool CA"])
def test_a_state_naming_a_certificate_is_not_carried(traced: Traced, names: str) -> None:
    # The references are never resolved for a cast, so these need not exist.
    lb_id = traced.create()
    revision = traced.rename(lb_id, "renamed")
    with traced.db.transaction() as session:
        if names == "listener certificate":
            session.execute(update(m.Listener).where(m.Listener.load_balancer_id == lb_id).values(
                protocol=c.PROTOCOL_TERMINATED_HTTPS, default_tls_container_ref="http://keys/containers/x"))
        else:
            session.execute(update(m.Pool).where(m.Pool.load_balancer_id == lb_id).values(
                tls_enabled=True, ca_tls_container_ref="http://keys/secrets/ca"))
    assert carried_state(traced.db, lb_id, revision) is None


# --- the agent ---------------------------------------------------------------------

def test_an_update_reaches_active_without_asking_a_server(traced: Traced) -> None:
    lb_id = traced.create()
    assert traced.calls[wire.GetLoadBalancer.method] == 1   # a create is fetched
    for n in range(3):
        revision = traced.rename(lb_id, f"name-{n}")
        assert traced.held(lb_id)["name"] == f"name-{n}"
        assert traced.casts[-1]["revision"] == revision and traced.casts[-1]["request_id"]
    assert traced.calls[wire.GetLoadBalancer.method] == 1
    assert traced.plane.lb(lb_id)["provisioning_status"] == c.ACTIVE


@pytest.mark.parametrize("applied_by", ["this agent", "a peer"])
def test_a_stale_carried_state_is_not_applied(traced: Traced, applied_by: str) -> None:
    lb_id = traced.create()
    traced.rename(lb_id, "one")
    stale = traced.casts[-1]
    newest = traced.rename(lb_id, "two")
    if applied_by == "a peer":  # on the shared device: this agent does not know the newer revision
        traced.agent._tried.clear()
    fetched = traced.calls[wire.GetLoadBalancer.method]
    # A late copy of the first rename's cast: its revision is older than what the device holds.
    traced.agent.converge(**_accepted(traced.agent.converge, stale))
    assert traced.held(lb_id)["name"] == "two" and traced.held(lb_id)["revision"] == newest
    assert traced.calls[wire.GetLoadBalancer.method] == fetched + 1   # in doubt: fetched
    assert traced.plane.lb(lb_id)["provisioning_status"] == c.ACTIVE


def _odd(desired: wire.Present) -> dict[str, Any]:
    """Carried states the agent must not apply as they are, by what is odd about them."""
    without_pools = {k: v for k, v in desired.items() if k != "pools"}
    return {"revision mismatch": {**desired, "revision": desired["revision"] + 1},
            "another load balancer": {**desired, "id": "another"},
            "malformed": without_pools, "deletion": {"id": desired["id"], "revision": desired["revision"],
                                                     "deleted": True}}


@pytest.mark.parametrize("oddity", ["revision mismatch", "another load balancer", "malformed", "deletion",
                                    "not on the device"])
def test_an_odd_carried_state_is_fetched_instead(traced: Traced, oddity: str) -> None:
    lb_id = traced.create()
    revision = traced.rename(lb_id, "renamed")
    desired: Any = {**traced.held(lb_id), "name": "carried", "revision": revision + 1}
    if oddity == "not on the device":   # it may have been deleted since: never brought back
        traced.agent.driver.delete(lb_id)
        carried: Any = desired
    else:
        carried = _odd(desired)[oddity]
    fetched = traced.calls[wire.GetLoadBalancer.method]
    traced.agent.converge(lb_id, revision + 1, None, carried)
    assert traced.calls[wire.GetLoadBalancer.method] == fetched + 1
    assert traced.held(lb_id)["name"] == "renamed" and traced.held(lb_id)["revision"] == revision


def test_well_formed_names_what_a_carried_state_needs() -> None:
    desired = wire.Present(id="lb", project_id="p", revision=3, name="", admin_state_up=True,
                           vip_address="192.0.2.1", listeners=[], pools=[], provider=ENVIRONMENT, deleted=False)
    assert well_formed(desired, "lb", 3)
    assert not well_formed(desired, "lb", 2) and not well_formed(desired, "other", 3)
    assert not well_formed({**desired, "deleted": True}, "lb", 3)
    assert not well_formed({**desired, "listeners": None}, "lb", 3)
    assert not well_formed(["lb"], "lb", 3)


def test_an_agent_that_predates_the_field_drops_it() -> None:
    def converge(loadbalancer_id: str, revision: int | None = None, request_id: str | None = None) -> None:
        """The handler of an agent older than ``Converge.desired``."""

    message = wire.Converge(loadbalancer_id="lb", revision=2, request_id="req-1",
                            desired={"id": "lb"})  # type: ignore[arg-type]
    assert _accepted(converge, message.args()) == {"loadbalancer_id": "lb", "revision": 2, "request_id": "req-1"}
