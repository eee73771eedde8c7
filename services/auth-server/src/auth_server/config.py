"""Load and check the auth-server TOML config: resources, clients, users, registration policy, lifetimes."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from oauth_tokens.errors import SettingsError
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from auth_server.config_sections import (
    CLIENT_AUTH_METHODS,
    DYNAMIC_CLIENT_ID_PREFIX,
    ClientConfig,
    ClientMetadataDocumentPolicy,
    IdJagPolicy,
    Lifetimes,
    LoginPolicy,
    PageConfig,
    RateLimits,
    RegistrationPolicy,
    ResourceConfig,
    Switch,
    TrustedIdentityProvider,
    UserConfig,
    _Strict,
    check_client_auth,
)

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(SettingsError):
    """The config file is unreadable, invalid, or references an environment variable that is not set."""


class AuthServerConfig(_Strict):
    page: PageConfig = PageConfig()
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
    switches: dict[str, Switch] = Field(default_factory=dict)
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
