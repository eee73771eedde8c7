"""The server's parts, built once from settings and config and shared by every endpoint (app.state)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx2
from fastapi import Request
from oauth_tokens.replay_cache import InMemoryReplayCache
from oauth_tokens.service_database import ServiceDatabase
from oauth_tokens.shared_state import SharedState
from oauth_tokens.shared_state.replay import RedisReplayCache

from auth_server.cimd import ClientMetadataDocuments
from auth_server.client_auth import ClientAssertionVerifier, ClientKeys
from auth_server.clients import ClientRegistry
from auth_server.codes import AuthorizationCodeStore
from auth_server.config import AuthServerConfig
from auth_server.dpop import TokenEndpointDPoP
from auth_server.jwt_bearer import IdJagVerifier
from auth_server.keys import KeyStore
from auth_server.limits import SharedRateLimiter
from auth_server.pending import CsrfSigner, PendingAuthorizations
from auth_server.refresh_tokens import RefreshTokenStore
from auth_server.registrations import Registrations
from auth_server.settings import AuthServerSettings
from auth_server.tokens import AccessTokenIssuer
from auth_server.users import SharedLoginThrottle, UserDirectory


@dataclass
class AuthServer:
    settings: AuthServerSettings
    config: AuthServerConfig
    database: ServiceDatabase  # DATABASE_URL: clients, codes, sign-ins, refresh tokens (tables.py)
    keystore: KeyStore
    access_tokens: AccessTokenIssuer
    refresh_tokens: RefreshTokenStore
    codes: AuthorizationCodeStore
    clients: ClientRegistry
    users: UserDirectory
    throttle: SharedLoginThrottle
    pending: PendingAuthorizations
    csrf: CsrfSigner
    authorize_rate: SharedRateLimiter
    registration_rate: SharedRateLimiter
    token_rate: SharedRateLimiter
    login_rate: SharedRateLimiter
    id_jags: IdJagVerifier  # pattern 5: ID-JAGs from trusted IdPs (jwt-bearer grant)
    dpop: TokenEndpointDPoP  # DPoP proofs of token requests (RFC 9449)
    # REDIS_URL: counters, lockouts, replay caches and cached documents every replica shares; None: in process.
    shared: SharedState | None = None

    @property
    def issuer(self) -> str:
        return self.settings.auth_issuer

    @classmethod
    def build(cls, settings: AuthServerSettings, config: AuthServerConfig, environ: Mapping[str, str]) -> AuthServer:
        """Wire everything; generates the first signing key if the data directory has none.

        The database is not reached here: app.py migrates it at start-up (DATABASE_MIGRATE_ON_START).
        """
        # Keys under REDIS_KEY_PREFIX, else OTEL_SERVICE_NAME (calendar-auth-server), else "auth-server".
        shared = settings.shared_state("auth-server")
        keystore = KeyStore(settings.keys_dir, config.lifetimes.access_token_seconds)
        keystore.ensure_key()
        keystore.prune()
        database = settings.database()
        registrations = Registrations(
            database,
            max_clients=config.registration.max_clients,
            max_per_address=config.registration.max_clients_per_address,
            unused_seconds=config.registration.unused_client_seconds,
        )
        tls = httpx2.create_ssl_context()  # the system's CAs, or SSL_CERT_FILE / SSL_CERT_DIR if set
        documents = ClientMetadataDocuments(
            config, allow_loopback=settings.auth_server_cimd_allow_loopback, tls=tls, shared=shared
        )
        client_keys = ClientKeys(
            documents.fetch_policy, tls, max_cached=config.client_metadata_documents.max_cached_documents
        )
        assertions = ClientAssertionVerifier(
            settings.auth_issuer,
            client_keys,
            (RedisReplayCache(shared, "replay-assertion") if shared else InMemoryReplayCache(max_entries=100_000)),
        )
        return cls(
            settings=settings,
            config=config,
            database=database,
            keystore=keystore,
            access_tokens=AccessTokenIssuer(settings.auth_issuer, keystore, config.lifetimes.access_token_seconds),
            refresh_tokens=RefreshTokenStore(database),
            codes=AuthorizationCodeStore(config.lifetimes.authorization_code_seconds, database),
            clients=ClientRegistry.from_config(
                config,
                environ,
                realm=settings.auth_issuer,
                registrations=registrations,
                documents=documents,
                assertions=assertions,
            ),
            users=UserDirectory.from_config(config, environ),
            throttle=SharedLoginThrottle(config.login, shared),
            pending=PendingAuthorizations(
                database,
                max_entries=config.login.max_pending_sign_ins,
                max_per_address=config.login.max_pending_sign_ins_per_address,
            ),
            csrf=CsrfSigner(settings.auth_server_state_keys),
            authorize_rate=SharedRateLimiter(config.rate_limits.authorize, "authorize", shared),
            registration_rate=SharedRateLimiter(config.rate_limits.registration, "registration", shared),
            token_rate=SharedRateLimiter(config.rate_limits.token, "token", shared),
            login_rate=SharedRateLimiter(config.rate_limits.login, "login", shared),
            id_jags=IdJagVerifier(
                config.trusted_identity_providers,
                RedisReplayCache(shared, "replay-id-jag") if shared else None,
            ),
            shared=shared,
            dpop=TokenEndpointDPoP(
                settings.auth_issuer,
                required=settings.auth_server_dpop == "require",
                nonce=settings.auth_server_dpop_nonce,
                state_keys=settings.auth_server_state_keys,
                replay_cache=RedisReplayCache(shared, "replay-dpop") if shared else None,
            ),
        )


def server_of(request: Request) -> AuthServer:
    """The AuthServer of the app handling `request`."""
    server: AuthServer = request.app.state.auth_server
    return server
