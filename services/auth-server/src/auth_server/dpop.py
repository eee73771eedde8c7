"""DPoP at the token endpoint (RFC 9449 §5, §8, §10): the proof of a token request, and what it binds.

A token request may carry one `DPoP` proof (htm POST, htu the token endpoint: as published under the
issuer, or as this request reached it). Valid, its key's thumbprint binds every access token the grant
issues (`cnf.jkt`, `token_type: DPoP`) and, for a public client, the refresh token too (a confidential
client's refresh tokens are bound to its authentication already). AUTH_SERVER_DPOP=require refuses token
requests without a proof; AUTH_SERVER_DPOP_NONCE=true makes proofs carry this server's nonce
(`use_dpop_nonce`, with a `DPoP-Nonce` header). The proof checks themselves are oauth_tokens.dpop's.

Replicas: nonces are keyed from AUTH_SERVER_STATE_KEYS (a key derived from them, oauth_tokens.dpop.nonce_keys),
which every replica shares, so a nonce one replica issued is accepted by the next; proofs' `jti`s go to
the shared replay cache (Redis) when there is one, so a proof replayed at another replica is refused too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import Request
from oauth_tokens.dpop import (
    DPoPNonceRequiredError,
    DPoPNonces,
    DPoPPolicy,
    DPoPProofError,
    DPoPUnavailableError,
    nonce_keys,
)
from oauth_tokens.replay_cache import InMemoryReplayCache, ReplayCache

from auth_server.errors import OAuthError

__all__ = ["TokenEndpointDPoP", "bound_token_type"]

logger = logging.getLogger(__name__)


def bound_token_type(jkt: str | None) -> str:
    """The `token_type` of an access token bound to `jkt` (DPoP), or not bound (Bearer)."""
    return "DPoP" if jkt else "Bearer"


class TokenEndpointDPoP:
    """Checks token requests' proofs for one authorization server (`issuer`)."""

    def __init__(
        self,
        issuer: str,
        *,
        required: bool = False,
        nonce: bool = False,
        state_keys: Sequence[str] = (),
        replay_cache: ReplayCache | None = None,
    ) -> None:
        """`state_keys`: AUTH_SERVER_STATE_KEYS, which the nonces' key is derived from (none: a key per process);
        `replay_cache`: the replicas' shared one (None: in memory)."""
        self.token_endpoint = f"{issuer}/token"
        self.required = required
        self.policy = DPoPPolicy(
            replay_cache=replay_cache if replay_cache is not None else InMemoryReplayCache(max_entries=100_000),
            nonces=DPoPNonces(nonce_keys(state_keys)) if nonce else None,
        )

    @property
    def algorithms(self) -> list[str]:
        """For `dpop_signing_alg_values_supported` (RFC 9449 §5.1)."""
        return list(self.policy.algorithms)

    async def key_of(self, request: Request) -> str | None:
        """The thumbprint of the key the request's proof shows possession of; None without a proof."""
        proofs = request.headers.getlist("dpop")
        if not proofs:
            if self.required:
                raise OAuthError("invalid_dpop_proof", "This server issues DPoP-bound tokens only: send a DPoP proof")
            return None
        if len(proofs) > 1:
            raise OAuthError("invalid_dpop_proof", "Send exactly one DPoP proof")
        try:
            proof = await self.policy.verify(
                proofs[0], method=request.method, url=(self.token_endpoint, str(request.url))
            )
        except DPoPNonceRequiredError as error:
            logger.debug("Token request's DPoP proof lacks the nonce: %s", error.reason)
            nonce = self.policy.nonces.issue() if self.policy.nonces is not None else ""
            raise OAuthError(
                "use_dpop_nonce", "Authorization server requires nonce in DPoP proof", headers={"DPoP-Nonce": nonce}
            ) from None
        except DPoPProofError as error:
            logger.info("Token request's DPoP proof refused: %s", error.reason)
            raise OAuthError("invalid_dpop_proof", "The DPoP proof is invalid") from None
        except DPoPUnavailableError as error:
            logger.warning("Token request's DPoP proof not checked: %s", error)
            raise OAuthError(
                "temporarily_unavailable",
                "DPoP proofs cannot be checked now",
                status_code=503,
                headers={"Retry-After": "1"},
            ) from None
        return proof.jkt
