"""Client ID Metadata Documents (CIMD): a `client_id` that is an https URL of the client's own metadata.

draft-ietf-oauth-client-id-metadata-document-02, as MCP 2026-07-28 pins it (and prefers it to dynamic
registration). A client that has never met this server sends `client_id=https://app.example/client.json`;
this server fetches that document (document_fetch.py: SSRF guards, one deadline, a size cap, no
redirects) and checks it before the user sees anything:

- `client_id` in the document equals the URL it was fetched from, character for character;
- `client_name` (shown on the sign-in and consent pages, with the URL's host) and `redirect_uris` (each
  https or http on loopback, as for registration) are present;
- `token_endpoint_auth_method` absent or `none` (a public client), or `private_key_jwt` with a
  `jwks_uri` (a confidential client: it authenticates at the token endpoint with a signed assertion,
  its keys fetched from that URL through the same SSRF guard as the document; client_auth.py).
  Secret-based methods are forbidden by the draft ("Credential and Key Material Restrictions");
- `grant_types` (RFC 7591 default `authorization_code`) within the `[registration]` grant types,
  `response_types` only `code`; `scope`, if given, narrows the `[registration]` scopes.

Such a client gets what a registered one gets (`[registration]` resources and scopes). Redirect URIs
match exactly, except that a portless http loopback URI accepts any port (RFC 8252 §7.3), as native
clients publish `http://127.0.0.1/callback` and listen on an ephemeral port.

A valid document is cached for as long as its HTTP caching headers say, within
`[client_metadata_documents] min_cache_seconds` and `max_cache_seconds`; errors and invalid documents are
never cached (draft, "Metadata Caching"). The cache is bounded, in all (`max_cached_documents`) and per
client address whose request caused the fetch (`max_cached_documents_per_address`): it is an
`OwnedTable` (quotas.py), so an address past its share pushes out its own oldest document, and a full
cache drops one of the address holding the most. A flood of client_id URLs from a few addresses evicts
its own entries, not the documents real users' sign-ins use (an evicted document is only refetched).
With REDIS_URL, an accepted document's bytes are also kept in Redis for the same lifetime
(`oauth_tokens.shared_state.cache.SharedCache`), so one fetch serves every replica; another replica checks
them again before use, and Redis unreachable just means a fetch.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from typing import Any

from oauth_tokens.shared_state import SharedState
from oauth_tokens.shared_state.cache import SharedCache

from auth_server.clients import Client, UnusableClient
from auth_server.config import AuthServerConfig
from auth_server.config_sections import GRANT_AUTHORIZATION_CODE
from auth_server.document_fetch import FetchPolicy, FetchRefused, fetch_document
from auth_server.quotas import OwnedTable, owner_of_address
from auth_server.uris import check_redirect_uri

logger = logging.getLogger(__name__)

_SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})
_MAX_NAME_LENGTH = 100


class InvalidDocument(UnusableClient):
    """The metadata document, or the fetch of it, failed; the message says why, for the user's eyes."""


