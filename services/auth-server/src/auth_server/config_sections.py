"""The auth-server config's sections: grant names, and one model per TOML table (page, lifetimes, login, rate
limits, switches, resources, clients, users, registration, metadata documents, ID-JAG trust).

`config.py` assembles them into `AuthServerConfig`, checks references between sections, and loads the file.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from oauth_tokens.pages import PageBrand
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from auth_server.uris import check_redirect_uri, check_resource_indicator

GRANT_AUTHORIZATION_CODE = "authorization_code"
# Grant type names (ruff's S105 mistakes "token" in them for passwords).
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1 (pattern 5: an ID-JAG)
SUPPORTED_GRANTS = (
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_TOKEN_EXCHANGE,
    GRANT_JWT_BEARER,
)
# How a configured client may authenticate at the token endpoint (RFC 7591 §2 names).
ClientAuthMethod = Literal["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]
CLIENT_AUTH_METHODS: tuple[str, ...] = get_args(ClientAuthMethod)
# Grants that need a confidential client (a secret or a key): a public client cannot keep one.
CONFIDENTIAL_ONLY_GRANTS = frozenset({GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER})
# Every dynamically registered client id starts with this, so no username may (see _references_exist).
DYNAMIC_CLIENT_ID_PREFIX = "dyn-"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PageConfig(_Strict):
    """[page]: whose sign-in pages these are, so a user sent between two servers can tell them apart."""

    name: str = Field("auth-server (development)", min_length=1, max_length=80)
    accent: str = Field("#1d4ed8", pattern=r"^#[0-9a-fA-F]{6}$")  # header bar, buttons
    footer: str = Field("auth-server is a development stand-in authorization server.", max_length=300)

    def brand(self) -> PageBrand:
        return PageBrand(self.name, self.accent, self.footer)


class Lifetimes(_Strict):
    access_token_seconds: PositiveInt = 600
    authorization_code_seconds: PositiveInt = 60
    refresh_token_seconds: PositiveInt = 86400


class LoginPolicy(_Strict):
    """Failed-login throttling (users.LoginThrottle) and the sign-ins-in-progress table (pending.py)."""

    failure_delay_seconds: PositiveFloat = 0.5
    max_failure_delay_seconds: PositiveFloat = 8.0
    failure_window_seconds: PositiveInt = 900
    # Failures of one username (from any address) in the window that lock it: further attempts are refused.
    max_failures: PositiveInt = 10
    # Failures from one address (for any usernames) in the window past which the address is refused.
    max_failures_per_address: PositiveInt = 100
    # Usernames and addresses with failures in the window. When full, the entry with the fewest failures
    # goes (the heaviest address's first); a locked one never does, so junk can neither block nor reopen.
    max_tracked_usernames: PositiveInt = 10_000
    max_tracked_addresses: PositiveInt = 10_000
    # /authorize requests waiting for sign-in and consent, in all and per address (quotas.py policy).
    max_pending_sign_ins: PositiveInt = 10_000
    max_pending_sign_ins_per_address: PositiveInt = 100


class RateLimit(_Strict):
    """A token bucket per client address: `burst` requests at once, refilled at `per_minute`."""

    burst: PositiveInt
    per_minute: PositiveFloat


class RateLimits(_Strict):
    authorize: RateLimit = RateLimit(burst=120, per_minute=60)
    registration: RateLimit = RateLimit(burst=60, per_minute=10)
    token: RateLimit = RateLimit(burst=300, per_minute=300)
    login: RateLimit = RateLimit(burst=60, per_minute=30)


class Switch(_Strict):
    """An environment variable that selects between configurations; any other value stops start-up."""

    choices: tuple[str, ...] = Field(min_length=1)
    default: str

    @model_validator(mode="after")
    def _default_is_a_choice(self) -> Switch:
        if self.default not in self.choices:
            raise ValueError("default must be one of choices")
        return self


class ResourceConfig(_Strict):
    identifier: str
    description: str = ""
    scopes: tuple[str, ...] = Field(min_length=1)
    extra_audiences: tuple[str, ...] = ()
    # "SWITCH=value": extra_audiences apply only while that switch has that value.
    extra_audiences_when: str | None = None

    @model_validator(mode="after")
    def _identifiers_are_uris(self) -> ResourceConfig:
        for uri in (self.identifier, *self.extra_audiences):
            check_resource_indicator(uri)
        return self


class ClientConfig(_Strict):
    client_id: str = Field(min_length=1)
    name: str | None = None
    # Set: a confidential client whose secret is this environment variable. Unset: a public client.
    secret_env: str | None = None
    # private_key_jwt (RFC 7523): the client's public keys, inline (a JWK Set) or where to fetch them.
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    # Unset: private_key_jwt with jwks/jwks_uri, else client_secret_basic with secret_env, else none.
    token_endpoint_auth_method: ClientAuthMethod | None = None
    # A [switches] entry whose value is the method (the client's own service reads the same setting).
    token_endpoint_auth_method_switch: str | None = None
    grant_types: tuple[str, ...] = Field(min_length=1)
    resources: tuple[str, ...] = Field(min_length=1)
    scopes: tuple[str, ...] = Field(min_length=1)
    redirect_uris: tuple[str, ...] = ()
    # Resources whose access tokens this client may exchange (RFC 8693): the resource servers it runs as.
    exchange_subject_resources: tuple[str, ...] = ()

    @property
    def auth_method(self) -> ClientAuthMethod:
        """The method this client must use (after [switches] are applied, see load_config)."""
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        if self.jwks is not None or self.jwks_uri is not None:
            return "private_key_jwt"
        return "client_secret_basic" if self.secret_env is not None else "none"

    @model_validator(mode="after")
    def _consistent(self) -> ClientConfig:
        unknown = set(self.grant_types) - set(SUPPORTED_GRANTS)
        if unknown:
            raise ValueError(f"unsupported grant types {sorted(unknown)}")
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("give jwks or jwks_uri, not both")
        if self.jwks_uri is not None and not self.jwks_uri.startswith(("https://", "http://")):
            raise ValueError("jwks_uri must be an http(s) URL")
        if self.token_endpoint_auth_method_switch is None:
            check_client_auth(self)
        if GRANT_AUTHORIZATION_CODE in self.grant_types and not self.redirect_uris:
            raise ValueError("authorization_code needs at least one redirect_uris entry")
        for uri in self.redirect_uris:
            check_redirect_uri(uri)
        if self.exchange_subject_resources and GRANT_TOKEN_EXCHANGE not in self.grant_types:
            raise ValueError("exchange_subject_resources needs the token-exchange grant")
        return self


def check_client_auth(client: ClientConfig) -> None:
    """The client's method has its credential; ValueError otherwise (once [switches] are applied)."""
    method = client.auth_method
    if method == "private_key_jwt" and client.jwks is None and client.jwks_uri is None:
        raise ValueError("private_key_jwt needs the client's public keys (jwks or jwks_uri)")
    if method in ("client_secret_basic", "client_secret_post") and client.secret_env is None:
        raise ValueError(f"{method} needs secret_env")
    if method == "none" and CONFIDENTIAL_ONLY_GRANTS & set(client.grant_types):
        raise ValueError(
            "client_credentials and token exchange need a confidential client (secret_env, or jwks/jwks_uri)"
        )


