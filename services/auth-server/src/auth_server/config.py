"""Load and check the auth-server TOML config: resources, clients, users, registration policy, lifetimes."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources as package_files
from pathlib import Path
from typing import Any, Literal, get_args

from oauth_tokens.errors import SettingsError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

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

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(SettingsError):
    """The config file is unreadable, invalid, or references an environment variable that is not set."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class AuthServerConfig(_Strict):
    lifetimes: Lifetimes = Lifetimes()
    login: LoginPolicy = LoginPolicy()
    resources: dict[str, ResourceConfig]
    # scope -> what it lets an application do, in plain language (shown on the consent page).
    scope_descriptions: dict[str, str] = Field(default_factory=dict)
    clients: tuple[ClientConfig, ...] = ()
    users: tuple[UserConfig, ...] = ()
    registration: RegistrationPolicy = RegistrationPolicy()
    client_metadata_documents: ClientMetadataDocumentPolicy = ClientMetadataDocumentPolicy()
    rate_limits: RateLimits = RateLimits()
    switches: dict[str, Switch] = {}
    # Pattern 5 (SEP-990): ID-JAGs this server issues as an IdP, and IdPs whose ID-JAGs it redeems.
    id_jag: IdJagPolicy = IdJagPolicy()
    trusted_identity_providers: tuple[TrustedIdentityProvider, ...] = ()

    @model_validator(mode="after")
    def _cross_app_references_exist(self) -> AuthServerConfig:
        client_ids = {client.client_id for client in self.clients}
        for audience in self.id_jag.audiences:
            unknown = sorted(set(audience.clients) - client_ids)
            if unknown:
                raise ValueError(f"id_jag audience {audience.issuer}: unknown clients {unknown}")
        usernames = {user.username for user in self.users}
        for idp in self.trusted_identity_providers:
            unmapped = sorted(set(idp.subjects.values()) - usernames)
            if unmapped:
                raise ValueError(f"trusted identity provider {idp.issuer}: subjects map to unknown users {unmapped}")
        return self

    @model_validator(mode="after")
    def _references_exist(self) -> AuthServerConfig:
        def check_resources(names: tuple[str, ...], where: str) -> None:
            unknown = [name for name in names if name not in self.resources]
            if unknown:
                raise ValueError(f"{where} names unknown resources {unknown}")

        client_ids = [client.client_id for client in self.clients]
        if len(set(client_ids)) != len(client_ids):
            raise ValueError("client_id values must be unique")
        usernames = [user.username for user in self.users]
        if len(set(usernames)) != len(usernames):
            raise ValueError("usernames must be unique")
        # A client-credentials token's `sub` is the client id (RFC 9068 §2.2), a user's token's `sub` the
        # username: resource servers tell "no user" from "a user" by them, so they must never coincide.
        clashing = sorted(set(usernames) & set(client_ids))
        clashing += [name for name in usernames if name.startswith(DYNAMIC_CLIENT_ID_PREFIX)]
        if clashing:
            raise ValueError(
                f"usernames {clashing} could be taken for client ids (equal to one, "
                f"or starting {DYNAMIC_CLIENT_ID_PREFIX!r} like registered clients)"
            )
        for name, resource in self.resources.items():
            if resource.extra_audiences_when is not None:
                switch, _, value = resource.extra_audiences_when.partition("=")
                if switch not in self.switches or value not in self.switches[switch].choices:
                    raise ValueError(f"resource {name}: extra_audiences_when needs a [switches] entry and choice")
        for client in self.clients:
            switch_name = client.token_endpoint_auth_method_switch
            if switch_name is not None and (
                switch_name not in self.switches
                or not set(self.switches[switch_name].choices) <= set(CLIENT_AUTH_METHODS)
            ):
                raise ValueError(
                    f"client {client.client_id}: token_endpoint_auth_method_switch needs a [switches] entry "
                    f"whose choices are token endpoint auth methods ({', '.join(CLIENT_AUTH_METHODS)})"
                )
            check_resources(client.resources, f"client {client.client_id}")
            check_resources(client.exchange_subject_resources, f"client {client.client_id}")
            known = set().union(*(self.resources[name].scopes for name in client.resources))
            if not set(client.scopes) <= known:
                raise ValueError(f"client {client.client_id} has scopes none of its resources define")
        check_resources(self.registration.resources, "registration")
        if self.registration.enabled and not self.registration.resources:
            raise ValueError("registration needs at least one resource")
        if self.client_metadata_documents.enabled and not self.registration.resources:
            raise ValueError("client_metadata_documents needs at least one resource in [registration]")
        self._check_scope_descriptions()
        return self

    def _check_scope_descriptions(self) -> None:
        """Every scope a resource defines has a non-empty description, and only those scopes have one."""
        scopes = self.all_scopes()
        undescribed = [scope for scope in scopes if not self.scope_descriptions.get(scope, "").strip()]
        if undescribed:
            raise ValueError(f"scope_descriptions needs a plain-language description of {undescribed}")
        unknown = sorted(set(self.scope_descriptions) - set(scopes))
        if unknown:
            raise ValueError(f"scope_descriptions describes scopes no resource defines: {unknown}")

    def resource_named(self, name: str) -> ResourceConfig:
        return self.resources[name]

    def registration_scopes(self) -> tuple[str, ...]:
        """Scopes dynamically registered clients may ask for."""
        if self.registration.scopes is not None:
            return self.registration.scopes
        scopes: dict[str, None] = {}
        for name in self.registration.resources:
            scopes.update(dict.fromkeys(self.resources[name].scopes))
        return tuple(scopes)

    def all_scopes(self) -> tuple[str, ...]:
        scopes: dict[str, None] = {}
        for resource in self.resources.values():
            scopes.update(dict.fromkeys(resource.scopes))
        return tuple(scopes)


