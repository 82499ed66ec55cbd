"""The schema every controller shares.

Column names are the Octavia v2 attribute names, so that the API layer
maps rows to documents without a translation table.  The schema itself is
created only by the Alembic migrations in ``lbaas/db/migrations``; these
models must stay in step with them (a test compares the two).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint, true)
from sqlalchemy.dialects.mysql import MEDIUMTEXT
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> dt.datetime:
    """Naive UTC, which every backend stores without surprises."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class Base(DeclarativeBase):
    pass


ID = String(36)
NAME = String(255)
# Widths of key manager references (URLs) and of an OpenSSL cipher string.
REF_LENGTH = 1024
CIPHERS_LENGTH = 2048


class ProvisionedMixin:
    """The attributes every load-balancing object carries."""

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(NAME, default="")
    description: Mapped[str] = mapped_column(NAME, default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    provisioning_status: Mapped[str] = mapped_column(String(16))
    operating_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class LoadBalancer(ProvisionedMixin, Base):
    __tablename__ = "load_balancer"
    provider: Mapped[str] = mapped_column(String(64))
    # Nullable in the schema (0001), but every load balancer gets its VIP address when created.
    vip_address: Mapped[str] = mapped_column(String(64), nullable=True)
    vip_subnet_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vip_network_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vip_port_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    flavor_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Bumped by every change to the load balancer's graph; agents report the
    # revision they converged to, and older reports are ignored.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # When the current change started (for the pending sweep) and why the
    # load balancer is in ERROR or still waiting.
    pending_since: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Why the last change failed (constants.ERROR_KIND_*): a device error is
    # converged again once the device answers; a rejected one never by itself.
    error_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    stats: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_load_balancer_created", "created_at", "id"),
        Index("ix_load_balancer_project_created", "project_id", "created_at", "id"),
        Index("ix_load_balancer_name", "name"),
        Index("ix_load_balancer_vip_address", "vip_address"),
        Index("ix_load_balancer_pending", "provisioning_status", "pending_since"),
    )


