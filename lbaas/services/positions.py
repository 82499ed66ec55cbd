"""The order of a listener's L7 policies.

Contract: the live policies of a listener (those not PENDING_DELETE) hold
positions 1..n without gaps.  Inserting at a position shifts the policies
at and after it down by one; a position past the end (or none) means last;
a policy on its way out closes its gap at once.  Every change of a
listener's policies runs inside its load balancer's change, so no two
arrangements of one listener race.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.db import models as m


def arrange(session: Session, listener_id: str, moving: m.L7Policy | None = None,
            position: int | None = None) -> None:
    """Renumber the listener's live policies 1..n, with ``moving`` (new, moved, or None
    when one just left) at ``position`` (None: last; past the end: last)."""
    query = select(m.L7Policy).where(m.L7Policy.listener_id == listener_id,
                                     m.L7Policy.provisioning_status != c.PENDING_DELETE)
    if moving is not None:
        query = query.where(m.L7Policy.id != moving.id)
    # no_autoflush: a new ``moving`` may be in the session without its position yet.
    with session.no_autoflush:
        found = session.scalars(query.order_by(m.L7Policy.position, m.L7Policy.created_at, m.L7Policy.id))
        # Again in memory: a policy marked for deletion in this change is not flushed yet.
        ordered = [p for p in found if p.provisioning_status != c.PENDING_DELETE]
    if moving is not None:
        index = len(ordered) if position is None else min(position, len(ordered) + 1) - 1
        ordered.insert(index, moving)
    for number, policy in enumerate(ordered, start=1):
        if policy.position != number:
            policy.position = number


def number(policies: list[m.L7Policy]) -> None:
    """Number the new policies of one listener (a fully populated create) 1..n: by the
    position given, those without one last, otherwise in the order given."""
    ranked = sorted(policies, key=lambda p: (p.position is None, p.position or 0))
    for position, policy in enumerate(ranked, start=1):
        policy.position = position
