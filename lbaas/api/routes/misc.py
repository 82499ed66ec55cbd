"""Versions, providers and the Neutron-shaped subnets the VIPs come from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from lbaas import constants as c
from lbaas.api import deps, openapi
from lbaas.api.auth import Context
from lbaas.errors import NotFound

router = APIRouter()   # mounted under /v2 and /v2.0
root = APIRouter()     # mounted at /


@root.get("/")
def versions(request: Request) -> dict[str, Any]:
    """The version document clients discover the API from; links are absolute."""
    base = deps.base_url(request)
    return {"versions": [
        {"id": "v2.0", "status": "SUPPORTED", "updated": "2016-12-11T00:00:00Z",
         "links": [{"href": f"{base}/v2.0", "rel": "self"}]},
        {"id": "v2", "status": "CURRENT", "min_version": c.API_MIN_VERSION,
         "version": c.API_MAX_VERSION, "updated": "2023-01-01T00:00:00Z",
         "links": [{"href": f"{base}/v2", "rel": "self"}]},
    ]}


@root.get("/v2")
@root.get("/v2.0")
def version(request: Request) -> dict[str, Any]:
    base = deps.base_url(request)
    return {"version": {"id": "v2", "status": "CURRENT", "min_version": c.API_MIN_VERSION,
                        "version": c.API_MAX_VERSION, "links": [{"href": f"{base}/v2", "rel": "self"}]}}


@router.get("/lbaas/providers")
def providers(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("provider:get_all")
    listed = [{"name": p.name, "description": p.description}
              for p in deps.services(request).providers.values()]
    return {"providers": sorted(listed, key=lambda p: p["name"])}


@router.get("/lbaas/providers/{name}/flavor_capabilities")
@router.get("/lbaas/providers/{name}/availability_zone_capabilities")
def capabilities(name: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    flavor = request.url.path.endswith("flavor_capabilities")
    ctx.authorize("provider-flavor:get_all" if flavor else "provider-availability-zone:get_all")
    if name not in deps.services(request).providers:
        raise NotFound("Provider", name)
    key = "flavor_capabilities" if flavor else "availability_zone_capabilities"
    honoured = getattr(deps.services(request).providers[name], key)
    return {key: [{"name": capability, "description": honoured[capability]} for capability in sorted(honoured)]}


@router.get("/subnets", openapi_extra=openapi.query(id={"type": "string"}, name={"type": "string"}))
def subnets(request: Request, _ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    subnets = deps.services(request).subnets
    wanted = set(request.query_params.getlist("id")) | set(request.query_params.getlist("name"))
    return {"subnets": [subnets.document(ident) for ident in subnets.networks
                        if not wanted or ident in wanted]}


@router.get("/subnets/{ident}")
def subnet(ident: str, request: Request, _ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    subnets = deps.services(request).subnets
    if ident not in subnets.networks:
        raise NotFound("Subnet", ident)
    return {"subnet": subnets.document(ident)}
