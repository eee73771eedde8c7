"""Pattern 5 (SEP-990) at both authorization servers: the auth-server issues ID-JAGs as the enterprise IdP,
a calendar instance (services/calendar-api/auth-server.toml) redeems them with the jwt-bearer grant.

Two real auth-server processes; the calendar instance also trusts an in-test IdP (`TestIssuer`, its own key
and JWKS on loopback), so the attack cases can present assertions no honest IdP issues: expired, for another
audience, another client, an unmapped user, signed with a key the IdP does not publish, or by no trusted IdP.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import pytest
from devkit.processes import ServiceProcess, free_port, start_service
from devkit.tokens import OMIT, TestIssuer, generate_rsa_key

from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import user_tokens
from tests.auth_server.tokens import claims_of, header_of

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
CALENDAR_CONFIG = Path(__file__).resolve().parents[2] / "services" / "calendar-api" / "auth-server.toml"
OTHER_SAAS = "http://other-saas.example.test"


@dataclass
class CalendarAs:
    url: str
    issuer: str
    audience: str
    client_secret: str
    test_idp: TestIssuer

    def redeem(self, http: httpx2.Client, assertion: str, **params: str) -> httpx2.Response:
        return http.post(
            f"{self.url}/token",
            data={"grant_type": JWT_BEARER, "assertion": assertion, **params},
            auth=("crm-mcp", self.client_secret),
        )

    def mint(self, issuer: TestIssuer | None = None, **overrides: Any) -> str:
        """An ID-JAG from the in-test IdP (trusted here; alice mapped, bob not) unless `overrides` say otherwise."""
        claims: dict[str, Any] = {"aud": self.issuer, "client_id": "crm-mcp", "resource": self.audience}
        claims["scope"] = "calendar:read"
        claims.update(overrides)
        return (issuer or self.test_idp).mint(headers={"typ": "oauth-id-jag+jwt"}, **claims)


@pytest.fixture(scope="module")
def calendar_as(auth: AuthTestEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalendarAs]:
    """The calendar instance, trusting the auth-server (alice and bob mapped) and the in-test IdP (alice only)."""
    workdir = tmp_path_factory.mktemp("calendar-auth-server")
    with TestIssuer() as test_idp:
        config = workdir / "calendar.toml"
        config.write_text(
            CALENDAR_CONFIG.read_text(encoding="utf-8")
            + f"""
[[trusted_identity_providers]]
issuer = "{test_idp.issuer}"
jwks_uri = "{test_idp.jwks_url}"
subjects = {{ alice = "alice" }}
""",
            encoding="utf-8",
        )
        port = free_port()
        secret = secrets.token_urlsafe(24)
        process: ServiceProcess = start_service(
            "calendar-auth-server",
            "auth_server",
            port_variable="AUTH_SERVER_PORT",
            env={
                "AUTH_ISSUER": auth.calendar_issuer,
                "AUTH_SERVER_DATA_DIR": str(workdir / "data"),
                "AUTH_SERVER_STATE_KEYS": secrets.token_urlsafe(32),
                "AUTH_SERVER_CONFIG": str(config),
                "CALENDAR_API_AUDIENCE": auth.calendar_audience,
                "CALENDAR_CLIENT_ID": "crm-mcp",
                # The secret method here (private_key_jwt is covered in test_private_key_jwt.py); the config
                # names CRM_MCP_JWKS_URI either way and fetches it only for private_key_jwt.
                "CALENDAR_CLIENT_AUTH_METHOD": "client_secret_basic",
                "CALENDAR_CLIENT_SECRET": secret,
                "CRM_MCP_JWKS_URI": "http://127.0.0.1:1/.well-known/jwks.json",
                "CRM_MCP_PUBLIC_URL": "http://127.0.0.1:1",
                "CALENDAR_ALICE_PASSWORD": secrets.token_urlsafe(12),
                "CALENDAR_BOB_PASSWORD": secrets.token_urlsafe(12),
                "CALENDAR_TRUSTED_IDP_ISSUER": auth.issuer,
                "CALENDAR_TRUSTED_IDP_JWKS_URL": f"{auth.url}/jwks",
            },
            workdir=workdir,
            port=port,
        )
        try:
            yield CalendarAs(f"http://127.0.0.1:{port}", auth.calendar_issuer, auth.calendar_audience, secret, test_idp)
        finally:
            process.stop()


@pytest.fixture(scope="module")
def alice_token(auth: AuthTestEnv) -> str:
    """alice's token for crm-mcp: the subject token crm-mcp holds."""
    return str(user_tokens(auth, "alice", scope="crm:read")["access_token"])


