"""Rows to Octavia v2 documents.

Related ids (a load balancer's listeners, a pool's members, tags) are
fetched once per page with ``IN`` queries, never once per row.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas.db import models as m
from lbaas.db.graph import Graph

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


def loadbalancer(lb: m.LoadBalancer, related: dict[str, Any]) -> dict[str, Any]:
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


def listener(obj: m.Listener, related: dict[str, Any]) -> dict[str, Any]:
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


def pool(obj: m.Pool, related: dict[str, Any]) -> dict[str, Any]:
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


def member(obj: m.Member, related: dict[str, Any]) -> dict[str, Any]:
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


def healthmonitor(obj: m.HealthMonitor, related: dict[str, Any]) -> dict[str, Any]:
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


def l7policy(obj: m.L7Policy, related: dict[str, Any]) -> dict[str, Any]:
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


def l7rule(obj: m.L7Rule, related: dict[str, Any]) -> dict[str, Any]:
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


# --- related ids, one query per relation per page -----------------------------

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


def tags(session: Session, ids: list[str]) -> dict[str, list[str]]:
    return _grouped(session, m.Tag.resource_id, m.Tag.tag, ids, (m.Tag.tag,))


def related_loadbalancers(session: Session, ids: list[str]) -> Related:
    listeners = _grouped(session, m.Listener.load_balancer_id, m.Listener.id, ids,
                         (m.Listener.created_at, m.Listener.id))
    pools = _grouped(session, m.Pool.load_balancer_id, m.Pool.id, ids, (m.Pool.created_at, m.Pool.id))
    return _combine(ids, tags(session, ids), listeners=listeners, pools=pools)


def related_pools(session: Session, ids: list[str]) -> Related:
    listeners = _grouped(session, m.Listener.default_pool_id, m.Listener.id, ids)
    members = _grouped(session, m.Member.pool_id, m.Member.id, ids, (m.Member.created_at, m.Member.id))
    monitors = {pool_id: hm_id for pool_id, hm_id in session.execute(
        select(m.HealthMonitor.pool_id, m.HealthMonitor.id).where(m.HealthMonitor.pool_id.in_(ids)))} if ids else {}
    related = _combine(ids, tags(session, ids), listeners=listeners, members=members)
    for ident in ids:
        related[ident]["healthmonitor_id"] = monitors.get(ident)
    return related


def related_listeners(session: Session, ids: list[str]) -> Related:
    policies = _grouped(session, m.L7Policy.listener_id, m.L7Policy.id, ids,
                        (m.L7Policy.position, m.L7Policy.created_at, m.L7Policy.id))
    return _combine(ids, tags(session, ids), l7policies=policies)


def related_l7policies(session: Session, ids: list[str]) -> Related:
    rules = _grouped(session, m.L7Rule.l7policy_id, m.L7Rule.id, ids, (m.L7Rule.created_at, m.L7Rule.id))
    return _combine(ids, tags(session, ids), rules=rules)


def related_tags_only(session: Session, ids: list[str]) -> Related:
    return _combine(ids, tags(session, ids))


def _combine(ids: list[str], tag_map: dict[str, list[str]], **groups: dict[str, list[str]]) -> Related:
    related: Related = {}
    for ident in ids:
        entry: dict[str, Any] = {"tags": tag_map.get(ident, [])}
        for name, grouped in groups.items():
            entry[name] = grouped.get(ident, [])
        related[ident] = entry
    return related


def render(session: Session, objs: Sequence[Any], view: Callable[[Any, dict], dict],
           related: Callable[[Session, list[str]], Related]) -> list[dict[str, Any]]:
    extra = related(session, [obj.id for obj in objs])
    return [view(obj, extra.get(obj.id, {})) for obj in objs]


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
