"""/v2/lbaas/flavors, flavorprofiles, availabilityzones, availabilityzoneprofiles (Octavia's
shapes, so ``openstack loadbalancer flavor|flavorprofile|availabilityzone|
availabilityzoneprofile ...`` work unchanged), and /v2/octavia/amphorae, always empty:
this service runs no amphorae, but Horizon and the CLI ask."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas.api import deps, openapi
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.services import catalogue
from lbaas.services.catalogue import Kind

router = APIRouter()

# kind -> (path segment, policy kind, create body, update body)
ROUTES: tuple[tuple[Kind, str, str, type[s.Body], type[s.Body]], ...] = (
    (catalogue.FLAVOR_PROFILE, "flavorprofiles", "flavor-profile", s.FlavorProfileCreate, s.FlavorProfileUpdate),
    (catalogue.FLAVOR, "flavors", "flavor", s.FlavorCreate, s.FlavorUpdate),
    (catalogue.ZONE_PROFILE, "availabilityzoneprofiles", "availability-zone-profile",
     s.AvailabilityZoneProfileCreate, s.AvailabilityZoneProfileUpdate),
    (catalogue.ZONE, "availabilityzones", "availability-zone", s.AvailabilityZoneCreate, s.AvailabilityZoneUpdate),
)


def _add(kind: Kind, segment: str, rules: str, create_body: type[s.Body], update_body: type[s.Body]) -> None:
    """The five operations of one kind: parse, authorize, one service call, render."""

    def list_all(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        ctx.authorize(f"{rules}:get_all")
        return {kind.plural: catalogue.listed(deps.services(request), kind, deps.params(request)),
                f"{kind.plural}_links": []}

    def show(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
        ctx.authorize(f"{rules}:get_one")
        return {kind.name: catalogue.shown(deps.services(request), kind, ident)}

    def create(request: Request, ctx: Context = Depends(deps.context),
               document: Any = Depends(deps.body)) -> dict[str, Any]:
        ctx.authorize(f"{rules}:post")  # refused before its body is judged
        body = s.parse(document, kind.name, create_body)
        return {kind.name: catalogue.create(deps.services(request), kind, body)}

    def update(ident: str, request: Request, ctx: Context = Depends(deps.context),
               document: Any = Depends(deps.body)) -> dict[str, Any]:
        ctx.authorize(f"{rules}:put")
        body = s.parse(document, kind.name, update_body)
        return {kind.name: catalogue.update(deps.services(request), kind, ident, body)}

    def delete(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
        ctx.authorize(f"{rules}:delete")
        catalogue.delete(deps.services(request), kind, ident)
        return Response(status_code=204)

    path = f"/lbaas/{segment}"
    router.add_api_route(path, list_all, methods=["GET"], name=f"list_{kind.plural}")
    router.add_api_route(path, create, methods=["POST"], status_code=201, name=f"create_{kind.name}",
                         openapi_extra=openapi.request_body(kind.name, create_body))
    router.add_api_route(path + "/{ident}", show, methods=["GET"], name=f"get_{kind.name}")
    router.add_api_route(path + "/{ident}", update, methods=["PUT"], name=f"update_{kind.name}",
                         openapi_extra=openapi.request_body(kind.name, update_body))
    router.add_api_route(path + "/{ident}", delete, methods=["DELETE"], status_code=204,
                         name=f"delete_{kind.name}")


for _route in ROUTES:
    _add(*_route)


@router.get("/octavia/amphorae")
def amphorae(ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("amphora:get_all")
    return {"amphorae": [], "amphorae_links": []}
