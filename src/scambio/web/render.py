"""Rendering pages: Jinja2 templates (autoescaped), one environment per language, and the
headers every page carries.

Pages get a strict Content-Security-Policy of their own (the API's stays as it is): only
this site's scripts, styles, images and fonts; no inline script or style, no `eval`;
forms post only here; no framing. Every page is `no-store` (they show people's balances)
and varies on the cookie and on HTMX, which asks for fragments of the same URLs.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Response
from litestar.enums import MediaType
from litestar.response import Redirect

from scambio.ledger.entry import parse_time
from scambio.timebank.areas import AREAS
from scambio.web import STATIC_URL, i18n
from scambio.web.context import Page

TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
#: The community's clock on the pages (the ledger keeps UTC).
TIMEZONE: Final = ZoneInfo("Europe/Rome")

PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS: Final = {
    "Content-Security-Policy": PAGE_CSP,
    "Cache-Control": "no-store",
    "Vary": "Cookie, HX-Request",
}

_AREA_NAMES: Final = {
    "it": {a.id: a.name_it for a in AREAS},
    "en": {a.id: a.name for a in AREAS},
}


def hours(minutes: int | None, lang: str = "it") -> str:
    """Minutes as hours and minutes: 90 -> "1 h 30 min", -45 -> "-45 min"."""
    if minutes is None:
        return ""
    sign = "-" if minutes < 0 else ""
    whole, rest = divmod(abs(minutes), 60)
    if whole and rest:
        return f"{sign}{whole} h {rest} min"
    if whole:
        return f"{sign}{whole} h"
    return f"{sign}{rest} min"


def _moment(value: str | datetime) -> datetime:
    return parse_time(value) if isinstance(value, str) else value


def when(value: str | datetime | None, lang: str = "it") -> str:
    if value is None:
        return ""
    return format_datetime(_moment(value), "short", tzinfo=TIMEZONE, locale=lang)


def day(value: str | datetime | None, lang: str = "it") -> str:
    if value is None:
        return ""
    return format_date(_moment(value).astimezone(TIMEZONE), "medium", locale=lang)


def area_name(area: str | None, lang: str = "it") -> str:
    if area is None:
        return ""
    return _AREA_NAMES.get(lang, _AREA_NAMES["en"]).get(area, area)


@cache
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        STATIC=STATIC_URL,
        LANGUAGES=i18n.LANGUAGES,
        lang=lang,
    )
    env.filters.update(
        hours=lambda m: hours(m, lang),
        when=lambda v: when(v, lang),
        day=lambda v: day(v, lang),
        area=lambda a: area_name(a, lang),
    )
    return env


def render_text(page: Page, template: str, **context: Any) -> str:
    from scambio.web.notices import notice

    context.setdefault("notice", notice(page))
    return environment(page.lang).get_template(template).render(page=page, **context)


def _apply(page: Page, response: Response[Any]) -> Response[Any]:
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    for cookie in page.cookies:
        response.set_cookie(cookie)
    return response


def render(page: Page, template: str, *, status: int = 200, **context: Any) -> Response[str]:
    html = render_text(page, template, **context)
    response: Response[str] = Response(html, status_code=status, media_type=MediaType.HTML)
    _apply(page, response)
    return response


def redirect(page: Page, url: str) -> Response[Any]:
    """After a form: 303 to `url`; an HTMX request is told to go there itself."""
    if page.is_htmx:
        response: Response[Any] = Response("", status_code=200, media_type=MediaType.HTML)
        response.headers["HX-Redirect"] = url
        return _apply(page, response)
    return _apply(page, Redirect(url, status_code=303))


def plain(page: Page, body: str, *, media_type: str, headers: dict[str, str]) -> Response[str]:
    response: Response[str] = Response(body, media_type=media_type, headers=headers)
    return _apply(page, response)
