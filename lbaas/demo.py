"""``lbaas all-in-one --demo``: a load balancer in front of two local HTTP
back ends, made through the public API, and requests alternating between
them.  Also a worked example of the API."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Any

import httpx

LISTENER_PORT = 8080


def _backend(name: str) -> int:
    """A tiny HTTP server on 127.0.0.1 that answers its own name; returns its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = f"hello from {name}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # health checks hang up early; nothing worth a traceback

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _wait_active(api: httpx.Client, lb_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lb = api.get(f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]
        if lb["provisioning_status"] in ("ACTIVE", "ERROR"):
            return lb
        time.sleep(0.1)
    raise TimeoutError(f"load balancer {lb_id} is not ACTIVE after {timeout} s")


def run(url: str, token: str, subnet: str = "loopback") -> None:
    """Build the demo and print what the VIP answers."""
    time.sleep(1.0)  # let the agents report in
    ports = [_backend("backend-1"), _backend("backend-2")]
    api = httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=30)
    body = {"loadbalancer": {"name": "demo", "vip_subnet_id": subnet, "listeners": [{
        "name": "demo-http", "protocol": "HTTP", "protocol_port": LISTENER_PORT,
        "default_pool": {"name": "demo-pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                         "healthmonitor": {"type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 2},
                         "members": [{"address": "127.0.0.1", "protocol_port": port} for port in ports]}}]}}
    created = api.post("/v2/lbaas/loadbalancers", json=body)
    if created.status_code != 201:
        print(f"demo: could not create the load balancer: {created.text}", flush=True)
        return
    lb = _wait_active(api, created.json()["loadbalancer"]["id"])
    vip = f"http://{lb['vip_address']}:{LISTENER_PORT}/"
    print(f"demo: load balancer {lb['id']} is {lb['provisioning_status']}; VIP {vip}", flush=True)
    for _ in range(6):
        try:
            answer = httpx.get(vip, timeout=5).text.strip()
        except (httpx.HTTPError, socket.error) as exc:
            answer = f"no answer ({exc}); is the data plane noop?"
        print(f"demo: GET {vip} -> {answer}", flush=True)
    print(f"demo: try it yourself: curl {vip}", flush=True)
