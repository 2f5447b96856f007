"""Form bodies decoded into msgspec Structs, as strictly as the API decodes JSON.

A form is text; the Struct says what each field is. Whole numbers must be written as
digits (an optional minus): "90" is 90, "90.0", "1e2" and "ninety" are refused, never
guessed, as the API refuses `90.0`. A checkbox is true when present. An empty optional
field is absent. A field the form does not know, or a single-valued field sent twice, is
refused. Then msgspec checks lengths and bounds (`Meta`) and forbids unknown fields.
Every refusal is a `FormInvalid` naming the field: a 400 page, and nothing is written.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Final, TypeVar, Union

import msgspec

from scambio.web.context import Page
from scambio.web.session import CSRF_FIELD

T = TypeVar("T", bound=msgspec.Struct)
_INTEGER: Final = re.compile(r"-?[0-9]{1,12}")
_TRUE: Final = frozenset({"on", "true", "1", "yes"})


class Form(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every form's Struct."""


class FormInvalid(Exception):
    """A form field is missing, malformed or unknown."""

    def __init__(self, field: str, detail: str) -> None:
        self.field = field
        self.detail = detail
        super().__init__(f"{field}: {detail}")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type inside Annotated/Optional, whether None is allowed)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner, _ = _unwrap(args[0]) if len(args) == 1 else (annotation, False)
        return inner, True
    return annotation, False


def _scalar(name: str, values: list[str]) -> str:
    if len(values) > 1:
        raise FormInvalid(name, "was sent more than once")
    return values[0]


def convert(raw: dict[str, list[str]], kind: type[T]) -> T:
    """Turn a form's fields (name -> values) into `kind`, strictly."""
    hints = typing.get_type_hints(kind, include_extras=True)
    data: dict[str, Any] = {}
    for name, values in raw.items():
        if name == CSRF_FIELD:
            continue
        if name not in hints:
            raise FormInvalid(name, "is not a field of this form")
        inner, optional = _unwrap(hints[name])
        if typing.get_origin(inner) is list:
            data[name] = [v for v in values if v != ""]
            continue
        value = _scalar(name, values)
        if inner is bool:
            data[name] = value.strip().lower() in _TRUE
        elif inner is int:
            text = value.strip()
            if text == "" and optional:
                data[name] = None
            elif not _INTEGER.fullmatch(text):
                raise FormInvalid(name, "must be a whole number, written in digits")
            else:
                data[name] = int(text)
        elif value == "" and optional:
            data[name] = None
        else:
            data[name] = value
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.split("$.", 1)[1].split("`", 1)[0] if "$." in message else "form"
        raise FormInvalid(field, message) from None


async def read_form(page: Page, kind: type[T]) -> T:
    form = await page.request.form()
    raw: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise FormInvalid(name, "files are not accepted here")
        raw.setdefault(name, []).append(value)
    return convert(raw, kind)
