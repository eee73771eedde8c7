"""crm-api over real HTTP with real RS256 tokens: per-user data, scopes, audience, expiry, the one write."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from devkit.processes import ServiceProcess
from devkit.tokens import TestIssuer, generate_rsa_key

pytestmark = pytest.mark.anyio

Bearer = Callable[..., dict[str, str]]


async def customer_ids(client: httpx2.AsyncClient, headers: dict[str, str], q: str | None = None) -> list[str]:
    response = await client.get("/customers", params={"q": q} if q else None, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["customers"])
    return [customer["id"] for customer in body["customers"]]


async def test_health_needs_no_token(client: httpx2.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_each_rep_sees_only_their_own_customers(client: httpx2.AsyncClient, bearer: Bearer) -> None:
    alice = await customer_ids(client, bearer(sub="alice"))
    bob = await customer_ids(client, bearer(sub="bob"))
    assert alice == ["cus_001", "cus_002", "cus_003", "cus_004"]
    assert bob == ["cus_005", "cus_006", "cus_007", "cus_008"]


async def test_search_matches_name_company_or_city_within_own_customers(
    client: httpx2.AsyncClient, bearer: Bearer
) -> None:
    assert await customer_ids(client, bearer(sub="alice"), q="") == ["cus_001", "cus_002", "cus_003", "cus_004"]
    assert await customer_ids(client, bearer(sub="alice"), q="tokyo") == ["cus_004"]
    assert await customer_ids(client, bearer(sub="alice"), q="Hughes") == ["cus_003"]
    assert await customer_ids(client, bearer(sub="alice"), q="Madrid") == []  # bob's customer
    assert await customer_ids(client, bearer(sub="alice"), q="%") == []  # LIKE wildcards are literal


async def test_other_reps_customer_is_404_like_a_missing_one(client: httpx2.AsyncClient, bearer: Bearer) -> None:
    own = await client.get("/customers/cus_001", headers=bearer(sub="alice"))
    assert own.status_code == 200
    assert own.json()["owner"] == "alice"
    assert own.json()["city"] == "Berlin"

    others = await client.get("/customers/cus_005", headers=bearer(sub="alice"))
    missing = await client.get("/customers/cus_999", headers=bearer(sub="alice"))
    assert others.status_code == missing.status_code == 404
    assert others.json() == missing.json() == {"error": "not_found", "error_description": "Customer not found"}


async def test_a_client_credentials_token_names_no_user_and_is_refused(
    client: httpx2.AsyncClient, bearer: Bearer
) -> None:
    # RFC 9068 §2.2: with no user, `sub` is the client's own id. Such a token never acts as a rep.
    machine = bearer(sub="crm-mcp-agent", client_id="crm-mcp-agent")
    for response in (
        await client.get("/customers", headers=machine),
        await client.get("/customers/cus_001", headers=machine),
        await client.post("/customers/cus_001/notes", json={"text": "as nobody"}, headers=machine),
    ):
        assert response.status_code == 403
        assert response.json()["error"] == "access_denied"
    # The same client acting for a user (a token exchange: sub = the user, act = the client) is fine.
    delegated = bearer(sub="alice", client_id="crm-mcp-agent", act={"sub": "crm-mcp-agent"})
    assert await customer_ids(client, delegated) == ["cus_001", "cus_002", "cus_003", "cus_004"]


async def test_a_delegated_note_records_the_actor_next_to_the_author(
    client: httpx2.AsyncClient, bearer: Bearer
) -> None:
    delegated = bearer(sub="alice", client_id="crm-mcp-agent", act={"sub": "crm-mcp-agent"})
    created = await client.post("/customers/cus_002/notes", json={"text": "via exchange"}, headers=delegated)
    assert created.status_code == 201, created.text
    note = created.json()["notes"][-1]
    assert (note["author"], note["client_id"], note["actor"]) == ("alice", "crm-mcp-agent", "crm-mcp-agent")

    own = await client.post("/customers/cus_002/notes", json={"text": "own token"}, headers=bearer(sub="alice"))
    assert own.json()["notes"][-1]["actor"] is None


async def test_note_needs_crm_write_and_names_it(client: httpx2.AsyncClient, bearer: Bearer) -> None:
    response = await client.post("/customers/cus_001/notes", json={"text": "hi"}, headers=bearer(scope="crm:read"))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="crm:write"' in challenge


async def test_reads_need_crm_read(client: httpx2.AsyncClient, bearer: Bearer) -> None:
    response = await client.get("/customers", headers=bearer(scope="crm:write"))
    assert response.status_code == 403
    assert 'scope="crm:read"' in response.headers["WWW-Authenticate"]


async def test_no_token_is_401_with_a_bare_challenge(client: httpx2.AsyncClient) -> None:
    response = await client.get("/customers")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer")
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code when no credentials were sent


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "http://localhost:8001/mcp"}, id="another-audience"),
        pytest.param({"exp": int(time.time()) - 120, "iat": int(time.time()) - 600}, id="expired"),
        pytest.param({"iss": "http://evil.example"}, id="another-issuer"),
    ],
)
async def test_token_not_for_this_api_is_401_invalid_token(
    client: httpx2.AsyncClient, bearer: Bearer, claims: dict[str, object]
) -> None:
    response = await client.get("/customers", headers=bearer(**claims))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_token_signed_by_another_key_is_401(client: httpx2.AsyncClient, issuer: TestIssuer) -> None:
    forged = issuer.mint(aud="http://localhost:8003", scope="crm:read", signing_key=generate_rsa_key())
    response = await client.get("/customers", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


async def test_note_is_recorded_with_identity_from_the_token(
    client: httpx2.AsyncClient, bearer: Bearer, crm_api: ServiceProcess
) -> None:
    headers = bearer(sub="bob")
    created = await client.post("/customers/cus_006/notes", json={"text": "Sent the renewal quote."}, headers=headers)
    assert created.status_code == 201, created.text
    note = created.json()["notes"][-1]
    assert (note["text"], note["author"], note["client_id"]) == ("Sent the renewal quote.", "bob", "crm-mcp")

    customer = (await client.get("/customers/cus_006", headers=headers)).json()
    assert customer == created.json()
    assert headers["Authorization"].removeprefix("Bearer ") not in crm_api.logs()


async def test_rep_cannot_write_to_another_reps_customer(client: httpx2.AsyncClient, bearer: Bearer) -> None:
    response = await client.post("/customers/cus_002/notes", json={"text": "sneaky"}, headers=bearer(sub="bob"))
    assert response.status_code == 404
    alice_view = (await client.get("/customers/cus_002", headers=bearer(sub="alice"))).json()
    assert all(note["text"] != "sneaky" for note in alice_view["notes"])


async def test_openapi_documents_bearer_auth_and_models(client: httpx2.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operation = spec["paths"]["/customers/{customer_id}/notes"]["post"]
    assert "crm:write" in operation["summary"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert {"Customer", "CustomerList", "Note"} <= set(spec["components"]["schemas"])
    # The note body is parsed after the token check (JsonBody), and documented inline.
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["title"] == "NewNote"
    assert body["required"] == ["text"]


async def test_notes_survive_a_restart_and_demo_data_is_seeded_once(crm_api: ServiceProcess, bearer: Bearer) -> None:
    headers = bearer(sub="alice")
    async with httpx2.AsyncClient(base_url=crm_api.url, timeout=5.0) as client:
        response = await client.post("/customers/cus_004/notes", json={"text": "persisted"}, headers=headers)
        assert response.status_code == 201

    crm_api.stop()
    crm_api.start()  # same port, same data directory

    async with httpx2.AsyncClient(base_url=crm_api.url, timeout=5.0) as client:
        notes = (await client.get("/customers/cus_004", headers=headers)).json()["notes"]
    assert [note["text"] for note in notes].count("persisted") == 1
    log = crm_api.logs()
    assert log.count("crm-api started") == 2
    assert log.count("seeded with demo customers") == 1


def test_start_up_names_a_missing_audience(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "CRM_API_"))}
    env["AUTH_ISSUER"] = "http://localhost:9000"
    result = subprocess.run(
        [sys.executable, "-m", "crm_api"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert "Missing required setting CRM_API_AUDIENCE" in result.stderr
