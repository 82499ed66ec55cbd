"""HTTP(S) back ends on loopback, for data-plane tests and benchmarks.

A back end made with ``proxy=True`` expects a PROXY protocol header (v1 text or v2 binary,
https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt) before anything else on each
connection, drops a connection without a valid one, and answers the client source address
the header carried instead of its name.
"""

from __future__ import annotations

import http.server
import ipaddress
import itertools
import socket
import ssl
import struct
import threading
from dataclasses import dataclass

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included (the specification's bound)
#: v2 address family (high nibble of byte 13) -> (family name, bytes of one address).
_V2_FAMILIES = {0x1: ("TCP4", 4), 0x2: ("TCP6", 16)}


class Backend:
    """An HTTP(S) server answering its ``name``.

    ``/health`` answers ``health_status``; ``/hold`` blocks until ``release()``; every other
    path answers the name and sets a ``JSESSIONID`` cookie when the client sent none.
    """

    def __init__(self, name: str, tls: ssl.SSLContext | None = None, proxy: bool = False) -> None:
        self.name = name
        self.proxy = proxy
        self.proxy_headers: list[ProxyHeader] = []  # every header read, health checks' too
        self.health_status = 200
        self.hits = 0
        self.holding = 0
        self.last_headers: dict[str, str] = {}
        self._release = threading.Event()
        self._sessions = itertools.count(1)
        self.server = _Server(("127.0.0.1", 0), _handler(self), tls, self)
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

    def __init__(self, address, handler, tls: ssl.SSLContext | None, backend: Backend) -> None:
        self.tls = tls
        self.backend = backend
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        # The PROXY header and the TLS handshake are read in the request thread so a silent
        # client blocks no one. The header comes first: it precedes TLS on the wire.
        try:
            if self.backend.proxy:
                header = read_proxy_header(request)
                self.backend.proxy_headers.append(header)
                client_address = header.source or client_address  # LOCAL: the peer itself
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)
        except (OSError, ssl.SSLError, ProxyHeaderError):
            pass  # health checks and killed clients hang up early; no PROXY header: dropped

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
            # client_address is the PROXY header's source on a PROXY back end.
            answer = self.client_address[0] if backend.proxy else backend.name
            self._answer(200, answer.encode(), headers)

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


# --- the PROXY protocol ---------------------------------------------------------------------

class ProxyHeaderError(ValueError):
    """The connection did not start with a valid PROXY protocol header."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed PROXY header. ``source``/``destination`` are ``(address, port)``, or None
    for v1 ``UNKNOWN`` and v2 ``LOCAL`` (a health check of the proxy itself) or an address
    family this back end does not speak (UNIX, UNSPEC)."""

    version: int
    family: str                 # TCP4, TCP6, UNKNOWN (v1 and v2 alike)
    source: tuple[str, int] | None
    destination: tuple[str, int] | None


def read_proxy_header(sock: socket.socket, timeout: float = 5.0) -> ProxyHeader:
    """Read exactly the PROXY header at the start of ``sock`` (not one byte of what follows)
    and parse it; ProxyHeaderError when it is missing or malformed."""
    sock.settimeout(timeout)
    try:
        start = _recv_exact(sock, 12)  # v2's signature; the shortest v1 line is 15 bytes
        if start == V2_SIGNATURE:
            return _read_v2(sock)
        if start.startswith(b"PROXY "):
            return _parse_v1(_read_v1_line(sock, start))
        raise ProxyHeaderError(f"no PROXY signature: {start!r}")
    finally:
        sock.settimeout(None)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ProxyHeaderError(f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def _read_v1_line(sock: socket.socket, start: bytes) -> bytes:
    # Byte by byte: the HTTP request behind the line must stay unread.
    line = start
    while not line.endswith(b"\r\n"):
        if len(line) >= V1_MAX:
            raise ProxyHeaderError(f"v1 line longer than {V1_MAX} bytes")
        line += _recv_exact(sock, 1)
    return line[:-2]


def _parse_v1(line: bytes) -> ProxyHeader:
    """``PROXY TCP4|TCP6 src dst sport dport`` or ``PROXY UNKNOWN[ anything]``."""
    words = line.decode("ascii", "replace").split(" ")
    if len(words) >= 2 and words[1] == "UNKNOWN":
        return ProxyHeader(1, "UNKNOWN", None, None)
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed v1 line {line!r}")
    version = 4 if words[1] == "TCP4" else 6
    source = (_address(words[2], version), _port(words[4]))
    destination = (_address(words[3], version), _port(words[5]))
    return ProxyHeader(1, words[1], source, destination)


def _read_v2(sock: socket.socket) -> ProxyHeader:
    """After the signature: version/command, family/transport, length, then the addresses
    (and any TLVs, read and ignored)."""
    version_command, family_transport, length = struct.unpack("!BBH", _recv_exact(sock, 4))
    if version_command >> 4 != 2 or version_command & 0xF not in (0, 1):
        raise ProxyHeaderError(f"v2 version/command byte {version_command:#04x}")
    body = _recv_exact(sock, length)
    known = _V2_FAMILIES.get(family_transport >> 4)
    if version_command & 0xF == 0 or known is None:  # LOCAL, or UNSPEC/UNIX
        return ProxyHeader(2, "UNKNOWN", None, None)
    family, size = known
    if len(body) < 2 * size + 4:
        raise ProxyHeaderError(f"v2 {family} addresses need {2 * size + 4} bytes, got {len(body)}")
    source_port, destination_port = struct.unpack("!HH", body[2 * size:2 * size + 4])
    source = str(ipaddress.ip_address(body[:size]))
    destination = str(ipaddress.ip_address(body[size:2 * size]))
    return ProxyHeader(2, family, (source, source_port), (destination, destination_port))


def _address(text: str, version: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ProxyHeaderError(f"not an IP address: {text!r}") from None
    if address.version != version:
        raise ProxyHeaderError(f"{text} is not IPv{version}")
    return str(address)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535 or (text != "0" and text[0] == "0"):
        raise ProxyHeaderError(f"not a port: {text!r}")
    return int(text)