class Listener(ProvisionedMixin, Base):
    __tablename__ = "listener"
    load_balancer_id: Mapped[str] = mapped_column(ID, ForeignKey("load_balancer.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(32))
    protocol_port: Mapped[int] = mapped_column(Integer)
    # Copied from the load balancer so that the database itself keeps a
    # VIP address + port unique across all load balancers.
    vip_address: Mapped[str] = mapped_column(String(64))
    connection_limit: Mapped[int] = mapped_column(Integer, default=-1)
    # No foreign key: pools and listeners refer to each other; the API
    # clears this when the pool goes.
    default_pool_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    timeout_client_data: Mapped[int] = mapped_column(Integer)
    timeout_member_connect: Mapped[int] = mapped_column(Integer)
    timeout_member_data: Mapped[int] = mapped_column(Integer)
    timeout_tcp_inspect: Mapped[int] = mapped_column(Integer)
    insert_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    allowed_cidrs: Mapped[list | None] = mapped_column(JSON, nullable=True)
    stats: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # TLS termination (TERMINATED_HTTPS): references to a key manager, never key material.
    default_tls_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    sni_container_refs: Mapped[list | None] = mapped_column(JSON, nullable=True)
    client_authentication: Mapped[str] = mapped_column(String(16), default="NONE")
    client_ca_tls_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    client_crl_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    tls_versions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    tls_ciphers: Mapped[str | None] = mapped_column(String(CIPHERS_LENGTH), nullable=True)
    alpn_protocols: Mapped[list | None] = mapped_column(JSON, nullable=True)
    hsts_max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hsts_include_subdomains: Mapped[bool] = mapped_column(Boolean, default=False)
    hsts_preload: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("vip_address", "protocol_port", name="uq_listener_vip_port"),
        Index("ix_listener_lb", "load_balancer_id"),
        Index("ix_listener_project_created", "project_id", "created_at", "id"),
        Index("ix_listener_created", "created_at", "id"),
        Index("ix_listener_default_pool", "default_pool_id"),
    )


class Pool(ProvisionedMixin, Base):
    __tablename__ = "pool"
    load_balancer_id: Mapped[str] = mapped_column(ID, ForeignKey("load_balancer.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(32))
    lb_algorithm: Mapped[str] = mapped_column(String(32))
    session_persistence: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    tls_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Re-encryption towards members (tls_enabled): references, as on listeners.
    tls_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    ca_tls_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    crl_container_ref: Mapped[str | None] = mapped_column(String(REF_LENGTH), nullable=True)
    tls_versions: Mapped[list | None] = mapped_column(JSON, nullable=True)
    tls_ciphers: Mapped[str | None] = mapped_column(String(CIPHERS_LENGTH), nullable=True)
    alpn_protocols: Mapped[list | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (
        Index("ix_pool_lb", "load_balancer_id"),
        Index("ix_pool_project_created", "project_id", "created_at", "id"),
        Index("ix_pool_created", "created_at", "id"),
    )


class Member(ProvisionedMixin, Base):
    __tablename__ = "member"
    pool_id: Mapped[str] = mapped_column(ID, ForeignKey("pool.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    protocol_port: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    backup: Mapped[bool] = mapped_column(Boolean, default=False)
    subnet_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    monitor_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    monitor_port: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        UniqueConstraint("pool_id", "address", "protocol_port", name="uq_member_address_port"),
        Index("ix_member_project_created", "project_id", "created_at", "id"),
    )


class HealthMonitor(ProvisionedMixin, Base):
    __tablename__ = "health_monitor"
    pool_id: Mapped[str] = mapped_column(ID, ForeignKey("pool.id", ondelete="CASCADE"), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    delay: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    max_retries: Mapped[int] = mapped_column(Integer)
    max_retries_down: Mapped[int] = mapped_column(Integer, default=3)
    http_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    url_path: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    expected_codes: Mapped[str | None] = mapped_column(String(64), nullable=True)
    http_version: Mapped[float | None] = mapped_column(Float, nullable=True)
    domain_name: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        Index("ix_health_monitor_project_created", "project_id", "created_at", "id"),
        Index("ix_health_monitor_created", "created_at", "id"),
    )


class L7Policy(ProvisionedMixin, Base):
    """A listener's policy; ``position`` runs 1..n per listener without gaps (the API keeps it so)."""

    __tablename__ = "l7policy"
    listener_id: Mapped[str] = mapped_column(ID, ForeignKey("listener.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    # No foreign key, as listener.default_pool_id: a pool in use here cannot be deleted (409).
    redirect_pool_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    redirect_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    redirect_prefix: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    redirect_http_code: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        Index("ix_l7policy_listener", "listener_id", "position"),
        Index("ix_l7policy_redirect_pool", "redirect_pool_id"),
        Index("ix_l7policy_project_created", "project_id", "created_at", "id"),
        Index("ix_l7policy_created", "created_at", "id"),
    )


class L7Rule(ProvisionedMixin, Base):
    """One condition of a policy (its name and description are unused, as in Octavia)."""

    __tablename__ = "l7rule"
    l7policy_id: Mapped[str] = mapped_column(ID, ForeignKey("l7policy.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    compare_type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    value: Mapped[str] = mapped_column(String(1024))
    invert: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index("ix_l7rule_policy", "l7policy_id"),
        Index("ix_l7rule_project_created", "project_id", "created_at", "id"),
        Index("ix_l7rule_created", "created_at", "id"),
    )


class Tag(Base):
    """One tag of one object; kept apart so tag filters use an index."""

    __tablename__ = "tag"
    resource_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index("ix_tag_tag", "tag", "resource_id"),)


class Quota(Base):
    __tablename__ = "quota"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    load_balancer: Mapped[int | None] = mapped_column(Integer, nullable=True)
    listener: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pool: Mapped[int | None] = mapped_column(Integer, nullable=True)
    member: Mapped[int | None] = mapped_column(Integer, nullable=True)
    health_monitor: Mapped[int | None] = mapped_column(Integer, nullable=True)
    l7policy: Mapped[int | None] = mapped_column(Integer, nullable=True)
    l7rule: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Agent(Base):
    """An agent process, known from its state reports."""

    __tablename__ = "agent"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    host: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))
    group: Mapped[int] = mapped_column("environment_group", Integer, default=1)
    device_driver: Mapped[str] = mapped_column(String(64), default="noop")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    # The database's clock, never the agent's: see DESIGN.md "active agent".
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    configurations: Mapped[dict] = mapped_column(JSON, default=dict)
    capacity_score: Mapped[float] = mapped_column(Float, default=0.0)
    # Kept in step with the binding table in the same transaction, so that
    # "least loaded" never counts bindings.
    loadbalancer_count: Mapped[int] = mapped_column(Integer, default=0)
    # Last liveness the sweep logged, to log transitions once.
    alive_seen: Mapped[bool] = mapped_column(Boolean, default=True)
    # The running agent process that owns this row (one host, one agent); NULL
    # once it stopped cleanly, so that a restart takes over at once.
    instance_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # False while the agent reports its device down: no new load balancers.
    device_up: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    __table_args__ = (
        UniqueConstraint("environment", "host", name="uq_agent_environment_host"),
        Index("ix_agent_environment", "environment", "environment_group", "heartbeat_at"),
    )


class Binding(Base):
    """Load balancer -> agent, for the load balancer's lifetime."""

    __tablename__ = "binding"
    loadbalancer_id: Mapped[str] = mapped_column(ID, ForeignKey("load_balancer.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ID, ForeignKey("agent.id"))
    project_id: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_binding_agent", "agent_id"),
        Index("ix_binding_affinity", "environment", "project_id", "agent_id"),
    )


class ProjectLock(Base):
    """A row per (environment, project) that schedulers lock, so that two
    servers placing one project's new load balancers at once agree."""

    __tablename__ = "project_lock"
    environment: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)


# The local key store (lbaas.keys.local): Barbican-shaped secrets and containers.  Up to
# 64 KiB of payload, Fernet-encrypted and base64 encoded, exceeds MySQL's TEXT (64 KiB).
KEY_PAYLOAD = Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb")


class KeySecret(Base):
    """A secret of the local key store; the payload only ever encrypted (Fernet)."""

    __tablename__ = "key_secret"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(NAME, nullable=True)
    secret_type: Mapped[str] = mapped_column(String(32))
    payload_content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    algorithm: Mapped[str | None] = mapped_column(String(255), nullable=True)
    bit_length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mode: Mapped[str | None] = mapped_column(String(255), nullable=True)
    expiration: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    encrypted_payload: Mapped[str | None] = mapped_column(KEY_PAYLOAD, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_key_secret_project_created", "project_id", "created_at", "id"),)


class KeyContainer(Base):
    """A container of the local key store: named references to secrets of the same project."""

    __tablename__ = "key_container"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(NAME, nullable=True)
    type: Mapped[str] = mapped_column(String(16))
    # [{"name": "certificate", "secret_id": "<uuid>"}, ...]: ids, so refs follow the base URL.
    secret_refs: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_key_container_project_created", "project_id", "created_at", "id"),)


class FlavorProfile(Base):
    """What a flavor means to one provider: ``flavor_data``, a JSON object of that provider's
    flavor capabilities (validated by the API against them)."""

    __tablename__ = "flavor_profile"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(NAME)
    provider_name: Mapped[str] = mapped_column(String(64))
    flavor_data: Mapped[dict] = mapped_column(JSON, default=dict)


class Flavor(Base):
    """An operator-defined offer a load balancer may name (``flavor_id``)."""

    __tablename__ = "flavor"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str] = mapped_column(NAME, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    flavor_profile_id: Mapped[str] = mapped_column(ID, ForeignKey("flavor_profile.id"))

    __table_args__ = (UniqueConstraint("name", name="uq_flavor_name"),
                      Index("ix_flavor_profile", "flavor_profile_id"))


class AvailabilityZoneProfile(Base):
    """Where an availability zone is for one provider: ``availability_zone_data`` (for an
    agent provider, the group of agents)."""

    __tablename__ = "availability_zone_profile"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(NAME)
    provider_name: Mapped[str] = mapped_column(String(64))
    availability_zone_data: Mapped[dict] = mapped_column(JSON, default=dict)


class AvailabilityZone(Base):
    """A named zone a load balancer may ask for (``availability_zone``); its name is its key."""

    __tablename__ = "availability_zone"
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    description: Mapped[str] = mapped_column(NAME, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    availability_zone_profile_id: Mapped[str] = mapped_column(ID, ForeignKey("availability_zone_profile.id"))

    __table_args__ = (Index("ix_availability_zone_profile", "availability_zone_profile_id"),)