def _string_list(document: dict[str, Any], name: str, default: list[str] | None = None) -> list[str]:
    value = document.get(name, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidDocument(f"the client metadata document's {name} must be an array of strings")
    return value


def client_from_document(url: str, body: bytes, config: AuthServerConfig) -> Client:
    """The client the document at `url` describes, under the rules in the module docstring."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidDocument("the client metadata document is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidDocument("the client metadata document is not a JSON object")
    if document.get("client_id") != url:
        raise InvalidDocument("the client metadata document's client_id is not exactly its URL")
    name = document.get("client_name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidDocument("the client metadata document has no client_name")
    redirect_uris = _string_list(document, "redirect_uris")
    if not redirect_uris:
        raise InvalidDocument("the client metadata document has no redirect_uris")
    for uri in redirect_uris:
        try:
            check_redirect_uri(uri)
        except ValueError as problem:
            raise InvalidDocument(f"the client metadata document lists an unusable redirect URI: {problem}") from None
    method = document.get("token_endpoint_auth_method", "none")
    if method in _SECRET_METHODS or "client_secret" in document or "client_secret_expires_at" in document:
        raise InvalidDocument("a client metadata document must not use a client secret")
    jwks_uri = document.get("jwks_uri")
    if method == "private_key_jwt":
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise InvalidDocument("a client metadata document with private_key_jwt needs a jwks_uri URL")
    elif method != "none":
        raise InvalidDocument("token_endpoint_auth_method must be none or private_key_jwt")
    else:
        jwks_uri = None
    policy = config.registration
    grant_types = _string_list(document, "grant_types", [GRANT_AUTHORIZATION_CODE])
    if GRANT_AUTHORIZATION_CODE not in grant_types or not set(grant_types) <= set(policy.grant_types):
        raise InvalidDocument(f"the client metadata document's grant_types may only be {', '.join(policy.grant_types)}")
    if set(_string_list(document, "response_types", ["code"])) != {"code"}:
        raise InvalidDocument("the client metadata document's response_types must be [code]")
    scope = document.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise InvalidDocument("the client metadata document's scope must be a string")
    allowed = config.registration_scopes()
    # A document is published for every server the client uses: scopes unknown here are ignored.
    scopes = allowed if scope is None else tuple(item for item in allowed if item in scope.split(" "))
    return Client(
        client_id=url,
        name=name.strip()[:_MAX_NAME_LENGTH],
        grant_types=frozenset(grant_types),
        resources=policy.resources,
        scopes=scopes,
        redirect_uris=tuple(redirect_uris),
        dynamically_registered=True,  # the name is the client's own claim, so the pages mark it unverified
        from_metadata_document=True,
        jwks_uri=jwks_uri,  # fetched through the SSRF guard (jwks_uri_trusted stays False)
    )


class ClientMetadataDocuments:
    """Looks up clients by metadata document URL: fetched, checked, cached (the registry's ClientSource)."""

    def __init__(
        self, config: AuthServerConfig, *, allow_loopback: bool, tls: ssl.SSLContext, shared: SharedState | None = None
    ) -> None:
        self._config = config
        # REDIS_URL: the fetched documents (public bytes) shared by replicas, so one fetch serves all.
        self._shared = SharedCache(shared, "cimd") if shared is not None else None
        self._policy = config.client_metadata_documents
        self.fetch_policy = FetchPolicy(
            timeout_seconds=self._policy.fetch_timeout_seconds,
            max_bytes=self._policy.max_document_bytes,
            allow_loopback=allow_loopback,
        )
        self._tls = tls
        self._cache: OwnedTable[str, tuple[Client, float]] = OwnedTable(  # URL -> (client, monotonic expiry)
            max_entries=self._policy.max_cached_documents,
            max_per_owner=self._policy.max_cached_documents_per_address,
            rank=lambda _: 0,
            expired=lambda entry, now: entry[1] <= now,
        )

    def handles(self, client_id: str) -> bool:
        """Whether `client_id` is to be looked up as a document URL (http only matters in development)."""
        return self._policy.enabled and client_id.startswith(("https://", "http://"))

    async def client(self, client_id: str, *, address: str) -> Client:
        """The client `client_id` names, from the cache or a fetch for client `address`; raises InvalidDocument."""
        cached = self._cache.get(client_id, time.monotonic())
        if cached is not None:
            return cached[0]
        shared = await self._shared.get(client_id) if self._shared is not None else None
        try:
            if shared is not None:  # another replica fetched and accepted it; checked again here
                body, lifetime = shared
                client = client_from_document(client_id, body, self._config)
            else:
                fetched = await fetch_document(client_id, self.fetch_policy, self._tls)
                client = client_from_document(client_id, fetched.body, self._config)
                lifetime = fetched.cache_seconds if fetched.cache_seconds is not None else 0.0
                lifetime = min(max(lifetime, self._policy.min_cache_seconds), self._policy.max_cache_seconds)
                if self._shared is not None:
                    await self._shared.put(client_id, fetched.body, lifetime)
        except (FetchRefused, InvalidDocument) as refused:
            logger.info("Client metadata document refused: %r: %s", client_id, refused)
            raise InvalidDocument(str(refused)) from None
        now = time.monotonic()
        self._cache.pop(client_id)  # a refetch is owned by the address that caused it
        self._cache.put(client_id, (client, now + lifetime), owner_of_address(address), now)
        logger.info("Client metadata document accepted: %r named %r, cached %d s", client_id, client.name, lifetime)
        return client
