"""Route helpers shared by the child kinds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas.api import deps, openapi, resources, views
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import Kind
from lbaas.services import Services, changes


def list_document(request: Request, kind: Kind, ctx: Context,
                  scope: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One page of ``kind`` as ``GET /lbaas/<plural>`` answers it (``scope``: see ``resources.list_page``)."""
    ctx.authorize(f"{kind.rules}:get_all")
    services = deps.services(request)
    with services.reading() as session:
        page = resources.list_page(session, kind, ctx, deps.params(request), deps.page_url(request),
                                   services.config.api.pagination_max_limit, scope)
    return {kind.plural: page.items, f"{kind.plural}_links": page.links}


def get_document(request: Request, kind: Kind, ctx: Context, ident: str) -> dict[str, Any]:
    """One visible object as ``GET /lbaas/<plural>/{id}`` answers it."""
    with deps.services(request).reading() as session:
        return {kind.name: resources.read_document(session, kind, ident, ctx)}


def stats_document(request: Request, kind: Kind, ctx: Context, ident: str) -> dict[str, Any]:
    """The counters of a visible load balancer or listener."""
    with deps.services(request).reading() as session:
        return {"stats": views.stats(resources.readable(session, kind, ident, ctx, "get_stats").stats)}


def add_reads(router: APIRouter, kind: Kind) -> None:
    """GET /lbaas/<plural> and GET /lbaas/<plural>/{id}."""

    def list_objects(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        return list_document(request, kind, ctx)

    def get_object(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        return get_document(request, kind, ctx, ident)

    router.add_api_route(f"/lbaas/{kind.plural}", list_objects, methods=["GET"], name=f"list_{kind.plural}",
                         openapi_extra=openapi.list_query(kind.model))
    router.add_api_route(f"/lbaas/{kind.plural}/{{ident}}", get_object, methods=["GET"], name=f"get_{kind.name}")


def add_writes(router: APIRouter, kind: Kind, create_body: type[s.Body], update_body: type[s.Body],
               create: Callable[[Services, Context, Any], dict[str, Any]],
               update: Callable[[Services, Context, str, Any], dict[str, Any]]) -> None:
    """POST /lbaas/<plural>, PUT and DELETE /lbaas/<plural>/{id}: parse, one service call, render."""

    def create_object(request: Request, ctx: Context = Depends(deps.context),
                      document: Any = Depends(deps.body)) -> dict[str, Any]:
        ctx.authorize(f"{kind.rules}:post")  # refused before its body is judged
        body = s.parse(document, kind.name, create_body)
        return {kind.name: create(deps.services(request), ctx, body)}

    def update_object(ident: str, request: Request, ctx: Context = Depends(deps.context),
                      document: Any = Depends(deps.body)) -> dict[str, Any]:
        ctx.authorize(f"{kind.rules}:put")
        body = s.parse(document, kind.name, update_body)
        return {kind.name: update(deps.services(request), ctx, ident, body)}

    def delete_object(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
        ctx.authorize(f"{kind.rules}:delete")
        changes.delete_child(deps.services(request), ctx, kind, ident)
        return Response(status_code=204)

    path = f"/lbaas/{kind.plural}"
    router.add_api_route(path, create_object, methods=["POST"], status_code=201, name=f"create_{kind.name}",
                         openapi_extra=openapi.request_body(kind.name, create_body))
    router.add_api_route(path + "/{ident}", update_object, methods=["PUT"], name=f"update_{kind.name}",
                         openapi_extra=openapi.request_body(kind.name, update_body))
    router.add_api_route(path + "/{ident}", delete_object, methods=["DELETE"], status_code=204,
                         name=f"delete_{kind.name}")
