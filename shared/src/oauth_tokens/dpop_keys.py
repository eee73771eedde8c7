"""A service's DPoP key (RFC 9449) kept on disk, so every replica and every restart proves the same key.

Tokens a service obtains for itself are bound to its DPoP key (`cnf.jkt`) and may outlive the process that
obtained them: a user's calendar grant in the shared vault, a token in the cache replicas share
(oauth_tokens.shared_state). Every replica must then sign proofs with that very key, so the key lives in a
directory the replicas share, like the client-assertion keys: an `oauth_tokens.signing_keys.KeyStore`
(0600 PKCS#8 PEM and an index, the first key generated under the directory's flock, so replicas starting
at once make ONE key). It is a separate directory and key from the client-assertion keys: those are
published in a JWKS and rotate on their own schedule; a DPoP key is published nowhere, and rotating one
never invalidates tokens bound to the other (docs/dpop.md).

The key is read once at start-up. To replace it, stop every replica, delete the directory, start again:
tokens bound to the old key are then refused downstream and obtained again (crm-mcp refreshes a stored
grant bound to another key before using it).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from oauth_tokens.dpop_client import DPoPKey
from oauth_tokens.signing_keys import KeyStore

__all__ = ["persistent_dpop_key"]

# Never published, so nothing outlives it: a retired key (none is retired here) needs no publication time.
_NO_PUBLICATION_SECONDS = 0


def persistent_dpop_key(directory: Path) -> DPoPKey:
    """The ES256 DPoP key kept in `directory`, generated there now if there is none (one key across replicas).

    DamagedKeyFileError (a SettingsError naming the file) if the directory holds an unreadable key."""
    store = KeyStore(directory, _NO_PUBLICATION_SECONDS, algorithm="ES256")
    store.ensure_key()
    private_key = store.signing_key().private_key
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):  # KeyStore checked it is an ES256 key
        raise TypeError(f"The DPoP key in {directory} is not an ES256 key")
    return DPoPKey(private_key, algorithm="ES256")
