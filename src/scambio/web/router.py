"""The pages' router: every page handler, the guard that authenticates the session cookie,
checks CSRF and access, the per-page context, and HTML error pages.

`app.py` passes `client_address` (the API's resolver of the client behind trusted
proxies), so the login and registration throttles count the same addresses for pages as
for the API, without the pages importing the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Router
from litestar.di import Provide
from litestar.types import Scope

from scambio.web.context import page_guard, provide_page
from scambio.web.errors import EXCEPTION_HANDLERS
from scambio.web.pages import auth, exchanges, home, ledger, listings, manage, orgs


def web_router(client_address: Callable[[Scope], str]) -> Router:
    handlers: list[Any] = [
        *auth.ROUTES,
        *home.ROUTES,
        *listings.ROUTES,
        *exchanges.ROUTES,
        *ledger.ROUTES,
        *manage.ROUTES,
        *orgs.ROUTES,
    ]
    return Router(
        "/",
        route_handlers=handlers,
        guards=[page_guard],
        dependencies={"page": Provide(provide_page)},
        exception_handlers=EXCEPTION_HANDLERS,
        opt={"client_address": client_address},
        include_in_schema=False,
    )
