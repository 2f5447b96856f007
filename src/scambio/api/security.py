"""Security headers on every response, errors and 404s included.

Added in a `before_send` hook because that wraps the whole application: route middleware
would miss responses Litestar makes before routing (404, 405). No page runs an inline
script: the home page has no script at all, and the documentation pages load vendored
files and start them from a static file. Swagger UI and Redoc set inline styles, so the
documentation pages (and only they) allow ``'unsafe-inline'`` styles; Redoc also runs
a web worker from a blob.
"""

from __future__ import annotations

from typing import Final

from litestar.types import Message, Scope

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
    "worker-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_DOCS_PREFIX: Final = "/schema"


async def add_security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers") or [])
    present = {name.lower() for name, _ in headers}
    path = str(scope.get("path", ""))
    csp = DOCS_CSP if path == _DOCS_PREFIX or path.startswith(_DOCS_PREFIX + "/") else CSP
    for name, value in (*_COMMON, (b"content-security-policy", csp.encode())):
        if name not in present:
            headers.append((name, value))
    message["headers"] = headers
