"""Failures of the scaled topology: a replica SIGKILLed under load, Redis stopped, PostgreSQL stopped.

What must hold: no acknowledged write is lost, calls in flight may fail but only with a clear error
(never a 500), every call from 5 s after the failure on succeeds (HAProxy has taken the dead replica
out), nothing is let through unauthenticated, and the topology recovers within 5 s of a server's return.
Each test puts back what it broke.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx2
import pytest
from devkit.scaled import ScaledTopology
from devkit.sessions import mcp_session

pytestmark = pytest.mark.anyio

LOAD_SECONDS = 20.0
KILL_AFTER_SECONDS = 5.0
OUT_WITHIN_SECONDS = 5.0
RECOVERY_SECONDS = 5.0
CUSTOMER = "cus_001"  # one of alice's


@dataclass
class Outcomes:
    acknowledged: list[str] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)  # (when, what)


async def note_writer(scaled: ScaledTopology, token: str, outcomes: Outcomes, until: float) -> None:
    """Add notes until `until`, each over a session of its own (a connection cut by a killed replica ends
    the SDK client's session; the next note starts a new one, as a client would reconnect)."""
    while time.monotonic() < until:
        note = f"load {uuid.uuid4().hex}"
        started = time.monotonic()
        try:
            async with mcp_session(scaled.crm_mcp_url, token=token) as session:
                result = await session.call_tool("add_customer_note", {"customer_id": CUSTOMER, "note": note})
                if result.is_error:
                    outcomes.failed.append((started, str(result.content)))
                else:
                    outcomes.acknowledged.append(note)
        except Exception as error:  # a call in flight may fail: recorded, checked below
            outcomes.failed.append((started, f"{type(error).__name__}: {error}"))


async def token_requester(scaled: ScaledTopology, outcomes: Outcomes, until: float) -> None:
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            await scaled.client_credentials_token(scaled.env["TICKETS_MCP_RESOURCE"], "tickets:read")
        except Exception as error:  # as above
            outcomes.failed.append((started, f"token: {type(error).__name__}: {error}"))


async def customer_notes(scaled: ScaledTopology, token: str) -> list[str]:
    async with httpx2.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.get(f"{scaled.env['CRM_API_URL']}/customers/{CUSTOMER}")
    assert response.status_code == 200, response.text
    return [str(note.get("text", note)) if isinstance(note, dict) else str(note) for note in response.json()["notes"]]


async def test_sigkill_of_a_crm_mcp_and_an_auth_server_replica_under_load(scaled: ScaledTopology) -> None:
    token = await scaled.user_token("alice")
    outcomes = Outcomes()
    start = time.monotonic()
    until = start + LOAD_SECONDS
    try:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(note_writer, scaled, token, outcomes, until)
            group.start_soon(token_requester, scaled, outcomes, until)
            await anyio.sleep(KILL_AFTER_SECONDS)
            killed_at = time.monotonic()
            await anyio.to_thread.run_sync(scaled.kill, "crm-mcp-2")
            await anyio.to_thread.run_sync(scaled.kill, "auth-server-2")
        status = scaled.backend_status()
        stored = await customer_notes(scaled, token)
        async with mcp_session(scaled.crm_mcp_url, token=token) as later:
            for _ in range(6):
                result = await later.call_tool("add_customer_note", {"customer_id": CUSTOMER, "note": "after"})
                assert not result.is_error, result.content
    finally:
        scaled.restart_replicas("crm-mcp-2", "auth-server-2")

    assert len(outcomes.acknowledged) > 20, outcomes
    lost = [note for note in outcomes.acknowledged if not any(note in text for text in stored)]
    assert lost == [], f"{len(lost)} acknowledged notes missing from crm-api"
    late = [what for when, what in outcomes.failed if when > killed_at + OUT_WITHIN_SECONDS]
    assert late == [], late[:3]
    assert status["crm-mcp-2"].startswith("DOWN"), status
    assert status["auth-server-2"].startswith("DOWN"), status


def _checks(scaled: ScaledTopology, token: str) -> dict[str, Callable[[httpx2.Client], httpx2.Response]]:
    """Requests that touch Redis (limits, replay caches, single flight) or PostgreSQL, and who must be refused."""
    env = scaled.env
    weather = f"{env['WEATHER_API_URL']}/v1/current"
    return {
        "weather with its key": lambda h: h.get(
            weather, params={"city": "Rome"}, headers={"X-API-Key": env["WEATHER_API_KEY"]}
        ),
        "weather without a key": lambda h: h.get(weather, params={"city": "Rome"}),
        "crm-api as alice": lambda h: h.get(
            f"{env['CRM_API_URL']}/customers", headers={"Authorization": f"Bearer {token}"}
        ),
        "crm-api without a token": lambda h: h.get(f"{env['CRM_API_URL']}/customers"),
        "registration": lambda h: h.post(
            f"{env['AUTH_ISSUER']}/register",
            json={
                "client_name": "outage",
                "redirect_uris": ["http://127.0.0.1:3030/cb"],
                "token_endpoint_auth_method": "none",
            },
        ),
        "crm-mcp without a token": lambda h: h.post(scaled.crm_mcp_url, json={}),
    }


REFUSED_WITHOUT_CREDENTIALS = ("weather without a key", "crm-api without a token", "crm-mcp without a token")


def _answers(scaled: ScaledTopology, token: str) -> dict[str, httpx2.Response]:
    with httpx2.Client(timeout=10) as http:
        return {name: check(http) for name, check in _checks(scaled, token).items()}


def _assert_safe(answers: dict[str, httpx2.Response]) -> None:
    for name, response in answers.items():
        assert response.status_code < 500 or response.status_code == 503, (
            name,
            response.status_code,
            response.text[:200],
        )
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0, name
        if name in REFUSED_WITHOUT_CREDENTIALS:
            assert response.status_code in (401, 503), (name, response.status_code)


def _healthy(answers: dict[str, httpx2.Response]) -> bool:
    expected = {"weather with its key": 200, "crm-api as alice": 200, "registration": 201}
    return all(answers[name].status_code == status for name, status in expected.items())


async def _recovers(scaled: ScaledTopology, token: str) -> float:
    """Seconds until every check answers as it should again (fails after RECOVERY_SECONDS)."""
    back = time.monotonic()
    while True:
        answers = await anyio.to_thread.run_sync(_answers, scaled, token)
        _assert_safe(answers)
        if _healthy(answers):
            break
        assert time.monotonic() - back < RECOVERY_SECONDS, {n: r.status_code for n, r in answers.items()}
        await anyio.sleep(0.2)
    # And every replica is back in HAProxy, not just one per service.
    await anyio.to_thread.run_sync(
        lambda: scaled.wait_all_up(timeout=max(0.1, RECOVERY_SECONDS - (time.monotonic() - back)))
    )
    async with mcp_session(scaled.crm_mcp_url, token=token) as session:
        result = await session.call_tool("customer_briefing", {"customer_id": CUSTOMER})
    assert not result.is_error, result.content
    return time.monotonic() - back


async def test_redis_stopped_for_10_seconds_no_500_no_bypass_then_recovery(scaled: ScaledTopology) -> None:
    token = await scaled.user_token("alice")
    scaled.redis.stop()
    try:
        stopped = time.monotonic()
        while time.monotonic() - stopped < 10:
            _assert_safe(await anyio.to_thread.run_sync(_answers, scaled, token))
            await anyio.sleep(0.5)
    finally:
        scaled.redis.start()
    await _recovers(scaled, token)


async def test_postgresql_stopped_503_with_retry_after_then_recovery(scaled: ScaledTopology) -> None:
    token = await scaled.user_token("alice")
    scaled.postgres.stop(signal.SIGINT)  # a fast shutdown: the services' pooled connections are cut
    try:
        for _ in range(4):
            answers = await anyio.to_thread.run_sync(_answers, scaled, token)
            _assert_safe(answers)
            for name in ("crm-api as alice", "registration"):
                assert answers[name].status_code == 503, (name, answers[name].status_code, answers[name].text[:200])
            await anyio.sleep(1)
    finally:
        scaled.postgres.start()
    await _recovers(scaled, token)
