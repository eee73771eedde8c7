"""Nothing presentable is ever logged: no client secret, password, code, access or refresh token."""

from __future__ import annotations

import httpx2
from devkit.processes import ServiceProcess

from tests.auth_server.browser import query_of
from tests.auth_server.conftest import AuthTestEnv
from tests.auth_server.flows import code_for, native_app

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def test_the_server_log_holds_no_secret_code_or_token(
    auth_server: tuple[AuthTestEnv, ServiceProcess], http: httpx2.Client
) -> None:
    auth, process = auth_server
    presented: list[str] = list(auth.secrets())
    session, callback, verifier, _ = code_for(auth, "alice")
    code = query_of(callback)["code"]
    presented += [code, verifier]
    user = session.fetch_token(auth.token_url, authorization_response=callback, code_verifier=verifier)
    presented += [user["access_token"], user["refresh_token"]]
    refreshed = native_app().refresh_token(auth.token_url, refresh_token=user["refresh_token"])
    presented += [refreshed["access_token"], refreshed["refresh_token"]]
    # Failures log too: a replayed code and refresh token, a wrong secret, a failed login.
    http.post(auth.token_url, data={"grant_type": "authorization_code", "code": code, "client_id": "test-native-app"})
    http.post(
        auth.token_url,
        data={"grant_type": "refresh_token", "refresh_token": user["refresh_token"], "client_id": "test-native-app"},
    )
    http.post(auth.token_url, data={"grant_type": "client_credentials"}, auth=("crm-mcp-agent", "wrong-secret-x1"))
    presented.append("wrong-secret-x1")
    exchanged = http.post(
        auth.token_url,
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": refreshed["access_token"],
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "resource": auth.tickets_mcp_resource,
        },
        auth=("crm-mcp-agent", auth.agent_secret),
    )
    presented.append(exchanged.json()["access_token"])

    log = process.logs()
    assert "Issued token" in log  # the log is being written
    for value in presented:
        assert value not in log
    assert "eyJ" not in log  # no JWT of any kind
