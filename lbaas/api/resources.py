"""The seven kinds of object, and the reads every kind shares: get and list.

Listing follows Octavia: ``limit``/``marker``/``page_reverse`` keyset
pagination, ``sort`` or ``sort_key``/``sort_dir``, ``fields``, a filter on
any attribute, tag filters, and ``<plural>_links``.  Every page is one
indexed query plus one query per relation, whatever the table size; one
object (``read_document``) is one statement of index lookups.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import CompoundSelect, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from lbaas.api import views
from lbaas.api.auth import Context
from lbaas.errors import BadRequest, NotFound
from lbaas.db import models as m


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str            # wrapping key of one object: "loadbalancer"
    plural: str          # wrapping key of a list: "loadbalancers"
    label: str           # in messages: "Load Balancer"
    model: Any
    view: Callable[[Any, dict], dict]
    relations: tuple[views.Relation, ...]
    quota: str           # column of the quota table
    # GET of one object: its row and relations in one statement, built once.
    one: CompoundSelect[Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "one", views.one_statement(self.model, self.relations))

    def render(self, session: Session, objs: list[Any]) -> list[dict[str, Any]]:
        return views.render(session, objs, self.view, self.relations)

    def render_one(self, session: Session, obj: Any) -> dict[str, Any]:
        return self.render(session, [obj])[0]

    @property
    def rules(self) -> str:
        """This kind in policy rule names: ``os_load-balancer_api:<rules>:<action>``."""
        return "l7rule" if self is L7RULE else self.name


LOADBALANCER = Kind("loadbalancer", "loadbalancers", "Load Balancer", m.LoadBalancer,
                    views.loadbalancer, views.LOADBALANCER_RELATIONS, "load_balancer")
LISTENER = Kind("listener", "listeners", "Listener", m.Listener,
                views.listener, views.LISTENER_RELATIONS, "listener")
POOL = Kind("pool", "pools", "Pool", m.Pool, views.pool, views.POOL_RELATIONS, "pool")
MEMBER = Kind("member", "members", "Member", m.Member, views.member, views.TAGS_ONLY, "member")
HEALTHMONITOR = Kind("healthmonitor", "healthmonitors", "Health Monitor", m.HealthMonitor,
                     views.healthmonitor, views.TAGS_ONLY, "health_monitor")
L7POLICY = Kind("l7policy", "l7policies", "L7 Policy", m.L7Policy, views.l7policy,
                views.L7POLICY_RELATIONS, "l7policy")
L7RULE = Kind("rule", "rules", "L7 Rule", m.L7Rule, views.l7rule, views.TAGS_ONLY, "l7rule")

# Attribute names in the API that are not plain columns of the same name.
ALIASES = {"tenant_id": "project_id", "loadbalancer_id": "load_balancer_id"}
NOT_FILTERABLE = {"stats", "insert_headers", "allowed_cidrs", "session_persistence",
                  "pending_since", "status_reason", "revision"}
PAGING_KEYS = {"limit", "marker", "page_reverse", "sort", "sort_key", "sort_dir", "fields",
               "tags", "tags-any", "not-tags", "not-tags-any"}


def get(session: Session, kind: Kind, ident: str, ctx: Context, *, lock: bool = False) -> Any:
    """The object, or NotFound (also when it belongs to a project the caller may not see)."""
    return _visible(kind, ident, ctx, session.get(kind.model, ident, with_for_update=lock))


def readable(session: Session, kind: Kind, ident: str, ctx: Context, action: str = "get_one") -> Any:
    """A visible object the policy lets the caller read (``<kind>:<action>``)."""
    obj = get(session, kind, ident, ctx)
    ctx.authorize(f"{kind.rules}:{action}", obj.project_id)
    return obj


def read_document(session: Session, kind: Kind, ident: str, ctx: Context,
                  scope: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``GET /lbaas/<plural>/{id}``'s document: the object ``readable`` lets the caller
    read, rendered as ``render_one`` renders it, but from one statement of Core rows;
    ``scope``: columns the object must match (a member's pool_id), else NotFound."""
    row, related = views.read_one(session, kind.one, kind.relations, ident)
    if row is not None and any(getattr(row, key) != value for key, value in (scope or {}).items()):
        row = None
    ctx.authorize(f"{kind.rules}:get_one", _visible(kind, ident, ctx, row).project_id)
    return kind.view(row, related)


def _visible(kind: Kind, ident: str, ctx: Context, obj: Any) -> Any:
    """``obj`` (a row of ``kind`` or None) if the caller may see it, else NotFound."""
    project = ctx.visible_project(kind.rules)
    if obj is None or (project is not None and obj.project_id != project):
        raise NotFound(kind.label, ident)
    return obj


