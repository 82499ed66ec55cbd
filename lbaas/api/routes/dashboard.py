"""The operator dashboard: ``GET /dashboard`` serves one static page (no data,
no token needed: it asks the operator for one and keeps it in sessionStorage);
``GET /v2.0/dashboard`` (rule ``dashboard:get``, admin only) is the JSON the
page polls every second with ``X-Auth-Token`` (see ``lbaas.services.dashboard``).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from lbaas.api import deps
from lbaas.api.auth import Context
from lbaas.services import dashboard

router = APIRouter()   # mounted under /v2 and /v2.0
page = APIRouter()     # mounted at /

# The page may neither be framed nor load anything from elsewhere: everything is inline.
_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@page.get("/dashboard", include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    html = resources.files("lbaas.api").joinpath("static/dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers=_HEADERS)


@router.get("/dashboard")
def dashboard_data(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("dashboard:get")
    return {"dashboard": dashboard.overview(deps.services(request), request.app.state.scheduler)}
