"""VIP addresses without Neutron: given directly, or allocated from a
subnet configured in ``[vip_subnets]`` (id = CIDR)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas.errors import BadRequest, Conflict
from lbaas.db import models as m

# Above this many hosts a subnet is probed at random rather than scanned.
SCAN_LIMIT = 4096
PROBES = 64


class Subnets:
    def __init__(self, configured: Mapping[str, str]) -> None:
        self.networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        for ident, cidr in configured.items():
            try:
                self.networks[ident] = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"[vip_subnets] {ident}: {cidr!r} is not a CIDR") from None

    def resolve(self, session: Session, address: str | None, subnet_id: str | None) -> tuple[str, str | None]:
        """The VIP address and subnet of a new load balancer, or BadRequest/Conflict."""
        if subnet_id is None:
            return str(address), self._containing(address)
        network = self.networks.get(subnet_id)
        if network is None:
            raise BadRequest(f"Subnet {subnet_id} not found.")
        if address is not None:
            if ipaddress.ip_address(address) not in network:
                raise BadRequest(f"VIP address {address} is not in subnet {subnet_id} ({network}).")
            return address, subnet_id
        return self._allocate(session, subnet_id, network), subnet_id

    def _containing(self, address: str | None) -> str | None:
        ip = ipaddress.ip_address(address)
        return next((ident for ident, net in self.networks.items() if ip in net), None)

    def _allocate(self, session: Session, subnet_id: str, network: Any) -> str:
        if network.num_addresses <= SCAN_LIMIT:
            used = set(session.scalars(select(m.LoadBalancer.vip_address)
                                       .where(m.LoadBalancer.vip_subnet_id == subnet_id)))
            for host in network.hosts():
                if str(host) not in used:
                    return str(host)
        else:
            for _ in range(PROBES):
                candidate = str(network[random.randrange(1, network.num_addresses - 1)])
                taken = session.scalar(select(m.LoadBalancer.id).where(m.LoadBalancer.vip_address == candidate).limit(1))
                if taken is None:
                    return candidate
        raise Conflict(f"No free VIP address left in subnet {subnet_id} ({network}).")

    def document(self, ident: str) -> dict[str, Any]:
        """The subnet in Neutron's shape, for clients that look it up."""
        network = self.networks[ident]
        hosts = list(network.hosts()) if network.num_addresses <= SCAN_LIMIT else [network[1], network[-2]]
        return {
            "id": ident, "name": ident, "cidr": str(network), "ip_version": network.version,
            "network_id": ident, "gateway_ip": None, "enable_dhcp": False,
            "allocation_pools": [{"start": str(hosts[0]), "end": str(hosts[-1])}] if hosts else [],
            "project_id": "", "tenant_id": "", "description": "", "tags": [],
            "dns_nameservers": [], "host_routes": [], "subnetpool_id": None,
            "ipv6_address_mode": None, "ipv6_ra_mode": None, "shared": True,
        }
