"""JSON Patch (RFC 6902) over the stored AS3 declaration, as AS3's PATCH applies it.

Contract: ``apply_patch(declaration, operations)`` returns a patched copy; operations
``add``, ``remove``, ``replace``, ``move`` and ``copy`` (AS3 refuses ``test``); paths are
JSON Pointers (RFC 6901, ``~0``/``~1`` escapes, ``-`` appends to an array).  Anything else
raises ``PatchError`` naming the operation, which the server answers 422.
"""

from __future__ import annotations

import copy
from typing import Any

OPERATIONS = ("add", "remove", "replace", "move", "copy")


class PatchError(Exception):
    pass


def apply_patch(declaration: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise PatchError("/: the PATCH body should be an array of operations")
    document = copy.deepcopy(declaration)
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict) or operation.get("op") not in OPERATIONS \
                or not isinstance(operation.get("path"), str):
            raise PatchError(f"/{index}: should be an operation {list(OPERATIONS)} with a path")
        try:
            _apply(document, operation)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise PatchError(f"/{index}: {operation['op']} {operation['path'][:256]!r} failed: "
                             f"the path does not exist ({type(exc).__name__})") from None
    return document


def _apply(document: dict[str, Any], operation: dict[str, Any]) -> None:
    op, path = operation["op"], operation["path"]
    if op in ("move", "copy"):
        value = _get(document, str(operation["from"]))
        if op == "move":
            _remove(document, str(operation["from"]))
        _add(document, path, copy.deepcopy(value))
    elif op == "remove":
        _remove(document, path)
    elif op == "replace":
        _get(document, path)  # must exist
        _remove(document, path)
        _add(document, path, copy.deepcopy(operation["value"]))
    else:
        _add(document, path, copy.deepcopy(operation["value"]))


def _tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(path)
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _parent(document: Any, path: str) -> tuple[Any, str]:
    *parents, last = _tokens(path)
    for token in parents:
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document, last


def _get(document: Any, path: str) -> Any:
    parent, last = _parent(document, path)
    return parent[int(last)] if isinstance(parent, list) else parent[last]


def _add(document: Any, path: str, value: Any) -> None:
    parent, last = _parent(document, path)
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value


def _remove(document: Any, path: str) -> None:
    parent, last = _parent(document, path)
    del parent[int(last) if isinstance(parent, list) else last]
