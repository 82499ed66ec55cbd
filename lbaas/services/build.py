"""New rows from validated create bodies, shared by single creates and by
the fully populated load balancer.  Rules that need the database (another
listener on the port, a pool already in use) are checked here."""

from __future__ import annotations

import ipaddress
from typing import Any, overload

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import validate
from lbaas.api import schemas as s
from lbaas.controller.provider import Provider
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict
from lbaas.services import Services, tls


def _common(body: s.Owned | s.L7RuleCreate, project_id: str) -> dict[str, Any]:
    # Rules have no name or description (as in Octavia): their columns stay empty.
    return {"id": m.new_id(), "project_id": project_id, "name": getattr(body, "name", None) or "",
            "description": getattr(body, "description", None) or "", "admin_state_up": body.admin_state_up,
            "provisioning_status": c.PENDING_CREATE, "operating_status": c.OFFLINE,
            "created_at": m.utcnow()}


def _tagged(obj: Any, tags: list[str]) -> Any:
    obj._tags = tags  # written by the caller once the row exists
    return obj


def loadbalancer(services: Services, provider: Provider, body: s.LoadBalancerCreate, project_id: str,
                 address: str, subnet_id: str | None) -> m.LoadBalancer:
    services.validate(provider, "loadbalancer", body.model_dump(exclude={"listeners", "pools"}))
    return _tagged(m.LoadBalancer(
        **_common(body, project_id), provider=provider.name, vip_address=address,
        vip_subnet_id=subnet_id, vip_network_id=body.vip_network_id or subnet_id,
        vip_port_id=body.vip_port_id, flavor_id=body.flavor_id,
        availability_zone=body.availability_zone, revision=1, pending_since=m.utcnow()), body.tags)


def check_protocols(listener_protocol: str, pool_protocol: str) -> None:
    allowed = c.VALID_LISTENER_POOL_PROTOCOLS.get(listener_protocol, ())
    if not allowed:
        raise BadRequest(f"Protocol {listener_protocol} listeners cannot have child objects (pools, L7 policies).")
    if pool_protocol not in allowed:
        raise BadRequest(f"The pool protocol '{pool_protocol}' is invalid while the listener protocol "
                         f"is '{listener_protocol}'; allowed: {', '.join(allowed)}.")


def listener(services: Services, provider: Provider, body: s.ListenerCreate, lb: m.LoadBalancer,
             project_id: str) -> m.Listener:
    """A new listener; its TLS references resolved for ``project_id`` (``services.tls``)."""
    body.insert_headers = check_listener_extras(body.insert_headers, body.allowed_cidrs,
                                                body.protocol, lb.vip_address)
    fields = body.model_dump(exclude={"default_pool", "l7policies", "tags"})
    services.validate(provider, "listener", fields)
    row = _tagged(m.Listener(
        **_common(body, project_id), load_balancer_id=lb.id, protocol=body.protocol,
        protocol_port=body.protocol_port, vip_address=lb.vip_address,
        connection_limit=body.connection_limit, default_pool_id=body.default_pool_id,
        timeout_client_data=_or(body.timeout_client_data, c.DEFAULT_TIMEOUT_CLIENT_DATA),
        timeout_member_connect=_or(body.timeout_member_connect, c.DEFAULT_TIMEOUT_MEMBER_CONNECT),
        timeout_member_data=_or(body.timeout_member_data, c.DEFAULT_TIMEOUT_MEMBER_DATA),
        timeout_tcp_inspect=_or(body.timeout_tcp_inspect, c.DEFAULT_TIMEOUT_TCP_INSPECT),
        insert_headers=body.insert_headers, allowed_cidrs=body.allowed_cidrs,
        **body.model_dump(include=set(tls.LISTENER_TLS_FIELDS))), body.tags)
    tls.check_listener(row, services.keys)
    return row


@overload
def check_listener_extras(headers: dict[str, str], cidrs: list[str] | None,
                          protocol: str, vip_address: str) -> dict[str, str]: ...
@overload
def check_listener_extras(headers: dict[str, str] | None, cidrs: list[str] | None,
                          protocol: str, vip_address: str) -> dict[str, str] | None: ...
def check_listener_extras(headers: dict[str, str] | None, cidrs: list[str] | None,
                          protocol: str, vip_address: str) -> dict[str, str] | None:
    """The canonical insert_headers of a listener; BadRequest when they or allowed_cidrs do
    not fit its protocol or its VIP's address family."""
    try:
        canonical = None if headers is None else validate.insert_headers(headers, protocol)
    except ValueError as exc:
        raise BadRequest(f"Invalid input for listener.insert_headers: {exc}") from None
    version = ipaddress.ip_address(vip_address).version
    for cidr in cidrs or []:
        if ipaddress.ip_network(cidr).version != version:
            raise BadRequest(f"Invalid input for listener.allowed_cidrs: {cidr} is not of the "
                             f"IP version of the VIP (IPv{version}).")
    return canonical


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def check_port_free(session: Session, vip_address: str, port: int) -> None:
    taken = session.scalar(select(m.Listener.load_balancer_id).where(
        m.Listener.vip_address == vip_address, m.Listener.protocol_port == port).limit(1))
    if taken is not None:
        # Not naming the load balancer: it may be another project's.
        raise Conflict(f"Another listener already uses VIP {vip_address} port {port}.")


