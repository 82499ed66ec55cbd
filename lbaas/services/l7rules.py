"""Rules of an L7 policy: create, update (checked on the merged rule, since
type, key and value only make sense together) and delete, each one change
of the policy's load balancer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import validate
from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import L7POLICY, L7RULE
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict, NotFound
from lbaas.services import Services, build, changes


def check_policy(services: Services, ctx: Context, policy_id: str) -> m.L7Policy:
    """The policy, when the caller may see it, or NotFound."""
    with services.reading() as session:
        return resources.get(session, L7POLICY, policy_id, ctx)


def visible(session: Session, ctx: Context, policy_id: str, ident: str) -> m.L7Rule:
    """A rule of ``policy_id`` the caller may see, or NotFound."""
    rule = resources.get(session, L7RULE, ident, ctx)
    if rule.l7policy_id != policy_id:
        raise NotFound(L7RULE.label, ident)
    return rule


def _check_rule(services: Services, ctx: Context, policy_id: str, ident: str) -> None:
    with services.reading() as session:
        visible(session, ctx, policy_id, ident)


def create(services: Services, ctx: Context, policy_id: str, body: s.L7RuleCreate) -> dict[str, Any]:
    with services.reading() as session:
        lb_id = changes.loadbalancer_of(session, L7POLICY, resources.get(session, L7POLICY, policy_id, ctx))

    def make(session: Session, lb: m.LoadBalancer) -> m.L7Rule:
        _check_room(session, policy_id)
        protocol = build.listener_of_policy(session, policy_id).protocol
        return build.l7rule(services, services.provider(lb.provider), body, policy_id, lb.project_id, protocol)

    return changes.create_child(services, ctx, L7RULE, lb_id, make)


def _check_room(session: Session, policy_id: str) -> None:
    """Octavia's limit of rules per policy, which the appliance enforces too."""
    count = session.scalar(select(func.count()).select_from(m.L7Rule).where(
        m.L7Rule.l7policy_id == policy_id))
    if (count or 0) >= c.MAX_L7RULES_PER_POLICY:
        raise Conflict(f"L7 policy {policy_id} already has {c.MAX_L7RULES_PER_POLICY} rules, "
                       f"the most a policy may hold.")


def update(services: Services, ctx: Context, policy_id: str, ident: str, body: s.L7RuleUpdate) -> dict[str, Any]:
    _check_rule(services, ctx, policy_id, ident)

    def apply(session: Session, row: m.L7Rule, lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)
        build.check_rule_type(row.type, build.listener_of_policy(session, policy_id).protocol)
        try:
            row.key, row.value = validate.l7_rule(row.type, row.compare_type, row.key, row.value)
        except ValueError as exc:
            raise BadRequest(f"Invalid input for rule: {exc}") from None
        services.validate(services.provider(lb.provider), "l7rule",
                          {"type": row.type, "compare_type": row.compare_type, "invert": row.invert})

    return changes.update_child(services, ctx, L7RULE, ident, apply, body.tags)


def delete(services: Services, ctx: Context, policy_id: str, ident: str) -> None:
    _check_rule(services, ctx, policy_id, ident)
    changes.delete_child(services, ctx, L7RULE, ident)
