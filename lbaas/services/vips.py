"""VIP addresses without Neutron: given directly, or allocated from a
subnet configured in ``[vip_subnets]`` (id = CIDR).

A VIP is where a device binds a listening socket, so a tenant's choice is
confined: an address given directly must lie in a configured subnet (admins
may go outside when ``[api] admin_vip_anywhere`` is on), is never 0.0.0.0,
:: or multicast (``lbaas.validate``), and is never another load balancer's
VIP.  Refusals never name the other load balancer: it may be another
project's."""

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

    def resolve(self, session: Session, address: str | None, subnet_id: str | None,
                anywhere: bool = False) -> tuple[str, str | None]:
        """The VIP address and subnet of a new load balancer, or BadRequest/Conflict.

        ``anywhere``: the caller may take an address outside every configured subnet.
        """
        if subnet_id is None:
            assert address is not None  # LoadBalancerCreate asks for vip_address or vip_subnet_id
            subnet_id = self._containing(address)
            if subnet_id is None and not anywhere:
                raise BadRequest(f"VIP address {address} is not in any VIP subnet; "
                                 f"available: {', '.join(self.networks) or 'none'}.")
        elif subnet_id not in self.networks:
            raise BadRequest(f"Subnet {subnet_id} not found.")
        elif address is None:
            return self._allocate(session, subnet_id, self.networks[subnet_id]), subnet_id
        elif ipaddress.ip_address(address) not in self.networks[subnet_id]:
            raise BadRequest(f"VIP address {address} is not in subnet {subnet_id} "
                             f"({self.networks[subnet_id]}).")
        _check_unused(session, str(address))
        return str(address), subnet_id

    def _containing(self, address: str) -> str | None:
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


def _check_unused(session: Session, address: str) -> None:
    taken = session.scalar(select(m.LoadBalancer.id).where(m.LoadBalancer.vip_address == address).limit(1))
    if taken is not None:
        raise Conflict(f"VIP address {address} is already in use.")
