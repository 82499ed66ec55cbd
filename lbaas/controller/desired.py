"""The desired state of one load balancer, as agents and devices read it.

Objects on their way out (PENDING_DELETE) are left out, so converging a
device to this document performs the deletes as well.  Certificates are
resolved here, by the key manager and for the load balancer's project, so key
material travels only in this document: ``BadRequest`` when a reference no
longer resolves, ``APIError`` 503 when the key manager does not answer.

Served for every converge, so it reads Core rows (``graph.read_live``), not
ORM objects; the document is the same whichever reader built it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import keys, wire
from lbaas.db import graph
from lbaas.db.graph import Record
from lbaas.services import tls


def desired_state(session: Session, lb_id: str, key_manager: keys.KeyManager) -> wire.DesiredState:
    """The document for ``lb_id``; a ``wire.Deletion`` when it should not exist."""
    lb = graph.read_loadbalancer(session, lb_id)
    if lb is None:
        return wire.Deletion(id=lb_id, revision=None, deleted=True)
    if lb.provisioning_status == c.PENDING_DELETE:
        return wire.Deletion(id=lb.id, revision=lb.revision, deleted=True)
    return present(graph.read_live(session, lb), key_manager)


def present(live: graph.LiveGraph, key_manager: keys.KeyManager) -> wire.Present:
    """The document of a load balancer that exists, from its live graph."""
    lb = live.loadbalancer
    live_pools = {p.id for p in live.pools}
    return wire.Present(
        id=lb.id, project_id=lb.project_id, revision=lb.revision, name=lb.name,
        admin_state_up=lb.admin_state_up, vip_address=lb.vip_address, provider=lb.provider, deleted=False,
        listeners=[_listener(x, live_pools, live, key_manager) for x in live.listeners],
        pools=[_pool(p, live.pool_members(p.id), live.monitors.get(p.id), key_manager) for p in live.pools])


def _listener(x: Record, live_pools: set[str], live: graph.LiveGraph,
              key_manager: keys.KeyManager) -> wire.Listener:
    listener = wire.Listener(
        id=x.id, name=x.name, protocol=x.protocol, protocol_port=x.protocol_port,
        connection_limit=x.connection_limit, admin_state_up=x.admin_state_up,
        timeout_client_data=x.timeout_client_data, timeout_member_connect=x.timeout_member_connect,
        timeout_member_data=x.timeout_member_data, timeout_tcp_inspect=x.timeout_tcp_inspect,
        default_pool_id=x.default_pool_id if x.default_pool_id in live_pools else None,
        insert_headers=x.insert_headers or {}, allowed_cidrs=x.allowed_cidrs or [],
        tls=_listener_tls(x, key_manager) if x.protocol == c.PROTOCOL_TERMINATED_HTTPS else None)
    if x.protocol in graph.L7_PROTOCOLS:
        listener["l7policies"] = [_l7policy(p, live.policy_rules(p.id)) for p in live.listener_policies(x.id)]
    return listener


def _l7policy(p: Record, rules: list[Record]) -> wire.L7Policy:
    return wire.L7Policy(
        id=p.id, action=p.action, position=p.position, redirect_pool_id=p.redirect_pool_id,
        redirect_url=p.redirect_url, redirect_prefix=p.redirect_prefix,
        redirect_http_code=p.redirect_http_code, admin_state_up=p.admin_state_up,
        rules=[wire.L7Rule(id=r.id, type=r.type, compare_type=r.compare_type, key=r.key, value=r.value,
                           invert=r.invert, admin_state_up=r.admin_state_up) for r in rules])


def _listener_tls(x: Record, key_manager: keys.KeyManager) -> wire.ListenerTLS:
    default, sni, ca, crl = tls.resolve_listener(x, key_manager)
    refs = [x.default_tls_container_ref, *(x.sni_container_refs or [])]
    by_ref = dict(zip(refs, [default, *sni]))   # the default may be among the SNI ones: served once
    certificates = [_certificate(ref, cert) for ref, cert in by_ref.items()]
    return wire.ListenerTLS(
        default_certificate=certificates[0], sni_certificates=certificates[1:],
        client_authentication=x.client_authentication, client_ca=ca, client_crl=crl,
        versions=list(x.tls_versions or c.DEFAULT_TLS_VERSIONS), ciphers=x.tls_ciphers,
        alpn_protocols=list(x.alpn_protocols or c.DEFAULT_LISTENER_ALPN_PROTOCOLS),
        hsts_max_age=x.hsts_max_age, hsts_include_subdomains=x.hsts_include_subdomains,
        hsts_preload=x.hsts_preload)


def _certificate(ref: str | None, cert: keys.Certificate) -> wire.TLSCertificate:
    assert ref is not None
    return wire.TLSCertificate(id=keys.certificate_id(ref), certificate=cert.certificate,
                               private_key=cert.private_key, intermediates=list(cert.intermediates))


def _pool(p: Record, members: list[Record], hm: Record | None,
          key_manager: keys.KeyManager) -> wire.Pool:
    return wire.Pool(
        id=p.id, name=p.name, protocol=p.protocol, lb_algorithm=p.lb_algorithm, admin_state_up=p.admin_state_up,
        session_persistence=_persistence(p.session_persistence),
        members=[_member(x) for x in members], healthmonitor=None if hm is None else _monitor(hm),
        tls=_pool_tls(p, key_manager) if p.tls_enabled else None)


def _pool_tls(p: Record, key_manager: keys.KeyManager) -> wire.PoolTLS:
    cert, ca, crl = tls.resolve_pool(p, key_manager)
    return wire.PoolTLS(
        certificate=None if cert is None else _certificate(p.tls_container_ref, cert), ca=ca, crl=crl,
        versions=list(p.tls_versions or c.DEFAULT_TLS_VERSIONS), ciphers=p.tls_ciphers,
        alpn_protocols=list(p.alpn_protocols or c.DEFAULT_POOL_ALPN_PROTOCOLS))


def _persistence(sp: dict | None) -> wire.SessionPersistence | None:
    return None if not sp else wire.SessionPersistence(type=sp["type"], cookie_name=sp.get("cookie_name"))


def _member(x: Record) -> wire.Member:
    return wire.Member(id=x.id, name=x.name, address=x.address, protocol_port=x.protocol_port, weight=x.weight,
                       backup=x.backup, admin_state_up=x.admin_state_up, monitor_address=x.monitor_address,
                       monitor_port=x.monitor_port)


def _monitor(hm: Record) -> wire.HealthMonitor:
    return wire.HealthMonitor(
        id=hm.id, type=hm.type, delay=hm.delay, timeout=hm.timeout, max_retries=hm.max_retries,
        max_retries_down=hm.max_retries_down, http_method=hm.http_method, url_path=hm.url_path,
        expected_codes=hm.expected_codes,
        http_version=None if hm.http_version is None else f"{hm.http_version:.1f}",
        domain_name=hm.domain_name, admin_state_up=hm.admin_state_up)
