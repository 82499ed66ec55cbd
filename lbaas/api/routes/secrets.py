"""/key-manager: the subset of Barbican's v1 API the OpenStack clients use, over the local
key store (``[certificates] backend = local``).

Mounted as an application of its own under ``/key-manager`` so that its version document
(``GET /key-manager/``, Barbican's shape, which barbicanclient discovers) does not clash with
Octavia's at ``/``; a clouds.yaml points ``key_manager_endpoint_override`` here.

Served: ``/v1/secrets`` (one-step store with a payload, list, show, payload, delete) and
``/v1/containers`` (certificate, generic and rsa; create, list, show, delete), in Barbican's
JSON shapes, with references built from the request's base URL (or ``[api] public_url``).
Errors use Barbican's format ``{"code", "title", "description"}``, which barbicanclient shows.

Contract: every route authenticates like the rest of the API (``deps.context``) and sees only
the caller's project (admins too, as in Barbican): another project's object is 404, exactly as
an unknown one.  Reading a payload, storing and deleting need a writer's role (admin or
member), listing and showing any role.  A payload is at most ``MAX_PAYLOAD`` bytes, never
logged, and stored only encrypted (``lbaas.keys.local``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lbaas import constants as c
from lbaas.api import deps
from lbaas.api.auth import Context
from lbaas.db.models import KeyContainer, KeySecret
from lbaas.errors import APIError, BadRequest, Forbidden
from lbaas.keys import InvalidReference, KeyManagerUnavailable
from lbaas.keys.local import ContainerFields, LocalKeyManager, LocalStore, SecretFields
from lbaas.keys.refs import SECRET, parse_ref

PREFIX = "/key-manager"
MAX_PAYLOAD = 64 * 1024
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
MAX_NAME, MAX_FIELD = 255, 255
SECRET_TYPES = ("symmetric", "passphrase", "private", "public", "certificate", "opaque")
# payload_content_type as Barbican accepts it -> as it is stored and served.
CONTENT_TYPES = {"text/plain": "text/plain", "text/plain;charset=utf-8": "text/plain",
                 "application/octet-stream": "application/octet-stream", "application/pkcs8": "application/pkcs8"}
# The secret names each container type allows (None: any).
CONTAINER_NAMES: dict[str, frozenset[str] | None] = {
    "certificate": frozenset({"certificate", "private_key", "private_key_passphrase", "intermediates"}),
    "rsa": frozenset({"private_key", "public_key", "private_key_passphrase"}),
    "generic": None,
}
MAX_CONTAINER_SECRETS = 20
WRITERS = frozenset({c.ROLE_ADMIN, c.ROLE_MEMBER})
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 413: "Request Entity Too Large",
          415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
          503: "Service Unavailable"}

router = APIRouter()
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


# --- the application and its error format -------------------------------------------

def barbican_fault(status: int, description: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={
        "code": status, "title": TITLES.get(status, "Error"), "description": description})


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return barbican_fault(exc.status, exc.message)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return barbican_fault(exc.status_code, "Not Found." if exc.status_code == 404 else str(exc.detail))


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return barbican_fault(503, str(exc))


def _in_barbican_format(handler: Handler) -> Handler:
    """``handler`` of the parent application (an Octavia fault), answering in Barbican's format
    with the same status and headers (Retry-After, the deadlock replay mark)."""
    async def reformatted(request: Request, exc: Exception) -> Response:
        answer = handler(request, exc)
        response = await answer if inspect.isawaitable(answer) else answer
        try:
            description = json.loads(bytes(response.body)).get("faultstring", "")
        except (ValueError, AttributeError):
            description = ""
        fault = barbican_fault(response.status_code, description)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "content-type"):
                fault.headers[name] = value
        return fault
    return reformatted


def mount(app: FastAPI) -> None:
    """Serve the key manager API under PREFIX of ``app``, whose state it shares and whose error
    handlers (rate limit, database unavailable, ...) it uses in Barbican's format: an error
    handled nowhere in a mounted application would answer 500."""
    sub = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    sub.state.lbaas = app.state.lbaas
    sub.state.write_limiter = app.state.write_limiter
    for kind, handler in app.exception_handlers.items():
        sub.add_exception_handler(kind, _in_barbican_format(handler))
    sub.add_exception_handler(APIError, _api_error)
    sub.add_exception_handler(HTTPException, _http_error)
    sub.add_exception_handler(KeyManagerUnavailable, _unavailable)
    sub.include_router(router)
    app.mount(PREFIX, sub)


def _store(request: Request) -> LocalStore:
    manager = deps.services(request).keys
    assert isinstance(manager, LocalKeyManager), "mounted only with [certificates] backend = local"
    return manager.store


def _base(request: Request) -> str:
    """This API's base URL (``.../key-manager``), whatever the mount shows of it."""
    public = deps.services(request).config.api.public_url
    base = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return base if base.endswith(PREFIX) else base + PREFIX


