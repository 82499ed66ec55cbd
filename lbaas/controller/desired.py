"""The desired state of one load balancer, as agents and devices read it.

Objects on their way out (PENDING_DELETE) are left out, so converging a
device to this document performs the deletes as well.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.db import models as m


def _live(model: Any) -> Any:
    return model.provisioning_status != c.PENDING_DELETE


def desired_state(session: Session, lb_id: str) -> dict[str, Any]:
    """The document for ``lb_id``; ``deleted: true`` when it should not exist."""
    lb = session.get(m.LoadBalancer, lb_id)
    if lb is None:
        return {"id": lb_id, "revision": None, "deleted": True}
    document: dict[str, Any] = {
        "id": lb.id, "project_id": lb.project_id, "revision": lb.revision, "name": lb.name,
        "admin_state_up": lb.admin_state_up, "vip_address": lb.vip_address, "provider": lb.provider,
        "deleted": lb.provisioning_status == c.PENDING_DELETE,
    }
    if document["deleted"]:
        return document
    listeners = session.scalars(select(m.Listener).where(m.Listener.load_balancer_id == lb_id,
                                                         _live(m.Listener)).order_by(m.Listener.created_at))
    pools = list(session.scalars(select(m.Pool).where(m.Pool.load_balancer_id == lb_id, _live(m.Pool))
                                 .order_by(m.Pool.created_at)))
    pool_ids = [p.id for p in pools]
    members: dict[str, list[m.Member]] = {}
    for member in session.scalars(select(m.Member).where(m.Member.pool_id.in_(pool_ids), _live(m.Member))
                                  .order_by(m.Member.created_at, m.Member.id)):
        members.setdefault(member.pool_id, []).append(member)
    monitors = {hm.pool_id: hm for hm in session.scalars(
        select(m.HealthMonitor).where(m.HealthMonitor.pool_id.in_(pool_ids), _live(m.HealthMonitor)))}
    live_pools = set(pool_ids)
    document["listeners"] = [_listener(x, live_pools) for x in listeners]
    document["pools"] = [_pool(p, members.get(p.id, []), monitors.get(p.id)) for p in pools]
    return document


def _listener(x: m.Listener, live_pools: set[str]) -> dict[str, Any]:
    return {"id": x.id, "name": x.name, "protocol": x.protocol, "protocol_port": x.protocol_port,
            "connection_limit": x.connection_limit, "admin_state_up": x.admin_state_up,
            "timeout_client_data": x.timeout_client_data, "timeout_member_connect": x.timeout_member_connect,
            "timeout_member_data": x.timeout_member_data, "timeout_tcp_inspect": x.timeout_tcp_inspect,
            "default_pool_id": x.default_pool_id if x.default_pool_id in live_pools else None,
            "insert_headers": x.insert_headers or {}, "allowed_cidrs": x.allowed_cidrs}


def _pool(p: m.Pool, members: list[m.Member], hm: m.HealthMonitor | None) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "protocol": p.protocol, "lb_algorithm": p.lb_algorithm,
            "admin_state_up": p.admin_state_up, "session_persistence": p.session_persistence,
            "members": [{"id": x.id, "name": x.name, "address": x.address, "protocol_port": x.protocol_port,
                         "weight": x.weight, "backup": x.backup, "admin_state_up": x.admin_state_up,
                         "monitor_address": x.monitor_address, "monitor_port": x.monitor_port}
                        for x in members],
            "healthmonitor": None if hm is None else {
                "id": hm.id, "type": hm.type, "delay": hm.delay, "timeout": hm.timeout,
                "max_retries": hm.max_retries, "max_retries_down": hm.max_retries_down,
                "http_method": hm.http_method, "url_path": hm.url_path, "expected_codes": hm.expected_codes,
                "http_version": None if hm.http_version is None else f"{hm.http_version:.1f}",
                "domain_name": hm.domain_name, "admin_state_up": hm.admin_state_up}}
