"""Find a protected resource's token endpoint the way MCP clients do: RFC 9728, then RFC 8414.

A client configured with only the resource's URL (and its own credentials) asks the resource without
a token; the 401's `WWW-Authenticate: Bearer resource_metadata="..."` (else the RFC 9728 well-known
URL) gives the resource's metadata, whose `authorization_servers` must include an issuer this client
trusts; that issuer's RFC 8414 metadata must name the same `issuer` and gives the `token_endpoint`.
The whole discovery ends within one deadline (`timeout_seconds`). The answer is cached; a failure is
shared by concurrent callers and remembered for a second, then the next call tries again. Failure messages name no URL
(they reach MCP clients inside tool errors); the log has the details.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx2

from oauth_tokens.deadline import deadline
from oauth_tokens.discovery import fetch_json, metadata_urls
from oauth_tokens.errors import DeadlineExceededError, KeySourceError, TokenEndpointError
from oauth_tokens.single_flight import SingleFlight

__all__ = ["TokenEndpointDiscovery", "protected_resource_metadata_urls"]

logger = logging.getLogger(__name__)

_RESOURCE_METADATA = re.compile(r'resource_metadata="([^"]+)"')


def _same_url(left: str, right: str) -> bool:
    return left.rstrip("/") == right.rstrip("/")


def protected_resource_metadata_urls(resource: str) -> list[str]:
    """RFC 9728 §3.1: the well-known segment between host and path, then at the root."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    urls = [urlunsplit((parts.scheme, parts.netloc, f"/.well-known/oauth-protected-resource{path}", "", ""))]
    if path:
        urls.append(urlunsplit((parts.scheme, parts.netloc, "/.well-known/oauth-protected-resource", "", "")))
    return urls


class TokenEndpointDiscovery:
    """The token endpoint of the authorization server a resource names, if this client trusts it.

    `trusted_issuers` are compared exactly (as `iss` is): the resource cannot send this client's
    credentials to a server it did not already trust. `trust_issuer`, when given, decides for an issuer
    not in that list: for a client whose authorization server is only known at run time (the official
    conformance suite starts its mock one on a random port), never a blanket "yes".
    """

    def __init__(
        self,
        resource_url: str,
        trusted_issuers: Sequence[str],
        *,
        timeout_seconds: float = 5.0,
        trust_issuer: Callable[[str], bool] | None = None,
    ) -> None:
        if not trusted_issuers and trust_issuer is None:
            raise ValueError("At least one trusted issuer (or a trust_issuer policy) is required")
        self.resource_url = resource_url
        self.trusted_issuers = tuple(trusted_issuers)
        self.trust_issuer = trust_issuer
        self.timeout_seconds = timeout_seconds
        self._token_endpoint: str | None = None
        # The trusted issuer the token endpoint was found at, once discovered: e.g. a client assertion's `aud`.
        self.issuer: str | None = None
        # One discovery for many concurrent first callers; a failure is shared and remembered for a second.
        self._flight: SingleFlight[str] = SingleFlight()
        self._attempts: list[str] = []  # what failed on the way, for the log

    async def token_endpoint(self) -> str:
        """The discovered token endpoint (cached); TokenEndpointError `discovery_failed` otherwise."""
        if self._token_endpoint is not None:
            return self._token_endpoint
        return await self._flight.run(self._discover_once)

    async def _discover_once(self) -> str:
        async with httpx2.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False) as client:
            try:
                with deadline(self.timeout_seconds, "The resource or its authorization server"):
                    endpoint = await self._discover(client)
            except (KeySourceError, DeadlineExceededError) as error:
                logger.warning("Token endpoint discovery for %s failed: %s", self.resource_url, error)
                logger.debug("Discovery attempts: %s", "; ".join(self._attempts))
                raise TokenEndpointError(
                    "discovery_failed", f"its authorization server could not be discovered ({error})"
                ) from error
        logger.info("Discovered token endpoint %s for %s", endpoint, self.resource_url)
        self._token_endpoint = endpoint
        return endpoint

    async def _discover(self, client: httpx2.AsyncClient) -> str:
        self._attempts = []
        issuer = await self._trusted_authorization_server(client)
        for url in metadata_urls(issuer):
            try:
                metadata = await fetch_json(client, url, timeout_seconds=self.timeout_seconds)
            except KeySourceError as error:
                self._attempts.append(str(error))
                continue
            if metadata.get("issuer") != issuer:  # RFC 8414 §3.3: exactly the issuer it was fetched for
                raise KeySourceError("the authorization server's metadata names another issuer")
            endpoint = metadata.get("token_endpoint")
            if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("http", "https"):
                raise KeySourceError("the authorization server's metadata has no http(s) token_endpoint")
            self.issuer = issuer
            return endpoint
        raise KeySourceError("the trusted authorization server publishes no RFC 8414 metadata")

    async def _trusted_authorization_server(self, client: httpx2.AsyncClient) -> str:
        """The first authorization server in the resource's metadata that is a trusted issuer."""
        for url in await self._metadata_candidates(client):
            try:
                metadata = await fetch_json(client, url, timeout_seconds=self.timeout_seconds)
            except KeySourceError as error:
                self._attempts.append(str(error))
                continue
            resource = metadata.get("resource")
            if not isinstance(resource, str) or not _same_url(resource, self.resource_url):
                raise KeySourceError("the resource's metadata is for another resource")
            servers = metadata.get("authorization_servers")
            if not isinstance(servers, list):
                raise KeySourceError("the resource's metadata lists no authorization_servers")
            trusted = [server for server in servers if isinstance(server, str) and self._trusted(server)]
            if not trusted:
                raise KeySourceError("the resource names no authorization server this client trusts")
            return str(trusted[0])
        raise KeySourceError("the resource publishes no RFC 9728 metadata")

    def _trusted(self, issuer: str) -> bool:
        return issuer in self.trusted_issuers or (self.trust_issuer is not None and self.trust_issuer(issuer))

    async def _metadata_candidates(self, client: httpx2.AsyncClient) -> list[str]:
        """The metadata URL from the resource's 401 challenge first (RFC 9728 §5.1), then the well-known ones."""
        candidates = protected_resource_metadata_urls(self.resource_url)
        try:
            response = await client.get(self.resource_url, headers={"Accept": "application/json, text/event-stream"})
        except httpx2.HTTPError as error:
            raise KeySourceError(f"the resource is unreachable ({type(error).__name__})") from error
        match = _RESOURCE_METADATA.search(response.headers.get("www-authenticate", ""))
        if response.status_code == 401 and match:
            announced = match.group(1)
            # Same origin only: the resource speaks for itself, not for where this client sends requests.
            if urlsplit(announced)[:2] == urlsplit(self.resource_url)[:2]:
                candidates = [announced, *(url for url in candidates if url != announced)]
        return candidates