def request_id_jag(
    auth: AuthTestEnv, http: httpx2.Client, subject: str, *, client: tuple[str, str] | None = None, **params: Any
) -> httpx2.Response:
    form: dict[str, Any] = {
        "grant_type": TOKEN_EXCHANGE,
        "requested_token_type": ID_JAG_TYPE,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": auth.calendar_issuer,
        "resource": auth.calendar_audience,
    }
    form.update(params)
    form = {name: value for name, value in form.items() if value is not None}
    return http.post(auth.token_url, data=form, auth=client or ("crm-mcp-agent", auth.agent_secret))


def refused(response: httpx2.Response, error: str) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error, body
    return str(body["error_description"])


# --- The IdP: ID-JAGs by token exchange, under its admin policy ------------------------------------------


def test_the_idp_issues_an_id_jag_for_the_calendar(auth: AuthTestEnv, http: httpx2.Client, alice_token: str) -> None:
    response = request_id_jag(auth, http, alice_token, scope="calendar:read")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == ID_JAG_TYPE
    assert body["token_type"] == "N_A"
    assert "refresh_token" not in body
    id_jag = body["access_token"]
    assert header_of(id_jag)["typ"] == "oauth-id-jag+jwt"
    jwks = http.get(f"{auth.url}/jwks").json()
    key = jwt.PyJWKSet.from_dict(jwks)[header_of(id_jag)["kid"]]
    claims = jwt.decode(id_jag, key, algorithms=["RS256"], audience=auth.calendar_issuer, issuer=auth.issuer)
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "crm-mcp"  # crm-mcp-agent's client_id at the calendar, from the policy
    assert claims["resource"] == auth.calendar_audience
    assert claims["scope"] == "calendar:read"
    assert claims["jti"]
    assert claims["exp"] - claims["iat"] <= 300
    assert claims["exp"] <= claims_of(alice_token)["exp"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"audience": "http://unknown-saas.example.test"}, "invalid_target"),
        ({"resource": "http://calendar-api.example.test/other"}, "invalid_target"),
        ({"scope": "calendar:read calendar:admin"}, "invalid_scope"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
        ({"subject": "not-a-token"}, "invalid_request"),
        ({"audience": None}, "invalid_request"),
    ],
    ids=["unknown-audience", "resource-not-in-policy", "scope-not-in-policy", "id-token", "bad-subject", "no-aud"],
)
def test_the_idp_refuses_what_its_policy_does_not_allow(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str, params: dict[str, Any], error: str
) -> None:
    subject = params.pop("subject", alice_token)
    refused(request_id_jag(auth, http, subject, **params), error)


def test_a_client_the_policy_does_not_name_gets_no_id_jag(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str
) -> None:
    # test-exchanger may exchange alice's crm-mcp token (RFC 8693), but no ID-JAG policy names it.
    response = request_id_jag(auth, http, alice_token, client=("test-exchanger", auth.reporting_secret))

    assert "Policy does not allow this client" in refused(response, "invalid_target")


# --- The calendar's authorization server: the jwt-bearer grant --------------------------------------------


def test_the_calendar_redeems_the_idps_id_jag_without_a_browser(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str, calendar_as: CalendarAs
) -> None:
    metadata = http.get(f"{calendar_as.url}/.well-known/oauth-authorization-server").json()
    assert JWT_BEARER in metadata["grant_types_supported"]
    id_jag = request_id_jag(auth, http, alice_token).json()["access_token"]

    response = calendar_as.redeem(http, id_jag)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert "refresh_token" not in body
    claims = claims_of(body["access_token"])
    assert claims["iss"] == calendar_as.issuer
    assert claims["sub"] == "alice"  # the calendar's own user, mapped from the IdP's
    assert claims["aud"] == calendar_as.audience
    assert claims["client_id"] == "crm-mcp"
    assert claims["scope"] == "calendar:read calendar:write"


