"""Bench group: the shared validator against a bare PyJWT decode of the same tokens, first-seen and repeated.

The bare decode is the least anyone could write: `jwt.decode` with the issuer's public key already in
hand and the same audience, issuer and expiry checks. The validator also hashes the token for its
cache, finds the key in its JWKS cache, checks alg/typ/kid, requires iss/aud/exp/iat/sub, checks the
scope syntax and builds a Principal; it decodes each segment once itself (oauth_tokens.compact_jws)
and verifies with PyJWT's algorithm for the resolved key, where `jwt.decode` spends more on parsing
than on the RSA check. Both run in this process, so the pairs are timed in CPU time (steadier than
wall clock on a busy machine).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
from devkit.tokens import TestIssuer
from oauth_tokens import AccessTokenValidator, ValidatorConfig

from scripts.bench.measure import SCALE, Ratio, Row, Target, paired_latency, timed
from scripts.bench.profiles import profile_async_calls, profile_calls

FIRST_SEEN_TARGET = Target("<=", 1.2)
CACHED_TARGET = Target("<=", 0.1)
AUDIENCE = "bench"


async def _profile(validator: AccessTokenValidator, tokens: Iterator[str], calls: int) -> str:
    """The validator's top functions by own time over `calls` first-seen validations."""
    return await profile_async_calls(
        "shared validator, first-seen tokens",
        lambda: validator.validate(next(tokens)),
        calls,
        kept_as="validator-first-seen",
    )


async def bench_validation(*, profile: bool = False) -> tuple[list[Row], list[Ratio], str]:
    """Absolute validation rows, the first-seen and repeated-token ratios against bare PyJWT, and (`profile`)
    the cProfile of both on first-seen tokens."""
    # Many short rounds: the median of per-round ratios shrugs off bursts of load from other processes.
    calls, rounds = 50, 41
    with TestIssuer() as issuer:
        config = ValidatorConfig(issuers=[issuer.issuer], audiences=[AUDIENCE], jwks_url=issuer.jwks_url)
        # Every first-seen validation needs a token never seen before: warm-up, rounds, profile.
        token_count = SCALE(calls) * (SCALE(rounds, minimum=3) + 3) + 2
        tokens = [issuer.mint(aud=AUDIENCE, scope="crm:read") for _ in range(token_count)]
        public_key = issuer.private_key.public_key()

        def bare_decode(token: str) -> object:
            return jwt.decode(token, public_key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer.issuer)

        async with AccessTokenValidator(config) as validator:
            await validator.validate(tokens[-1])  # fetches the JWKS once
            ours_tokens, bare_tokens = iter(tokens), iter(tokens)

            async def validate_first_seen() -> None:
                await validator.validate(next(ours_tokens))

            async def decode_first_seen() -> None:
                bare_decode(next(bare_tokens))

            first_seen = await paired_latency(
                "shared validator vs bare PyJWT decode, first-seen token",
                validate_first_seen,
                [decode_first_seen],
                calls=calls,
                rounds=rounds,
                target=FIRST_SEEN_TARGET,
                clock=time.process_time,
            )
            repeated = tokens[0]

            async def validate_repeated() -> None:
                await validator.validate(repeated)

            async def decode_repeated() -> None:
                bare_decode(repeated)

            cached = await paired_latency(
                "verified-token cache vs bare PyJWT decode, repeated token",
                validate_repeated,
                [decode_repeated],
                calls=calls * 4,
                rounds=rounds,
                target=CACHED_TARGET,
                clock=time.process_time,
            )
            # What bare PyJWT code also needs: the key for the token's kid, from PyJWKClient (cached JWKS).
            jwks_client = jwt.PyJWKClient(issuer.jwks_url)
            async with AccessTokenValidator(config) as unseen_validator:
                await unseen_validator.validate(tokens[-1])
                ours_tokens, bare_tokens = iter(tokens), iter(tokens)

                async def validate_unseen() -> None:
                    await unseen_validator.validate(next(ours_tokens))

                async def decode_with_jwks_client() -> None:
                    token = next(bare_tokens)
                    key = jwks_client.get_signing_key_from_jwt(token)
                    jwt.decode(token, key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer.issuer)

                with_key_lookup = await paired_latency(
                    "shared validator vs PyJWT + PyJWKClient key lookup, first-seen",
                    validate_unseen,
                    [decode_with_jwks_client],
                    calls=calls,
                    rounds=rounds,
                    clock=time.process_time,
                )
            spare = iter(tokens[-3 * SCALE(calls) - 1 : -1])
            profiles = ""
            if profile:
                profiles = "\n".join(
                    [
                        "Profile of first-seen token validation (same tokens, never seen before by either):",
                        await _profile(validator, spare, SCALE(calls)),
                        profile_calls(
                            "bare PyJWT jwt.decode", lambda: bare_decode(next(spare)), SCALE(calls), "jwt-decode"
                        ),
                    ]
                )
            if first_seen.met is False:
                first_seen = first_seen.with_diagnosis(
                    "\n".join(
                        [
                            await _profile(validator, spare, SCALE(calls)),
                            "  Every check of the attack catalog runs on each token; a miss here is either load",
                            "  (rerun; `make bench REPEAT=3` shows the spread) or a new cost in the functions above.",
                        ]
                    )
                )
            rows = [
                await timed("validate JWT, repeated token (verified-token cache)", 5000, validate_repeated),
                await timed("validate JWT, bare PyJWT decode (RS256, key in hand)", 2000, decode_repeated),
            ]
    return rows, [first_seen, with_key_lookup, cached], profiles
