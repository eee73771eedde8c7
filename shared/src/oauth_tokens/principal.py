"""Principal: the verified identity and grants carried by a validated access token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Principal:
    """Who called (subject), through which client, with which scopes, for which audiences."""

    subject: str
    client_id: str | None
    issuer: str
    scopes: frozenset[str]
    audiences: tuple[str, ...]
    expires_at: int
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def actor(self) -> str | None:
        """Who acts for the subject (`act.sub`, RFC 8693 §4.1): set in tokens issued by a token exchange."""
        act = self.claims.get("act")
        actor = act.get("sub") if isinstance(act, Mapping) else None
        return actor if isinstance(actor, str) and actor else None

    def has_scopes(self, *scopes: str) -> bool:
        """True when every scope given is granted (True for no scopes)."""
        return set(scopes) <= self.scopes

    def missing_scopes(self, scopes: tuple[str, ...]) -> tuple[str, ...]:
        """The scopes of `scopes` not granted, in the order given."""
        return tuple(scope for scope in scopes if scope not in self.scopes)
