"""The statement (running balance, CSV) and the verifiable ledger, as pages.

Every statement line links to `/verify/<index>`, which does on the server what anyone can
do by hand or with `scambio ledger verify`: it opens the latest signed checkpoint with
the node's key, recomputes the entry's leaf hash from its canonical bytes, and checks the
Merkle inclusion proof against the checkpoint's root (`ledger.merkle.verify_inclusion`).
It shows every hash on the way, so a member need not trust the page either.

`/ledger` is public: the latest checkpoint and whether its signature holds, the recent
checkpoints and whether each is consistent with the latest (a consistency proof each:
the log only grew), the verifier key, and how to verify an export offline.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Final

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy import select

from scambio.ledger import merkle
from scambio.ledger.entry import decode_entry
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Checkpoint, open_checkpoint
from scambio.store import queries
from scambio.store.tables import checkpoints
from scambio.timebank import authz, people, statement
from scambio.timebank.people import Member
from scambio.web.context import PUBLIC, READ, Page, PageForbidden
from scambio.web.render import plain, render

STATEMENT_PAGE: Final = 100
RECENT_CHECKPOINTS: Final = 10
_MAX_INDEX: Final = 2**63 - 1
CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8; header=present"


# -- the statement ---------------------------------------------------------------------------


async def _member_for_statement(page: Page, member_id: str | None) -> Member:
    wanted = member_id or page.member_id
    if len(wanted) != 16 or not all(c in "0123456789abcdef" for c in wanted):
        raise people_not_found(wanted)
    async with page.timebank.ledger.read() as conn:
        member = await people.get(conn, wanted)
    if member is None:
        raise people_not_found(wanted)
    if not authz.sees_private(page.user, wanted):
        raise PageForbidden("only the member and staff may read a member's statement")
    return member


def people_not_found(member_id: str) -> RuleViolation:
    return RuleViolation("member-not-found", f"member {member_id!r} does not exist")


async def _statement(page: Page, member_id: str | None, after: int | None) -> Response[Any]:
    member = await _member_for_statement(page, member_id)
    lines: list[statement.Line] = []
    account = None
    if member.account_id is not None:
        async with page.timebank.ledger.read() as conn:
            lines = await statement.lines(
                conn, member.account_id, after=after, limit=STATEMENT_PAGE
            )
            account = await queries.account(conn, member.account_id)
    more = lines[-1].index if len(lines) == STATEMENT_PAGE else None
    base = "/statement" if member_id is None else f"/members/{member.id}/statement"
    return render(
        page, "statement.html", member=member, lines=lines, more=more, base=base, account=account
    )


After = Annotated[int | None, QueryParameter(ge=0, le=_MAX_INDEX)]


@get("/statement", opt={"access": READ}, include_in_schema=False)
async def own_statement(page: NamedDependency[Page], after: After = None) -> Response[Any]:
    return await _statement(page, None, after)


@get("/members/{member_id:str}/statement", opt={"access": READ}, include_in_schema=False)
async def member_statement(
    page: NamedDependency[Page], member_id: FromPath[str], after: After = None
) -> Response[Any]:
    return await _statement(page, member_id, after)


async def _csv(page: Page, member_id: str | None) -> Response[Any]:
    member = await _member_for_statement(page, member_id)
    found: list[statement.Line] = []
    if member.account_id is not None:
        async with page.timebank.ledger.read() as conn:
            found = await statement.all_lines(conn, member.account_id)
    return plain(
        page,
        statement.to_csv(found),
        media_type=CSV_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="scambio-statement-{member.id}.csv"'
        },
    )


@get("/statement.csv", opt={"access": READ}, include_in_schema=False)
async def own_statement_csv(page: NamedDependency[Page]) -> Response[Any]:
    return await _csv(page, None)


@get("/members/{member_id:str}/statement.csv", opt={"access": READ}, include_in_schema=False)
async def member_statement_csv(
    page: NamedDependency[Page], member_id: FromPath[str]
) -> Response[Any]:
    return await _csv(page, member_id)


# -- verifying one entry ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One step up the tree: the sibling hash, which side it is on, and the result."""

    sibling: str
    side: str
    result: str


def trace_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> list[Step]:
    """The intermediate hashes of RFC 9162's inclusion check, for showing by hand. The
    verdict is `merkle.verify_inclusion`'s; this only explains it."""
    steps: list[Step] = []
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if fn & 1 or fn == sn:
            node = hashlib.sha256(b"\x01" + sibling + node).digest()
            steps.append(Step(sibling.hex(), "left", node.hex()))
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            node = hashlib.sha256(b"\x01" + node + sibling).digest()
            steps.append(Step(sibling.hex(), "right", node.hex()))
        fn >>= 1
        sn >>= 1
    return steps


