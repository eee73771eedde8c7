"""`notifications/elicitation/complete` for 2025-11-25 clients once a URL elicitation's connect flow finishes.

MCP 2025-11-25 lets a server tell the client that an out-of-band URL elicitation is done, naming its
`elicitationId`, so the client can retry the request that was waiting for it without the user having to
click "done" (MCP Inspector waits on "Waiting for completion…" otherwise). crm-mcp answers a 2025-11-25
tool call that needs the calendar with `UrlElicitationRequiredError` (-32042) whose `elicitationId` is the
pending connection's id; this remembers which MCP session asked, and when the connect callback has stored
the grant, sends the notification on that session (its standalone stream).

Best effort, as the specification makes it optional: a session is held weakly (a closed one is forgotten),
only sessions on this replica are notified (one that reached another replica just does not get it), and a
session that cannot take the notification any more is logged and skipped. 2026-07-28 clients need none:
their retry carries the sealed request state instead.
"""

from __future__ import annotations

import logging
from weakref import WeakValueDictionary

import anyio
from mcp.server.session import ServerSession

__all__ = ["ElicitationCompletions"]

logger = logging.getLogger(__name__)


class ElicitationCompletions:
    """Elicitation id -> the MCP session that is waiting for it, on this process."""

    def __init__(self) -> None:
        self._waiting: WeakValueDictionary[str, ServerSession] = WeakValueDictionary()

    def watch(self, elicitation_id: str, session: object) -> None:
        """Remember that `session` waits for `elicitation_id` (only a 2025-11-25 `ServerSession` can be told)."""
        if isinstance(session, ServerSession):
            self._waiting[elicitation_id] = session

    def forget(self, elicitation_id: str) -> None:
        self._waiting.pop(elicitation_id, None)

    async def complete(self, elicitation_id: str) -> bool:
        """Send `notifications/elicitation/complete` to the waiting session, if any; True if it was sent."""
        session = self._waiting.pop(elicitation_id, None)
        if session is None:
            return False
        try:
            with anyio.fail_after(5):  # never hold up the page the browser is waiting for
                await session.send_elicit_complete(elicitation_id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, TimeoutError) as error:
            logger.info("Elicitation completion not delivered (%s): the session has gone", type(error).__name__)
            return False
        logger.info("Told the MCP session its calendar connection is complete")
        return True