@dataclasses.dataclass
class Page:
    items: list[dict[str, Any]]
    links: list[dict[str, str]]


def list_page(session: Session, kind: Kind, ctx: Context, params: Mapping[str, list[str]],
              url: str, max_limit: int, scope: Mapping[str, str] | None = None) -> Page:
    """One page of ``kind`` as the caller may see it, filtered and sorted by ``params``;
    ``scope``: columns the listing is confined to (a pool's members: its pool_id)."""
    model = kind.model
    query = select(model).where(*[getattr(model, key) == value for key, value in (scope or {}).items()])
    project = ctx.visible_project(kind.rules)
    if project is not None:
        query = query.where(model.project_id == project)
    query = _filter(query, model, params)
    query = _filter_tags(query, model, params)
    limit = _limit(params, max_limit)
    keys = _sort_keys(model, params)
    reverse = bool_param(params, "page_reverse")
    marker = _one(params, "marker")
    if marker:
        query = query.where(_after(session, model, keys, marker, reverse, project))
    order = [(col.desc() if desc != reverse else col.asc()) for col, desc in keys]
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if reverse:
        rows.reverse()
    items = kind.render(session, rows)
    fields = _fields(params)
    if fields:
        items = [{k: v for k, v in item.items() if k in fields} for item in items]
    return Page(items, _links(url, params, rows, marker, more, reverse))


