"""The scheduler and availability zones / flavors: a load balancer that names a zone (or a
flavor) whose profile holds a group is placed on an agent of that group only, and its
work stays in that group when the agent dies (rule 2, and a rebind)."""

from __future__ import annotations

import pytest

from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.errors import Conflict
from lbaas.scheduler import Scheduler, requested_group
from tests.test_scheduler import agent, bound_host, db, route, scheduler, set_alive

__all__ = ["db", "scheduler"]  # fixtures, used by name


def catalogue(db: Database) -> None:
    """Zone az2 -> group 2; flavor pin1 -> group 1; zone plain: no group."""
    with db.transaction() as session:
        session.add_all([
            m.AvailabilityZoneProfile(id="azp2", name="azp2", provider_name="e1", availability_zone_data={"group": 2}),
            m.AvailabilityZoneProfile(id="azp0", name="azp0", provider_name="e1", availability_zone_data={}),
            m.FlavorProfile(id="fp1", name="fp1", provider_name="e1", flavor_data={"group": 1})])
        session.flush()
        session.add_all([
            m.AvailabilityZone(name="az2", availability_zone_profile_id="azp2"),
            m.AvailabilityZone(name="plain", availability_zone_profile_id="azp0"),
            m.Flavor(id="pin1", name="pin1", flavor_profile_id="fp1")])


def placed(db: Database, scheduler: Scheduler, project: str = "p1", **fields: str) -> tuple[str, str | None]:
    """(load balancer id, host it was bound to) for a new load balancer with ``fields``."""
    row = m.LoadBalancer(project_id=project, provider="e1", provisioning_status="PENDING_CREATE",
                         operating_status="OFFLINE", vip_address="127.0.0.1", revision=1, **fields)
    with db.transaction() as session:
        session.add(row)
        session.flush()
        chosen = scheduler.place(session, row)
        return row.id, (chosen.host if chosen else None)


def test_zone_group_is_the_only_group_placed_on(db: Database, scheduler: Scheduler) -> None:
    catalogue(db)
    agent(db, "g1-a", group=1)
    agent(db, "g1-b", group=1)
    agent(db, "g2", group=2, load=50)  # busier, and the project already lives in group 1
    placed(db, scheduler)
    assert {placed(db, scheduler, availability_zone="az2")[1] for _ in range(3)} == {"g2"}
    assert {placed(db, scheduler, flavor_id="pin1")[1] for _ in range(3)} <= {"g1-a", "g1-b"}
    # A zone without a group places anywhere (here: by affinity, in group 1).
    assert placed(db, scheduler, availability_zone="plain")[1] in {"g1-a", "g1-b"}


def test_zone_beats_flavor_and_missing_rows_mean_any_group(db: Database) -> None:
    catalogue(db)
    with db.reading() as session:
        assert requested_group(session, m.LoadBalancer(availability_zone="az2", flavor_id="pin1")) == 2
        assert requested_group(session, m.LoadBalancer(flavor_id="pin1")) == 1
        assert requested_group(session, m.LoadBalancer(availability_zone="gone")) is None


def test_no_agent_in_the_zone_group_places_nothing(db: Database, scheduler: Scheduler) -> None:
    catalogue(db)
    agent(db, "g1", group=1)
    agent(db, "g2-dead", group=2, alive=False)
    assert placed(db, scheduler, availability_zone="az2")[1] is None


def test_work_of_a_dead_zone_agent_never_leaves_its_group(db: Database, scheduler: Scheduler) -> None:
    catalogue(db)
    agent(db, "g1-a", group=1)
    agent(db, "g1-b", group=1)
    agent(db, "g2-a", group=2)
    lb_id, host = placed(db, scheduler, availability_zone="az2")
    assert host == "g2-a"
    set_alive(db, "g2-a", False)
    assert route(db, scheduler, lb_id) is None  # group 1 is alive, and not asked
    with db.transaction() as session, pytest.raises(Conflict, match="group 2"):
        scheduler.rebind(session, session.query(m.Agent).filter_by(host="g2-a").one())
    agent(db, "g2-b", group=2)
    assert route(db, scheduler, lb_id) == "g2-b"
    assert bound_host(db, lb_id) == "g2-a"  # the binding stays (rule 2)