def _require_writer(ctx: Context) -> None:
    if not (ctx.roles & WRITERS or ctx.noauth):
        raise Forbidden("This needs the member or admin role in the project.")


# --- versions -----------------------------------------------------------------------

def _version(base: str) -> dict[str, Any]:
    return {"id": "v1", "status": "CURRENT", "min_version": "1.0", "max_version": "1.1",
            "links": [{"rel": "self", "href": f"{base}/v1/"}]}


@router.get("/", status_code=300)
def versions(request: Request) -> JSONResponse:
    """Barbican's version list (keystoneauth's discovery reads it)."""
    return JSONResponse(status_code=300, content={"versions": [_version(_base(request))]})


@router.get("/v1")
@router.get("/v1/")
def version(request: Request) -> dict[str, Any]:
    return {"version": _version(_base(request))}


# --- secrets ------------------------------------------------------------------------

@router.post("/v1/secrets", status_code=201)
@router.post("/v1/secrets/", status_code=201, include_in_schema=False)
def store_secret(request: Request, ctx: Context = Depends(deps.context),
                 document: Any = Depends(deps.body)) -> dict[str, Any]:
    _require_writer(ctx)
    fields, payload = _secret_body(document)
    row = _store(request).create_secret(ctx.project_id, fields, payload)
    return {"secret_ref": _secret_ref(request, row.id)}


