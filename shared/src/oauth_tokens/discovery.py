"""RFC 8414 / OpenID discovery: find an authorization server's jwks_uri (or another endpoint) from its base URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from oauth_tokens.deadline import deadline
from oauth_tokens.errors import DeadlineExceededError, KeySourceError

__all__ = ["MAX_DOCUMENT_BYTES", "discover_endpoint", "discover_jwks_uri", "fetch_json", "metadata_urls"]

logger = logging.getLogger(__name__)

# Metadata and key sets are small; a bigger answer is a fault or an attack, not something to parse.
MAX_DOCUMENT_BYTES = 512 * 1024


def metadata_urls(base_url: str) -> list[str]:
    """Where the metadata of the server at `base_url` may live, in the order to try them.

    RFC 8414 §3.1 inserts the well-known segment between host and path
    (`https://as/.well-known/oauth-authorization-server/tenant`); OpenID Connect Discovery appends it
    (`https://as/tenant/.well-known/openid-configuration`). For a path-less URL both reduce to the root.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("Discovery base URL must be an absolute http(s) URL")
    path = parts.path.rstrip("/")

    def at(well_known_path: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, well_known_path, "", ""))

    if not path:
        return [at("/.well-known/oauth-authorization-server"), at("/.well-known/openid-configuration")]
    return [
        at(f"/.well-known/oauth-authorization-server{path}"),
        at(f"/.well-known/openid-configuration{path}"),
        at(f"{path}/.well-known/openid-configuration"),
    ]


async def fetch_json(client: httpx2.AsyncClient, url: str, *, timeout_seconds: float) -> dict[str, Any]:
    """GET `url` (no redirects, bounded size, one total deadline) as a JSON object; KeySourceError otherwise."""
    try:
        with deadline(timeout_seconds, f"GET {url}"):
            async with client.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=timeout_seconds,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise KeySourceError(f"GET {url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise KeySourceError(f"GET {url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    except httpx2.HTTPError as error:
        raise KeySourceError(f"GET {url} failed: {type(error).__name__}") from error
    except DeadlineExceededError as error:
        raise KeySourceError(str(error)) from error
    try:
        document = json.loads(bytes(body))
    except ValueError as error:
        raise KeySourceError(f"GET {url} did not answer JSON") from error
    if not isinstance(document, dict):
        raise KeySourceError(f"GET {url} did not answer a JSON object")
    return document


def _check_http_url(value: Any, what: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise KeySourceError(f"{what} is not an http(s) URL")
    return value


def _reach_through_base(jwks_uri: str, issuer: str, base_url: str) -> str:
    """Rewrite a jwks_uri under the public issuer to go through the reachable base URL.

    Used when discovery went through AUTH_DISCOVERY_URL because the issuer's public host is not
    reachable from here (e.g. inside compose); the operator configured that base, so it is trusted.
    """
    issuer_prefix = issuer.rstrip("/")
    if issuer_prefix != base_url.rstrip("/") and jwks_uri.startswith(issuer_prefix + "/"):
        return base_url.rstrip("/") + jwks_uri[len(issuer_prefix) :]
    return jwks_uri


async def discover_endpoint(
    base_url: str,
    client: httpx2.AsyncClient,
    field: str,
    *,
    timeout_seconds: float,
    expected_issuers: Sequence[str] = (),
    through_base: bool = True,
) -> str:
    """The URL that the metadata of the server at `base_url` gives for `field` (`jwks_uri`, `token_endpoint`).

    The first metadata document found wins. When `expected_issuers` is given, the metadata's `issuer` must
    be one of them (RFC 8414 §3.3). `through_base`: a URL under the public issuer is rewritten to go through
    `base_url` (for this service's own requests); False for a URL a browser is sent to.
    """
    failures: list[str] = []
    for url in metadata_urls(base_url):
        try:
            metadata = await fetch_json(client, url, timeout_seconds=timeout_seconds)
        except KeySourceError as error:
            failures.append(str(error))
            continue
        issuer = metadata.get("issuer")
        if expected_issuers and issuer not in expected_issuers:
            raise KeySourceError(f"Metadata at {url} names issuer {issuer!r}, not a trusted issuer")
        endpoint = _check_http_url(metadata.get(field), f"{field} in {url}")
        if isinstance(issuer, str) and through_base:
            endpoint = _reach_through_base(endpoint, issuer, base_url)
        logger.debug("Discovered %s %s from %s", field, endpoint, url)
        return endpoint
    raise KeySourceError("No authorization server metadata found: " + "; ".join(failures))


async def discover_jwks_uri(
    base_url: str,
    client: httpx2.AsyncClient,
    *,
    timeout_seconds: float,
    expected_issuers: Sequence[str] = (),
) -> str:
    """The jwks_uri advertised by the server at `base_url` (see discover_endpoint)."""
    return await discover_endpoint(
        base_url, client, "jwks_uri", timeout_seconds=timeout_seconds, expected_issuers=expected_issuers
    )
