"""Client registry (configured, dynamically registered (registrations.py), and identified by a metadata document) and
token-endpoint client authentication: client secrets here, private_key_jwt assertions in client_auth.py."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

from auth_server.config import AuthServerConfig, require_secret
from auth_server.config_sections import DYNAMIC_CLIENT_ID_PREFIX, ClientConfig
from auth_server.errors import OAuthError, invalid_client
from auth_server.quotas import owner_of_address
from auth_server.uris import loopback_redirect_matches

if TYPE_CHECKING:
    from auth_server.registrations import Registrations

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Client:
    """A client as the server knows it: what it may ask for, and how it proves who it is."""

    client_id: str
    name: str
    grant_types: frozenset[str]
    resources: tuple[str, ...]  # resource names from the config, not identifiers
    scopes: tuple[str, ...]
    redirect_uris: tuple[str, ...] = ()
    exchange_subject_resources: tuple[str, ...] = ()
    dynamically_registered: bool = False
    # client_id is an https URL whose Client ID Metadata Document described this client (cimd.py).
    from_metadata_document: bool = False
    # SHA-256 of the secret; None for a public client. Digests make the comparison length-independent.
    secret_digest: bytes | None = field(default=None, repr=False)
    # private_key_jwt (RFC 7523): the client's public keys, inline or where to fetch them (client_auth.py).
    jwks: Mapping[str, Any] | None = field(default=None, repr=False)
    jwks_uri: str | None = None
    # Configured by the admin, so its jwks_uri may be on a private or loopback address; a metadata
    # document's jwks_uri goes through the SSRF guard (document_fetch.py).
    jwks_uri_trusted: bool = False

    @property
    def uses_assertion(self) -> bool:
        """Authenticates with a signed client assertion (private_key_jwt) instead of a secret."""
        return self.jwks is not None or self.jwks_uri is not None

    @property
    def is_confidential(self) -> bool:
        return self.secret_digest is not None or self.uses_assertion

    @property
    def token_endpoint_auth_method(self) -> str:
        if self.uses_assertion:
            return "private_key_jwt"
        return "client_secret_basic" if self.secret_digest is not None else "none"

    def accepts_redirect_uri(self, uri: str) -> bool:
        """Exact match; a metadata document's portless loopback URI also takes any port (RFC 8252 §7.3)."""
        if uri in self.redirect_uris:
            return True
        return self.from_metadata_document and any(
            loopback_redirect_matches(registered, uri) for registered in self.redirect_uris
        )

    def secret_matches(self, presented: str) -> bool:
        expected = self.secret_digest or b""
        return hmac.compare_digest(_digest(presented), expected) and self.secret_digest is not None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


# Compared against when the client is unknown, so an unknown client_id costs the same as a wrong secret.
_UNKNOWN_CLIENT_DIGEST = _digest("no client has this secret")


def client_from_config(entry: ClientConfig, environ: Mapping[str, str]) -> Client:
    """The client an entry configures; only the credential of its method is read (a secret must be set)."""
    private_key_jwt = entry.auth_method == "private_key_jwt"
    secret = require_secret(environ, entry.secret_env) if entry.secret_env and not private_key_jwt else None
    return Client(
        client_id=entry.client_id,
        name=entry.name or entry.client_id,
        grant_types=frozenset(entry.grant_types),
        resources=entry.resources,
        scopes=entry.scopes,
        redirect_uris=entry.redirect_uris,
        exchange_subject_resources=entry.exchange_subject_resources,
        secret_digest=_digest(secret) if secret is not None else None,
        jwks=entry.jwks if private_key_jwt else None,
        jwks_uri=entry.jwks_uri if private_key_jwt else None,
        jwks_uri_trusted=True,
    )


class UnusableClient(Exception):
    """A client_id this server cannot use right now (its metadata document failed); the message says why.

    Messages are fixed texts fit for the user's eyes: never content fetched from the client's server.
    """


class ClientSource(Protocol):
    """Clients the registry does not hold but can look up: those with a client metadata document."""

    def handles(self, client_id: str) -> bool: ...

    async def client(self, client_id: str, *, address: str) -> Client:
        """The client, looked up on behalf of client `address`; raises UnusableClient saying why it cannot be used."""
        ...


ClientFinder = Callable[[str], Awaitable["Client | None"]]


class AssertionAuthenticator(Protocol):
    """Authenticates a token request by its client assertion (client_auth.ClientAssertionVerifier)."""

    async def authenticate(self, form: Mapping[str, str], find: ClientFinder) -> Client:
        """The client whose assertion `form` carries; raises invalid_client saying nothing of why."""
        ...


