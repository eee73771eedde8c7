"""`notifications/elicitation/complete` for 2025-11-25 clients once a URL elicitation's connect flow finishes.

MCP 2025-11-25 lets a server tell the client that an out-of-band URL elicitation is done, naming its
`elicitationId`, so the client can retry the request that was waiting for it without the user having to
click "done" (MCP Inspector waits on "Waiting for completion…" otherwise). crm-mcp answers a 2025-11-25
tool call that needs the calendar with `UrlElicitationRequiredError` (-32042) whose `elicitationId` is the
pending connection's id; this remembers which MCP session asked, and when the connect callback has stored
the grant, sends the notification on that session (its standalone stream).

Best effort, as the specification makes it optional: the SDK's `ServerSession` is per request, but it
sends a notification that names no request on its connection's standalone stream, which outlives the
request; it is kept until the connect request would have expired (at most MAX_WAITING of them, oldest
dropped first), only sessions on this replica are notified (one that reached another replica just does not
get it), and a session that cannot take the notification any more is logged and skipped. 2026-07-28 clients need none:
their retry carries the sealed request state instead.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import anyio
from mcp.server.session import ServerSession

__all__ = ["ElicitationCompletions"]

logger = logging.getLogger(__name__)


MAX_WAITING = 10_000


class ElicitationCompletions:
    """Elicitation id -> the MCP session that is waiting for it, on this process, until `lifetime_seconds`."""

    def __init__(self, lifetime_seconds: float = 600.0) -> None:
        self.lifetime_seconds = lifetime_seconds
        self._waiting: OrderedDict[str, tuple[ServerSession, float]] = OrderedDict()

    def watch(self, elicitation_id: str, session: object) -> None:
        """Remember that `session` waits for `elicitation_id` (only a 2025-11-25 `ServerSession` can be told)."""
        if not isinstance(session, ServerSession):
            return
        now = time.monotonic()
        while self._waiting and (len(self._waiting) >= MAX_WAITING or next(iter(self._waiting.values()))[1] < now):
            self._waiting.popitem(last=False)  # the oldest: expired, or over the bound
        self._waiting[elicitation_id] = (session, now + self.lifetime_seconds)

    async def complete(self, elicitation_id: str) -> bool:
        """Send `notifications/elicitation/complete` to the waiting session, if any; True if it was sent."""
        waiting = self._waiting.pop(elicitation_id, None)
        if waiting is None or waiting[1] < time.monotonic():
            return False
        session = waiting[0]
        try:
            with anyio.fail_after(5):  # never hold up the page the browser is waiting for
                await session.send_elicit_complete(elicitation_id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, TimeoutError) as error:
            logger.info("Elicitation completion not delivered (%s): the session has gone", type(error).__name__)
            return False
        logger.info("Told the MCP session its calendar connection is complete")
        return True
