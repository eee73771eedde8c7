"""Pattern 4 — the user's own account at a third party: crm-mcp acts in each user's calendar with a grant
that user gave crm-mcp at the calendar provider, never with the token the MCP client sent.

Read in this order:

1. [`tools.py`](tools.py): `list_my_meetings`, `schedule_meeting`, `disconnect_calendar`; with no usable
   grant, a URL-mode elicitation pointing at crm-mcp's connect page.
2. [`connect_pages.py`](connect_pages.py): the connect page, the user's sign-in check, the redirect to
   the provider and the callback; [`connect_requests.py`](connect_requests.py) keeps each pending
   connection (single use, PKCE verifier and `state` sealed);
   [`elicitation_complete.py`](elicitation_complete.py) tells 2025-11-25 clients the connection is done.
3. [`provider.py`](provider.py): crm-mcp as an OAuth client of the calendar provider (authorization URL,
   code redemption, refresh, revocation).
4. [`accounts.py`](accounts.py): each user's grant in the encrypted vault, refreshed in one flight.
5. [`api_client.py`](api_client.py): calendar-api called with that token.

Pattern 5 (`cross_app_access_calendar.py`, a sibling module) gets the same calendar token without a
browser step and plugs into the same tools.
"""
