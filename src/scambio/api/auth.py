"""Bearer-token access control for the API routes.

Every handler under /api/v1 declares its access level in ``opt["access"]``: ``public``
(anyone may verify the ledger: checkpoint, key, proofs), ``read`` (any valid token) or
``write`` (admin and manager). A handler without one is treated as ``write``, so a route
added without thought fails closed. The token is looked up by its hash (see
`store.tokens`) and never logged: errors name the problem, not the token.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from scambio.store.ledger import LedgerService
from scambio.store.tokens import Principal, authenticate

PUBLIC: Final = "public"
READ: Final = "read"
WRITE: Final = "write"

#: The OpenAPI security requirement for routes that need a token.
BEARER: Final[list[dict[str, list[str]]]] = [{"bearerAuth": []}]

_SCHEME: Final = "bearer"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != _SCHEME or not token.strip():
        return None
    return token.strip()


async def access_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Raise 401 without a valid token, 403 when the token's role may not do this."""
    access = handler.opt.get("access", WRITE)
    if access == PUBLIC:
        return
    token = bearer_token(connection)
    if token is None:
        raise NotAuthorizedException(
            "this request needs a bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="scambio"'},
        )
    ledger: LedgerService = connection.app.state.ledger
    principal = await authenticate(ledger.engine, token)
    if principal is None:
        raise NotAuthorizedException(
            "the bearer token is unknown, malformed or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="scambio", error="invalid_token"'},
        )
    connection.scope["user"] = principal
    if access != READ and not principal.can_write:
        raise PermissionDeniedException(
            f"role {principal.role!r} may read but not write; "
            "writing needs an admin or manager token"
        )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None
