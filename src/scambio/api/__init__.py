"""The HTTP JSON API (Litestar): routes under /api/v1, problem details, bearer auth."""

from __future__ import annotations

from litestar import Router

from scambio.api import (
    accounts,
    email_change,
    exchanges,
    federation,
    jobs,
    ledger,
    listings,
    matching,
    notifications,
    orgs,
    people,
    policies,
    session,
    statement,
    transfers,
)
from scambio.api.auth import access_guard
from scambio.api.ratelimit import WriteRateLimit

API_PREFIX = "/api/v1"


def api_router() -> Router:
    """All /api/v1 routes; each declares its access level, the guard enforces it.

    The `ledger` and `timebank` dependencies are provided app-wide by `create_app`.
    """
    return Router(
        API_PREFIX,
        route_handlers=[
            *accounts.ROUTES,
            *transfers.ROUTES,
            *ledger.ROUTES,
            *session.ROUTES,
            *people.ROUTES,
            *orgs.ROUTES,
            *listings.ROUTES,
            *matching.ROUTES,
            *exchanges.ROUTES,
            *statement.ROUTES,
            *notifications.ROUTES,
            *email_change.ROUTES,
            *policies.ROUTES,
            *jobs.ROUTES,
            *federation.ROUTES,
        ],
        guards=[access_guard],
        middleware=[WriteRateLimit()],
    )
