"""The auth-server's access-token signing keys (the shared key store, RS256) and the CLI that rotates them."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from oauth_tokens.errors import SettingsError
from oauth_tokens.jwks import JWKS_REFETCH_COOLDOWN_SECONDS
from oauth_tokens.settings import load_settings
from oauth_tokens.signing_keys import (
    PUBLISH_AHEAD_SECONDS,
    RETIREMENT_MARGIN_SECONDS,
    KeyRecord,
    SigningAlgorithm,
    describe_keys,
    publish_ahead_argument,
    when,
)
from oauth_tokens.signing_keys import KeyStore as _SharedKeyStore

from auth_server.config import load_config
from auth_server.settings import AuthServerSettings, environment

__all__ = ["PUBLISH_AHEAD_SECONDS", "RETIREMENT_MARGIN_SECONDS", "SIGNING_ALGORITHM", "KeyRecord", "KeyStore", "main"]

logger = logging.getLogger(__name__)

SIGNING_ALGORITHM: SigningAlgorithm = "RS256"


class KeyStore(_SharedKeyStore):
    """The access-token signing keys (RS256) under the data directory: oauth_tokens.signing_keys.KeyStore.

    The old key stays published for `retired_key_publication_seconds` (the access-token lifetime) after
    it retires; the index is re-read when it changes, so `python -m auth_server.keys rotate` takes effect
    in a running server without a restart.
    """

    def __init__(self, directory: Path, retired_key_publication_seconds: int) -> None:
        super().__init__(directory, retired_key_publication_seconds, algorithm=SIGNING_ALGORITHM)


def main(argv: list[str] | None = None) -> None:
    """`python -m auth_server.keys rotate|list` (run from the repo root, like the server)."""
    parser = argparse.ArgumentParser(prog="python -m auth_server.keys", description=__doc__)
    parser.add_argument("command", choices=["rotate", "list"])
    parser.add_argument(
        "--publish-ahead",
        type=publish_ahead_argument,
        default=PUBLISH_AHEAD_SECONDS,
        metavar="SECONDS",
        help=(
            f"publish the new key this long before it signs (default {PUBLISH_AHEAD_SECONDS}, "
            f"at least {JWKS_REFETCH_COOLDOWN_SECONDS}: the validators' refetch cool-down)"
        ),
    )
    arguments = parser.parse_args(argv)
    settings = load_settings(AuthServerSettings)
    config = load_config(settings.auth_server_config, environment())
    store = KeyStore(settings.keys_dir, config.lifetimes.access_token_seconds)
    store.ensure_key()
    if arguments.command == "rotate":
        record = store.rotate(arguments.publish_ahead)
        signs_from = when(record.activates_at or record.created_at)
        print(f"New signing key {record.kid}: published now, signs from {signs_from}.")
    print(f"Published keys in {store.directory}:\n{describe_keys(store)}")


if __name__ == "__main__":
    try:
        main()
    except (SettingsError, OSError, ValueError) as error:  # a one-line exit; messages hold no key material
        sys.exit(f"auth_server.keys: {error}")
