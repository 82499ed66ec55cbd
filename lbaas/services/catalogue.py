"""The operator's catalogue: flavors, availability zones and their profiles.

Contract:

- A profile belongs to one enabled provider; its data (``flavor_data``,
  ``availability_zone_data``) is a JSON object in a string whose keys are
  the provider's capabilities (``Provider.flavor_capabilities`` /
  ``availability_zone_capabilities``) and whose values are of the form each
  key wants.  Anything else is a 400 naming the offending keys; the data is
  stored parsed and rendered as a string again, as Octavia does.
- A flavor (keyed by id) or an availability zone (keyed by its name) names
  one profile.  A profile in use by a flavor or zone, and a flavor or zone
  in use by a load balancer, cannot be deleted (409).
- ``provider_for`` judges a load balancer's ``flavor_id`` and
  ``availability_zone`` at create: each exists (else 400), is enabled (else
  400) and belongs to the same provider as the other and as the body's
  ``provider`` (else 400); it answers the provider the load balancer goes to.
- The scheduler places a new load balancer by the ``group`` of its zone's
  profile, else of its flavor's (``Scheduler.requested_group``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas.api import schemas as s
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict, NotFound
from lbaas.services import Services

MAX_GROUP = 2**31 - 1


def _group(value: Any) -> str | None:
    """Why ``value`` is not an agent group number (None: it is one)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_GROUP:
        return f"an integer from 1 to {MAX_GROUP}"
    return None


