"""Strict request-body decoding.

Litestar converts request data with ``strict=False``, which turns ``"90"`` and ``90.0`` into
the integer 90. Minutes must never be guessed, so handlers re-decode the raw body with
``msgspec.json.decode(..., strict=True)``; Litestar's own pass still documents the body in
OpenAPI and rejects what even lax decoding cannot read. Both raise 400 problems.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final, TypeVar

import msgspec
from litestar import Request

from scambio.ledger.errors import RuleViolation

T = TypeVar("T", bound=msgspec.Struct)

_UUID_RE: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


class InvalidRequest(Exception):
    """The body is not valid JSON of the expected shape (a 400 problem)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def decode_strict(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(str(exc)) from None


async def strict_body(
    request: Request[Any, Any, Any], kind: type[T], *, optional: bool = False
) -> T:
    """Decode the request body as `kind`; with `optional`, an empty body is ``{}``."""
    body = await request.body()
    if optional and not body.strip():
        body = b"{}"
    return decode_strict(body, kind)


def canonical_uuid(value: str, what: str = "id") -> str:
    """The lower-case 8-4-4-4-12 form of a UUID string; RuleViolation `invalid-id` otherwise.

    Only the hyphenated form is accepted, so one UUID is always one idempotency key.
    """
    if not _UUID_RE.fullmatch(value):
        raise RuleViolation(
            "invalid-id",
            f"{what} {value!r} must be a UUID in its 8-4-4-4-12 hexadecimal form",
            field=what,
        )
    return str(uuid.UUID(value))
