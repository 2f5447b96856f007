"""Bearer-token access control for the API routes.

Every handler under /api/v1 declares its access level in ``opt["access"]``:

- ``public``: anyone (ledger checkpoint, key and proofs; zones; login; registration);
- ``read``: any valid token with the ``read`` scope (the handler may narrow what it shows);
- ``staff-read``: managers, auditors and admins (the audit log);
- ``session``: any valid token, for managing one's own session (logout, tokens, password);
- ``act``: any valid token except an auditor's, with the scope ``opt["scope"]`` (default
  ``write``); the handler then checks the object (see `timebank.authz`);
- ``write``: admin and manager only, with the ``manage`` scope (or ``opt["scope"]``).

A handler without one is treated as ``write``, so a route added without thought fails
closed. The token is looked up by its hash (see `store.tokens`) and never logged: errors
name the problem, not the token. Member tokens stop working the moment their member is
suspended (the member's status is read with the token).
"""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from scambio.api.ratelimit import scope_client
from scambio.ledger.entry import format_time
from scambio.store.ledger import LedgerService
from scambio.store.tokens import SCOPE_MANAGE, SCOPE_READ, SCOPE_WRITE, Principal, authenticate
from scambio.timebank.context import Timebank

PUBLIC: Final = "public"
READ: Final = "read"
STAFF_READ: Final = "staff-read"
SESSION: Final = "session"
ACT: Final = "act"
WRITE: Final = "write"

#: Routes declared elsewhere whose access is narrowed here. `listEntries` shows every
#: account's entries and memos, so it is for staff; a member reads their own through the
#: statement of their account.
ACCESS_OVERRIDES: Final[dict[str, str]] = {"listEntries": STAFF_READ}

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


def _access(handler: BaseRouteHandler) -> str:
    operation = getattr(handler, "operation_id", None)
    if isinstance(operation, str) and operation in ACCESS_OVERRIDES:
        return ACCESS_OVERRIDES[operation]
    return str(handler.opt.get("access", WRITE))


def _refuse(detail: str) -> PermissionDeniedException:
    return PermissionDeniedException(detail)


async def access_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Raise 401 without a valid token, 403 when the token's role may not do this."""
    access = _access(handler)
    if access == PUBLIC:
        return
    token = bearer_token(connection)
    if token is None:
        raise NotAuthorizedException(
            "this request needs a bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": 'Bearer realm="scambio"'},
        )
    ledger: LedgerService = connection.app.state.ledger
    principal = await authenticate(ledger.engine, token, now=format_time(ledger.clock()))
    if principal is None:
        raise NotAuthorizedException(
            "the bearer token is unknown, malformed, expired or revoked",
            headers={"WWW-Authenticate": 'Bearer realm="scambio", error="invalid_token"'},
        )
    connection.scope["user"] = principal
    if access == SESSION:
        return
    if access in (READ, STAFF_READ):
        if not principal.has_scope(SCOPE_READ):
            raise _refuse("this token lacks the 'read' scope")
        if access == STAFF_READ and not principal.is_staff:
            raise _refuse("only managers, auditors and admins may read this")
        return
    if principal.role == "auditor":
        raise _refuse("role 'auditor' may read but not write")
    if access == ACT:
        scope = str(handler.opt.get("scope", SCOPE_WRITE))
        if not principal.has_scope(scope):
            raise _refuse(f"this token lacks the {scope!r} scope")
        return
    if not principal.can_write:
        raise _refuse(
            f"role {principal.role!r} may not do this; it needs an admin or manager token"
        )
    scope = str(handler.opt.get("scope", SCOPE_MANAGE))
    if not principal.has_scope(scope):
        raise _refuse(f"this token lacks the {scope!r} scope")


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    user = connection.scope.get("user")
    return user if isinstance(user, Principal) else None


def require_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The request's principal; only for routes the guard authenticated."""
    principal = principal_of(connection)
    if principal is None:  # pragma: no cover - the guard runs first
        raise NotAuthorizedException("this request needs a bearer token")
    return principal


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address, for throttling: the peer, or, when the peer is a trusted
    proxy (`SCAMBIO_TRUSTED_PROXIES`), the client it names in X-Forwarded-For (see
    `api.ratelimit`). Without trusted proxies, everyone behind a proxy shares its address."""
    return scope_client(connection.scope)


def provide_timebank(state: State) -> Timebank:
    """The timebank services put on `app.state` by the lifespan."""
    timebank: Timebank = state.timebank
    return timebank
