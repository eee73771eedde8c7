"""One request to an OAuth token endpoint as a confidential client: authentication, failures, the answer.

Every grant this package speaks (client credentials, token exchange) sends through `TokenEndpoint`,
so each authenticates the same way (a client secret, RFC 6749 §2.3.1, or a signed client assertion,
RFC 7523 private_key_jwt: client_assertion.py), never follows a redirect, ends within one total deadline
(`timeout_seconds`: connect and every read together), and reports a refused or failed request
the same way: a `TokenEndpointError` carrying the OAuth error code and a description scrubbed of every
secret the request carried (the client secret or assertion, a subject token), never the secret itself.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx2

from oauth_tokens.client_assertion import CLIENT_ASSERTION_TYPE, ClientAssertionSigner
from oauth_tokens.deadline import deadline
from oauth_tokens.dpop_client import DPoPKey, DPoPNonceStore, nonce_challenge
from oauth_tokens.errors import DeadlineExceededError, TokenEndpointError
from oauth_tokens.metrics import TOKEN_REQUESTS
from oauth_tokens.telemetry import trace_http

__all__ = ["AUTH_METHODS", "AuthMethod", "TokenEndpoint", "TokenResponse"]

logger = logging.getLogger(__name__)

# "none": a public client, identified by client_id in the body only (RFC 6749 §2.3; e.g. at an IdP that
# takes the user's ID token as the proof, SEP-990).
AuthMethod = Literal["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("private_key_jwt", "client_secret_basic", "client_secret_post", "none")
_MAX_DESCRIPTION_CHARS = 200
# Metric labels for grant types whose names are URNs.
_GRANT_LABELS = {
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer": "jwt_bearer",
}
# The outcomes a metric label may take (RFC 6749 §5.2, RFC 8707, RFC 8693, and this module's own); a server's
# other `error` strings count as "other", so a token endpoint cannot grow the label set.
_OUTCOME_LABELS = frozenset(
    {
        "ok",
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "temporarily_unavailable",
        "server_error",
        "invalid_response",
    }
)


@dataclass(frozen=True)
class TokenResponse:
    """A successful answer: the Bearer access token, its lifetime in seconds, and the whole JSON body."""

    access_token: str = field(repr=False)
    lifetime: float
    body: Mapping[str, Any] = field(repr=False)


def _basic_credentials(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then Basic-encode `id:secret`.

    Spaces become %20 rather than '+': servers that percent-decode without '+' handling
    (authlib's extract_basic_authorization, for one) then read the same value as form decoders.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


class TokenEndpoint:
    """A token endpoint and the confidential client that calls it; one pooled HTTP client, opened lazily."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        assertion_signer: ClientAssertionSigner | None = None,
        auth_method: AuthMethod | None = None,
        timeout_seconds: float = 5.0,
        default_lifetime_seconds: float = 60,
        discover_token_url: Callable[[], Awaitable[str]] | None = None,
        pattern: str = "token_endpoint",
        dpop_key: DPoPKey | None = None,
    ) -> None:
        """Give `client_secret` (client_secret_basic, or _post) or `assertion_signer` (private_key_jwt).

        With `dpop_key`, every request carries a DPoP proof (RFC 9449 §5) and the answer must be a token bound
        to that key (`token_type: DPoP`); a server that asks for its nonce (`use_dpop_nonce`) gets one retry.

        `auth_method` defaults to what the credential implies; given, it must agree with the credential.
        `token_url` may be empty when `discover_token_url` finds it (TokenEndpointDiscovery.token_endpoint).
        `pattern` names the caller in traces and metrics (client_credentials, token_exchange, ...).
        """
        if auth_method is None:
            auth_method = "private_key_jwt" if assertion_signer is not None else "client_secret_basic"
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"Unsupported auth_method {auth_method!r} (one of {', '.join(AUTH_METHODS)})")
        if not token_url and discover_token_url is None:
            raise ValueError("token_url is required unless discover_token_url is given")
        if not client_id:
            raise ValueError("client_id must be non-empty")
        if client_secret is not None and assertion_signer is not None:
            raise ValueError("Give a client_secret or an assertion_signer, not both")
        if auth_method == "private_key_jwt" and assertion_signer is None:
            raise ValueError("auth_method private_key_jwt needs an assertion_signer (the client's private key)")
        if auth_method == "none" and (client_secret or assertion_signer is not None):
            raise ValueError("auth_method none (a public client) takes no client_secret and no assertion_signer")
        if auth_method not in ("private_key_jwt", "none") and not client_secret:
            raise ValueError(f"auth_method {auth_method} needs a non-empty client_secret")
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret or ""
        self._signer = assertion_signer
        self.auth_method: AuthMethod = auth_method
        self.timeout_seconds = timeout_seconds
        self.default_lifetime_seconds = default_lifetime_seconds
        self._discover_token_url = discover_token_url
        self.pattern = pattern
        self.dpop_key = dpop_key
        self._nonces = DPoPNonceStore()
        self._http: httpx2.AsyncClient | None = None

    @property
    def credential_kind(self) -> str:
        """What this client presents, as traces and metrics label it: client_secret or private_key_jwt."""
        return "private_key_jwt" if self.auth_method == "private_key_jwt" else "client_secret"

    def __repr__(self) -> str:
        return (
            f"TokenEndpoint(token_url={self.token_url!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r})"
        )

    async def url(self) -> str:
        """The token endpoint: as configured, else discovered once (TokenEndpointError if that fails)."""
        if not self.token_url and self._discover_token_url is not None:
            self.token_url = await self._discover_token_url()
        return self.token_url

    def authenticate(self, form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """`form` and the headers of a request as this client (RFC 6749 §2.3.1, RFC 7523 §2.2), for this
        endpoint or a sibling of the same server that authenticates clients the same way (RFC 7009
        revocation). With private_key_jwt, each call signs a new assertion (a fresh `jti`)."""
        data = dict(form)
        headers = {"Accept": "application/json"}
        if self._signer is not None:
            data.update(
                client_id=self.client_id,
                client_assertion_type=CLIENT_ASSERTION_TYPE,
                client_assertion=self._signer.sign(self.client_id, self.token_url),
            )
        elif self.auth_method == "client_secret_basic":
            headers["Authorization"] = _basic_credentials(self.client_id, self._client_secret)
        elif self.auth_method == "none":
            data["client_id"] = self.client_id
        else:
            data.update(client_id=self.client_id, client_secret=self._client_secret)
        return data, headers

    async def request(
        self, form: Mapping[str, str], *, secrets: Sequence[str] = (), expected_type: str = "Bearer"
    ) -> TokenResponse:
        """POST `form` as this client; `secrets` (besides the client's own credential) never appear in an error.

        `expected_type` is the `token_type` the answer must carry (case-insensitive): Bearer for an access
        token, `N_A` for a token exchange that issues something else (RFC 8693 §2.2.1), such as an ID-JAG."""
        token_url = await self.url()
        if self.dpop_key is not None and expected_type.lower() == "bearer":
            expected_type = "DPoP"
        response, sent = await self._post(token_url, form)
        if self.dpop_key is not None and nonce_challenge(response) and self._nonces.remember(token_url, response):
            response, sent = await self._post(token_url, form)  # a new assertion and proof, with the nonce
        secrets = (*secrets, *sent)
        body = _json_body(response)
        if not response.is_success:
            refusal = self._endpoint_error(form.get("grant_type", "?"), response.status_code, body, secrets)
            self._count(form, refusal.error)
            raise refusal
        self._count(form, "ok")
        return self._token_from(body, expected_type)

    async def _post(self, token_url: str, form: Mapping[str, str]) -> tuple[httpx2.Response, tuple[str, ...]]:
        """One POST of `form` as this client (and its DPoP proof); the response and the assertion sent, if any."""
        data, headers = self.authenticate(form)
        if self.dpop_key is not None:
            headers["DPoP"] = self.dpop_key.proof("POST", token_url, nonce=self._nonces.get(token_url))
        sent = (data["client_assertion"],) if "client_assertion" in data else ()
        try:
            with deadline(self.timeout_seconds, "The token endpoint"):
                response = await self._client().post(
                    token_url, data=data, headers=headers, timeout=self.timeout_seconds, follow_redirects=False
                )
        except (httpx2.TimeoutException, DeadlineExceededError) as error:
            self._count(form, "temporarily_unavailable")
            description = f"The token endpoint did not answer within {self.timeout_seconds:g} s"
            raise TokenEndpointError("temporarily_unavailable", description) from error
        except httpx2.TransportError as error:
            self._count(form, "temporarily_unavailable")
            description = f"The token endpoint is unreachable ({type(error).__name__})"
            raise TokenEndpointError("temporarily_unavailable", description) from error
        return response, sent

    @staticmethod
    def _count(form: Mapping[str, str], outcome: str) -> None:
        grant = form.get("grant_type", "unknown")
        outcome = outcome if outcome in _OUTCOME_LABELS else "other"
        TOKEN_REQUESTS.labels("client", _GRANT_LABELS.get(grant, grant), outcome).inc()

    async def aclose(self) -> None:
        """Close the HTTP client used for the token endpoint."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = trace_http(
                httpx2.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False),
                pattern=self.pattern,
                credential=self.credential_kind,
            )
        return self._http

    def _endpoint_error(
        self, grant_type: str, status_code: int, body: dict[str, Any] | None, secrets: Sequence[str]
    ) -> TokenEndpointError:
        error = body.get("error") if body else None
        if not isinstance(error, str) or not error:
            error = "server_error" if status_code >= 500 else "invalid_response"
        description = body.get("error_description") if body else None
        if isinstance(description, str):
            # Never trust a server not to echo what it was sent.
            for secret in filter(None, (self._client_secret, *secrets)):
                description = description.replace(secret, "[REDACTED]")
            description = description[:_MAX_DESCRIPTION_CHARS]
        else:
            description = None
        logger.warning(
            "Token request (%s) for client %r refused: %s (HTTP %d)", grant_type, self.client_id, error, status_code
        )
        return TokenEndpointError(error[:64], description, status_code)

    def _token_from(self, body: dict[str, Any] | None, expected_type: str) -> TokenResponse:
        if body is None:
            raise TokenEndpointError("invalid_response", "The token response is not a JSON object", 200)
        access_token = body.get("access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(access_token, str) or not access_token:
            raise TokenEndpointError("invalid_response", "The token response has no access_token", 200)
        if not isinstance(token_type, str) or token_type.lower() != expected_type.lower():
            hint = (
                " (the server did not bind it to the DPoP key: does it support DPoP?)"
                if expected_type == "DPoP"
                else ""
            )
            raise TokenEndpointError(
                "invalid_response", f"The token response is not of token_type {expected_type}{hint}", 200
            )
        return TokenResponse(access_token, self._lifetime(body.get("expires_in")), body)

    def _lifetime(self, expires_in: Any) -> float:
        """`expires_in` in seconds; when absent or nonsense, the short default_lifetime_seconds."""
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
            return float(expires_in)
        return self.default_lifetime_seconds


def _json_body(response: httpx2.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