@router.get("/v1/secrets")
@router.get("/v1/secrets/", include_in_schema=False)
def list_secrets(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    limit, offset = _page(request)
    rows, total = _store(request).secrets(ctx.project_id, limit, offset, request.query_params.get("name"))
    return {"secrets": [_secret_view(request, row) for row in rows], "total": total,
            **_page_links(request, "secrets", limit, offset, total)}


@router.get("/v1/secrets/{secret_id}")
def get_secret(secret_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    row = _secret(request, ctx, secret_id)
    accept = request.headers.get("accept", "application/json").split(",")[0].split(";")[0].strip().lower()
    if accept in CONTENT_TYPES:  # Barbican's older way to read a payload: Accept its type
        return _payload_response(request, ctx, row)
    return JSONResponse(_secret_view(request, row))


@router.get("/v1/secrets/{secret_id}/payload")
def get_payload(secret_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    return _payload_response(request, ctx, _secret(request, ctx, secret_id))


@router.delete("/v1/secrets/{secret_id}", status_code=204)
def delete_secret(secret_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    _require_writer(ctx)
    if not (UUID.match(secret_id) and _store(request).delete_secret(ctx.project_id, secret_id.lower())):
        raise _not_found("secret")
    return Response(status_code=204)


def _secret(request: Request, ctx: Context, secret_id: str) -> KeySecret:
    row = _store(request).secret(ctx.project_id, secret_id.lower()) if UUID.match(secret_id) else None
    if row is None:
        raise _not_found("secret")
    return row


def _payload_response(request: Request, ctx: Context, row: KeySecret) -> Response:
    _require_writer(ctx)
    try:
        payload = _store(request).payload(row)
    except InvalidReference as exc:
        raise APIError(str(exc), 500) from None
    content_type = row.payload_content_type or "application/octet-stream"
    if content_type == "text/plain":
        content_type = "text/plain; charset=UTF-8"
    return Response(content=payload, media_type=content_type)


def _secret_body(document: Any) -> tuple[SecretFields, bytes]:
    """The fields and the decoded payload of a one-step store, or BadRequest."""
    body = _object(document)
    secret_type = body.get("secret_type")
    if secret_type is None:
        secret_type = "opaque"
    if not isinstance(secret_type, str) or secret_type not in SECRET_TYPES:
        raise BadRequest(f"secret_type must be one of {', '.join(SECRET_TYPES)}.")
    fields = SecretFields(name=_text(body, "name", MAX_NAME), secret_type=secret_type,
                          payload_content_type=None, algorithm=_text(body, "algorithm", MAX_FIELD),
                          bit_length=_bit_length(body.get("bit_length")), mode=_text(body, "mode", MAX_FIELD),
                          expiration=_expiration(body.get("expiration")))
    content_type, payload = _payload(body)
    return SecretFields(**{**fields.__dict__, "payload_content_type": content_type}), payload


def _payload(body: dict[str, Any]) -> tuple[str, bytes]:
    payload = body.get("payload")
    if payload is None or payload == "":
        raise BadRequest("A payload is required (this server stores secrets in one step) and must not be empty.")
    if not isinstance(payload, str):
        raise BadRequest("payload must be a string.")
    given = body.get("payload_content_type")
    content_type = CONTENT_TYPES.get(given.replace(" ", "").lower()) if isinstance(given, str) else None
    if content_type is None:
        raise BadRequest("payload_content_type must be one of text/plain, application/octet-stream, "
                         "application/pkcs8.")
    encoding = body.get("payload_content_encoding")
    if content_type == "text/plain":
        if encoding is not None:
            raise BadRequest("payload_content_encoding must not be given with text/plain.")
        data = payload.encode("utf-8")
    else:
        if encoding != "base64":
            raise BadRequest(f"payload_content_encoding must be base64 with {content_type}.")
        data = _base64(payload)
    if len(data) > MAX_PAYLOAD:
        raise BadRequest(f"The payload is larger than {MAX_PAYLOAD} bytes.", 413)
    return content_type, data


def _base64(text: str) -> bytes:
    if len(text) > 2 * MAX_PAYLOAD:
        raise BadRequest(f"The payload is larger than {MAX_PAYLOAD} bytes.", 413)
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("payload is not valid base64.") from None


def _secret_view(request: Request, row: KeySecret) -> dict[str, Any]:
    return {"created": _time(row.created_at), "updated": _time(row.updated_at), "status": "ACTIVE",
            "name": row.name, "secret_type": row.secret_type, "expiration": _time(row.expiration),
            "algorithm": row.algorithm, "bit_length": row.bit_length, "mode": row.mode, "creator_id": None,
            "content_types": {"default": row.payload_content_type} if row.payload_content_type else {},
            "secret_ref": _secret_ref(request, row.id)}


def _secret_ref(request: Request, ident: str) -> str:
    return f"{_base(request)}/v1/secrets/{ident}"


# --- containers ---------------------------------------------------------------------

@router.post("/v1/containers", status_code=201)
@router.post("/v1/containers/", status_code=201, include_in_schema=False)
def create_container(request: Request, ctx: Context = Depends(deps.context),
                     document: Any = Depends(deps.body)) -> dict[str, Any]:
    _require_writer(ctx)
    fields = _container_body(document)
    row = _store(request).create_container(ctx.project_id, fields)
    if row is None:
        raise BadRequest("A secret_ref does not name a secret of this project.")
    return {"container_ref": _container_ref(request, row.id)}


@router.get("/v1/containers")
@router.get("/v1/containers/", include_in_schema=False)
def list_containers(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    limit, offset = _page(request)
    rows, total = _store(request).containers(ctx.project_id, limit, offset, request.query_params.get("name"))
    return {"containers": [_container_view(request, row) for row in rows], "total": total,
            **_page_links(request, "containers", limit, offset, total)}


@router.get("/v1/containers/{container_id}")
def get_container(container_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    row = _store(request).container(ctx.project_id, container_id.lower()) if UUID.match(container_id) else None
    if row is None:
        raise _not_found("container")
    return _container_view(request, row)


@router.delete("/v1/containers/{container_id}", status_code=204)
def delete_container(container_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    _require_writer(ctx)
    if not (UUID.match(container_id) and _store(request).delete_container(ctx.project_id, container_id.lower())):
        raise _not_found("container")
    return Response(status_code=204)


def _container_body(document: Any) -> ContainerFields:
    body = _object(document)
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in CONTAINER_NAMES:
        raise BadRequest(f"type must be one of {', '.join(CONTAINER_NAMES)}.")
    refs = body.get("secret_refs") or []
    if not isinstance(refs, list) or len(refs) > MAX_CONTAINER_SECRETS:
        raise BadRequest(f"secret_refs must be a list of at most {MAX_CONTAINER_SECRETS} {{name, secret_ref}}.")
    allowed = CONTAINER_NAMES[kind]
    parts: list[tuple[str, str]] = []
    for entry in refs:
        name, ident = _container_entry(entry)
        if allowed is not None and name not in allowed:
            raise BadRequest(f"A {kind} container's secret_refs may be named only {', '.join(sorted(allowed))}.")
        if name in (part for part, _ in parts):
            raise BadRequest(f"secret_refs names {name!r} twice.")
        parts.append((name, ident))
    if kind == "certificate" and "certificate" not in (name for name, _ in parts):
        raise BadRequest("A certificate container needs a secret named 'certificate'.")
    return ContainerFields(name=_text(body, "name", MAX_NAME), type=kind, secret_refs=parts)


def _container_entry(entry: Any) -> tuple[str, str]:
    if not isinstance(entry, dict):
        raise BadRequest("Each of secret_refs must be an object {name, secret_ref}.")
    name = _text(entry, "name", MAX_NAME)
    if not name:
        raise BadRequest("Each of secret_refs needs a name.")
    try:
        kind, ident = parse_ref(entry.get("secret_ref"))  # type: ignore[arg-type]
    except InvalidReference as exc:
        raise BadRequest(f"secret_refs {name!r}: {exc}") from None
    if kind != SECRET:
        raise BadRequest(f"secret_refs {name!r} must name a secret, not a container.")
    return name, ident


def _container_view(request: Request, row: KeyContainer) -> dict[str, Any]:
    return {"created": _time(row.created_at), "updated": _time(row.updated_at), "status": "ACTIVE",
            "name": row.name, "type": row.type, "creator_id": None,
            "secret_refs": [{"name": part["name"], "secret_ref": _secret_ref(request, part["secret_id"])}
                            for part in row.secret_refs],
            "consumers": [], "container_ref": _container_ref(request, row.id)}


def _container_ref(request: Request, ident: str) -> str:
    return f"{_base(request)}/v1/containers/{ident}"


# --- shared pieces ------------------------------------------------------------------

def _not_found(noun: str) -> APIError:
    return APIError(f"Not Found. Provided {noun} id is invalid.", 404)


def _object(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise BadRequest("The request body must be a JSON object.")
    return document


def _text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or any(ord(ch) < 32 for ch in value):
        raise BadRequest(f"{field} must be a string of at most {limit} printable characters.")
    return value


def _bit_length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
        raise BadRequest("bit_length must be a positive integer.")
    return value


def _expiration(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
    except ValueError:
        moment = None
    if moment is None:
        raise BadRequest("expiration must be an ISO 8601 date and time, e.g. 2030-01-01T00:00:00Z.")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if moment <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None):
        raise BadRequest("expiration is in the past.")
    return moment


def _time(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _page(request: Request) -> tuple[int, int]:
    values = []
    for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
        text = request.query_params.get(name)
        if text is None:
            values.append(default)
            continue
        if not text.isdigit() or len(text) > 9:
            raise BadRequest(f"{name} must be a non-negative integer.")
        values.append(int(text))
    return min(max(values[0], 1), MAX_LIMIT), values[1]


def _page_links(request: Request, kind: str, limit: int, offset: int, total: int) -> dict[str, str]:
    base = f"{_base(request)}/v1/{kind}"
    links = {}
    if offset > 0:
        links["previous"] = f"{base}?limit={limit}&offset={max(offset - limit, 0)}"
    if offset + limit < total:
        links["next"] = f"{base}?limit={limit}&offset={offset + limit}"
    return links
