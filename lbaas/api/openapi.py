"""The OpenAPI document at /openapi.json, complete enough for a client
generator or a fuzzer.

Routes read their bodies themselves (``schemas.parse``), so FastAPI cannot
see them.  Each create/update route declares its body with
``openapi_extra=request_body(key, Model)`` and each list route its query
parameters with ``list_query(model)``; ``document(app)`` then adds the
models' JSON schemas, the fault body as the answer to every 4xx, and the
token header.  Only the /v2 routes are described: /v2.0 serves the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from lbaas.api import auth, resources

REF = "#/components/schemas/{model}"
# Every model some route names with request_body(), by its component name.
BODY_MODELS: dict[str, type[BaseModel]] = {}

FAULT = {"type": "object", "required": ["faultcode", "faultstring", "debuginfo"],
         "properties": {"faultcode": {"type": "string", "enum": ["Client", "Server"]},
                        "faultstring": {"type": "string"}, "debuginfo": {"type": "null"}}}
PAGING: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 0},
    "marker": {"type": "string"},
    "page_reverse": {"type": "boolean"},
    "sort": {"type": "string", "description": "key[:asc|desc],..."},
    "sort_key": {"type": "string"},
    "sort_dir": {"type": "string", "enum": ["asc", "desc"]},
    "fields": {"type": "string", "description": "comma-separated attribute names"},
    "tags": {"type": "string"}, "tags-any": {"type": "string"},
    "not-tags": {"type": "string"}, "not-tags-any": {"type": "string"},
}
FILTER_SCHEMAS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, bool: {"type": "boolean"}, float: {"type": "number"},
    int: {"type": "integer", "format": "int32"},
    dt.datetime: {"type": "string", "format": "date-time"},
}


def request_body(key: str | None, model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body is ``{key: model}`` (``model`` itself without a key)."""
    BODY_MODELS[model.__name__] = model
    schema: dict[str, Any] = {"$ref": REF.format(model=model.__name__)}
    if key is not None:
        schema = {"type": "object", "required": [key], "additionalProperties": False,
                  "properties": {key: schema}}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def query(**schemas: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route that reads these optional query parameters."""
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                           for name, schema in schemas.items()]}


def list_query(model: Any) -> dict[str, Any]:
    """``openapi_extra`` of a list route over ``model``: paging, sorting, tags, filters."""
    filters = {name: FILTER_SCHEMAS[kind] for name, kind in resources.filter_types(model).items()}
    return query(**PAGING, **filters)


def install(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]  # FastAPI's documented override


def document(app: FastAPI) -> dict[str, Any]:
    """The application's OpenAPI document, built once."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(_body_schemas())
    schemas["Fault"] = FAULT
    components["securitySchemes"] = {"token": {"type": "apiKey", "in": "header", "name": auth.TOKEN_HEADER}}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            _describe_errors(operation)
            # The version documents are public; everything under /v2/ needs a token.
            operation["security"] = [{"token": []}] if path.startswith("/v2/") else []
    app.openapi_schema = doc
    return doc


def _body_schemas() -> dict[str, Any]:
    if not BODY_MODELS:
        return {}
    _, top = models_json_schema([(model, "validation") for model in BODY_MODELS.values()],
                                ref_template=REF)
    return top.get("$defs", {})


def _describe_errors(operation: dict[str, Any]) -> None:
    """Every 4xx answer is a fault (FastAPI's own 422 never happens here: bad input is 400)."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    fault = {"application/json": {"schema": {"$ref": REF.format(model="Fault")}}}
    responses["4XX"] = {"description": "The request was refused; nothing was changed.", "content": fault}
    responses["503"] = {"description": "The database is unavailable; nothing was changed.", "content": fault}
