"""API bearer tokens: issued once in plaintext, stored only as a SHA-256 hash.

A token is ``scb_<id>_<secret>``: the id names the row (so it can be listed and revoked
without the secret), the secret carries 256 bits from `secrets`. Because the secret is
high-entropy, an unsalted SHA-256 is enough (nothing to brute-force), and looking the hash
up through the unique index means the plaintext is never compared byte by byte in Python:
no timing oracle on the secret. The plaintext is returned once by `issue_token` and never
stored or logged.

Two kinds of token share the table. Operator tokens (`issue_token`, from the command line)
carry a role (admin, manager, auditor) and every scope. A member's own tokens
(`issue_member_token`, from a login) name the member, carry scopes and may expire; their
role is the member's *current* role, read at each request with the member's status, so a
suspension or a change of role takes effect on the next request, not at the token's expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.ledger.entry import now_time
from scambio.store.db import WRITER
from scambio.store.people_tables import members, org_admins, organisations
from scambio.store.tables import api_tokens

ROLE_ADMIN: Final = "admin"
ROLE_MANAGER: Final = "manager"
ROLE_AUDITOR: Final = "auditor"
#: Every role a token may carry.
ROLES: Final = frozenset({ROLE_ADMIN, ROLE_MANAGER, ROLE_AUDITOR})
#: Roles allowed to write to the ledger (open accounts, transfer, post/void, reverse).
WRITE_ROLES: Final = frozenset({ROLE_ADMIN, ROLE_MANAGER})
#: A member's own role; also the `role` column of every member token (the real role is
#: the member's, read at each request).
ROLE_MEMBER: Final = "member"
#: Roles that see the whole community (every account, member and the audit log).
STAFF_ROLES: Final = ROLES

#: Scopes a member token may carry: read anything the member may see; write their own
#: profile, links (and later listings and exchanges); transfer from accounts they hold;
#: manage what their role or organisation lets them manage.
SCOPE_READ: Final = "read"
SCOPE_WRITE: Final = "write"
SCOPE_TRANSFER: Final = "transfer"
SCOPE_MANAGE: Final = "manage"
SCOPES: Final = frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_TRANSFER, SCOPE_MANAGE})

PREFIX: Final = "scb"
_TOKEN_RE: Final = re.compile(r"scb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME_MAX: Final = 200


class TokenError(ValueError):
    """A token cannot be issued with these arguments."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: the token's id, its human name and its role.

    For a member's token also the member, the token's scopes, the member's own ledger
    account and the organisations they administer (with those organisations' accounts).
    """

    token_id: str
    name: str
    role: str
    member_id: str | None = None
    scopes: frozenset[str] = SCOPES
    account_id: str | None = None
    org_admin_of: frozenset[str] = field(default_factory=frozenset)
    org_accounts: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    @property
    def is_staff(self) -> bool:
        """Manager, auditor or admin: sees the whole community."""
        return self.role in STAFF_ROLES

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def holds_account(self, account_id: str) -> bool:
        """The member's own account or one of the organisations they administer."""
        return account_id == self.account_id or account_id in self.org_accounts

    def admins(self, org_id: str) -> bool:
        return org_id in self.org_admin_of


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed to operators: never the secret or its hash."""

    id: str
    name: str
    role: str
    created_at: str
    revoked_at: str | None
    member_id: str | None = None
    scopes: tuple[str, ...] = ()
    expires_at: str | None = None


def _new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(8)
    return token_id, f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


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
    token_id, token = _new_token()
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
    conn_or_engine: AsyncConnection | AsyncEngine, token: str, *, now: str | None = None
) -> Principal | None:
    """The principal a token stands for, or None if it is malformed, unknown or revoked.

    A member's token also fails once it has expired or while its member is not active.
    """
    if isinstance(conn_or_engine, AsyncEngine):
        async with conn_or_engine.connect() as conn:
            return await _authenticate(conn, token, now or now_time())
    return await _authenticate(conn_or_engine, token, now or now_time())


#: A token, its member and the active organisations the member administers, in one
#: statement (one row per organisation, or one row): every request runs it.
_BY_HASH: Final = (
    select(
        api_tokens.c.id,
        api_tokens.c.name,
        api_tokens.c.role,
        api_tokens.c.member_id,
        api_tokens.c.scopes,
        api_tokens.c.expires_at,
        members.c.role.label("member_role"),
        members.c.status.label("member_status"),
        members.c.account_id.label("member_account"),
        organisations.c.id.label("org_id"),
        organisations.c.account_id.label("org_account"),
    )
    .select_from(
        api_tokens.outerjoin(members, members.c.id == api_tokens.c.member_id)
        .outerjoin(org_admins, org_admins.c.member_id == api_tokens.c.member_id)
        .outerjoin(
            organisations,
            and_(organisations.c.id == org_admins.c.org_id, organisations.c.status == "active"),
        )
    )
    .where(api_tokens.c.token_hash == bindparam("token_hash"), api_tokens.c.revoked_at.is_(None))
)


async def _authenticate(conn: AsyncConnection, token: str, now: str) -> Principal | None:
    token_id = _token_id(token)
    if token_id is None:
        return None
    rows = list(await conn.execute(_BY_HASH, {"token_hash": hash_token(token)}))
    if not rows:
        return None
    row = rows[0]
    if not hmac.compare_digest(str(row.id), token_id):
        return None
    if row.member_id is None:
        if row.role not in ROLES:
            return None
        return Principal(str(row.id), str(row.name), str(row.role))
    if row.member_status != "active" or (row.expires_at is not None and row.expires_at <= now):
        return None
    admin_of = [(str(r.org_id), r.org_account) for r in rows if r.org_id is not None]
    return Principal(
        str(row.id),
        str(row.name),
        str(row.member_role),
        member_id=str(row.member_id),
        scopes=parse_scopes(row.scopes),
        account_id=row.member_account,
        org_admin_of=frozenset(org for org, _ in admin_of),
        org_accounts=frozenset(str(acc) for _, acc in admin_of if acc is not None),
    )


def parse_scopes(text: str | None) -> frozenset[str]:
    return frozenset(text.split()) & SCOPES if text else frozenset()


def format_scopes(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


async def issue_member_token(
    conn: AsyncConnection,
    member_id: str,
    name: str,
    scopes: Iterable[str],
    *,
    created_at: str,
    expires_at: str | None,
) -> tuple[str, str]:
    """Create a token for a member inside the caller's transaction: (plaintext, id)."""
    wanted = frozenset(scopes)
    if not wanted or not wanted <= SCOPES:
        raise TokenError(f"scopes must be a non-empty subset of {', '.join(sorted(SCOPES))}")
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise TokenError(f"a token needs a name of 1 to {_NAME_MAX} characters")
    token_id, token = _new_token()
    await conn.execute(
        insert(api_tokens),
        {
            "id": token_id,
            "name": name,
            "role": ROLE_MEMBER,
            "token_hash": hash_token(token),
            "created_at": created_at,
            "revoked_at": None,
            "member_id": member_id,
            "scopes": format_scopes(wanted),
            "expires_at": expires_at,
        },
    )
    return token, token_id


async def member_tokens(conn: AsyncConnection, member_id: str, now: str) -> list[TokenInfo]:
    """A member's tokens that still work (not revoked, not expired), newest first."""
    rows = await conn.execute(
        select(api_tokens)
        .where(
            api_tokens.c.member_id == member_id,
            api_tokens.c.revoked_at.is_(None),
            (api_tokens.c.expires_at.is_(None)) | (api_tokens.c.expires_at > now),
        )
        .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id)
    )
    return [
        TokenInfo(
            r.id,
            r.name,
            r.role,
            r.created_at,
            r.revoked_at,
            r.member_id,
            tuple(sorted(parse_scopes(r.scopes))),
            r.expires_at,
        )
        for r in rows
    ]


async def revoke_member_token(
    conn: AsyncConnection, token_id: str, member_id: str | None, now: str
) -> bool:
    """Revoke one token; with `member_id`, only if it is that member's. False if none."""
    query = update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
    if member_id is not None:
        query = query.where(api_tokens.c.member_id == member_id)
    return bool((await conn.execute(query.values(revoked_at=now))).rowcount)


async def revoke_all_member_tokens(
    conn: AsyncConnection, member_id: str, now: str, *, keep: str | None = None
) -> int:
    """Revoke every token of a member (but `keep`): after a suspension or password reset."""
    query = update(api_tokens).where(
        api_tokens.c.member_id == member_id, api_tokens.c.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(api_tokens.c.id != keep)
    return int((await conn.execute(query.values(revoked_at=now))).rowcount)
