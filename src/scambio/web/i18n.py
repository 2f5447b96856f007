"""Languages of the pages: Italian by default, English on request, through gettext.

The message ids are the English texts (in the templates and in `N_`-marked Python
strings); the Italian catalog is `locale/it/LC_MESSAGES/messages.po`, kept in the
repository and compiled in memory when the app starts (Babel's `read_po` and `write_mo`),
so a fresh `pip install -e .` needs no build step and a stale `.mo` file can never be
served. `make messages` re-extracts the ids and merges them into the catalog; a test
checks that every id has an Italian translation.

The language comes from `?lang=` (which also sets the cookie), then the `scambio_lang`
cookie, then the default: Italian, because the community the app serves speaks it.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"
DOMAIN: Final = "messages"
DEFAULT: Final = "it"
#: The languages offered, each with its name in itself (shown in the switcher).
LANGUAGES: Final[Mapping[str, str]] = {"it": "Italiano", "en": "English"}
COOKIE: Final = "scambio_lang"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_catalog(lang: str) -> gettext.GNUTranslations:
    """Read a `.po` catalog and compile it in memory (fuzzy entries are left out)."""
    with catalog_path(lang).open("rb") as source:
        catalog = read_po(source, locale=lang, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The translations of a language: English is the source, so it needs none."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}")
    if lang == "en":
        return gettext.NullTranslations()
    return compile_catalog(lang)


def choose(query: str | None, cookie: str | None) -> str:
    """The page's language: `?lang=`, then the cookie, then Italian."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return str(candidate)
    return DEFAULT
