"""oauth_tokens.id_jag against a real token endpoint on loopback: the SEP-990 forms, the N_A answer, refusals.

Both authorization servers of pattern 5 are tested for real in tests/auth_server/test_cross_app_access.py,
end to end in tests/integration/test_cross_app_access.py, and against the official conformance suite's
mock servers in tests/conformance.
"""

from __future__ import annotations

import json

import pytest
from oauth_tokens import TokenEndpointError
from oauth_tokens.id_jag import ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE, CrossAppAccess, IdJag, redeem_id_jag, request_id_jag
from oauth_tokens.token_endpoint import TokenEndpoint

from tests.shared.loopback import LoopbackAuthServer

pytestmark = pytest.mark.anyio

SECRET = "client-s3cr3t-never-shown"
SUBJECT = "alices-token-never-shown"
ASSERTION = "an-id-jag-never-shown"
CALENDAR_AS = "http://calendar-auth.example"
CALENDAR_API = "http://calendar-api.example"
AN_ID_JAG = {"token_type": "N_A", "issued_token_type": ID_JAG_TOKEN_TYPE}


def endpoint(auth_server: LoopbackAuthServer, **options: str) -> TokenEndpoint:
    return TokenEndpoint(f"{auth_server.url}/token", "crm-mcp-agent", SECRET, **options)  # type: ignore[arg-type]


async def test_the_id_jag_request_is_an_rfc8693_exchange_answered_with_token_type_n_a(
    auth_server: LoopbackAuthServer,
) -> None:
    auth_server.state.token_answer_extra = AN_ID_JAG
    idp = endpoint(auth_server)
    try:
        id_jag = await request_id_jag(idp, SUBJECT, audience=CALENDAR_AS, resource=CALENDAR_API, scope="calendar:read")
    finally:
        await idp.aclose()

    assert id_jag.assertion == "opaque-token-1"
    assert SUBJECT not in repr(id_jag)
    request = auth_server.state.token_requests[0]
    assert request.form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requested_token_type": ID_JAG_TOKEN_TYPE,
        "subject_token": SUBJECT,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": CALENDAR_AS,
        "resource": CALENDAR_API,
        "scope": "calendar:read",
    }
    assert request.authorization is not None
    assert request.authorization.startswith("Basic ")


@pytest.mark.parametrize(
    "answer",
    [{"token_type": "Bearer", "issued_token_type": ID_JAG_TOKEN_TYPE}, {"token_type": "N_A"}],
    ids=["bearer", "not-an-id-jag"],
)
async def test_an_answer_that_is_not_an_id_jag_is_refused(
    auth_server: LoopbackAuthServer, answer: dict[str, str]
) -> None:
    auth_server.state.token_answer_extra = answer
    idp = endpoint(auth_server)
    try:
        with pytest.raises(TokenEndpointError) as refused:
            await request_id_jag(idp, SUBJECT, audience=CALENDAR_AS, resource=CALENDAR_API)
    finally:
        await idp.aclose()
    assert refused.value.error == "invalid_response"


async def test_an_access_token_answer_is_refused_where_an_id_jag_is_expected_and_vice_versa(
    auth_server: LoopbackAuthServer,
) -> None:
    auth_server.state.token_answer_extra = AN_ID_JAG
    calendar_as = endpoint(auth_server)
    try:
        with pytest.raises(TokenEndpointError) as refused:  # the jwt-bearer grant must answer with a Bearer token
            await redeem_id_jag(calendar_as, IdJag(ASSERTION, 60))
    finally:
        await calendar_as.aclose()
    assert refused.value.error == "invalid_response"


async def test_the_redemption_is_a_jwt_bearer_grant_and_its_errors_never_show_the_assertion(
    auth_server: LoopbackAuthServer,
) -> None:
    calendar_as = endpoint(auth_server)
    try:
        token = await redeem_id_jag(calendar_as, IdJag(ASSERTION, 60))
        body = {"error": "invalid_grant", "error_description": f"refused {ASSERTION}"}
        auth_server.state.token_error = (400, "application/json", json.dumps(body))
        with pytest.raises(TokenEndpointError) as refused:
            await redeem_id_jag(calendar_as, IdJag(ASSERTION, 60))
    finally:
        await calendar_as.aclose()

    assert token.access_token == "opaque-token-1"
    assert auth_server.state.token_requests[0].form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": ASSERTION,
    }
    assert refused.value.error == "invalid_grant"
    assert ASSERTION not in str(refused.value)


async def test_cross_app_access_does_both_steps_as_a_public_client_at_the_idp(auth_server: LoopbackAuthServer) -> None:
    def answer(form: dict[str, str]) -> str:
        exchange = form["grant_type"].endswith("token-exchange")
        auth_server.state.token_answer_extra = AN_ID_JAG if exchange else {}  # jwt-bearer: a Bearer answer
        return "the-id-jag" if exchange else "the-calendar-token"

    auth_server.state.token_factory = answer
    access = CrossAppAccess(
        TokenEndpoint(f"{auth_server.url}/token", "idp-client", "", auth_method="none"),
        endpoint(auth_server),
        audience=CALENDAR_AS,
        resource=CALENDAR_API,
        subject_token_type=ID_TOKEN_TYPE,
    )
    try:
        token = await access.access_token(SUBJECT)
    finally:
        await access.aclose()

    assert token.access_token == "the-calendar-token"
    at_idp, at_calendar = auth_server.state.token_requests
    assert at_idp.authorization is None
    assert at_idp.form["client_id"] == "idp-client"
    assert at_idp.form["subject_token_type"] == ID_TOKEN_TYPE
    assert at_calendar.form["assertion"] == "the-id-jag"
    assert at_calendar.authorization is not None


def test_auth_method_none_takes_no_secret_and_the_others_need_one() -> None:
    with pytest.raises(ValueError, match="client_secret"):
        TokenEndpoint("http://as.example/token", "app", SECRET, auth_method="none")
    with pytest.raises(ValueError, match="client_secret"):
        TokenEndpoint("http://as.example/token", "app", "")
