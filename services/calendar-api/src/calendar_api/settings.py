"""Settings of calendar-api, read from the environment (and `.env`) at start-up.

calendar-api is the third party of pattern 4: it trusts its own authorization server
(CALENDAR_AUTH_ISSUER), never crm-mcp's (AUTH_ISSUER), so its trust settings have their own names.
"""

from __future__ import annotations

from oauth_tokens.dpop import DPoPMode
from oauth_tokens.settings import CommaList, DPoPSettings, OptionalPort
from oauth_tokens.validator import ValidatorConfig
from pydantic import Field, field_validator


class CalendarApiSettings(DPoPSettings):
    """Each field's name is its environment variable (upper-cased); AUTH_DPOP* as at every resource server."""

    calendar_api_host: str = "127.0.0.1"
    calendar_api_port: int = Field(default=8005, ge=1, le=65535)
    # /metrics on a port of its own (empty: none); see docs/observability.md.
    calendar_api_metrics_port: OptionalPort = None
    # This API's identifier: a token is accepted only if its `aud` contains exactly this string.
    calendar_api_audience: str = Field(min_length=1)
    # The calendar provider's own authorization server: the only issuer whose tokens count here.
    calendar_auth_issuer: str
    # Where its signing keys are. Empty: discovered from CALENDAR_AUTH_ISSUER (RFC 8414).
    calendar_auth_jwks_url: str = ""
    calendar_auth_algorithms: CommaList = ("RS256", "ES256")
    # DPoP here follows the calendar provider's choice, not the CRM's AUTH_DPOP: CALENDAR_AUTH_DPOP=accept|require.
    auth_dpop: DPoPMode = Field(default="accept", validation_alias="calendar_auth_dpop")

    @field_validator("calendar_auth_issuer")
    @classmethod
    def _issuer_is_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")  # never quotes the value
        return value

    def validator_config(self) -> ValidatorConfig:
        return ValidatorConfig(
            issuers=(self.calendar_auth_issuer,),
            audiences=(self.calendar_api_audience,),
            jwks_url=self.calendar_auth_jwks_url or None,
            algorithms=tuple(self.calendar_auth_algorithms),
        )
