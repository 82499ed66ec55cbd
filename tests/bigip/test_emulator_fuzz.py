"""Hostile declarations against the emulator's AS3 checks and LTM derivation: whatever
value lands wherever, the answer is accepted or a DeclarationInvalid, never a crash
(a crash would be a 500 a real device does not give)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lbaas.testing.bigip import ltm
from lbaas.testing.bigip.device import Device
from lbaas.testing.bigip.schema import DeclarationInvalid, validate

SAMPLE: dict[str, Any] = {
    "class": "ADC", "schemaVersion": "3.0.0", "id": "fuzz",
    "T": {"class": "Tenant", "A": {
        "class": "Application", "template": "https",
        "serviceMain": {"class": "Service_HTTPS", "virtualAddresses": ["10.0.0.1"], "pool": "p",
                        "serverTLS": "tls", "persistenceMethods": [{"use": "persist"}],
                        "iRules": ["rule"], "redirect80": False},
        "p": {"class": "Pool", "monitors": [{"use": "mon"}, "http"],
              "members": [{"servicePort": 80, "serverAddresses": ["192.0.2.1"], "adminState": "offline"},
                          {"servicePort": 81, "servers": [{"address": "192.0.2.2", "name": "two"}]}]},
        "tcp": {"class": "Service_TCP", "virtualAddresses": [{"use": "addr"}, ["10.0.0.3", "10.1.0.0/16"]],
                "virtualPort": 81, "layer4": "tcp", "pool": {"use": "/T/A/p"}},
        "addr": {"class": "Service_Address", "virtualAddress": "10.0.0.2"},
        "mon": {"class": "Monitor", "monitorType": "http", "send": "GET /", "interval": 5},
        "persist": {"class": "Persist", "persistenceMethod": "cookie"},
        "rule": {"class": "iRule", "iRule": "when HTTP_REQUEST {}"},
        "tls": {"class": "TLS_Server", "certificates": [{"certificate": "cert"}]},
        "cert": {"class": "Certificate", "certificate": "PEM", "privateKey": "PEM"}}}}

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
                    | st.text(max_size=12) | st.sampled_from(["p", "mon", "/T/A/p", "http", "Pool", "10.0.0.1"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found += _paths(child, prefix + (key,))
    return found


PATHS = _paths(SAMPLE)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), JSON)
def test_any_value_anywhere_is_accepted_or_refused_cleanly(path: tuple[Any, ...], value: Any) -> None:
    declaration = copy.deepcopy(SAMPLE)
    target: Any = declaration
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        validate(declaration)
    except DeclarationInvalid as exc:
        assert exc.errors and all(isinstance(e, str) and e.startswith("/") for e in exc.errors)
        return
    tenants = {name: declaration[name] for name in ("T",) if isinstance(declaration.get(name), dict)}
    ltm.virtuals(tenants)
    for pool in ltm.pools(tenants):
        ltm.Health().pool(pool)
    device = Device("fuzz", "admin", "admin")
    task = device.submit(deploy=declaration)
    assert task.results is not None and task.status in (200, 422)