def check_default_pool(session: Session, listener_row: m.Listener, pool_id: str | None) -> None:
    """A default pool must be on the same load balancer, speak a compatible
    protocol and not be another listener's default pool already."""
    if pool_id is None:
        return
    pool = session.get(m.Pool, pool_id)
    if pool is None or pool.load_balancer_id != listener_row.load_balancer_id or \
            pool.provisioning_status == c.PENDING_DELETE:
        raise BadRequest(f"Pool {pool_id} not found on load balancer {listener_row.load_balancer_id}.")
    check_protocols(listener_row.protocol, pool.protocol)
    other = session.scalar(select(m.Listener.id).where(m.Listener.default_pool_id == pool_id,
                                                       m.Listener.id != listener_row.id).limit(1))
    if other is not None:
        raise Conflict(f"Pool {pool_id} is already the default pool of listener {other}.")


def pool(services: Services, provider: Provider, body: s.PoolCreate, lb_id: str, project_id: str) -> m.Pool:
    services.validate(provider, "pool", body.model_dump(exclude={"members", "healthmonitor", "tags"}))
    persistence = body.session_persistence.model_dump(exclude_none=True) if body.session_persistence else None
    row = _tagged(m.Pool(**_common(body, project_id), load_balancer_id=lb_id, protocol=body.protocol,
                         lb_algorithm=body.lb_algorithm, session_persistence=persistence,
                         tls_enabled=body.tls_enabled, **body.model_dump(include=set(tls.POOL_TLS_SETTINGS))),
                  body.tags)
    tls.check_pool(row, services.keys)
    return row


def member(services: Services, provider: Provider, body: s.MemberFields, pool_id: str, project_id: str) -> m.Member:
    services.validate(provider, "member", body.model_dump(exclude={"tags"}))
    row = m.Member(**_common(body, project_id), pool_id=pool_id, address=body.address,
                   protocol_port=body.protocol_port, weight=body.weight, backup=body.backup,
                   subnet_id=body.subnet_id, monitor_address=body.monitor_address,
                   monitor_port=body.monitor_port)
    row.operating_status = c.NO_MONITOR
    return _tagged(row, body.tags)


def healthmonitor(services: Services, provider: Provider, body: s.HealthMonitorCreate, pool_id: str,
                  project_id: str) -> m.HealthMonitor:
    services.validate(provider, "healthmonitor", body.model_dump(exclude={"tags"}))
    http = body.type in ("HTTP", "HTTPS")
    return _tagged(m.HealthMonitor(
        **_common(body, project_id), pool_id=pool_id, type=body.type, delay=body.delay,
        timeout=body.timeout, max_retries=body.max_retries, max_retries_down=body.max_retries_down,
        http_method=(body.http_method or "GET") if http else None,
        url_path=(body.url_path or "/") if http else None,
        expected_codes=(body.expected_codes or "200") if http else None,
        http_version=body.http_version, domain_name=body.domain_name), body.tags)


def pool_graph(session: Session, services: Services, provider: Provider, body: s.PoolCreate,
               lb_id: str, project_id: str) -> tuple[m.Pool, list[Any]]:
    """A pool with its members and monitor; returns the pool and every row made."""
    row = pool(services, provider, body, lb_id, project_id)
    rows: list[Any] = [row]
    seen: set[tuple[str, int]] = set()
    for member_body in body.members:
        key = (member_body.address, member_body.protocol_port)
        if key in seen:
            raise Conflict(f"Two members of one pool use {key[0]} port {key[1]}.")
        seen.add(key)
        rows.append(member(services, provider, member_body, row.id, project_id))
    if body.healthmonitor is not None:
        rows.append(healthmonitor(services, provider, body.healthmonitor, row.id, project_id))
    return row, rows


# --- L7 policies and rules -----------------------------------------------------

# The field each action needs; the other redirect fields are cleared, as Octavia does.
REDIRECT_FIELDS = {"REDIRECT_TO_POOL": "redirect_pool_id", "REDIRECT_TO_URL": "redirect_url",
                   "REDIRECT_PREFIX": "redirect_prefix", "REJECT": None}
DEFAULT_REDIRECT_CODE = 302


L7_PROTOCOLS = (c.PROTOCOL_HTTP, c.PROTOCOL_TERMINATED_HTTPS)


