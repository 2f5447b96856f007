"""OpenAPI documentation pages that work with no internet.

Litestar's render plugins load Swagger UI and Redoc from a CDN and start them with an
inline script. These load the vendored copies under ``/static`` and start them from a
static file that reads the schema URL from a data attribute, so the pages need neither
the network nor ``'unsafe-inline'`` scripts.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

from scambio.web import STATIC_URL


def _page(title: str, head: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n{head}</head>\n<body>\n{body}</body>\n</html>\n"
    ).encode()


class LocalSwaggerRenderPlugin(OpenAPIRenderPlugin):
    """Swagger UI from the vendored bundle (interactive: try requests with a token)."""

    def __init__(self, *, path: str | list[str] = "/swagger") -> None:
        super().__init__(path=path, favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec_url = escape(self.get_openapi_json_route(request), quote=True)
        title = f"{openapi_schema['info']['title']} - Swagger UI"
        head = (
            f'<link rel="stylesheet" href="{STATIC_URL}/swagger-ui/swagger-ui.css">\n'
            f'<link rel="stylesheet" href="{STATIC_URL}/docs/docs.css">\n'
            f'<script src="{STATIC_URL}/swagger-ui/swagger-ui-bundle.js" defer></script>\n'
            f'<script src="{STATIC_URL}/docs/swagger-init.js" defer></script>\n'
        )
        body = (
            f'<div id="swagger-ui" data-spec-url="{spec_url}"></div>\n'
            f"<noscript><p>The interactive documentation needs JavaScript. The API "
            f'description itself is at <a href="{spec_url}">{spec_url}</a>.</p></noscript>\n'
        )
        return _page(title, head, body)


class LocalRedocRenderPlugin(OpenAPIRenderPlugin):
    """Redoc from the vendored standalone bundle, without Google Fonts."""

    def __init__(self, *, path: str | list[str] = "/redoc") -> None:
        super().__init__(path=path, favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec_url = escape(self.get_openapi_json_route(request), quote=True)
        title = f"{openapi_schema['info']['title']} - Redoc"
        head = (
            f'<link rel="stylesheet" href="{STATIC_URL}/docs/docs.css">\n'
            f'<script src="{STATIC_URL}/redoc/redoc.standalone.js" defer></script>\n'
            f'<script src="{STATIC_URL}/docs/redoc-init.js" defer></script>\n'
        )
        body = (
            f'<div id="redoc" data-spec-url="{spec_url}"></div>\n'
            f"<noscript><p>This documentation needs JavaScript. The API description "
            f'itself is at <a href="{spec_url}">{spec_url}</a>.</p></noscript>\n'
        )
        return _page(title, head, body)
