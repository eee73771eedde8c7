"""URI rules shared by configuration, registration and the endpoints: redirect URIs and resource indicators."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_redirect_uri(uri: str) -> str:
    """Return `uri` if it may be registered as a redirect URI, else raise ValueError saying why.

    Only https URIs and plain-http loopback URIs (native and CLI clients, RFC 8252 §7.3) are allowed;
    no fragment (RFC 6749 §3.1.2). Matching at the endpoints is exact string comparison.
    """
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError as error:
        raise ValueError(f"redirect URI is not a valid URL: {error}") from None
    if parts.fragment or "#" in uri:
        raise ValueError("a redirect URI must not contain a fragment")
    if not host:
        raise ValueError("a redirect URI must be an absolute URL with a host")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return uri
    raise ValueError("a redirect URI must use https, or http on localhost / 127.0.0.1 / [::1]")


def check_resource_indicator(uri: str) -> str:
    """Return `uri` if it is a valid RFC 8707 resource indicator (absolute, no fragment), else raise ValueError."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc or parts.fragment or "#" in uri:
        raise ValueError("a resource indicator must be an absolute URI without a fragment")
    return uri


def same_resource(first: str, second: str) -> bool:
    """Whether two resource identifiers name the same resource; only a trailing slash is ignored.

    Clients built on URL libraries often add a slash to a path-less URL ("http://host:8003/");
    anything beyond that (case, ports, paths) must match exactly.
    """
    return first.rstrip("/") == second.rstrip("/")


def loopback_redirect_matches(registered: str, requested: str) -> bool:
    """Whether `requested` is `registered` with a port added: a portless http loopback redirect URI.

    RFC 8252 §7.3: native apps listen on an ephemeral loopback port they cannot know in advance, so a
    static client metadata document lists e.g. `http://127.0.0.1/callback` and the request names the
    port. Only the port may differ; scheme, host, path and query must be identical.
    """
    try:
        listed, asked_port = urlsplit(registered), urlsplit(requested).port
    except ValueError:
        return False
    if listed.scheme != "http" or listed.hostname not in LOOPBACK_HOSTS or listed.port is not None:
        return False
    origin = f"http://{listed.netloc}"
    if not asked_port or not registered.startswith(origin):
        return False
    return requested == f"{origin}:{asked_port}{registered[len(origin) :]}"
