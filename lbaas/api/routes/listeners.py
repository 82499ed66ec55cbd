"""/v2/lbaas/listeners"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lbaas.api import deps
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import LISTENER
from lbaas.api.routes.common import add_reads, add_writes, stats_document
from lbaas.services import listeners

router = APIRouter()
KIND = LISTENER
add_reads(router, KIND)
add_writes(router, KIND, s.ListenerCreate, s.ListenerUpdate, listeners.create, listeners.update)


@router.get("/lbaas/listeners/{ident}/stats")
def listener_stats(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    return stats_document(request, KIND, ctx, ident)