class UserConfig(_Strict):
    username: str = Field(min_length=1)
    name: str
    title: str = ""
    password_env: str


class RegistrationPolicy(_Strict):
    """What RFC 7591 dynamic registration grants: always public clients (no secret) that must use PKCE."""

    enabled: bool = True
    grant_types: tuple[str, ...] = (GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN)
    resources: tuple[str, ...] = ()
    # Unset: every scope of the listed resources.
    scopes: tuple[str, ...] | None = None
    # Registrations kept, in all and per address; past either, one is evicted (quotas.py policy): an unused
    # one before a used one, the heaviest address's first.
    max_clients: PositiveInt = 1000
    max_clients_per_address: PositiveInt = 50
    # A registration that has not been used to obtain a token within this long is forgotten.
    unused_client_seconds: PositiveInt = 3600

    @model_validator(mode="after")
    def _public_grants_only(self) -> RegistrationPolicy:
        allowed = {GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN}
        if not set(self.grant_types) <= allowed or GRANT_AUTHORIZATION_CODE not in self.grant_types:
            raise ValueError("registered clients are public: grant_types must be authorization_code [+ refresh_token]")
        return self


class ClientMetadataDocumentPolicy(_Strict):
    """Client ID Metadata Documents: https `client_id` URLs whose document this server fetches (see cimd.py).

    Such clients get what registered ones get: the `[registration]` grant types, resources and scopes.
    """

    enabled: bool = True
    fetch_timeout_seconds: PositiveFloat = 5.0  # for the whole fetch: resolve, connect, TLS, read
    max_document_bytes: PositiveInt = 5120  # the draft recommends reading at most 5 KB
    # The document's HTTP caching headers decide how long it is reused, within these bounds.
    min_cache_seconds: PositiveInt = 60
    max_cache_seconds: PositiveInt = 86400
    # Cached documents, in all and per address whose request fetched them (quotas.py policy).
    max_cached_documents: PositiveInt = 1000
    max_cached_documents_per_address: PositiveInt = 50

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ClientMetadataDocumentPolicy:
        if self.min_cache_seconds > self.max_cache_seconds:
            raise ValueError("min_cache_seconds must not exceed max_cache_seconds")
        return self


class IdJagAudience(_Strict):
    """As the enterprise IdP (SEP-990): a resource authorization server this server issues ID-JAGs for."""

    issuer: str = Field(min_length=1)  # that server's issuer: the ID-JAG's `aud`, the request's `audience`
    resources: tuple[str, ...] = Field(min_length=1)  # resource indicators there an ID-JAG may name
    scopes: tuple[str, ...] = Field(min_length=1)  # scopes an ID-JAG may carry for them
    # Admin policy: this server's client_id -> the client_id that client has at `issuer` (the ID-JAG's
    # `client_id`). A client not listed gets no ID-JAG for this audience.
    clients: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _uris(self) -> IdJagAudience:
        for uri in (self.issuer, *self.resources):
            check_resource_indicator(uri)
        return self


class IdJagPolicy(_Strict):
    lifetime_seconds: PositiveInt = 300
    audiences: tuple[IdJagAudience, ...] = ()


class TrustedIdentityProvider(_Strict):
    """As a resource authorization server: an enterprise IdP whose ID-JAGs (jwt-bearer grant) it accepts."""

    issuer: str = Field(min_length=1)
    jwks_uri: str = Field(min_length=1)
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # The IdP's `sub` -> this server's username. A subject not listed is refused: no account is guessed.
    subjects: dict[str, str]
    # ID-JAGs valid for longer than this (exp - iat) are refused, so the replay cache stays bounded in time.
    max_lifetime_seconds: PositiveInt = 600
    # Distinct ID-JAG `jti`s remembered until they expire; when full, new ID-JAGs are refused (never evicted).
    max_remembered_ids: PositiveInt = 100_000

    @model_validator(mode="after")
    def _safe_algorithms(self) -> TrustedIdentityProvider:
        if any(alg.lower() == "none" or alg.upper().startswith("HS") for alg in self.algorithms):
            raise ValueError("algorithms may not include none or HS*")
        return self
