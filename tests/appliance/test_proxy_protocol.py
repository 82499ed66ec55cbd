"""PROXY protocol towards members, seen by a back end that parses it (real HAProxy, loopback).

An HTTP listener with a PROXY pool sends a v1 header, a TCP listener with a PROXYV2 pool a
v2 header; the back end answers the client source address the header carried, so a client
bound to a second loopback address must read that address back. Health checks carry a
header too (``check-send-proxy``), or the members would never come ONLINE. The parser itself
is checked on hand-made headers, including ones it must refuse.
"""

import socket
import struct
from collections.abc import Callable, Iterator

import pytest

from lbaas.testing.backends import (V2_SIGNATURE, Backend, ProxyHeader, ProxyHeaderError,
                                    read_proxy_header)
from tests.appliance.helpers import fetch, loadbalancer, member, monitor, url_of, wait_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def proxy_backend() -> Iterator[Callable[[str], Backend]]:
    """A factory of back ends that require a PROXY header; stopped afterwards."""
    started: list[Backend] = []

    def make(name: str) -> Backend:
        started.append(Backend(name, proxy=True))
        return started[-1]

    yield make
    for backend in started:
        backend.stop()


@pytest.mark.parametrize("listener, pool, version, source", [
    ("HTTP", "PROXY", 1, "127.0.0.7"),
    ("TCP", "PROXYV2", 2, "127.0.0.8"),
])
def test_member_reads_the_client_address_from_the_header(device, proxy_backend, listener, pool,
                                                         version, source) -> None:
    backend = proxy_backend("a")
    lb = loadbalancer([member(backend)], protocol=listener, pool_protocol=pool,
                      healthmonitor=monitor("HTTP"))
    device.apply(lb)
    config = (device.folder(lb["id"]) / "haproxy.cfg").read_text()
    assert ("send-proxy-v2" if version == 2 else "send-proxy check") in config

    # The HTTP check passes only if its connection, too, starts with a header the back end reads.
    wait_for(lambda: device.status(lb["id"])["pools"][0]["members"][0]["operating_status"]
             == "ONLINE", what="member checked ONLINE through PROXY")
    response = fetch(url_of(lb), source=source)

    assert response.status_code == 200 and response.text == source
    header = next(h for h in reversed(backend.proxy_headers) if h.source
                  and h.source[0] == source)
    port = lb["listeners"][0]["protocol_port"]
    assert header == ProxyHeader(version, "TCP4", header.source, (lb["vip_address"], port))


def test_member_without_the_header_is_refused(device, proxy_backend) -> None:
    """The control: a plain HTTP pool to the same kind of back end gets no answer (502)."""
    lb = loadbalancer([member(proxy_backend("a"))])
    device.apply(lb)

    assert fetch(url_of(lb), source="127.0.0.7").status_code == 502


# --- the parser on hand-made headers ----------------------------------------------------------

def parse(data: bytes) -> tuple[ProxyHeader, bytes]:
    """Parse ``data`` sent on a socket pair; also return what was left unread."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        header = read_proxy_header(ours)
        rest = b""
        while chunk := ours.recv(4096):
            rest += chunk
    return header, rest


def v2(command: int, family: int, body: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


def test_parser_reads_v1_and_v2_and_leaves_the_request() -> None:
    request = b"GET / HTTP/1.1\r\n\r\n"
    six = socket.inet_pton(socket.AF_INET6, "2001:db8::1") + socket.inet_pton(socket.AF_INET6, "::1")

    assert parse(b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n" + request) == (
        ProxyHeader(1, "TCP4", ("10.0.0.1", 5000), ("10.0.0.2", 80)), request)
    assert parse(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")[0] == ProxyHeader(
        1, "TCP6", ("2001:db8::1", 1), ("::1", 65535))
    assert parse(b"PROXY UNKNOWN\r\n" + request) == (ProxyHeader(1, "UNKNOWN", None, None), request)
    ipv4 = bytes([10, 0, 0, 1, 10, 0, 0, 2]) + struct.pack("!HH", 5000, 80)
    tlv = b"\x04\x00\x01\x00"  # a NOOP TLV after the addresses: read and ignored
    assert parse(v2(1, 0x11, ipv4 + tlv) + request) == (
        ProxyHeader(2, "TCP4", ("10.0.0.1", 5000), ("10.0.0.2", 80)), request)
    assert parse(v2(1, 0x21, six + struct.pack("!HH", 1, 2)))[0] == ProxyHeader(
        2, "TCP6", ("2001:db8::1", 1), ("::1", 2))
    assert parse(v2(0, 0x00, b"") + request) == (ProxyHeader(2, "UNKNOWN", None, None), request)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                      # no header at all
    b"PROXY TCP4 10.0.0.1 10.0.0.2 5000\r\n",                   # a port missing
    b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80 \r\n",               # a trailing space
    b"PROXY TCP4 ::1 10.0.0.2 5000 80\r\n",                     # IPv6 under TCP4
    b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 65536\r\n",             # port out of range
    b"PROXY TCP4 10.0.0.1 10.0.0.2 05000 80\r\n",               # leading zero
    b"PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\n",                  # LF without CR
    b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",                   # longer than 107 bytes
    b"PROXY TCP4 10.0.0.1",                                     # cut short
    V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]) + bytes(12),      # version 1 in a v2 header
    V2_SIGNATURE + bytes([0x22, 0x11, 0, 12]) + bytes(12),      # command 2
    v2(1, 0x11, bytes(8)),                                      # TCP4 needs 12 bytes
    V2_SIGNATURE + bytes([0x21, 0x11, 0, 12]) + bytes(6),       # length beyond the data
])
def test_parser_refuses_malformed_headers(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)
