"""Device drivers: one interface (``base.DeviceDriver``), one module each."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from lbaas.agent.drivers.base import DeviceDriver

DRIVERS = {
    "noop": "lbaas.agent.drivers.noop:NoopDriver",
    "haproxy": "lbaas.agent.drivers.haproxy:HAProxyDriver",
    "bigip": "lbaas.agent.drivers.bigip:BigIPDriver",
}


def load(name: str, options: Mapping[str, str]) -> DeviceDriver:
    """An instance of the driver called ``name``."""
    try:
        module_name, class_name = DRIVERS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown device_driver {name!r}; known: {', '.join(DRIVERS)}") from None
    return getattr(importlib.import_module(module_name), class_name)(options)
