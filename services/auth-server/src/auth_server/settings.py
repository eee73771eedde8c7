"""Typed settings of the auth-server, read from the environment (and `.env`) at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from oauth_tokens.cors import CorsSettings
from oauth_tokens.service_database import DatabaseSettings, ServiceDatabase
from oauth_tokens.settings import CommaList, OptionalPort
from oauth_tokens.shared_state import SharedStateSettings
from pydantic import field_validator
from sqlalchemy import select

from auth_server.tables import refresh_families


class AuthServerSettings(CorsSettings, SharedStateSettings, DatabaseSettings):
    """AUTH_ISSUER is the public URL every token names; the rest say where to listen and keep state.

    CORS_ALLOWED_ORIGINS (from CorsSettings): the browser origins whose pages may call /token, /revoke and
    /register (app.py's CORS policy).

    REDIS_URL / REDIS_KEY_PREFIX (from SharedStateSettings): with Redis, rate limits, login lockouts, the
    replay caches and cached client metadata documents are shared by every replica (state.py); the prefix
    defaults to OTEL_SERVICE_NAME, else `auth-server`, so the calendar-auth-server keeps its own keys.

    DATABASE_URL / DATABASE_MIGRATE_ON_START (from DatabaseSettings): durable state (registered clients,
    codes, sign-ins in progress, refresh tokens); empty means SQLite at <AUTH_SERVER_DATA_DIR>/auth-server.db,
    postgresql://… is shared by every replica (`database()`).
    """

    auth_issuer: str
    auth_server_host: str = "127.0.0.1"
    auth_server_port: int = 9000
    # /metrics (Prometheus) on this port of METRICS_HOST; unset: no metrics listener.
    auth_server_metrics_port: OptionalPort = None
    auth_server_data_dir: Path = Path("data/auth-server")
    # Unset: the annotated default file shipped inside the package (auth_server/auth-server.toml).
    auth_server_config: Path | None = None
    # Development only: let client ID metadata documents come from loopback addresses, over http or https
    # (an attacker's client_id URL could otherwise make this server call services on its own machine).
    auth_server_cimd_allow_loopback: bool = False
    # DPoP at the token endpoint (docs/dpop.md): accept binds tokens when a proof is sent; require refuses
    # token requests without one. _NONCE: proofs must carry this server's nonce (use_dpop_nonce).
    auth_server_dpop: Literal["accept", "require"] = "accept"
    auth_server_dpop_nonce: bool = False
    # Keys of the sign-in forms' CSRF values, comma-separated, each at least 32 characters: the first signs,
    # all verify (rotate by putting a new key first and dropping the old one after the sign-in lifetime).
    # Every replica has the same list, so a sign-in started at one replica finishes at any other.
    auth_server_state_keys: CommaList

    @field_validator("auth_issuer")
    @classmethod
    def _issuer_is_exact_url(cls, value: str) -> str:
        # Clients compare `iss` by exact string (RFC 8414 §3.3, RFC 9207), so no normalising here.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        # An origin only: the endpoints and /.well-known documents are served at the root (RFC 8414 §3).
        if parts.path or parts.query or parts.fragment:
            raise ValueError("must be an origin (scheme://host[:port]) with no path or trailing slash")
        return value

    @field_validator("auth_server_state_keys")
    @classmethod
    def _state_keys_are_long(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        if not keys or any(len(key) < 32 for key in keys):
            raise ValueError("needs at least one key, each at least 32 characters of random")
        return keys

    @field_validator("auth_server_config", mode="before")
    @classmethod
    def _empty_means_default(cls, value: object) -> object:
        # `AUTH_SERVER_CONFIG=` in .env means "not set", not the current directory.
        return None if value == "" else value

    @property
    def keys_dir(self) -> Path:
        """Where the signing keys live (PEM files, mode 0600)."""
        return self.auth_server_data_dir / "keys"

    @property
    def database_file(self) -> Path:
        """The SQLite file used when DATABASE_URL is empty."""
        return self.auth_server_data_dir / "auth-server.db"

    def database(self) -> ServiceDatabase:
        """The auth-server's database (tables.py). Readiness probes a table, so a replica started with
        DATABASE_MIGRATE_ON_START=false stays unready until `python -m auth_server migrate` has run."""
        return ServiceDatabase.from_settings(
            self,
            default_sqlite_file=self.database_file,
            migrations="auth_server:migrations",
            schema_probe=select(refresh_families.c.family_id).limit(1),
        )


def environment(env_file: Path = Path(".env")) -> dict[str, str]:
    """The process environment over the values in `.env`, the precedence pydantic-settings uses.

    The config file's `${NAME}` references and the secrets it names (`secret_env`, `password_env`) are
    resolved from this, so a developer's `.env` works for them exactly as for the typed settings.
    """
    from_file = {name: value for name, value in dotenv_values(env_file).items() if value is not None}
    return {**from_file, **os.environ}
