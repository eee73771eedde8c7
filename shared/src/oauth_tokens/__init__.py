"""oauth_tokens: validate OAuth 2.1 JWT access tokens, obtain client-credentials tokens, exchange tokens."""

from oauth_tokens.client_credentials import ClientCredentialsAuth, TokenCache
from oauth_tokens.errors import (
    InsufficientScopeError,
    InvalidTokenError,
    KeySourceError,
    KeySourceUnavailableError,
    MissingTokenError,
    OAuthTokensError,
    SettingsError,
    SigningKeyUnavailableError,
    TokenEndpointError,
)
from oauth_tokens.principal import Principal
from oauth_tokens.token_exchange import TokenExchange
from oauth_tokens.validator import AccessTokenValidator, ValidatorConfig

__all__ = [
    "AccessTokenValidator",
    "ClientCredentialsAuth",
    "InsufficientScopeError",
    "InvalidTokenError",
    "KeySourceError",
    "KeySourceUnavailableError",
    "MissingTokenError",
    "OAuthTokensError",
    "Principal",
    "SettingsError",
    "SigningKeyUnavailableError",
    "TokenCache",
    "TokenEndpointError",
    "TokenExchange",
    "ValidatorConfig",
]
