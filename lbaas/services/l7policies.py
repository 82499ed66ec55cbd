"""L7 policies of a listener: create (with rules, if given), update and the
move of a position, each one change of the listener's load balancer.

Deletion is the generic child delete (``changes.delete_child``), which takes
the policy's rules with it and closes its gap in the listener's order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import L7POLICY, LISTENER
from lbaas.db import models as m
from lbaas.errors import BadRequest
from lbaas.services import Services, build, changes, positions, quotas


def create(services: Services, ctx: Context, body: s.L7PolicyCreate) -> dict[str, Any]:
    if body.redirect_pool is not None:
        raise BadRequest("redirect_pool is only accepted in a fully populated load balancer; "
                         "use redirect_pool_id.")
    if not body.listener_id:
        raise BadRequest("Mandatory field missing: l7policy.listener_id")
    with services.reading() as session:
        lb_id = resources.get(session, LISTENER, body.listener_id, ctx).load_balancer_id
    with changes.change(services, ctx, lb_id) as (session, lb):
        listener = _live_listener(session, body.listener_id)
        policy, rows = build.l7policy_graph(session, services, services.provider(lb.provider), body,
                                            listener, lb.project_id)
        quotas.check_rows(services, session, lb.project_id, rows)
        positions.arrange(session, listener.id, policy, body.position)
        for row in rows:  # the policy before its rules, for the foreign key
            session.add(row)
            session.flush()
            resources.tag_new(session, row.id, row._tags)
        document = L7POLICY.render_one(session, policy)
    return document


def _live_listener(session: Session, listener_id: str) -> m.Listener:
    listener = session.get(m.Listener, listener_id)
    if listener is None or listener.provisioning_status == c.PENDING_DELETE:
        raise BadRequest(f"Listener {listener_id} not found.")
    return listener


def update(services: Services, ctx: Context, ident: str, body: s.L7PolicyUpdate) -> dict[str, Any]:
    def apply(session: Session, row: m.L7Policy, lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body, skip=("tags", "position"))
        listener = _live_listener(session, row.listener_id)
        build.settle_redirect(session, row, listener)
        services.validate(services.provider(lb.provider), "l7policy",
                          {"action": row.action, "redirect_http_code": row.redirect_http_code})
        if body.position is not None:
            positions.arrange(session, row.listener_id, row, body.position)

    return changes.update_child(services, ctx, L7POLICY, ident, apply, body.tags)