# Capability key -> a check answering what the value should be (None: fine).
VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {"group": _group}


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of the catalogue as the API names it."""

    name: str                 # the document's key
    plural: str               # the list's key
    label: str
    model: Any
    key: str                  # the attribute that identifies one: id or name
    data: str | None = None   # a profile's data attribute
    capabilities: str = ""    # the Provider attribute the data is judged against
    profile: Kind | None = None
    profile_field: str = ""   # the attribute naming the profile


FLAVOR_PROFILE = Kind("flavorprofile", "flavorprofiles", "Flavor Profile", m.FlavorProfile, "id",
                      "flavor_data", "flavor_capabilities")
FLAVOR = Kind("flavor", "flavors", "Flavor", m.Flavor, "id", profile=FLAVOR_PROFILE,
              profile_field="flavor_profile_id")
ZONE_PROFILE = Kind("availability_zone_profile", "availability_zone_profiles", "Availability Zone Profile",
                    m.AvailabilityZoneProfile, "id", "availability_zone_data", "availability_zone_capabilities")
ZONE = Kind("availability_zone", "availability_zones", "Availability Zone", m.AvailabilityZone, "name",
            profile=ZONE_PROFILE, profile_field="availability_zone_profile_id")
# Which load balancer column refers to a flavor or a zone.
LB_COLUMN = {"flavor": m.LoadBalancer.flavor_id, "availability_zone": m.LoadBalancer.availability_zone}
COLUMNS = {FLAVOR_PROFILE.name: ("id", "name", "provider_name", "flavor_data"),
           FLAVOR.name: ("id", "name", "description", "enabled", "flavor_profile_id"),
           ZONE_PROFILE.name: ("id", "name", "provider_name", "availability_zone_data"),
           ZONE.name: ("name", "description", "enabled", "availability_zone_profile_id")}


def render(kind: Kind, row: Any) -> dict[str, Any]:
    document = {column: getattr(row, column) for column in COLUMNS[kind.name]}
    if kind.data is not None:
        document[kind.data] = json.dumps(document[kind.data], sort_keys=True)
    return document


def parse_data(services: Services, kind: Kind, provider_name: str, text: str) -> dict[str, Any]:
    """The profile data as a dict, once the provider is enabled and honours every key and value."""
    provider = services.provider(provider_name)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # 4 KiB of "[" nests deeper than the parser recurses
        raise BadRequest(f"{kind.data} must be a JSON object in a string.") from None
    if not isinstance(data, dict):
        raise BadRequest(f"{kind.data} must be a JSON object in a string.")
    honoured: Mapping[str, str] = getattr(provider, kind.capabilities)
    unknown = sorted(key for key in data if key not in honoured)
    if unknown:
        offered = ", ".join(sorted(honoured)) or "none"
        raise BadRequest(f"Provider '{provider.name}' does not support {kind.data} key(s) "
                         f"{', '.join(json.dumps(key) for key in unknown)}; supported: {offered}.")
    for key, value in data.items():
        wanted = VALUE_CHECKS[key](value)
        if wanted is not None:
            raise BadRequest(f"{kind.data} {key} must be {wanted}.")
    return data


def listed(services: Services, kind: Kind, filters: Mapping[str, list[str]]) -> list[dict[str, Any]]:
    """Every row of ``kind``, filtered on equality of any rendered attribute given."""
    with services.reading() as session:
        query = select(kind.model).order_by(getattr(kind.model, kind.key))
        for column in COLUMNS[kind.name]:
            if column in filters and column != kind.data:
                query = query.where(getattr(kind.model, column).in_(_typed(kind, column, filters[column])))
        return [render(kind, row) for row in session.scalars(query)]


def _typed(kind: Kind, column: str, values: list[str]) -> list[Any]:
    if column != "enabled":
        return values
    try:
        return [{"true": True, "false": False}[value.lower()] for value in values]
    except KeyError:
        raise BadRequest(f"Filter {column} must be true or false.") from None


def shown(services: Services, kind: Kind, ident: str) -> dict[str, Any]:
    with services.reading() as session:
        return render(kind, _get(session, kind, ident))


def _get(session: Session, kind: Kind, ident: str, lock: bool = False) -> Any:
    row = session.get(kind.model, ident, with_for_update=lock) if len(ident) <= 255 else None
    if row is None:
        raise NotFound(kind.label, ident)
    return row


def create(services: Services, kind: Kind, body: s.Body) -> dict[str, Any]:
    fields = body.model_dump(exclude_none=True)
    with services.transaction() as session:
        if kind.data is not None:
            fields[kind.data] = parse_data(services, kind, fields["provider_name"], fields[kind.data])
        if kind.profile is not None:
            _existing_profile(session, kind, fields[kind.profile_field])
        if kind.key == "name" and session.get(kind.model, fields["name"]) is not None:
            raise Conflict(f"{kind.label} {fields['name']} already exists.")
        row = kind.model(**fields)
        session.add(row)
        session.flush()
        return render(kind, row)


def _existing_profile(session: Session, kind: Kind, profile_id: str) -> None:
    assert kind.profile is not None
    if session.get(kind.profile.model, profile_id) is None:
        raise BadRequest(f"{kind.profile.label} {profile_id} does not exist.")


def update(services: Services, kind: Kind, ident: str, body: s.Body) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=True)
    with services.transaction() as session:
        row = _get(session, kind, ident, lock=True)
        if kind.data is not None and ({"provider_name", kind.data} & fields.keys()):
            text = fields.get(kind.data) or json.dumps(getattr(row, kind.data))
            fields[kind.data] = parse_data(services, kind, fields.get("provider_name") or row.provider_name, text)
        for field, value in fields.items():
            if value is None and field != "description":
                raise BadRequest(f"{field} may not be null.")
            setattr(row, field, "" if value is None else value)
        session.flush()
        return render(kind, row)


def delete(services: Services, kind: Kind, ident: str) -> None:
    with services.transaction() as session:
        row = _get(session, kind, ident, lock=True)
        _refuse_in_use(session, kind, ident)
        session.delete(row)


def _refuse_in_use(session: Session, kind: Kind, ident: str) -> None:
    if kind.name in LB_COLUMN:
        users = select(m.LoadBalancer.id).where(LB_COLUMN[kind.name] == ident).limit(1)
    else:
        child = FLAVOR if kind is FLAVOR_PROFILE else ZONE
        users = select(getattr(child.model, child.key)).where(
            getattr(child.model, child.profile_field) == ident).limit(1)
    if session.scalar(users) is not None:
        raise Conflict(f"{kind.label} {ident} is in use and cannot be deleted.")


# --- load balancers -------------------------------------------------------------------------

def provider_for(services: Services, body: s.LoadBalancerCreate) -> str | None:
    """The provider a new load balancer goes to, once its flavor and zone are judged."""
    chosen = {"provider": body.provider} if body.provider else {}
    groups: dict[str, int] = {}
    with services.reading() as session:
        for kind, ident in ((FLAVOR, body.flavor_id), (ZONE, body.availability_zone)):
            if ident is None:
                continue
            row = session.get(kind.model, ident)
            if row is None:
                raise BadRequest(f"{kind.label} {ident} does not exist.")
            if not row.enabled:
                raise BadRequest(f"{kind.label} {ident} is disabled.")
            profile = session.get(kind.profile.model, getattr(row, kind.profile_field)) if kind.profile else None
            assert profile is not None and kind.profile is not None
            chosen[kind.name] = profile.provider_name
            data = getattr(profile, kind.profile.data or "")
            if "group" in data:
                groups[kind.name] = data["group"]
    if len(set(chosen.values())) > 1:
        raise BadRequest("The load balancer's provider, flavor and availability zone must name one provider; "
                         f"they name {', '.join(f'{key}: {value}' for key, value in sorted(chosen.items()))}.")
    if len(set(groups.values())) > 1:
        raise BadRequest("The flavor and the availability zone name different agent groups.")
    return next(iter(chosen.values()), None)

