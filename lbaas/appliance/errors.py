"""Failures of the device service, each carrying the HTTP status it is answered with."""


class DeviceFault(Exception):
    """A request the device could not carry out.

    ``status_code`` is the HTTP status, ``faultcode`` is ``"Client"`` when the request is at
    fault and ``"Server"`` when the device is; ``str(fault)`` is the faultstring.
    """

    status_code = 500
    faultcode = "Server"


class InvalidRequest(DeviceFault):
    """The request is malformed; nothing was changed."""

    status_code = 400
    faultcode = "Client"


class ConfigRejected(DeviceFault):
    """HAProxy refused the rendered configuration (``haproxy -c``); the old one stays."""

    status_code = 422
    faultcode = "Client"


class Conflict(DeviceFault):
    """The request clashes with another load balancer on this device (same address:port)."""

    status_code = 409
    faultcode = "Client"


class HAProxyFailure(DeviceFault):
    """HAProxy could not be started, reloaded or reached."""

    status_code = 500
    faultcode = "Server"