class ClientRegistry:
    """Configured clients, dynamically registered ones (in the database, registrations.py), and (with
    `documents`) clients identified by a metadata document URL, looked up there."""

    def __init__(
        self,
        configured: Iterable[Client],
        *,
        realm: str,
        registrations: Registrations | None = None,
        documents: ClientSource | None = None,
        assertions: AssertionAuthenticator | None = None,
    ) -> None:
        self._documents = documents
        self._assertions = assertions
        self._configured = {client.client_id: client for client in configured}
        self._registrations = registrations
        self._realm = realm

    @classmethod
    def from_config(
        cls,
        config: AuthServerConfig,
        environ: Mapping[str, str],
        realm: str,
        registrations: Registrations | None = None,
        documents: ClientSource | None = None,
        assertions: AssertionAuthenticator | None = None,
    ) -> ClientRegistry:
        clients = [client_from_config(entry, environ) for entry in config.clients]
        return cls(clients, realm=realm, registrations=registrations, documents=documents, assertions=assertions)

    def configured(self, client_id: str) -> Client | None:
        """A client from the config file."""
        return self._configured.get(client_id)

    async def get(self, client_id: str) -> Client | None:
        """A configured or registered client (not one described by a metadata document: see `find`)."""
        client = self._configured.get(client_id)
        if client is None and self._registrations is not None and client_id.startswith(DYNAMIC_CLIENT_ID_PREFIX):
            client = await self._registrations.get(client_id)
        return client

    async def find(self, client_id: str, *, address: str) -> Client | None:
        """`get`, else the client a metadata document URL describes (looked up on behalf of client
        `address`); raises UnusableClient if that fails."""
        client = await self.get(client_id)
        if client is None and self._documents is not None and self._documents.handles(client_id):
            client = await self._documents.client(client_id, address=address)
        return client

    async def register(self, client: Client, *, address: str) -> None:
        """Add a client registered from client `address`, forgetting another if need be (registrations.py)."""
        if self._registrations is None:
            raise ValueError("this registry takes no registrations")
        if await self.get(client.client_id) is not None:
            raise ValueError("client_id already exists")
        for client_id, used in await self._registrations.add(client, owner_of_address(address)):
            state = "used" if used else "unused"
            logger.info("Registrations full: forgot %s client %s to make room", state, client_id)

    async def mark_used(self, client: Client) -> None:
        """The client obtained a token: a registration no longer expires."""
        if client.dynamically_registered and self._registrations is not None:
            await self._registrations.mark_used(client.client_id)

    async def authenticate(self, authorization_header: str | None, form: Mapping[str, str], *, address: str) -> Client:
        """The client making a token request (RFC 6749 §2.3): Basic, body secret, a client assertion
        (RFC 7523, private_key_jwt), or a public client_id; metadata documents are looked up on behalf of
        client `address`.

        Raises OAuthError invalid_client (401) with the same description for an unknown client, a wrong
        secret and a refused assertion, and invalid_request when the request mixes methods.
        """
        basic = self._parse_basic(authorization_header)
        body_client_id = form.get("client_id")
        body_secret = form.get("client_secret")
        if "client_assertion" in form or "client_assertion_type" in form:
            if basic is not None or body_secret is not None:
                raise OAuthError("invalid_request", "Use exactly one client authentication method")
            if self._assertions is None:
                raise invalid_client(self._realm)
            return await self._assertions.authenticate(form, functools.partial(self.find, address=address))
        client_id: str | None = body_client_id
        secret: str | None = body_secret
        if basic is not None:
            if body_secret is not None:
                raise OAuthError("invalid_request", "Use exactly one client authentication method")
            if body_client_id is not None and body_client_id != basic[0]:
                raise OAuthError("invalid_request", "client_id does not match the authenticated client")
            client_id, secret = basic
        if not client_id:
            raise invalid_client(self._realm)
        try:
            client = await self.find(client_id, address=address)
        except UnusableClient as unusable:
            logger.info("Client %r refused at the token endpoint: %s", client_id, unusable)
            client = None
        if client is None:
            hmac.compare_digest(_digest(secret or ""), _UNKNOWN_CLIENT_DIGEST)
            raise invalid_client(self._realm)
        if client.is_confidential:
            if secret is None or not client.secret_matches(secret):
                raise invalid_client(self._realm)
        elif secret is not None:  # a public client has no secret; presenting one is a misconfiguration
            raise invalid_client(self._realm)
        return client

    def _parse_basic(self, header: str | None) -> tuple[str, str] | None:
        if header is None:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            raise invalid_client(self._realm)
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client(self._realm) from None
        client_id, separator, secret = decoded.partition(":")
        if not separator:
            raise invalid_client(self._realm)
        # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        return unquote_plus(client_id), unquote_plus(secret)
