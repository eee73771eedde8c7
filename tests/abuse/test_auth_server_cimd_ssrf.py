"""Abuse: a client_id URL whose host is an IPv6 address carrying a private IPv4 address (CIMD SSRF).

Measured on main: `client_id=https://[64:ff9b::a9fe:a9fe]/...` passed the address guard and the server
tried to connect to it: through a NAT64 gateway that is 169.254.169.254, the cloud metadata service. The
same held for 6to4 (2002::/16), the IPv4-compatible form (::a.b.c.d) and local-use NAT64
(64:ff9b:1::/48). Bounded outcome: every such form is refused before any connection, whether the URL
names the address or a host name resolves to it.

The fetch runs in process, with a seam where the HTTP stack opens its TCP connections (anyio.connect_tcp,
which httpcore2 calls): it records the attempt and fails it, so no packet leaves even where an attempt
happens. A mock, because no real network here routes NAT64 or 6to4 to observe the attempt otherwise. The
seam is shown to see attempts: a public address in the same forms is attempted.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import anyio
import pytest
from auth_server.document_fetch import FetchPolicy, FetchRefused, fetch_document

POLICY = FetchPolicy(timeout_seconds=2.0, max_bytes=5120, allow_loopback=False)
METADATA_SERVICE = "169.254.169.254"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every TCP connection the fetch attempts, as host:port; each attempt fails (nothing is sent)."""
    attempts: list[str] = []

    async def record(remote_host: str, remote_port: int, **_: Any) -> None:
        attempts.append(f"{remote_host}:{remote_port}")
        raise OSError("the test's connection seam refuses every connection")

    monkeypatch.setattr(anyio, "connect_tcp", record)
    return attempts


def _teredo(client: str) -> str:
    """A Teredo address (2001::/32) whose client, the address packets go to, is `client`."""
    obfuscated = int.from_bytes(socket.inet_aton(client), "big") ^ 0xFFFFFFFF
    return f"2001:0:4136:e378:8000:63bf:{obfuscated >> 16:x}:{obfuscated & 0xFFFF:x}"


EMBEDDING_THE_METADATA_SERVICE = {
    "nat64": "64:ff9b::a9fe:a9fe",
    "nat64-dotted": "64:ff9b::169.254.169.254",
    "local-use-nat64": "64:ff9b:1::a9fe:a9fe",
    "6to4": "2002:a9fe:a9fe::1",
    "ipv4-compatible": "::169.254.169.254",
    "ipv4-mapped": "::ffff:169.254.169.254",
    "teredo": _teredo(METADATA_SERVICE),
}


@pytest.mark.parametrize("address", EMBEDDING_THE_METADATA_SERVICE.values(), ids=EMBEDDING_THE_METADATA_SERVICE)
@pytest.mark.anyio
async def test_an_ipv6_literal_carrying_a_private_ipv4_is_refused_without_a_connection(
    address: str, connections: list[str]
) -> None:
    with pytest.raises(FetchRefused, match="private or special-use address, which this server does not fetch from"):
        await fetch_document(f"https://[{address}]/client.json", POLICY, ssl.create_default_context())
    assert connections == []


@pytest.mark.parametrize("address", ["64:ff9b::a9fe:a9fe", "2002:a00:1::1", "64:ff9b::7f00:1"])
@pytest.mark.anyio
async def test_a_host_name_resolving_to_such_an_address_is_refused_without_a_connection(
    address: str, connections: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def dns64(host: str, port: int, **_: Any) -> list[Any]:  # what a DNS64 resolver may answer
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    monkeypatch.setattr(anyio, "getaddrinfo", dns64)
    with pytest.raises(FetchRefused, match="address, which this server does not fetch from"):
        await fetch_document("https://client.example.test/client.json", POLICY, ssl.create_default_context())
    assert connections == []


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "::ffff:8.8.8.8"])
@pytest.mark.anyio
async def test_the_seam_sees_the_attempt_for_a_public_ipv4_in_the_same_forms(
    address: str, connections: list[str]
) -> None:
    with pytest.raises(FetchRefused, match="could not be fetched"):  # the seam failed the connection
        await fetch_document(f"https://[{address}]/client.json", POLICY, ssl.create_default_context())
    assert len(connections) == 1
    assert connections[0].endswith(":443")


@pytest.mark.parametrize("address", ["2002:808:808::1", _teredo("8.8.8.8")], ids=["6to4", "teredo"])
@pytest.mark.anyio
async def test_6to4_and_teredo_are_refused_whatever_they_carry(address: str, connections: list[str]) -> None:
    """Deprecated transition forms, classified differently by Python releases: refused on every interpreter."""
    with pytest.raises(FetchRefused, match="6to4 or Teredo"):
        await fetch_document(f"https://[{address}]/client.json", POLICY, ssl.create_default_context())
    assert connections == []