def check_l7_listener(listener_row: m.Listener) -> None:
    if listener_row.protocol not in L7_PROTOCOLS:
        raise BadRequest(f"L7 policies are only supported on HTTP and TERMINATED_HTTPS listeners; "
                         f"listener {listener_row.id} is {listener_row.protocol}.")


def check_rule_type(rule_type: str, listener_protocol: str) -> None:
    """Rules on the client's certificate need a listener that terminates TLS."""
    if rule_type in c.L7RULE_SSL_TYPES and listener_protocol != c.PROTOCOL_TERMINATED_HTTPS:
        raise BadRequest(f"Invalid input for rule: {rule_type} rules need a TERMINATED_HTTPS listener, "
                         f"not {listener_protocol}.")


def listener_of_policy(session: Session, policy_id: str) -> m.Listener:
    policy = session.get(m.L7Policy, policy_id)
    listener_row = None if policy is None else session.get(m.Listener, policy.listener_id)
    if listener_row is None:
        raise BadRequest(f"L7 policy {policy_id} not found.")
    return listener_row


def settle_redirect(session: Session, policy: m.L7Policy, listener_row: m.Listener) -> None:
    """Make a policy's redirect fields fit its action (create and update alike):
    BadRequest when the action's field is missing or names an unusable pool."""
    needed = REDIRECT_FIELDS[policy.action]
    if needed is not None and not getattr(policy, needed):
        raise BadRequest(f"Invalid input for l7policy: {policy.action} requires {needed}.")
    for field in ("redirect_pool_id", "redirect_url", "redirect_prefix"):
        if field != needed:
            setattr(policy, field, None)
    if policy.action in ("REDIRECT_TO_URL", "REDIRECT_PREFIX"):
        policy.redirect_http_code = policy.redirect_http_code or DEFAULT_REDIRECT_CODE
    else:
        policy.redirect_http_code = None
    if policy.redirect_pool_id is not None:
        _check_redirect_pool(session, policy.redirect_pool_id, listener_row)


def _check_redirect_pool(session: Session, pool_id: str, listener_row: m.Listener) -> None:
    pool_row = session.get(m.Pool, pool_id)
    if pool_row is None or pool_row.load_balancer_id != listener_row.load_balancer_id or \
            pool_row.provisioning_status == c.PENDING_DELETE:
        raise BadRequest(f"Invalid input for l7policy.redirect_pool_id: pool {pool_id} not found on "
                         f"load balancer {listener_row.load_balancer_id}.")
    check_protocols(listener_row.protocol, pool_row.protocol)


def l7rule(services: Services, provider: Provider, body: s.L7RuleCreate, policy_id: str,
           project_id: str, listener_protocol: str) -> m.L7Rule:
    check_rule_type(body.type, listener_protocol)
    services.validate(provider, "l7rule", body.model_dump(exclude={"tags"}))
    row = m.L7Rule(**_common(body, project_id), l7policy_id=policy_id, type=body.type,
                   compare_type=body.compare_type, key=body.key, value=body.value, invert=body.invert)
    return _tagged(row, body.tags)


def l7policy_graph(session: Session, services: Services, provider: Provider, body: s.L7PolicyCreate,
                   listener_row: m.Listener, project_id: str) -> tuple[m.L7Policy, list[Any]]:
    """A policy with its rules (and, in a fully populated create, its redirect pool's graph),
    not yet added, in the order to add them; ``position`` as given, for the caller to settle
    (``positions``)."""
    check_l7_listener(listener_row)
    services.validate(provider, "l7policy", body.model_dump(exclude={"rules", "redirect_pool", "tags"}))
    rows: list[Any] = []
    pool_id = body.redirect_pool_id
    if body.redirect_pool is not None:
        check_protocols(listener_row.protocol, body.redirect_pool.protocol)
        pool_row, rows = pool_graph(session, services, provider, body.redirect_pool,
                                    listener_row.load_balancer_id, project_id)
        pool_id = pool_row.id
    policy = m.L7Policy(**_common(body, project_id), listener_id=listener_row.id, action=body.action,
                        position=body.position,
                        redirect_pool_id=pool_id, redirect_url=body.redirect_url,
                        redirect_prefix=body.redirect_prefix, redirect_http_code=body.redirect_http_code)
    if body.redirect_pool is None:
        settle_redirect(session, policy, listener_row)
    else:  # the pool is in hand, not in the database yet
        _settle_new_pool(policy)
    rules = [l7rule(services, provider, rule, policy.id, project_id, listener_row.protocol)
             for rule in body.rules]
    return _tagged(policy, body.tags), rows + [policy] + rules


def _settle_new_pool(policy: m.L7Policy) -> None:
    if policy.action != "REDIRECT_TO_POOL":
        raise BadRequest("Invalid input for l7policy: redirect_pool is only valid with REDIRECT_TO_POOL.")
    policy.redirect_url = policy.redirect_prefix = None
    policy.redirect_http_code = None