def _entry_accounts(canonical: bytes) -> set[str]:
    return {p.account for p in decode_entry(canonical).postings}


@get("/verify/{index:int}", opt={"access": READ}, include_in_schema=False)
async def verify_entry(page: NamedDependency[Page], index: FromPath[int]) -> Response[Any]:
    tb = page.timebank
    if not 0 <= index <= _MAX_INDEX:
        raise RuleViolation("entry-not-found", f"there is no entry {index}")
    async with tb.ledger.read() as conn:
        head = await queries.head(conn)
        stored = await queries.entry_range(conn, index, 1)
        if not stored or stored[0].index != index:
            raise RuleViolation("entry-not-found", f"there is no entry {index}")
        entry = stored[0]
        principal = page.user
        if not principal.is_staff and not any(
            principal.holds_account(a) for a in _entry_accounts(entry.canonical)
        ):
            # Other people's entries do not exist for a member (their proofs are public
            # at /api/v1/ledger/proof/inclusion, without the entry).
            raise RuleViolation("entry-not-found", f"there is no entry {index} of yours")
        problem = None
        checkpoint: Checkpoint | None = None
        try:
            checkpoint = open_checkpoint(
                head.checkpoint, tb.ledger.signer.verifier(), tb.ledger.origin
            )
        except VerificationError as exc:
            problem = f"checkpoint: {exc}"
        size = checkpoint.size if checkpoint is not None else head.size
        stored_leaf, proof = await queries.inclusion_proof(conn, index, size)
    leaf = merkle.leaf_hash(entry.canonical)
    verified = False
    if problem is None and checkpoint is not None:
        if leaf != stored_leaf:
            problem = "the stored leaf hash differs from the hash of the entry's bytes"
        else:
            try:
                merkle.verify_inclusion(leaf, index, size, proof, checkpoint.root)
                verified = True
            except VerificationError as exc:
                problem = str(exc)
    return render(
        page,
        "verify.html",
        index=index,
        canonical=entry.canonical.decode(),
        leaf=leaf.hex(),
        size=size,
        steps=trace_inclusion(leaf, index, size, proof),
        root=checkpoint.root.hex() if checkpoint else head.root.hex(),
        root_b64=base64.b64encode(checkpoint.root if checkpoint else head.root).decode(),
        note=head.checkpoint,
        vkey=tb.ledger.signer.verifier().to_string(),
        verified=verified,
        problem=problem,
    )


# -- the ledger, for auditors, funders and anyone ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Consistency:
    size: int
    created_at: str
    root: str
    ok: bool
    problem: str | None


@get(
    "/ledger",
    opt={"access": PUBLIC},
    include_in_schema=False,
)
async def ledger_page(page: NamedDependency[Page]) -> Response[Any]:
    tb = page.timebank
    verifier = tb.ledger.signer.verifier()
    async with tb.ledger.read() as conn:
        head = await queries.head(conn)
        count = await queries.checkpoint_count(conn)
        rows = list(
            await conn.execute(
                select(checkpoints.c.size, checkpoints.c.root, checkpoints.c.created_at)
                .where(checkpoints.c.size < head.size, checkpoints.c.size > 0)
                .order_by(checkpoints.c.size.desc())
                .limit(RECENT_CHECKPOINTS)
            )
        )
        proofs = {
            int(row.size): await queries.consistency_proof(conn, int(row.size), head.size)
            for row in rows
        }
    signature_ok = True
    problem = None
    try:
        latest = open_checkpoint(head.checkpoint, verifier, tb.ledger.origin)
    except VerificationError as exc:
        signature_ok, problem, latest = False, str(exc), None
    recent: list[Consistency] = []
    for row in rows:
        size = int(row.size)
        try:
            if latest is None:
                raise VerificationError("the latest checkpoint does not verify")
            merkle.verify_consistency(size, latest.size, proofs[size], bytes(row.root), latest.root)
            recent.append(Consistency(size, row.created_at, bytes(row.root).hex(), True, None))
        except VerificationError as exc:
            recent.append(Consistency(size, row.created_at, bytes(row.root).hex(), False, str(exc)))
    return render(
        page,
        "ledger.html",
        origin=head.origin,
        size=head.size,
        checkpoint=head.checkpoint,
        root=head.root.hex(),
        vkey=verifier.to_string(),
        signature_ok=signature_ok,
        problem=problem,
        count=count,
        recent=recent,
    )


ROUTES: Final = [
    own_statement,
    member_statement,
    own_statement_csv,
    member_statement_csv,
    verify_entry,
    ledger_page,
]
