"""API-key checking: constant-time comparison against the configured keys, never logging a key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible label for a key: safe for logs and rate-limit buckets."""
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


class ApiKeyRing:
    """The accepted keys, held only as SHA-256 digests (so a memory dump or repr shows no key)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(hashlib.sha256(key.encode()).digest() for key in keys)
        if not self._digests:
            raise ValueError("at least one API key is required")

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeyRing(<{len(self)} key(s)>)"

    def is_valid(self, presented: str) -> bool:
        """Compare digests in constant time, against every key, so timing reveals neither key nor match."""
        candidate = hashlib.sha256(presented.encode()).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched
