"""API bearer tokens: issued once in plaintext, stored only as a SHA-256 hash.

A token is ``scb_<id>_<secret>``: the id names the row (so it can be listed and revoked
without the secret), the secret carries 256 bits from `secrets`. Because the secret is
high-entropy, an unsalted SHA-256 is enough (nothing to brute-force), and looking the hash
up through the unique index means the plaintext is never compared byte by byte in Python:
no timing oracle on the secret. The plaintext is returned once by `issue_token` and never
stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import now_time
from scambio.store.db import WRITER
from scambio.store.tables import api_tokens

ROLE_ADMIN: Final = "admin"
ROLE_MANAGER: Final = "manager"
ROLE_AUDITOR: Final = "auditor"
#: Every role a token may carry.
ROLES: Final = frozenset({ROLE_ADMIN, ROLE_MANAGER, ROLE_AUDITOR})
#: Roles allowed to write to the ledger (open accounts, transfer, post/void, reverse).
WRITE_ROLES: Final = frozenset({ROLE_ADMIN, ROLE_MANAGER})

PREFIX: Final = "scb"
_TOKEN_RE: Final = re.compile(r"scb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME_MAX: Final = 200


class TokenError(ValueError):
    """A token cannot be issued with these arguments."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's id, its human name and its role."""

    token_id: str
    name: str
    role: str

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed to operators: never the secret or its hash."""

    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _token_id(token: str) -> str | None:
    match = _TOKEN_RE.fullmatch(token)
    return match.group(1) if match else None


async def issue_token(engine: AsyncEngine, role: str, name: str) -> str:
    """Create a token for `role`, labelled `name`; return its plaintext (shown only once)."""
    if role not in ROLES:
        raise TokenError(f"role {role!r} is not one of {', '.join(sorted(ROLES))}")
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise TokenError(f"a token needs a name of 1 to {_NAME_MAX} characters")
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{WRITER: True})
        async with conn.begin():
            await conn.execute(
                insert(api_tokens),
                {
                    "id": token_id,
                    "name": name,
                    "role": role,
                    "token_hash": hash_token(token),
                    "created_at": now_time(),
                    "revoked_at": None,
                },
            )
    return token


async def revoke_token(engine: AsyncEngine, token_id: str) -> bool:
    """Revoke a token by id; False when there is no such unrevoked token."""
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{WRITER: True})
        async with conn.begin():
            result = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now_time())
            )
    return bool(result.rowcount)


async def list_tokens(engine: AsyncEngine) -> list[TokenInfo]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                api_tokens.c.id,
                api_tokens.c.name,
                api_tokens.c.role,
                api_tokens.c.created_at,
                api_tokens.c.revoked_at,
            ).order_by(api_tokens.c.created_at, api_tokens.c.id)
        )
        return [TokenInfo(r.id, r.name, r.role, r.created_at, r.revoked_at) for r in rows]


async def authenticate(
    conn_or_engine: AsyncConnection | AsyncEngine, token: str
) -> Principal | None:
    """The principal a token stands for, or None if it is malformed, unknown or revoked."""
    token_id = _token_id(token)
    if token_id is None:
        return None
    query = select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
        api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None)
    )
    if isinstance(conn_or_engine, AsyncEngine):
        async with conn_or_engine.connect() as conn:
            row = (await conn.execute(query)).one_or_none()
    else:
        row = (await conn_or_engine.execute(query)).one_or_none()
    if row is None or not hmac.compare_digest(str(row.id), token_id) or row.role not in ROLES:
        return None
    return Principal(str(row.id), str(row.name), str(row.role))
