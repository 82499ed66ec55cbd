"""Quotas: a project's limits (its row, else the configured defaults) and
the check every create makes against them.  -1 is no limit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lbaas.config import Config
from lbaas.db import models as m
from lbaas.errors import QuotaExceeded
from lbaas.services import Services

# Quota column -> the model it counts.
KINDS: dict[str, Any] = {"load_balancer": m.LoadBalancer, "listener": m.Listener, "pool": m.Pool,
                         "member": m.Member, "health_monitor": m.HealthMonitor,
                         "l7policy": m.L7Policy, "l7rule": m.L7Rule}

Limits = dict[str, int]


def _limit(config: Config, row: m.Quota | None, kind: str) -> int:
    value = getattr(row, kind) if row is not None else None
    return getattr(config.quotas, f"default_{kind}_quota") if value is None else value


def _limits(config: Config, row: m.Quota | None) -> Limits:
    return {kind: _limit(config, row, kind) for kind in KINDS}


def defaults(services: Services) -> Limits:
    return _limits(services.config, None)


def listed(services: Services, project_id: str | None) -> list[tuple[str, Limits]]:
    """(project, limits) of every project with a quota row (``project_id``: only that one)."""
    with services.reading() as session:
        query = select(m.Quota).order_by(m.Quota.project_id)
        if project_id is not None:
            query = query.where(m.Quota.project_id == project_id)
        return [(row.project_id, _limits(services.config, row)) for row in session.scalars(query)]


def of_project(services: Services, project_id: str) -> Limits:
    with services.reading() as session:
        return _limits(services.config, session.get(m.Quota, project_id))


def set_limits(services: Services, project_id: str, given: Mapping[str, int | None]) -> Limits:
    """Set the given quota columns (None: back to the default); the others stay."""
    with services.transaction() as session:
        row = session.get(m.Quota, project_id, with_for_update=True)
        if row is None:
            row = m.Quota(project_id=project_id)
            session.add(row)
        for kind, value in given.items():
            setattr(row, kind, value)
        session.flush()
        return _limits(services.config, row)


def reset(services: Services, project_id: str) -> None:
    with services.transaction() as session:
        row = session.get(m.Quota, project_id)
        if row is not None:
            session.delete(row)


def check(services: Services, session: Session, project_id: str, kind: str, adding: int = 1) -> None:
    """QuotaExceeded when ``adding`` more of ``kind`` would pass the project's limit."""
    if adding <= 0:
        return
    # Read once per transaction: a missing row is not kept by the identity map.
    cache = session.info.setdefault("quota_rows", {})
    if project_id not in cache:
        cache[project_id] = session.get(m.Quota, project_id)
    limit = _limit(services.config, cache[project_id], kind)
    if limit < 0:
        return
    model = KINDS[kind]
    used = session.execute(select(func.count()).select_from(model)
                           .where(model.project_id == project_id)).scalar_one()
    if used + adding > limit:
        raise QuotaExceeded(kind)


def check_rows(services: Services, session: Session, project_id: str, rows: Iterable[Any]) -> None:
    """``check`` for every kind among ``rows`` (the new objects of one change)."""
    rows = list(rows)
    for kind, model in KINDS.items():
        check(services, session, project_id, kind, sum(isinstance(r, model) for r in rows))
