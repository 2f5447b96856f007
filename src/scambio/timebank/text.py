"""Normalising and checking what people type: names, free text, emails, tags, languages.

Text is stored as typed (after Unicode NFC normalisation and trimming) and never as
markup: HTML in a name is just characters, escaped by whatever renders it. What is refused
is what no person means to type and what breaks storage: control characters (free text
may keep newlines and tabs), unpaired surrogates, and anything over its length bound.
Every refusal is a `RuleViolation` naming the field, so the API answers 422 with `field`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Final

from scambio.ledger.errors import RuleViolation

NAME_MAX: Final = 200
EMAIL_MAX: Final = 254
PASSWORD_MIN: Final = 10
PASSWORD_MAX: Final = 200
TAG_MAX: Final = 40
TAGS_MAX: Final = 20
LANGUAGES_MAX: Final = 10

_EMAIL_RE: Final = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
#: BCP 47-ish: a 2-3 letter language with optional subtags ("it", "en-GB", "zh-Hant").
_LANGUAGE_RE: Final = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}")
_MULTILINE_OK: Final = frozenset("\n\t")


def invalid(field: str, detail: str) -> RuleViolation:
    return RuleViolation("invalid-field", detail, field=field)


def _check_characters(value: str, field: str, *, multiline: bool) -> None:
    for char in value:
        if "\ud800" <= char <= "\udfff":
            raise invalid(field, f"{field} contains an unpaired surrogate")
        category = unicodedata.category(char)
        if category == "Cc" and not (multiline and char in _MULTILINE_OK):
            raise invalid(field, f"{field} contains a control character (U+{ord(char):04X})")


def clean_text(value: str, field: str, max_length: int, *, multiline: bool = False) -> str:
    """NFC-normalised and trimmed; may be empty. Raises on control characters or length."""
    _check_characters(value, field, multiline=multiline)
    cleaned = unicodedata.normalize("NFC", value).strip()
    if multiline:
        cleaned = cleaned.replace("\r\n", "\n")
    if len(cleaned) > max_length:
        raise invalid(field, f"{field} is longer than {max_length} characters")
    return cleaned


def clean_name(value: str, field: str = "name", max_length: int = NAME_MAX) -> str:
    """A required one-line name: 1 to `max_length` characters after trimming."""
    cleaned = " ".join(clean_text(value, field, max_length * 2).split())
    if not cleaned:
        raise invalid(field, f"{field} must not be empty")
    if len(cleaned) > max_length:
        raise invalid(field, f"{field} is longer than {max_length} characters")
    return cleaned


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased, so one address is one key; raises `invalid-email`."""
    email = value.strip().lower()
    if len(email) > EMAIL_MAX or not _EMAIL_RE.fullmatch(email):
        raise RuleViolation(
            "invalid-email", "email must be an address like name@example.org", field="email"
        )
    return email


def try_normalise_email(value: str) -> str | None:
    try:
        return normalise_email(value)
    except RuleViolation:
        return None


def check_password(value: str, field: str = "password") -> str:
    """10 to 200 characters, no control characters; anything else (spaces, any script)."""
    _check_characters(value, field, multiline=False)
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise RuleViolation(
            "invalid-password",
            f"{field} must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long",
            field=field,
        )
    return value


def clean_tags(values: Iterable[str], field: str = "tags") -> list[str]:
    """Lower-case, trimmed, de-duplicated in order; at most 20 of at most 40 characters."""
    tags: list[str] = []
    for value in values:
        tag = " ".join(clean_text(value, field, TAG_MAX * 2).lower().split())
        if not tag or len(tag) > TAG_MAX:
            raise invalid(field, f"each of {field} must be 1 to {TAG_MAX} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > TAGS_MAX:
        raise invalid(field, f"at most {TAGS_MAX} {field}")
    return tags


def clean_languages(values: Iterable[str]) -> list[str]:
    languages: list[str] = []
    for value in values:
        code = value.strip()
        if not _LANGUAGE_RE.fullmatch(code):
            raise invalid("languages", f"{value!r} is not a language code such as 'it' or 'en'")
        if code not in languages:
            languages.append(code)
    if len(languages) > LANGUAGES_MAX:
        raise invalid("languages", f"at most {LANGUAGES_MAX} languages")
    return languages
