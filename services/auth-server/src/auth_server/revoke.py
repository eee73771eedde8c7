"""Revocation endpoint (RFC 7009): a client ends a user's grant by presenting its refresh token.

Revoking a refresh token revokes its whole family (every rotation of that grant). Access tokens are
self-contained JWTs this server cannot recall: presenting one is answered 200 like any token the server
does not know (RFC 7009 §2.2), and it stays valid until it expires (lifetimes.access_token_seconds).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from auth_server.errors import NO_STORE_HEADERS
from auth_server.limits import client_address
from auth_server.state import server_of
from auth_server.token import read_token_request

logger = logging.getLogger(__name__)
router = APIRouter()


@router.post("/revoke")
async def revoke(request: Request) -> Response:
    server = server_of(request)
    await server.token_rate.check(client_address(request))
    form = await read_token_request(request)
    client = await server.clients.authenticate(
        request.headers.get("authorization"), form.params, address=client_address(request)
    )
    if await server.refresh_tokens.revoke(form.require("token"), client.client_id):
        logger.info("Grant revoked by client %s", client.client_id)
    return Response(status_code=200, headers=NO_STORE_HEADERS)
