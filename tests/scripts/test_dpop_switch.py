"""`make up DPOP=…` (scripts.dpop_switch): the settings each value stands for, and what stays as given."""

from __future__ import annotations

from scripts.dpop_switch import apply_dpop_switch, dpop_problem


def test_require_binds_every_token_of_the_demo_the_calendars_included() -> None:
    env = apply_dpop_switch({"DPOP": "require", "CALENDAR_AUTH_DPOP": "accept"}, {})
    assert env["AUTH_DPOP"] == "require"
    assert env["CRM_MCP_DPOP"] == "true"
    assert env["CRM_API_AUTH_MODE"] == "exchange"
    assert env["CALENDAR_AUTH_DPOP"] == "require"
    assert env["CALENDAR_AUTH_SERVER_DPOP"] == "require"


def test_accept_leaves_the_calendar_as_configured_and_a_given_setting_wins() -> None:
    accept = apply_dpop_switch({"DPOP": "accept", "CALENDAR_AUTH_DPOP": "accept"}, {})
    assert (accept["AUTH_DPOP"], accept["CRM_MCP_DPOP"], accept["CALENDAR_AUTH_DPOP"]) == ("accept", "true", "accept")
    assert "CALENDAR_AUTH_SERVER_DPOP" not in accept
    given = {"CALENDAR_AUTH_SERVER_DPOP": "accept"}
    assert apply_dpop_switch({"DPOP": "require", **given}, given)["CALENDAR_AUTH_SERVER_DPOP"] == "accept"
    assert dpop_problem({"DPOP": "sometimes"}) is not None
