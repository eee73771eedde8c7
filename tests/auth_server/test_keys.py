"""The keystore: generated on first start, private files, rotation keeps old keys published until
their tokens have expired, and a rotation by the CLI is seen by a running server's store."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
from auth_server.keys import PUBLISH_AHEAD_SECONDS, RETIREMENT_MARGIN_SECONDS, KeyStore
from auth_server.tokens import AccessTokenIssuer

LIFETIME = 600


def test_first_start_generates_a_private_rsa_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", LIFETIME)
    store.ensure_key()

    key = store.signing_key()
    assert key.private_key.key_size == 2048
    pem = tmp_path / "keys" / f"{key.kid}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    (published,) = store.jwks()["keys"]
    assert set(published) == {"kty", "n", "e", "kid", "use", "alg"}  # public parts only
    assert (published["kid"], published["kty"], published["use"], published["alg"]) == (key.kid, "RSA", "sig", "RS256")


def test_a_restart_reuses_the_persisted_key(tmp_path: Path) -> None:
    first = KeyStore(tmp_path, LIFETIME)
    first.ensure_key()
    second = KeyStore(tmp_path, LIFETIME)
    second.ensure_key()
    assert second.signing_key().kid == first.signing_key().kid
    assert len(list(tmp_path.glob("*.pem"))) == 1


def test_rotation_signs_with_the_new_key_and_keeps_publishing_the_old(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, LIFETIME)
    store.ensure_key()
    old_kid = store.signing_key().kid
    issuer = AccessTokenIssuer("http://issuer.test", store, LIFETIME)
    old_token = issuer.issue(subject="s", client_id="c", audiences=("a",), scopes=("x",)).token

    new_kid = store.rotate(publish_ahead_seconds=0).kid

    assert new_kid != old_kid
    assert store.signing_key().kid == new_kid
    assert [key["kid"] for key in store.jwks()["keys"]] == [new_kid, old_kid]
    new_token = issuer.issue(subject="s", client_id="c", audiences=("a",), scopes=("x",)).token
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert issuer.verify_own(old_token)["sub"] == "s"  # still verifiable with the retired key
    assert issuer.verify_own(new_token)["sub"] == "s"


def test_a_retired_key_is_dropped_once_its_tokens_have_expired(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, LIFETIME)
    store.ensure_key()
    old_kid = store.signing_key().kid
    new_kid = store.rotate(publish_ahead_seconds=0).kid
    retired_at = time.time()

    still_valid = retired_at + LIFETIME + RETIREMENT_MARGIN_SECONDS - 5
    assert [record.kid for record in store.published_records(now=still_valid)] == [new_kid, old_kid]
    after_expiry = retired_at + LIFETIME + RETIREMENT_MARGIN_SECONDS + 5
    assert [record.kid for record in store.published_records(now=after_expiry)] == [new_kid]

    assert store.prune(now=after_expiry) == [old_kid]
    assert not (tmp_path / f"{old_kid}.pem").exists()
    assert [entry["kid"] for entry in json.loads((tmp_path / "keys.json").read_text())["keys"]] == [new_kid]


def test_a_rotation_by_another_process_is_picked_up(tmp_path: Path) -> None:
    server_store = KeyStore(tmp_path, LIFETIME)
    server_store.ensure_key()
    old_kid = server_store.signing_key().kid

    cli_store = KeyStore(tmp_path, LIFETIME)  # what `python -m auth_server.keys rotate` does
    new_kid = cli_store.rotate(publish_ahead_seconds=0).kid

    assert server_store.signing_key().kid == new_kid
    assert {key["kid"] for key in server_store.jwks()["keys"]} == {old_kid, new_kid}


def test_a_rotated_in_key_is_published_before_it_signs(tmp_path: Path) -> None:
    """Validators see the new key in the JWKS before any token carries its kid (no refetch race)."""
    store = KeyStore(tmp_path, LIFETIME)
    store.ensure_key()
    old_kid = store.signing_key().kid

    new = store.rotate()
    now = time.time()

    assert {key["kid"] for key in store.jwks()["keys"]} == {old_kid, new.kid}
    assert store.signing_key(now=now).kid == old_kid
    assert store.signing_key(now=now + PUBLISH_AHEAD_SECONDS + 1).kid == new.kid
    assert new.activates_at is not None
    assert new.activates_at >= int(now) + PUBLISH_AHEAD_SECONDS - 1