def default_config_text() -> str:
    """The annotated config shipped in the package (used when AUTH_SERVER_CONFIG is unset)."""
    return package_files.files("auth_server").joinpath("auth-server.toml").read_text(encoding="utf-8")


def load_config(path: Path | None, environ: Mapping[str, str]) -> AuthServerConfig:
    """Parse the config at `path` (None: the packaged default), expanding `${NAME}` from `environ`."""
    source = str(path) if path is not None else "auth_server/auth-server.toml (packaged default)"
    try:
        text = path.read_text(encoding="utf-8") if path is not None else default_config_text()
        raw = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"Cannot read auth-server config {source}: {error}") from None
    expanded = _expand(raw, environ, location="")
    try:
        config = AuthServerConfig.model_validate(expanded)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False, include_context=False)
        )
        raise ConfigError(f"Invalid auth-server config {source}: {problems}") from None
    return _switched(config, environ)


def _switched(config: AuthServerConfig, environ: Mapping[str, str]) -> AuthServerConfig:
    """`config` as its [switches] select it now: each switch read from `environ`, checked against its choices."""
    values: dict[str, str] = {}
    for name, switch in config.switches.items():
        values[name] = environ.get(name, switch.default)
        if values[name] not in switch.choices:
            raise ConfigError(f"Invalid setting {name}: must be one of {', '.join(switch.choices)}")
    resources = {
        name: resource
        if resource.extra_audiences_when is None or _holds(resource.extra_audiences_when, values)
        else resource.model_copy(update={"extra_audiences": ()})
        for name, resource in config.resources.items()
    }
    clients = []
    for client in config.clients:
        if client.token_endpoint_auth_method_switch is not None:
            method = values[client.token_endpoint_auth_method_switch]
            client = client.model_copy(update={"token_endpoint_auth_method": method})
            try:
                check_client_auth(client)
            except ValueError as problem:
                switch_name = client.token_endpoint_auth_method_switch
                raise ConfigError(f"Client {client.client_id} ({switch_name}={method}): {problem}") from None
        clients.append(client)
    return config.model_copy(update={"resources": resources, "clients": tuple(clients)})


def _holds(condition: str, values: Mapping[str, str]) -> bool:
    switch, _, value = condition.partition("=")
    return values[switch] == value


def _expand(value: Any, environ: Mapping[str, str], location: str) -> Any:
    """Replace `${NAME}` in every string; a variable that is not set stops start-up, naming it."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if not environ.get(name):
                raise ConfigError(f"Missing required setting {name} (referenced by {location} in the config)")
            return environ[name]

        return _ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: _expand(item, environ, f"{location}.{key}".lstrip(".")) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand(item, environ, f"{location}[{index}]") for index, item in enumerate(value)]
    return value


def require_secret(environ: Mapping[str, str], name: str) -> str:
    """The secret held by environment variable `name`; its absence stops start-up (the value is never shown)."""
    value = environ.get(name, "")
    if not value:
        raise ConfigError(f"Missing required setting {name} (a secret the config refers to)")
    return value
