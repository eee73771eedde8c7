"""Fetch a small document from a URL an anonymous caller chose (a client ID metadata document), safely.

Anyone can make this server fetch a URL by sending it as a `client_id`, so the fetch is built so that it
cannot be aimed at anything but a public web server (SSRF, draft-ietf-oauth-client-id-metadata-document
"Server Side Request Forgery"):

- **Addresses.** The host is resolved first and every address it resolves to is checked: private,
  loopback, link-local, multicast, reserved and other special-use addresses (RFC 6890) are refused, and
  nothing is sent. An IPv6 address that carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
  IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`) is also
  judged by that IPv4 address, so `[64:ff9b::a9fe:a9fe]` is 169.254.169.254 and refused; local-use
  NAT64 (`64:ff9b:1::/48`) is refused whole. Loopback is allowed only behind the development setting
  (AUTH_SERVER_CIMD_ALLOW_LOOPBACK); the rest never. An IP literal is checked without any lookup.
- **No DNS rebinding.** The connection goes to the address that was checked, not to the host name
  again: the URL is rewritten to that IP, the `Host` header and the TLS server name (SNI, and the
  certificate check) keep the original host. Re-resolving at connect time would leave a window in which
  a hostile DNS server answers with a public address for the check and a private one for the connection.
  A fresh client per fetch means no pooled connection is ever reused for another host. A host with
  several addresses (localhost: ::1 and 127.0.0.1) has all of them checked, then tried in order.
- **Bounded.** One deadline for all of it (resolve, connect, TLS, read), no redirects (a 3xx is an
  error), at most `max_bytes` read (`Accept-Encoding: identity`, and a compressed answer is refused, so
  the limit counts real bytes), a JSON content type. No environment proxies: a proxy would resolve the
  name itself, out of reach of the address check.
- **Caching.** `cache_lifetime` turns the response's Cache-Control / Expires into seconds (RFC 9111);
  the caller applies its own lower and upper bounds.

Refusals raise FetchRefused with a fixed, user-readable reason (never text from the fetched response).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, urlsplit

import anyio
import httpx2

from auth_server.uris import LOOPBACK_HOSTS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_URL_LENGTH = 2048


class FetchRefused(Exception):
    """The document was not fetched or not accepted; the message says why, in a sentence for the user."""


@dataclass(frozen=True)
class FetchPolicy:
    timeout_seconds: float
    max_bytes: int
    allow_loopback: bool  # development only


@dataclass(frozen=True)
class FetchedDocument:
    body: bytes
    # From the caching headers: None when they say nothing, 0 when the document must not be reused.
    cache_seconds: float | None


def checked_url(url: str, allow_loopback: bool) -> SplitResult:
    """`url` split, if it may be fetched as a Client Identifier URL (the draft's rules); else FetchRefused.

    https with a host and a path other than `/`, no userinfo, fragment or dot segments. Plain http only
    for a loopback host, and only with the development setting.
    """
    if len(url) > _MAX_URL_LENGTH:
        raise FetchRefused(f"the client_id URL is longer than {_MAX_URL_LENGTH} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        # urlsplit would silently drop some of them, and the URL must be compared exactly as sent.
        raise FetchRefused("the client_id URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises for a malformed one
    except ValueError:
        raise FetchRefused("the client_id is not a valid URL") from None
    if not host:
        raise FetchRefused("the client_id URL has no host")
    if parts.scheme == "http" and not (allow_loopback and host in LOOPBACK_HOSTS):
        raise FetchRefused("the client_id URL must use https")
    if parts.scheme not in ("https", "http"):
        raise FetchRefused("the client_id URL must use https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FetchRefused("the client_id URL must not contain a user name or password")
    if parts.fragment or "#" in url:
        raise FetchRefused("the client_id URL must not contain a fragment")
    if parts.path in ("", "/"):
        raise FetchRefused("the client_id URL must have a path (e.g. /client.json)")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise FetchRefused("the client_id URL must not contain . or .. path segments")
    return parts


# IPv6 forms that reach an IPv4 address (RFC 6890 and the IANA special-purpose registry): the IPv4
# address they carry is checked under the IPv4 rules. IPv4-mapped (::ffff:a.b.c.d) is `ipv4_mapped`,
# 6to4 (2002::/16) `sixtofour`, Teredo (2001::/32) `teredo`; these two have no property:
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix: 64:ff9b::a.b.c.d
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d, deprecated (RFC 4291 §2.5.5.1)
# Special-purpose blocks that some Python versions' `is_global` still calls global.
_NOT_GLOBAL = (
    _IPV4_COMPATIBLE,  # whatever it carries: no network routes this deprecated form
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215): any IPv4 behind it, any format
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated, RFC 3879)
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
    ipaddress.IPv6Network("5f00::/16"),  # segment routing SIDs (RFC 9602)
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments (RFC 6890)
    ipaddress.IPv4Network("192.88.99.0/24"),  # 6to4 relay anycast (deprecated, RFC 7526)
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through mapping, NAT64, 6to4, Teredo or the IPv4-compatible
    form; None if it carries none."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # (server, client): packets go to the client
    return None


def address_refusal(address: IPAddress, allow_loopback: bool) -> str | None:
    """Why `address` may not be fetched from, or None if it may (a public unicast address, and for an IPv6
    address that carries an IPv4 one, that IPv4 address too)."""
    if address.is_loopback:  # ::1 before the IPv4-compatible form, which would read it as 0.0.0.1
        return None if allow_loopback else "a loopback address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # the socket API's own spelling of an IPv4 address
            return address_refusal(address.ipv4_mapped, allow_loopback)
        embedded = embedded_ipv4(address)
        # Through a translator, even loopback is someone else's: the development setting does not cover it.
        refusal = address_refusal(embedded, allow_loopback=False) if embedded is not None else None
        if refusal is not None:
            return refusal
        if embedded is not None and address not in _NAT64:
            # 6to4 and Teredo are deprecated transition forms (RFC 7526, RFC 4380) that Python releases
            # classify differently (3.11.2 calls 2002::/16 private, 3.11.7 global): refused whatever they
            # carry, so the decision does not depend on the interpreter. NAT64 stays: IPv6-only networks use it.
            return "a 6to4 or Teredo address (deprecated IPv4 transition forms)"
    if address.is_multicast or not address.is_global or any(address in network for network in _NOT_GLOBAL):
        return "a private or special-use address"
    return None


async def resolve_allowed(host: str, port: int, allow_loopback: bool, loopback_only: bool) -> list[IPAddress]:
    """`host`'s addresses, every one checked (all must pass); else FetchRefused. Nothing is connected to."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]  # a literal: no lookup at all
    except ValueError:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise FetchRefused("the client_id URL's host name does not resolve") from None
        # A scoped IPv6 address ("fe80::1%eth0") is link-local: ip_address refuses the suffix, so drop it.
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise FetchRefused("the client_id URL's host name does not resolve")
    for address in addresses:  # one bad address refuses the host: a mixed answer is how rebinding starts
        refusal = address_refusal(address, allow_loopback)
        if refusal is None and loopback_only and not address.is_loopback:
            refusal = "not a loopback address, as plain http requires"
        if refusal is not None:
            raise FetchRefused(f"the client_id URL's host is {refusal}, which this server does not fetch from")
    return addresses


def cache_lifetime(headers: httpx2.Headers, now: float | None = None) -> float | None:
    """Seconds the response may be reused per RFC 9111 (max-age, else Expires - Date); None if unsaid."""
    directives = {
        name.strip().lower(): value.strip().strip('"')
        for name, _, value in (item.partition("=") for item in headers.get("cache-control", "").split(","))
    }
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    if "max-age" in directives:
        max_age = directives["max-age"]
        return float(max_age) if max_age.isdigit() else 0.0  # RFC 9111 §4.2.1: invalid means stale
    if "expires" in headers:
        try:
            expires = parsedate_to_datetime(headers["expires"]).timestamp()
            date = parsedate_to_datetime(headers["date"]).timestamp() if "date" in headers else None
        except (TypeError, ValueError):
            return 0.0  # an invalid Expires means already expired (RFC 9111 §5.3)
        return max(0.0, expires - (date if date is not None else (now or time.time())))
    return None


async def fetch_document(url: str, policy: FetchPolicy, tls: ssl.SSLContext) -> FetchedDocument:
    """GET `url` under the rules in the module docstring; FetchRefused on any failure or refusal."""
    parts = checked_url(url, policy.allow_loopback)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with anyio.fail_after(policy.timeout_seconds):
            addresses = await resolve_allowed(host, port, policy.allow_loopback, loopback_only=parts.scheme == "http")
            for address in addresses[:-1]:  # e.g. localhost is ::1 and 127.0.0.1: try each checked address
                try:
                    return await _get(parts, address, port, policy, tls)
                except httpx2.ConnectError:
                    continue
            return await _get(parts, addresses[-1], port, policy, tls)
    except TimeoutError:
        raise FetchRefused(f"the client_id URL did not answer within {policy.timeout_seconds:g} s") from None
    except httpx2.HTTPError:
        raise FetchRefused("the client_id URL could not be fetched (connection or TLS failure)") from None


async def _get(
    parts: SplitResult, address: IPAddress, port: int, policy: FetchPolicy, tls: ssl.SSLContext
) -> FetchedDocument:
    literal = f"[{address}]" if address.version == 6 else str(address)
    target = parts._replace(netloc=f"{literal}:{port}").geturl()
    headers = {"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"}
    async with (
        httpx2.AsyncClient(verify=tls, trust_env=False, follow_redirects=False, timeout=policy.timeout_seconds) as http,
        http.stream("GET", target, headers=headers, extensions={"sni_hostname": parts.hostname}) as response,
    ):
        if response.is_redirect:
            raise FetchRefused(f"the client_id URL answered with a redirect (HTTP {response.status_code})")
        if response.status_code != 200:
            raise FetchRefused(f"the client_id URL answered HTTP {response.status_code}, not 200")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" and not (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            raise FetchRefused("the client metadata document is not served as application/json")
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            raise FetchRefused("the client metadata document is compressed; it must be sent as is")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise FetchRefused(f"the client metadata document is larger than {policy.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > policy.max_bytes:
                raise FetchRefused(f"the client metadata document is larger than {policy.max_bytes} bytes")
        return FetchedDocument(bytes(body), cache_lifetime(response.headers))
