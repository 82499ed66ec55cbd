"""HTTP(S) back ends on loopback, for data-plane tests and benchmarks."""

from __future__ import annotations

import http.server
import itertools
import ssl
import threading

class Backend:
    """An HTTP(S) server answering its ``name``.

    ``/health`` answers ``health_status``; ``/hold`` blocks until ``release()``; every other
    path answers the name and sets a ``JSESSIONID`` cookie when the client sent none.
    """

    def __init__(self, name: str, tls: ssl.SSLContext | None = None) -> None:
        self.name = name
        self.health_status = 200
        self.hits = 0
        self.holding = 0
        self.last_headers: dict[str, str] = {}
        self._release = threading.Event()
        self._sessions = itertools.count(1)
        self.server = _Server(("127.0.0.1", 0), _handler(self), tls)
        self.address, self.port = "127.0.0.1", self.server.server_address[1]
        # A short poll interval keeps stop() (shutdown) fast.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        """Close the listening socket: new connections are refused (a dead member)."""
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def new_session(self) -> str:
        return f"{self.name}-{next(self._sessions)}"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs in the request thread so a silent client blocks no one.
        try:
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError):
            pass  # health checks and killed clients hang up early

    def handle_error(self, request, client_address) -> None:
        pass


def _handler(backend: Backend) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(backend.health_status, b"health")
                return
            if self.path == "/hold":
                backend.holding += 1
                backend._release.wait(20)
            backend.hits += 1
            backend.last_headers = dict(self.headers)
            headers = {}
            if "JSESSIONID=" not in self.headers.get("Cookie", ""):
                headers["Set-Cookie"] = f"JSESSIONID={backend.new_session()}; Path=/"
            self._answer(200, backend.name.encode(), headers)

        def _answer(self, code: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler
