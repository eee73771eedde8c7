"""DPoP at a resource server (RFC 9449 §7): an ASGI layer in front of the app's own token check.

Each resource server (FastAPI or MCP) keeps validating the access token itself; this layer, outermost
but for CORS, decides what the DPoP rules add, from the request's headers, method and URL:

- `Authorization: DPoP <token>` with exactly one `DPoP` proof: the token must name a key (`cnf.jkt`), the
  proof must be valid for this method and URL, carry the token's hash, and be signed by that key. Then
  the request goes on with `Authorization: Bearer <token>`, so the app's validator (FastAPI dependency,
  MCP TokenVerifier) checks the token unchanged, over the very payload whose `cnf` was compared.
- `Authorization: Bearer <token>`: refused if the token is DPoP-bound (a stolen bound token is useless as
  a bearer token), or in `require` mode; otherwise passed on as before (`accept`: Inspector, Claude Code).
- Refusals are 401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"|"invalid_token"|"use_dpop_nonce"`
  and `algs` (§7.1), a `DPoP-Nonce` when one is needed; a replay cache that is down is a 503 + Retry-After.
- The app's own 401/403 challenges get the DPoP scheme (with `algs`) when the request used DPoP or in
  `require` mode. In `accept` mode a request without DPoP gets exactly the answers it got before (bearer
  clients parse them); DPoP clients learn of DPoP from the authorization server's metadata.

The request URL for `htu` is the scheme, Host header and path as received; behind a proxy that rewrites
them, `trust_forwarded_headers` takes `X-Forwarded-Proto` and `X-Forwarded-Host` (first value) instead,
and must only be set when that proxy overwrites those headers.
"""

from __future__ import annotations

import logging
from typing import Final

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oauth_tokens.dpop import (
    DPoPMode,
    DPoPNonceRequiredError,
    DPoPPolicy,
    DPoPProofError,
    DPoPUnavailableError,
    bound_thumbprint,
)
from oauth_tokens.replay_cache import ReplayCache
from oauth_tokens.settings import DPoPSettings

__all__ = ["DPoPResourceGuard", "dpop_challenge", "install_dpop"]

logger = logging.getLogger(__name__)

_RETRY_AFTER_SECONDS: Final = "1"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dpop_challenge(algs: str, error: str | None = None, description: str | None = None) -> str:
    """A `DPoP ...` challenge (RFC 9449 §7.1): error and description when given, then `algs`."""
    params = [("error", error), ("error_description", description), ("algs", algs)]
    return "DPoP " + ", ".join(f"{name}={_quoted(value)}" for name, value in params if value)


class DPoPResourceGuard:
    """ASGI middleware applying RFC 9449 to every request of `app` that carries an Authorization header."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: DPoPPolicy,
        mode: DPoPMode = "accept",
        trust_forwarded_headers: bool = False,
    ) -> None:
        if mode not in ("accept", "require"):
            raise ValueError("mode must be accept or require")
        self.app = app
        self.policy = policy
        self.mode = mode
        self.trust_forwarded_headers = trust_forwarded_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorizations = headers.getlist("authorization")
        scheme, _, token = authorizations[0].partition(" ") if len(authorizations) == 1 else ("", "", "")
        scheme, token = scheme.lower(), token.strip()
        used_dpop = False
        if scheme == "dpop" and token:
            refusal = await self._check_dpop(scope, headers, token)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            used_dpop = True
            scope = self._as_bearer(scope, token)
        elif scheme == "bearer" and token:
            jkt = bound_thumbprint(token)
            if jkt is not None:
                logger.debug("DPoP-bound token sent as a bearer token: refused")
                await self._refuse("invalid_token", "A DPoP-bound token needs the DPoP scheme and a proof")(
                    scope, receive, send
                )
                return
            if self.mode == "require":
                logger.debug("Bearer token refused: this resource requires DPoP")
                await self._refuse("invalid_token", "This resource accepts only DPoP-bound tokens")(
                    scope, receive, send
                )
                return
        if used_dpop or self.mode == "require":
            send = self._challenging(send)
        await self.app(scope, receive, send)

    async def _check_dpop(self, scope: Scope, headers: Headers, token: str) -> JSONResponse | None:
        jkt = bound_thumbprint(token)
        if not jkt:
            logger.debug("DPoP scheme with a token bound to no key: refused")
            return self._refuse("invalid_token", "The access token is not DPoP-bound")
        proofs = headers.getlist("dpop")
        if len(proofs) != 1:
            logger.debug("DPoP request with %d DPoP headers: refused", len(proofs))
            return self._refuse("invalid_dpop_proof", "Exactly one DPoP proof is required")
        try:
            proof = await self.policy.verify(
                proofs[0], method=scope["method"], url=self._request_url(scope, headers), access_token=token
            )
        except DPoPNonceRequiredError as error:
            logger.debug("DPoP proof refused: %s", error.reason)
            return self._refuse(error.error, "Resource server requires nonce in DPoP proof")
        except DPoPProofError as error:
            logger.debug("DPoP proof refused: %s", error.reason)
            return self._refuse(error.error, "The DPoP proof is invalid")
        except DPoPUnavailableError as error:
            logger.warning("DPoP proof not checked: %s", error)
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": "DPoP proofs cannot be checked now"},
                status_code=503,
                headers={"Retry-After": _RETRY_AFTER_SECONDS, "Cache-Control": "no-store"},
            )
        if proof.jkt != jkt:
            logger.debug("DPoP proof signed by another key than the token's cnf.jkt: refused")
            return self._refuse("invalid_dpop_proof", "The DPoP proof is not signed by the token's key")
        return None

    def _request_url(self, scope: Scope, headers: Headers) -> str:
        scheme = str(scope.get("scheme", "http"))
        host = headers.get("host", "")
        if self.trust_forwarded_headers:
            scheme = headers.get("x-forwarded-proto", scheme).split(",")[0].strip() or scheme
            host = headers.get("x-forwarded-host", host).split(",")[0].strip() or host
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else scope.get("root_path", "") + scope["path"]
        return f"{scheme}://{host}{path}"

    @staticmethod
    def _as_bearer(scope: Scope, token: str) -> Scope:
        headers = [(name, value) for name, value in scope["headers"] if name not in (b"authorization", b"dpop")]
        headers.append((b"authorization", f"Bearer {token}".encode("latin-1")))
        return {**scope, "headers": headers}

    def _refuse(self, error: str, description: str) -> JSONResponse:
        headers = {
            "WWW-Authenticate": dpop_challenge(self.policy.algs_value, error, description),
            "Cache-Control": "no-store",
        }
        if error == "use_dpop_nonce" and self.policy.nonces is not None:
            headers["DPoP-Nonce"] = self.policy.nonces.issue()
        return JSONResponse({"error": error, "error_description": description}, status_code=401, headers=headers)

    def _challenging(self, send: Send) -> Send:
        algs = self.policy.algs_value

        async def send_with_dpop_challenge(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                rewritten: list[tuple[bytes, bytes]] = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"www-authenticate" and value[:6].lower() == b"bearer":
                        challenge = value.decode("latin-1")
                        params = challenge[6:].strip()
                        dpop = f"DPoP {params}, algs={_quoted(algs)}" if params else f"DPoP algs={_quoted(algs)}"
                        rewritten.append((name, dpop.encode("latin-1")))
                    else:
                        rewritten.append((name, value))
                message = {**message, "headers": rewritten}
            await send(message)

        return send_with_dpop_challenge


def install_dpop(app: Starlette, settings: DPoPSettings, replay_cache: ReplayCache | None = None) -> DPoPPolicy:
    """Put a DPoPResourceGuard configured by AUTH_DPOP* around `app`'s routes (call before CORS, which stays outermost).

    Returns the policy in use (its algorithms, nonces, replay cache)."""
    policy = settings.dpop_policy(replay_cache)
    app.add_middleware(
        DPoPResourceGuard,
        policy=policy,
        mode=settings.auth_dpop,
        trust_forwarded_headers=settings.auth_dpop_trust_forwarded_headers,
    )
    logger.info("DPoP: %s (algs %s, nonce %s)", settings.auth_dpop, policy.algs_value, policy.nonces is not None)
    return policy
