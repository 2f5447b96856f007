"""Peers: the other timebanks this node exchanges hours with, managed by admins.

Adding a peer opens its clearing account on our ledger (kind `clearing`). The account's
limits *are* the net-position limits, so the ledger itself refuses a hold that would take
the position past them, atomically with every other transfer: `max_balance` is what we
may owe the peer (our members paid into it), `min_balance` minus what the peer may owe us
(its members paid ours). Every change is written to the audit log in the same
transaction as the peer row; a limit change is also an `account` entry in the ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.federation.protocol import PEER_NAME_RE, clearing_account, key_id
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Verifier
from scambio.store.federation_tables import PEER_STATUSES, federation_peers
from scambio.timebank import audit
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, stamp, writing

PEER_ADDED: Final = "peer.added"
PEER_CHANGED: Final = "peer.changed"
#: Default net-position limits, in minutes, each way (ten hours).
DEFAULT_LIMIT: Final = 600
MAX_LIMIT: Final = 10**12
MAX_RATE: Final = 10**6


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    base_url: str
    vkey: str
    origin: str
    key_id: str
    clearing_account: str
    rate_ours: int
    rate_theirs: int
    max_we_owe: int
    max_they_owe: int
    status: str
    created_at: str
    updated_at: str

    @property
    def verifier(self) -> Verifier:
        return Verifier.from_string(self.vkey)

    @property
    def active(self) -> bool:
        return self.status == "active"

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def _peer(row: Any) -> Peer:
    return Peer(
        name=row.name,
        base_url=row.base_url,
        vkey=row.vkey,
        origin=row.origin,
        key_id=row.key_id,
        clearing_account=row.clearing_account,
        rate_ours=int(row.rate_ours),
        rate_theirs=int(row.rate_theirs),
        max_we_owe=int(row.max_we_owe),
        max_they_owe=int(row.max_they_owe),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def invalid(field: str, detail: str) -> RuleViolation:
    return RuleViolation("invalid-field", detail, field=field)


def peer_not_found(name: str) -> RuleViolation:
    return RuleViolation("peer-not-found", f"no peer named {name!r}", peer=name)


# -- validation --------------------------------------------------------------------------


def clean_name(name: str) -> str:
    if not PEER_NAME_RE.fullmatch(name):
        raise invalid(
            "name", "a peer name is 1-32 lower-case letters, digits and '-', starting with one"
        )
    return name


def clean_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if (
        not url.startswith(("http://", "https://"))
        or len(url) > 500
        or any(c.isspace() for c in url)
    ):
        raise invalid("base_url", "base_url must be an http:// or https:// URL")
    return url


def clean_vkey(vkey: str, own_origin: str) -> Verifier:
    try:
        verifier = Verifier.from_string(vkey.strip())
    except VerificationError as exc:
        raise invalid("vkey", str(exc)) from None
    if verifier.name == own_origin:
        raise invalid("vkey", "that is this node's own ledger origin, not a peer's")
    return verifier


def clean_limit(value: int, field: str) -> int:
    if isinstance(value, bool) or not 0 <= value <= MAX_LIMIT:
        raise invalid(field, f"{field} must be a whole number of minutes from 0 to 10^12")
    return value


def clean_rate(ours: int, theirs: int) -> tuple[int, int]:
    for name, value in (("rate_ours", ours), ("rate_theirs", theirs)):
        if isinstance(value, bool) or not 0 < value <= MAX_RATE:
            raise invalid(name, f"{name} must be a whole number from 1 to 10^6")
    return ours, theirs


# -- reads -------------------------------------------------------------------------------


async def get(conn: AsyncConnection, name: str) -> Peer | None:
    row = (
        await conn.execute(select(federation_peers).where(federation_peers.c.name == name))
    ).one_or_none()
    return None if row is None else _peer(row)


async def require(conn: AsyncConnection, name: str) -> Peer:
    peer = await get(conn, name)
    if peer is None:
        raise peer_not_found(name)
    return peer


async def by_key_id(conn: AsyncConnection, key: str) -> Peer | None:
    row = (
        await conn.execute(select(federation_peers).where(federation_peers.c.key_id == key))
    ).one_or_none()
    return None if row is None else _peer(row)


async def listing(conn: AsyncConnection) -> list[Peer]:
    rows = await conn.execute(select(federation_peers).order_by(federation_peers.c.name))
    return [_peer(row) for row in rows]


# -- writes ------------------------------------------------------------------------------


async def add(
    tb: Timebank,
    actor: Actor,
    *,
    name: str,
    base_url: str,
    vkey: str,
    max_we_owe: int = DEFAULT_LIMIT,
    max_they_owe: int = DEFAULT_LIMIT,
    rate_ours: int = 1,
    rate_theirs: int = 1,
    reason: str | None = None,
) -> Peer:
    """Add a peer and open its clearing account (limits = the net-position limits)."""
    name = clean_name(name)
    url = clean_url(base_url)
    verifier = clean_vkey(vkey, tb.settings.ledger_origin)
    we_owe = clean_limit(max_we_owe, "max_we_owe")
    they_owe = clean_limit(max_they_owe, "max_they_owe")
    rate_ours, rate_theirs = clean_rate(rate_ours, rate_theirs)
    async with reading(tb.engine) as conn:
        if await get(conn, name) is not None:
            raise RuleViolation("peer-exists", f"a peer named {name!r} exists already", peer=name)
        same_key = await conn.execute(
            select(federation_peers.c.name).where(federation_peers.c.origin == verifier.name)
        )
        if (other := same_key.scalar_one_or_none()) is not None:
            raise RuleViolation(
                "peer-exists",
                f"ledger {verifier.name!r} is already the peer {other!r}",
                peer=other,
            )
    account = clearing_account(name)
    opened = await tb.ledger.open_account(account, "clearing", -they_owe, we_owe)
    if isinstance(opened, RuleViolation):
        raise opened
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await conn.execute(
            insert(federation_peers).values(
                name=name,
                base_url=url,
                vkey=verifier.to_string(),
                origin=verifier.name,
                key_id=key_id(verifier),
                clearing_account=account,
                rate_ours=rate_ours,
                rate_theirs=rate_theirs,
                max_we_owe=we_owe,
                max_they_owe=they_owe,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )
        await audit.record(
            conn,
            actor,
            PEER_ADDED,
            "peer",
            name,
            at=now,
            reason=reason,
            details={
                "base_url": url,
                "vkey": verifier.to_string(),
                "clearing_account": account,
                "rate": f"{rate_ours}:{rate_theirs}",
                "max_we_owe": we_owe,
                "max_they_owe": they_owe,
                "ledger_index": opened.index,
            },
        )
        return await require(conn, name)


async def change(
    tb: Timebank,
    actor: Actor,
    name: str,
    *,
    base_url: str | None = None,
    vkey: str | None = None,
    max_we_owe: int | None = None,
    max_they_owe: int | None = None,
    rate_ours: int | None = None,
    rate_theirs: int | None = None,
    status: str | None = None,
    reason: str,
) -> Peer:
    """Change what is given; limits go to the ledger first (refused if the position is
    already beyond them). A new key is how a peer's key rotation is recorded."""
    if not reason.strip():
        raise invalid("reason", "say why the peer changes (it goes to the audit log)")
    async with reading(tb.engine) as conn:
        peer = await require(conn, name)
    values: dict[str, Any] = {}
    if base_url is not None:
        values["base_url"] = clean_url(base_url)
    if vkey is not None:
        verifier = clean_vkey(vkey, tb.settings.ledger_origin)
        if verifier.name != peer.origin:
            raise invalid(
                "vkey",
                f"the key is for ledger {verifier.name!r}, but this peer is {peer.origin!r}",
            )
        values.update(vkey=verifier.to_string(), key_id=key_id(verifier))
    if rate_ours is not None or rate_theirs is not None:
        ours, theirs = clean_rate(
            peer.rate_ours if rate_ours is None else rate_ours,
            peer.rate_theirs if rate_theirs is None else rate_theirs,
        )
        values.update(rate_ours=ours, rate_theirs=theirs)
    if status is not None:
        if status not in PEER_STATUSES:
            raise invalid("status", f"status must be one of {', '.join(PEER_STATUSES)}")
        values["status"] = status
    we_owe = peer.max_we_owe if max_we_owe is None else clean_limit(max_we_owe, "max_we_owe")
    they_owe = (
        peer.max_they_owe if max_they_owe is None else clean_limit(max_they_owe, "max_they_owe")
    )
    details: dict[str, Any] = {k: v for k, v in values.items() if k != "key_id"}
    if (we_owe, they_owe) != (peer.max_we_owe, peer.max_they_owe):
        outcome = await tb.ledger.set_limits(
            str(uuid.uuid4()),
            peer.clearing_account,
            -they_owe,
            we_owe,
            f"net-position limits for peer {name}: {reason}"[:1000],
        )
        if isinstance(outcome, RuleViolation):
            if outcome.code == "invalid-limits":
                raise RuleViolation(
                    "invalid-limits",
                    f"the net position with {name} is already beyond those limits: "
                    f"{outcome.detail}",
                    peer=name,
                )
            raise outcome
        values.update(max_we_owe=we_owe, max_they_owe=they_owe)
        details.update(max_we_owe=we_owe, max_they_owe=they_owe, ledger_index=outcome.index)
    if not values:
        raise invalid("peer", "nothing to change")
    now = stamp(tb.clock)
    async with writing(tb.engine) as conn:
        await conn.execute(
            update(federation_peers)
            .where(federation_peers.c.name == name)
            .values(updated_at=now, **values)
        )
        await audit.record(
            conn, actor, PEER_CHANGED, "peer", name, at=now, reason=reason, details=details
        )
        return await require(conn, name)
