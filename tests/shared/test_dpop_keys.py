"""oauth_tokens.dpop_keys: a DPoP key kept on disk, the same for every replica and restart, apart from client keys."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

import pytest
from oauth_tokens.client_assertion import client_keys
from oauth_tokens.dpop import DPoPPolicy
from oauth_tokens.dpop_keys import persistent_dpop_key
from oauth_tokens.errors import SettingsError

pytestmark = pytest.mark.anyio


def _thumbprint_in(directory: str, results: multiprocessing.Queue[str]) -> None:
    results.put(persistent_dpop_key(Path(directory)).thumbprint)


def test_replicas_starting_at_once_on_an_empty_directory_share_one_key(tmp_path: Path) -> None:
    """Four processes (replicas) start together: one key is generated, and every one of them proves it."""
    directory = tmp_path / "dpop-keys"
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    processes = [context.Process(target=_thumbprint_in, args=(str(directory), results)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    thumbprints = {results.get(timeout=5) for _ in processes}
    assert len(thumbprints) == 1
    assert persistent_dpop_key(directory).thumbprint in thumbprints  # a restart: the same key
    pems = list(directory.glob("*.pem"))
    assert len(pems) == 1
    assert stat.S_IMODE(pems[0].stat().st_mode) == 0o600


async def test_its_proofs_verify_and_it_is_not_the_client_key(tmp_path: Path) -> None:
    key = persistent_dpop_key(tmp_path / "dpop-keys")
    client = client_keys(tmp_path / "client-keys")
    assert key.thumbprint not in {published["kid"] for published in client.jwks()["keys"]}
    proof = key.proof("GET", "http://127.0.0.1:8005/events", access_token="token")
    verified = await DPoPPolicy().verify(proof, method="GET", url="http://127.0.0.1:8005/events", access_token="token")
    assert verified.jkt == key.thumbprint


def test_a_damaged_key_file_names_the_file_never_its_content(tmp_path: Path) -> None:
    directory = tmp_path / "dpop-keys"
    persistent_dpop_key(directory)
    (pem,) = directory.glob("*.pem")
    pem.write_text("not a key")
    (directory / "keys.json").touch()  # a new index stamp: the next start re-reads the files
    with pytest.raises(SettingsError, match=r"\.pem") as refused:
        persistent_dpop_key(directory)
    assert "not a key" not in str(refused.value)
