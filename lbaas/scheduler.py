"""The tenant scheduler: which agent does the work for a load balancer.

For an operation on load balancer X of project P in environment E:

1. X is bound and its agent is active: that agent.
2. X is bound and its agent is not: the binding stays; the work goes to an
   active agent of the same environment and group, preferring one with
   affinity for P, then the least loaded.  None: nobody (X stays pending).
3. X is new: among active agents of E with capacity left and a device not
   reported down (and of the group its availability zone or flavor names,
   if it names one), one with affinity for P (least loaded first), else one
   chosen by policy (``least_loaded`` or ``random``).  Affinity is a
   preference, not a funnel: an agent that holds more than
   ``max_project_share`` of P's load balancers in E is passed over for the
   least loaded agent that does not (1.0 turns this off).  The binding is
   written in the caller's transaction, under a per-project lock so two
   servers placing P's load balancers agree.

Rebind: a dead agent's bindings move to the active agents of its
environment and group (the operator's ``DELETE /agents/{id}?rebind=true``).

"Active" is ``admin_state_up`` and a heartbeat newer than ``agent_down_time``
by the database's clock.  Every query is indexed and bounded by the number
of agents or by one project's bindings, never by all load balancers.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from sqlalchemy import Executable, Select, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from lbaas.db import models as m
from lbaas.db.clock import DatabaseClock
from lbaas.errors import Conflict

LOG = logging.getLogger(__name__)

POLICIES = ("least_loaded", "random")


class Scheduler:
    def __init__(self, agent_down_time: float, policy: str = "least_loaded",
                 max_project_share: float = 1.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"scheduler_policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if not max_project_share > 0.0:
            raise ValueError(f"max_project_share must be above 0 (1.0 or more: no limit), not {max_project_share}")
        self.agent_down_time = agent_down_time
        self.policy = policy
        self.max_project_share = max_project_share
        self.clock = DatabaseClock()

    # --- liveness -------------------------------------------------------------

    def cutoff(self, session: Session) -> dt.datetime:
        return self.clock.now(session) - dt.timedelta(seconds=self.agent_down_time)

    def is_active(self, session: Session, agent: m.Agent) -> bool:
        return agent.admin_state_up and agent.heartbeat_at >= self.cutoff(session)

    def active(self, session: Session, environment: str, group: int | None = None) -> Select:
        """Active agents of an environment (and group), with capacity left."""
        query = select(m.Agent).where(m.Agent.environment == environment,
                                      m.Agent.admin_state_up.is_(True),
                                      m.Agent.heartbeat_at >= self.cutoff(session),
                                      m.Agent.capacity_score < 1.0)
        if group is not None:
            query = query.where(m.Agent.group == group)
        return query

    def placeable(self, session: Session, environment: str, group: int | None = None) -> Select:
        """Active agents that may take a new load balancer: their device is not reported down."""
        return self.active(session, environment, group).where(m.Agent.device_up.is_(True))

    # --- decisions ------------------------------------------------------------

    def place(self, session: Session, lb: m.LoadBalancer) -> m.Agent | None:
        """Bind a new load balancer to an agent (rule 3); None if no agent is active."""
        self._lock_project(session, lb.provider, lb.project_id)
        agent = self._choose(session, lb.provider, lb.project_id, requested_group(session, lb))
        if agent is None:
            return None
        session.add(m.Binding(loadbalancer_id=lb.id, agent_id=agent.id, project_id=lb.project_id,
                              environment=lb.provider))
        session.execute(update(m.Agent).where(m.Agent.id == agent.id)
                        .values(loadbalancer_count=m.Agent.loadbalancer_count + 1))
        return agent

    def route(self, session: Session, lb: m.LoadBalancer) -> m.Agent | None:
        """The agent that does the next piece of work on ``lb`` (rules 1 and 2)."""
        binding = session.get(m.Binding, lb.id)
        if binding is None:
            return self.place(session, lb)
        bound = session.get(m.Agent, binding.agent_id)
        if bound is not None and self.is_active(session, bound):
            return bound
        group = bound.group if bound is not None else requested_group(session, lb)
        peer = (self._with_affinity(session, binding.environment, lb.project_id, group)
                or session.scalars(self.active(session, binding.environment, group)
                                   .order_by(m.Agent.loadbalancer_count, m.Agent.id).limit(1)).first())
        if peer is not None:
            LOG.info("agent %s of load balancer %s is not active; %s takes the work",
                     bound.host if bound else binding.agent_id, lb.id, peer.host)
        return peer

    def rebind(self, session: Session, agent: m.Agent) -> list[tuple[str, int, str]]:
        """Spread a dead agent's bindings over the active agents of its environment and
        group, least loaded first; (load balancer, revision, provider) of each one moved.
        Conflict when no agent is active there."""
        peers = list(session.scalars(self.active(session, agent.environment, agent.group)
                                     .where(m.Agent.id != agent.id).with_for_update()))
        if not peers:
            raise Conflict(f"No active agent in environment {agent.environment} group {agent.group} "
                           "to take the load balancers over.")
        load = {peer.id: peer.loadbalancer_count for peer in peers}
        moved = []
        rows = session.execute(select(m.Binding, m.LoadBalancer.revision, m.LoadBalancer.provider)
                               .join(m.LoadBalancer, m.LoadBalancer.id == m.Binding.loadbalancer_id)
                               .where(m.Binding.agent_id == agent.id).order_by(m.Binding.project_id))
        for binding, revision, provider in rows:
            target = min(load, key=lambda ident: (load[ident], ident))
            binding.agent_id = target
            load[target] += 1
            moved.append((binding.loadbalancer_id, revision, provider))
        for peer in peers:
            session.execute(update(m.Agent).where(m.Agent.id == peer.id).values(loadbalancer_count=load[peer.id]))
        session.flush()
        return moved

    def _with_affinity(self, session: Session, environment: str, project_id: str,
                       group: int | None) -> m.Agent | None:
        serving = select(m.Binding.agent_id).where(m.Binding.environment == environment,
                                                   m.Binding.project_id == project_id)
        return session.scalars(self.active(session, environment, group).where(m.Agent.id.in_(serving))
                               .order_by(m.Agent.loadbalancer_count, m.Agent.id).limit(1)).first()

    def _choose(self, session: Session, environment: str, project_id: str,
                group: int | None) -> m.Agent | None:
        """Rule 3 (within ``group`` if one is asked for): an agent with affinity for the
        project within its share, least loaded first; else the least loaded agent within
        the share; else by policy."""
        serving = select(m.Binding.agent_id).where(m.Binding.environment == environment,
                                                   m.Binding.project_id == project_id)
        affine = list(session.scalars(self.placeable(session, environment, group).where(m.Agent.id.in_(serving))
                                      .order_by(m.Agent.loadbalancer_count, m.Agent.id)))
        if not affine:
            return self._by_policy(session, environment, group)
        if self.max_project_share >= 1.0:
            return affine[0]
        held = self._project_counts(session, environment, project_id)
        limit = self.max_project_share * sum(held.values())
        within = [agent for agent in affine if held.get(agent.id, 0) <= limit]
        if within:
            return within[0]
        # Every agent serving the project holds more than its share: one that serves it not.
        other = session.scalars(self.placeable(session, environment, group)
                                .where(m.Agent.id.not_in([agent.id for agent in affine]))
                                .order_by(m.Agent.loadbalancer_count, m.Agent.id).limit(1)).first()
        return other or affine[0]

    @staticmethod
    def _project_counts(session: Session, environment: str, project_id: str) -> dict[str, int]:
        """agent id -> the project's load balancers bound there (ix_binding_affinity: one
        project's bindings, never all)."""
        rows = session.execute(select(m.Binding.agent_id, func.count())
                               .where(m.Binding.environment == environment, m.Binding.project_id == project_id)
                               .group_by(m.Binding.agent_id))
        return {agent_id: count for agent_id, count in rows}

    def _by_policy(self, session: Session, environment: str, group: int | None) -> m.Agent | None:
        candidates = self.placeable(session, environment, group)
        if self.policy == "random":
            agents = list(session.scalars(candidates))
            return random.choice(agents) if agents else None
        return session.scalars(candidates.order_by(m.Agent.loadbalancer_count, m.Agent.id).limit(1)).first()

    @staticmethod
    def _lock_project(session: Session, environment: str, project_id: str) -> None:
        """Serialise placement per project with one statement that creates the
        lock row if needed and write-locks it.  (Insert-if-missing followed
        by SELECT ... FOR UPDATE deadlocks on MariaDB: waiters on the insert
        share a lock they then all try to upgrade.)"""
        dialect = session.get_bind().dialect.name
        values = {"environment": environment, "project_id": project_id}
        stmt: Executable
        if dialect == "postgresql":
            pg = pg_insert(m.ProjectLock).values(**values)
            stmt = pg.on_conflict_do_update(index_elements=["environment", "project_id"],
                                            set_={"project_id": pg.excluded.project_id})
        elif dialect in ("mysql", "mariadb"):
            my = mysql_insert(m.ProjectLock).values(**values)
            stmt = my.on_duplicate_key_update(project_id=my.inserted.project_id)
        else:  # SQLite: the transaction already holds the database's write lock
            stmt = sqlite_insert(m.ProjectLock).values(**values).on_conflict_do_nothing()
        session.execute(stmt)


def requested_group(session: Session, lb: m.LoadBalancer) -> int | None:
    """The agent group the load balancer's availability zone (else its flavor) names
    through its profile's data; None: any group.  Two primary-key reads each."""
    if lb.availability_zone:
        zone = session.get(m.AvailabilityZone, lb.availability_zone)
        zone_profile = session.get(m.AvailabilityZoneProfile, zone.availability_zone_profile_id) if zone else None
        if zone_profile is not None and "group" in zone_profile.availability_zone_data:
            return int(zone_profile.availability_zone_data["group"])
    if lb.flavor_id:
        flavor = session.get(m.Flavor, lb.flavor_id)
        flavor_profile = session.get(m.FlavorProfile, flavor.flavor_profile_id) if flavor else None
        if flavor_profile is not None and "group" in flavor_profile.flavor_data:
            return int(flavor_profile.flavor_data["group"])
    return None
