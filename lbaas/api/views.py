"""Rows to Octavia v2 documents.

A document lists ids of related rows (a load balancer's listeners, a pool's
members, tags): each kind declares them once as ``Relation``s.  A page
fetches each relation once with an ``IN`` query, never once per row
(``related``); a single object comes with all of them in one statement,
built once per kind (``one_statement``, ``read_one``), as Core rows.  The
renderers take ORM objects and Core rows alike (``Record``: the columns as
attributes).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (BindParameter, CompoundSelect, DateTime, Integer, String, bindparam, cast,
                        literal_column, null, select, union_all)
from sqlalchemy.orm import Session

from lbaas.db import models as m
from lbaas.db.graph import Graph, Record

Related = dict[str, dict[str, Any]]


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _base(obj: Any, related: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": obj.id,
        "name": obj.name,
        "description": obj.description,
        "project_id": obj.project_id,
        "tenant_id": obj.project_id,
        "admin_state_up": obj.admin_state_up,
        "provisioning_status": obj.provisioning_status,
        "operating_status": obj.operating_status,
        "created_at": _time(obj.created_at),
        "updated_at": _time(obj.updated_at),
        "tags": related.get("tags", []),
    }


def _ids(values: Sequence[str]) -> list[dict[str, str]]:
    return [{"id": value} for value in values]


def loadbalancer(lb: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(lb, related)
    doc.update({
        "vip_address": lb.vip_address,
        "vip_port_id": lb.vip_port_id,
        "vip_subnet_id": lb.vip_subnet_id,
        "vip_network_id": lb.vip_network_id,
        "vip_qos_policy_id": None,
        "vip_vnic_type": "normal",
        "additional_vips": [],
        "provider": lb.provider,
        "flavor_id": lb.flavor_id,
        "availability_zone": lb.availability_zone,
        "listeners": _ids(related.get("listeners", [])),
        "pools": _ids(related.get("pools", [])),
        # Not in Octavia: why a load balancer is in ERROR or still waiting.
        "status_reason": lb.status_reason,
    })
    return doc


def listener(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    doc.update({
        "protocol": obj.protocol,
        "protocol_port": obj.protocol_port,
        "connection_limit": obj.connection_limit,
        "default_pool_id": obj.default_pool_id,
        "loadbalancers": _ids([obj.load_balancer_id]),
        "timeout_client_data": obj.timeout_client_data,
        "timeout_member_connect": obj.timeout_member_connect,
        "timeout_member_data": obj.timeout_member_data,
        "timeout_tcp_inspect": obj.timeout_tcp_inspect,
        "insert_headers": obj.insert_headers or {},
        "allowed_cidrs": obj.allowed_cidrs,
        "l7policies": _ids(related.get("l7policies", [])),
        "default_tls_container_ref": obj.default_tls_container_ref,
        "sni_container_refs": obj.sni_container_refs or [],
        "client_ca_tls_container_ref": obj.client_ca_tls_container_ref,
        "client_authentication": obj.client_authentication,
        "client_crl_container_ref": obj.client_crl_container_ref,
        "tls_ciphers": obj.tls_ciphers,
        "tls_versions": obj.tls_versions,
        "alpn_protocols": obj.alpn_protocols,
        "hsts_max_age": obj.hsts_max_age,
        "hsts_include_subdomains": obj.hsts_include_subdomains,
        "hsts_preload": obj.hsts_preload,
    })
    return doc


def pool(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    doc.update({
        "protocol": obj.protocol,
        "lb_algorithm": obj.lb_algorithm,
        "session_persistence": obj.session_persistence,
        "loadbalancers": _ids([obj.load_balancer_id]),
        "listeners": _ids(related.get("listeners", [])),
        "members": _ids(related.get("members", [])),
        "healthmonitor_id": related.get("healthmonitor_id"),
        "tls_enabled": obj.tls_enabled,
        "tls_container_ref": obj.tls_container_ref,
        "ca_tls_container_ref": obj.ca_tls_container_ref,
        "crl_container_ref": obj.crl_container_ref,
        "tls_ciphers": obj.tls_ciphers,
        "tls_versions": obj.tls_versions,
        "alpn_protocols": obj.alpn_protocols,
    })
    return doc


def member(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    doc.pop("description")
    doc.update({
        "address": obj.address,
        "protocol_port": obj.protocol_port,
        "weight": obj.weight,
        "backup": obj.backup,
        "subnet_id": obj.subnet_id,
        "monitor_address": obj.monitor_address,
        "monitor_port": obj.monitor_port,
        "vnic_type": "normal",
    })
    return doc


def healthmonitor(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    doc.pop("description")
    doc.update({
        "type": obj.type,
        "delay": obj.delay,
        "timeout": obj.timeout,
        "max_retries": obj.max_retries,
        "max_retries_down": obj.max_retries_down,
        "http_method": obj.http_method,
        "url_path": obj.url_path,
        "expected_codes": obj.expected_codes,
        "http_version": obj.http_version,
        "domain_name": obj.domain_name,
        "pools": _ids([obj.pool_id]),
    })
    return doc


def l7policy(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    doc.update({
        "listener_id": obj.listener_id,
        "action": obj.action,
        "position": obj.position,
        "redirect_pool_id": obj.redirect_pool_id,
        "redirect_url": obj.redirect_url,
        "redirect_prefix": obj.redirect_prefix,
        "redirect_http_code": obj.redirect_http_code,
        "rules": _ids(related.get("rules", [])),
    })
    return doc


def l7rule(obj: Record, related: dict[str, Any]) -> dict[str, Any]:
    doc = _base(obj, related)
    for unused in ("name", "description"):  # rules have neither, as in Octavia
        doc.pop(unused)
    doc.update({
        "type": obj.type,
        "compare_type": obj.compare_type,
        "key": obj.key,
        "value": obj.value,
        "invert": obj.invert,
    })
    return doc


STAT_KEYS = ("bytes_in", "bytes_out", "active_connections", "total_connections", "request_errors")


def stats(raw: dict | None) -> dict[str, int]:
    """Counters as the stats endpoints answer them; zeros until a device reports."""
    raw = raw or {}
    return {key: int(raw.get(key, 0)) for key in STAT_KEYS}


# --- related ids: one query per relation per page, one statement per object ----

@dataclasses.dataclass(frozen=True)
class Relation:
    """Values a document lists from another table: ``value`` of the rows whose ``parent``
    is the object, ordered by (``position``, ``created``, ``value``), the columns given;
    ``single``: at most one row (a pool's monitor), listed as its value or None."""

    name: str           # the key in Related
    parent: Any
    value: Any
    position: Any = None
    created: Any = None
    single: bool = False

    @property
    def order(self) -> list[Any]:
        return [col for col in (self.position, self.created, self.value) if col is not None]

    def listed(self, values: list[Any]) -> Any:
        return (values[0] if values else None) if self.single else values


TAGS = Relation("tags", m.Tag.resource_id, m.Tag.tag)
LOADBALANCER_RELATIONS = (
    TAGS,
    Relation("listeners", m.Listener.load_balancer_id, m.Listener.id, created=m.Listener.created_at),
    Relation("pools", m.Pool.load_balancer_id, m.Pool.id, created=m.Pool.created_at))
LISTENER_RELATIONS = (
    TAGS,
    Relation("l7policies", m.L7Policy.listener_id, m.L7Policy.id, position=m.L7Policy.position,
             created=m.L7Policy.created_at))
POOL_RELATIONS = (
    TAGS,
    Relation("listeners", m.Listener.default_pool_id, m.Listener.id, created=m.Listener.created_at),
    Relation("members", m.Member.pool_id, m.Member.id, created=m.Member.created_at),
    Relation("healthmonitor_id", m.HealthMonitor.pool_id, m.HealthMonitor.id, single=True))
L7POLICY_RELATIONS = (TAGS, Relation("rules", m.L7Rule.l7policy_id, m.L7Rule.id, created=m.L7Rule.created_at))
TAGS_ONLY = (TAGS,)


def _grouped(session: Session, key_col: Any, value_col: Any, keys: list[str],
             order: Any = None) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = collections.defaultdict(list)
    if not keys:
        return grouped
    query = select(key_col, value_col).where(key_col.in_(keys))
    if order is not None:
        query = query.order_by(*order)
    for key, value in session.execute(query):
        grouped[key].append(value)
    return grouped


def related(session: Session, ids: list[str], relations: Sequence[Relation]) -> Related:
    """The related values of a page of objects: one query per relation."""
    found: Related = {ident: {} for ident in ids}
    for relation in relations:
        grouped = _grouped(session, relation.parent, relation.value, ids, relation.order)
        for ident in ids:
            found[ident][relation.name] = relation.listed(grouped.get(ident, []))
    return found


def render(session: Session, objs: Sequence[Any], view: Callable[[Any, dict], dict],
           relations: Sequence[Relation]) -> list[dict[str, Any]]:
    extra = related(session, [obj.id for obj in objs], relations)
    return [view(obj, extra.get(obj.id, {})) for obj in objs]


# The columns one_statement adds in front of the object's: which relation a row is of
# (OBJECT: the object's own row), its sort keys and its value.
RANK, POSITION, CREATED, VALUE = "rel_rank", "rel_position", "rel_created", "rel_value"
OBJECT = -1
_IDENT: BindParameter[str] = bindparam("ident", type_=String())


def one_statement(model: Any, relations: Sequence[Relation]) -> CompoundSelect[Any]:
    """One object's row and its related values in one statement (keyed ``ident``):
    the row, then one row per related value, each relation's rows in its order.

    A UNION ALL of index lookups, one per relation, portable to every backend: the
    object's row comes first with typed sort columns, and the relation rows fill
    the object's columns with NULL (which take the first row's types)."""
    table = model.__table__
    # id, not a NULL cast to a string, as the object's value: the column then has the
    # type and collation of the id and tag columns below it on every backend.
    own = select(literal_column(str(OBJECT), Integer).label(RANK), cast(null(), Integer).label(POSITION),
                 cast(null(), DateTime).label(CREATED), table.c.id.label(VALUE), *table.c)
    padding = [null().label(column.name) for column in table.c]

    def rows_of(rank: int, relation: Relation) -> Any:
        return select(literal_column(str(rank), Integer), _or_null(relation.position), _or_null(relation.created),
                      relation.value, *padding).where(relation.parent == _IDENT)

    union = union_all(own.where(table.c.id == _IDENT), *[rows_of(rank, r) for rank, r in enumerate(relations)])
    return union.order_by(*[union.selected_columns[name] for name in (RANK, POSITION, CREATED, VALUE)])


def _or_null(column: Any) -> Any:
    return null() if column is None else column


def read_one(session: Session, statement: CompoundSelect[Any], relations: Sequence[Relation],
             ident: str) -> tuple[Record | None, dict[str, Any]]:
    """The object's row (None if there is none) and its related values, by ``one_statement``."""
    rows = session.execute(statement, {"ident": ident}).all()
    row = rows[0] if rows and getattr(rows[0], RANK) == OBJECT else None
    grouped: dict[int, list[Any]] = collections.defaultdict(list)
    for related_row in rows[1 if row is not None else 0:]:
        grouped[getattr(related_row, RANK)].append(getattr(related_row, VALUE))
    return row, {relation.name: relation.listed(grouped[rank]) for rank, relation in enumerate(relations)}


# --- graphs: the status tree, the fully populated create -----------------------

def _statuses(obj: Any, **extra: Any) -> dict[str, Any]:
    return {"id": obj.id, "name": obj.name, "provisioning_status": obj.provisioning_status,
            "operating_status": obj.operating_status, **extra}


def status_tree(lb: m.LoadBalancer, objects: Graph) -> dict[str, Any]:
    """The statuses of a load balancer's graph; a pool shows under the listener whose default it is."""
    pools = {p.id: p for p in objects.pools}

    def pool_doc(pool: m.Pool) -> dict[str, Any]:
        doc = _statuses(pool, members=[_statuses(x, address=x.address, protocol_port=x.protocol_port)
                                       for x in objects.pool_members(pool.id)])
        if pool.id in objects.monitors:
            hm = objects.monitors[pool.id]
            doc["health_monitor"] = _statuses(hm, type=hm.type)
        return doc

    def policy_doc(policy: m.L7Policy) -> dict[str, Any]:
        return _statuses(policy, action=policy.action, rules=[
            _statuses(r, type=r.type) for r in objects.policy_rules(policy.id)])

    used = {x.default_pool_id for x in objects.listeners}
    return _statuses(lb, listeners=[
        _statuses(x, pools=[pool_doc(pools[x.default_pool_id])] if x.default_pool_id in pools else [],
                  l7policies=[policy_doc(p) for p in objects.listener_policies(x.id)])
        for x in objects.listeners
    ], pools=[pool_doc(p) for p in objects.pools if p.id not in used])


def created(lb: m.LoadBalancer, objects: Graph, full: bool) -> dict[str, Any]:
    """A new load balancer's document; ``full`` (as Octavia, for a fully populated
    create): with its whole graph.  Every row was made in this request, so its
    relations are known: no query, the same documents a read answers (tags sorted)."""
    def tags(row: Any) -> list[str]:
        return sorted(dict.fromkeys(getattr(row, "_tags", None) or ()))

    document = loadbalancer(lb, {"tags": tags(lb), "listeners": [x.id for x in objects.listeners],
                                 "pools": [p.id for p in objects.pools]})
    if not full:
        return document
    document["listeners"] = [_created_listener(x, objects, tags) for x in objects.listeners]
    pool_docs = []
    for row in objects.pools:
        members = objects.pool_members(row.id)
        monitor = objects.monitors.get(row.id)
        doc = pool(row, {"tags": tags(row), "members": [x.id for x in members],
                         "listeners": [x.id for x in objects.listeners if x.default_pool_id == row.id],
                         "healthmonitor_id": monitor.id if monitor else None})
        doc["members"] = [member(x, {"tags": tags(x)}) for x in members]
        doc["healthmonitor"] = healthmonitor(monitor, {"tags": tags(monitor)}) if monitor else None
        pool_docs.append(doc)
    document["pools"] = pool_docs
    return document


def _created_listener(row: m.Listener, objects: Graph, tags: Callable[[Any], list[str]]) -> dict[str, Any]:
    """A listener of a fully populated create, with its policies and their rules in full (as Octavia)."""
    policies = objects.listener_policies(row.id)
    doc = listener(row, {"tags": tags(row), "l7policies": [p.id for p in policies]})
    doc["l7policies"] = []
    for policy in policies:
        rules = objects.policy_rules(policy.id)
        policy_doc = l7policy(policy, {"tags": tags(policy), "rules": [r.id for r in rules]})
        policy_doc["rules"] = [l7rule(r, {"tags": tags(r)}) for r in rules]
        doc["l7policies"].append(policy_doc)
    return doc
