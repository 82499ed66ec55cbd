"""Route helpers shared by the child kinds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Select

from lbaas.api import deps, openapi, resources
from lbaas.api.auth import Context
from lbaas.api.resources import Kind


def list_document(request: Request, kind: Kind, ctx: Context, base: Select | None = None) -> dict[str, Any]:
    state = deps.state(request)
    with state.reading() as session:
        page = resources.list_page(session, kind, ctx, deps.params(request), deps.page_url(request),
                                   state.config.api.pagination_max_limit, base)
    return {kind.plural: page.items, f"{kind.plural}_links": page.links}


def add_reads(router: APIRouter, kind: Kind) -> None:
    """GET /lbaas/<plural> and GET /lbaas/<plural>/{id}."""

    def list_objects(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        return list_document(request, kind, ctx)

    def get_object(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        with deps.state(request).reading() as session:
            return {kind.name: kind.render_one(session, resources.get(session, kind, ident, ctx))}

    router.add_api_route(f"/lbaas/{kind.plural}", list_objects, methods=["GET"], name=f"list_{kind.plural}",
                         openapi_extra=openapi.list_query(kind.model))
    router.add_api_route(f"/lbaas/{kind.plural}/{{ident}}", get_object, methods=["GET"], name=f"get_{kind.name}")