def test_the_idp_advertises_no_jwt_bearer_grant(auth: AuthTestEnv, http: httpx2.Client) -> None:
    metadata = http.get(f"{auth.url}/.well-known/oauth-authorization-server").json()
    assert JWT_BEARER not in metadata["grant_types_supported"]  # it trusts no IdP itself


def test_a_replayed_id_jag_is_refused(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str, calendar_as: CalendarAs
) -> None:
    id_jag = request_id_jag(auth, http, alice_token).json()["access_token"]
    assert calendar_as.redeem(http, id_jag).status_code == 200

    assert "already used" in refused(calendar_as.redeem(http, id_jag), "invalid_grant")


def test_an_id_jag_for_another_audience_is_refused(
    auth: AuthTestEnv, http: httpx2.Client, alice_token: str, calendar_as: CalendarAs
) -> None:
    # Genuinely signed by the trusted IdP, for another SaaS's authorization server.
    response = request_id_jag(auth, http, alice_token, audience=OTHER_SAAS, resource=f"{OTHER_SAAS}/api")
    assert response.status_code == 200, response.text

    assert "InvalidAudienceError" in refused(calendar_as.redeem(http, response.json()["access_token"]), "invalid_grant")


def _unknown_idp_assertion(calendar_as: CalendarAs) -> str:
    with TestIssuer() as stranger:
        return calendar_as.mint(issuer=stranger)


ATTACKS = {
    "expired": lambda c: c.mint(iat=int(time.time()) - 400, nbf=int(time.time()) - 400, exp=int(time.time()) - 100),
    "unknown-idp": _unknown_idp_assertion,
    "other-key": lambda c: c.mint(signing_key=generate_rsa_key()),
    "user-without-mapping": lambda c: c.mint(sub="bob"),
    "another-client": lambda c: c.mint(client_id="another-app"),
    "wrong-audience": lambda c: c.mint(aud="http://other-saas.example.test"),
    "access-token-typ": lambda c: c.test_idp.mint(aud=c.issuer, client_id="crm-mcp", headers={"typ": "at+jwt"}),
    "too-long-lived": lambda c: c.mint(exp=int(time.time()) + 3600),
    "no-jti": lambda c: c.mint(jti=OMIT),
    "alg-none": lambda c: jwt.encode(
        {**claims_of(c.mint()), "jti": uuid.uuid4().hex}, None, algorithm="none", headers={"typ": "oauth-id-jag+jwt"}
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_id_jags_are_refused(http: httpx2.Client, calendar_as: CalendarAs, attack: str) -> None:
    assertion = ATTACKS[attack](calendar_as)

    refused(calendar_as.redeem(http, assertion), "invalid_grant")


def test_the_in_test_idps_honest_id_jag_is_accepted(http: httpx2.Client, calendar_as: CalendarAs) -> None:
    """The control for the attacks above: the same assertion, nothing changed, is redeemed."""
    response = calendar_as.redeem(http, calendar_as.mint())

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "calendar:read"


def test_an_id_jag_for_a_resource_or_scope_the_client_may_not_have_is_refused(
    http: httpx2.Client, calendar_as: CalendarAs
) -> None:
    refused(calendar_as.redeem(http, calendar_as.mint(resource="http://elsewhere.example.test")), "invalid_target")
    refused(calendar_as.redeem(http, calendar_as.mint(scope="calendar:admin")), "invalid_scope")
    refused(calendar_as.redeem(http, calendar_as.mint(), scope="calendar:write"), "invalid_scope")


def test_the_jwt_bearer_grant_needs_the_client_to_authenticate(http: httpx2.Client, calendar_as: CalendarAs) -> None:
    response = http.post(
        f"{calendar_as.url}/token",
        data={"grant_type": JWT_BEARER, "assertion": calendar_as.mint(), "client_id": "crm-mcp"},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