def _one(params: Mapping[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[-1] if values else None


def bool_param(params: Mapping[str, list[str]], key: str) -> bool:
    value = _one(params, key)
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid value for {key}: {_shown(value)} is not a boolean.")


def _limit(params: Mapping[str, list[str]], max_limit: int) -> int:
    value = _one(params, "limit")
    if value is None:
        return max_limit
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest(f"Invalid value for limit: {_shown(value)} is not an integer.") from None
    if limit < 0:
        raise BadRequest("limit must not be negative.")
    return min(limit or max_limit, max_limit)


def _column(model: Any, name: str, purpose: str) -> Any:
    column_name = ALIASES.get(name, name)
    column = model.__table__.columns.get(column_name)
    if column is None or column_name in NOT_FILTERABLE:
        raise BadRequest(f"{_shown(name)} is not a valid {purpose} key for {model.__tablename__}.")
    return getattr(model, column.key if hasattr(model, column.key) else column_name)


def _sort_keys(model: Any, params: Mapping[str, list[str]]) -> list[tuple[Any, bool]]:
    pairs: list[tuple[str, str]] = []
    if params.get("sort"):
        for part in ",".join(params["sort"]).split(","):
            key, _, direction = part.strip().partition(":")
            pairs.append((key, direction or "asc"))
    elif params.get("sort_key"):
        dirs = params.get("sort_dir", [])
        pairs = [(key, dirs[i] if i < len(dirs) else "asc") for i, key in enumerate(params["sort_key"])]
    else:
        pairs = [("created_at", "asc")]
    keys = []
    for key, direction in pairs:
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {_shown(direction)}: use asc or desc.")
        keys.append((_sortable(_column(model, key, "sort")), direction == "desc"))
    if not any(getattr(col, "key", None) == "id" for col, _ in keys):
        keys.append((model.id, keys[-1][1] if keys else False))
    return keys


# Stand-ins for NULL in sort keys: keyset pagination needs values that compare.
NULL_FLOORS = {dt.datetime: dt.datetime(1970, 1, 1), str: "", int: -1, float: -1.0}


def _sortable(column: Any) -> Any:
    """The column, or for a nullable one the column with NULL as the lowest value."""
    if not column.nullable:
        return column
    floor = NULL_FLOORS.get(column.type.python_type)
    return column if floor is None else func.coalesce(column, floor)


def _after(session: Session, model: Any, keys: list[tuple[Any, bool]], marker: str,
           reverse: bool, project: str | None) -> Any:
    """Keyset condition: rows strictly after the marker in the requested order."""
    row = session.execute(select(*[col for col, _ in keys], model.project_id)
                          .where(model.id == marker)).first()
    if row is None or (project is not None and row[-1] != project):
        raise BadRequest(f"Marker {_shown(marker)} not found.")
    clauses = []
    for i, (col, desc) in enumerate(keys):
        equal = [keys[j][0] == row[j] for j in range(i)]
        step = col < row[i] if desc != reverse else col > row[i]
        clauses.append(and_(*equal, step))
    # Implied by the OR, but without it databases scan the sort index from
    # its start up to the marker (a deep page costs O(offset)); with it they
    # seek to the marker.
    first, desc = keys[0]
    return and_(first <= row[0] if desc != reverse else first >= row[0], or_(*clauses))


def _fields(params: Mapping[str, list[str]]) -> set[str]:
    return {f.strip() for value in params.get("fields", []) for f in value.split(",") if f.strip()}


def _filter(query: Select, model: Any, params: Mapping[str, list[str]]) -> Select:
    for key, values in params.items():
        if key in PAGING_KEYS:
            continue
        column = _column(model, key, "filter")
        converted = [_convert(column, key, value) for value in values]
        query = query.where(column.in_(converted) if len(converted) > 1 else column == converted[0])
    return query


def _convert(column: Any, key: str, value: str) -> Any:
    """A filter value as the column's type, or BadRequest: never a value the database refuses."""
    convert = CONVERTERS.get(_python_type(column))
    if convert is None:
        raise BadRequest(f"{_shown(key)} is not a valid filter key.")
    try:
        return convert(value)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"Invalid value for filter {key}: {_shown(value)} {exc}.") from None


def _python_type(column: Any) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _shown(value: str) -> str:
    """A client's value, quoted and cut short, for a message."""
    return repr(value if len(value) <= 64 else value[:64] + "...")


def _to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError("is not a boolean")
    return lowered in ("true", "1")


def _to_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("is not an integer") from None
    if not INT_MIN <= number <= INT_MAX:
        raise ValueError(f"is out of range ({INT_MIN} to {INT_MAX})")
    return number


def _to_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("is not a number") from None
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def _to_datetime(value: str) -> dt.datetime:
    """ISO 8601; an offset is turned into the naive UTC the columns hold."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an ISO 8601 date and time") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when


# Integer columns are 32-bit signed on PostgreSQL and MariaDB.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
CONVERTERS: dict[Any, Callable[[str], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_float, dt.datetime: _to_datetime, str: str}


def filter_types(model: Any) -> dict[str, type]:
    """Every filter ``list_page`` accepts for ``model``: API name -> value type."""
    names = {column: api for api, column in ALIASES.items()}
    found: dict[str, type] = {}
    for column in model.__table__.columns:
        kind = _python_type(column)
        if column.name in NOT_FILTERABLE or kind is None or kind not in CONVERTERS:
            continue
        found[column.name] = kind
        if column.name in names:
            found[names[column.name]] = kind
    return found


def _tag_list(params: Mapping[str, list[str]], key: str) -> list[str]:
    return [t for value in params.get(key, []) for t in value.split(",") if t]


def _filter_tags(query: Select, model: Any, params: Mapping[str, list[str]]) -> Select:
    def having(tags: list[str], every: bool) -> Select:
        sub = select(m.Tag.resource_id).where(m.Tag.tag.in_(tags))
        if every:
            sub = sub.group_by(m.Tag.resource_id).having(func.count() == len(set(tags)))
        return sub

    if tags := _tag_list(params, "tags"):
        query = query.where(model.id.in_(having(tags, True)))
    if tags := _tag_list(params, "tags-any"):
        query = query.where(model.id.in_(having(tags, False)))
    if tags := _tag_list(params, "not-tags"):
        query = query.where(model.id.not_in(having(tags, True)))
    if tags := _tag_list(params, "not-tags-any"):
        query = query.where(model.id.not_in(having(tags, False)))
    return query


def _links(url: str, params: Mapping[str, list[str]], rows: list[Any], marker: str | None,
           more: bool, reverse: bool) -> list[dict[str, str]]:
    if not rows:
        return []
    kept = [(k, v) for k, values in params.items() if k not in ("marker", "page_reverse") for v in values]
    links = []
    # Going forward, "next" exists when more rows follow; going backwards
    # the roles swap.
    has_next = more if not reverse else bool(marker)
    has_previous = bool(marker) if not reverse else more
    if has_next:
        links.append({"href": f"{url}?{urlencode(kept + [('marker', rows[-1].id)])}", "rel": "next"})
    if has_previous:
        query = kept + [("marker", rows[0].id), ("page_reverse", "True")]
        links.append({"href": f"{url}?{urlencode(query)}", "rel": "previous"})
    return links


def tag_new(session: Session, ident: str, tags: list[str] | None) -> None:
    """Tags of an object created in this transaction: nothing to replace."""
    for tag in dict.fromkeys(tags or ()):
        session.add(m.Tag(resource_id=ident, tag=tag))


def set_tags(session: Session, ident: str, tags: list[str] | None) -> None:
    """Replace an object's tags (None: leave them)."""
    if tags is None:
        return
    session.query(m.Tag).filter(m.Tag.resource_id == ident).delete()
    tag_new(session, ident, tags)
