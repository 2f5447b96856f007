"""The community manager's pages: approvals, the queue of unmatched requests with
suggested matches and one-click introductions, disputes, recording an exchange for an
offline member, reversals with a reason, and the audit log.

Auditors see every list (staff-read) and none of the buttons; every act is `write`
(managers and admins) and then the same object-level checks as the API
(`authz.may_administer` for approvals, the exchange rules for resolutions).
Job runs and ledger health join this page when the jobs work lands (issue 5); the
company sponsorship figures when policies do (issue 4).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy import func, select

from scambio.ledger.entry import decode_entry, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.people_tables import audit_log, members
from scambio.timebank import audit, authz, exchanges, matching, people, reversals
from scambio.timebank.areas import AREA_IDS, AREAS
from scambio.timebank.db import reading
from scambio.timebank.listings import MEMBER, ORGANISATION, Owner
from scambio.timebank.search import BadCursor
from scambio.web.context import STAFF_READ, WRITE, Page
from scambio.web.errors import violation_message, violation_status
from scambio.web.forms import Form, FormInvalid, read_form
from scambio.web.pages.home import exchange_views, zone_names
from scambio.web.render import redirect, render

ID_RE: Final = re.compile(r"[0-9a-f]{16}")
Short = Annotated[str, msgspec.Meta(max_length=1000)]
Long = Annotated[str, msgspec.Meta(max_length=10_000)]
_MAX_INDEX: Final = 2**63 - 1
AUDIT_PAGE: Final = 50


def _member_id(value: str) -> str:
    if not ID_RE.fullmatch(value):
        raise RuleViolation("member-not-found", f"member {value!r} does not exist")
    return value


@get("/manage", opt={"access": STAFF_READ}, include_in_schema=False)
async def manage_index(page: NamedDependency[Page]) -> Response[Any]:
    tb = page.timebank
    async with reading(tb.engine) as conn:
        pending = (
            await conn.execute(
                select(func.count()).select_from(members).where(members.c.status == "pending")
            )
        ).scalar_one()
        disputed = await exchanges.listing(conn, accounts=None, state="disputed", limit=100)
        queue = await matching.queue(conn, tb.clock(), limit=50)
    async with tb.ledger.read() as conn:
        head = await queries.head(conn)
        checkpoints = await queries.checkpoint_count(conn)
    return render(
        page,
        "manage.html",
        pending=int(pending),
        disputed=len(disputed),
        queued=len(queue.requests),
        size=head.size,
        checkpoints=checkpoints,
    )


# -- approvals -------------------------------------------------------------------------------


@get("/manage/approvals", opt={"access": STAFF_READ}, include_in_schema=False)
async def approvals(page: NamedDependency[Page]) -> Response[Any]:
    async with reading(page.timebank.engine) as conn:
        pending = await people.listing(conn, status="pending", limit=200)
    return render(page, "approvals.html", pending=pending, zone_names=zone_names(page))


class RejectForm(Form, frozen=True, kw_only=True):
    reason: Long = ""


async def _target(page: Page, member_id: str) -> people.Member:
    async with reading(page.timebank.engine) as conn:
        member = await people.require(conn, _member_id(member_id))
    authz.may_administer(page.user, member)
    return member


@post(
    "/manage/members/{member_id:str}/approve",
    opt={"access": WRITE},
    include_in_schema=False,
    status_code=200,
)
async def approve(page: NamedDependency[Page], member_id: FromPath[str]) -> Response[Any]:
    await read_form(page, Form)
    member = await _target(page, member_id)
    approved = await people.approve(page.timebank, authz.actor(page.user), member.id)
    if page.is_htmx:
        return render(page, "_approval_done.html", member=approved, outcome="approved")
    return redirect(page, "/manage/approvals?done=approved")


@post(
    "/manage/members/{member_id:str}/reject",
    opt={"access": WRITE},
    include_in_schema=False,
    status_code=200,
)
async def reject(page: NamedDependency[Page], member_id: FromPath[str]) -> Response[Any]:
    form = await read_form(page, RejectForm)
    member = await _target(page, member_id)
    reason = people.clean_reason(form.reason, required=True)
    assert reason is not None
    rejected = await people.reject(page.timebank, authz.actor(page.user), member.id, reason=reason)
    if page.is_htmx:
        return render(page, "_approval_done.html", member=rejected, outcome="rejected")
    return redirect(page, "/manage/approvals?done=rejected")


# -- the queue and introductions --------------------------------------------------------------


@get("/manage/queue", opt={"access": STAFF_READ}, include_in_schema=False)
async def queue(
    page: NamedDependency[Page],
    zone: Annotated[str | None, QueryParameter(max_length=64)] = None,
    area: Annotated[str | None, QueryParameter(max_length=64)] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
) -> Response[Any]:
    tb = page.timebank
    zone = zone or None
    area = area or None
    if zone is not None and zone not in tb.zones.ids:
        raise FormInvalid("zone", "is not one of the community's zones")
    if area is not None and area not in AREA_IDS:
        raise FormInvalid("area", f"must be one of {', '.join(sorted(AREA_IDS))}")
    now = tb.clock()
    items = []
    try:
        async with reading(tb.engine) as conn:
            found = await matching.queue(
                conn, now, zone=zone, area=area, cursor=cursor or None, limit=20
            )
            for request in found.requests:
                suggested = await matching.suggestions(
                    conn, request, now, limit=3, zone_names=zone_names(page)
                )
                waiting = max(0, (now - parse_time(request.created_at)).days)
                items.append((request, waiting, suggested))
    except BadCursor:
        raise FormInvalid("cursor", "is not one this page made") from None
    return render(
        page,
        "queue.html",
        items=items,
        more=found.next_cursor,
        zone=zone or "",
        area=area or "",
        zones=tb.zones.items,
        areas=AREAS,
        zone_names=zone_names(page),
    )


class IntroductionForm(Form, frozen=True, kw_only=True):
    request_id: Short
    helper_type: Short
    helper_id: Short
    offer_id: Short | None = None
    note: Long = ""


@post("/manage/introductions", opt={"access": WRITE}, include_in_schema=False, status_code=200)
async def introduce(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, IntroductionForm)
    if form.helper_type not in (MEMBER, ORGANISATION):
        raise FormInvalid("helper_type", "must be member or organisation")
    for name in ("request_id", "helper_id"):
        if not ID_RE.fullmatch(getattr(form, name)):
            raise FormInvalid(name, "is not an id")
    if form.offer_id is not None and not ID_RE.fullmatch(form.offer_id):
        raise FormInvalid("offer_id", "is not an id")
    intro = await matching.introduce(
        page.timebank,
        authz.actor(page.user),
        request_id=form.request_id,
        helper=Owner(form.helper_type, form.helper_id),
        offer_id=form.offer_id,
        note=matching.clean_note(form.note),
    )
    if page.is_htmx:
        return render(page, "_introduced.html", intro=intro)
    return redirect(page, "/manage/queue?done=introduced")


# -- disputes --------------------------------------------------------------------------------


@get("/manage/disputes", opt={"access": STAFF_READ}, include_in_schema=False)
async def disputes(page: NamedDependency[Page]) -> Response[Any]:
    async with reading(page.timebank.engine) as conn:
        found = await exchanges.listing(conn, accounts=None, state="disputed", limit=100)
        views = await exchange_views(page, conn, found)
    return render(page, "disputes.html", views=views)


# -- recording for offline members -----------------------------------------------------------


class RecordForm(Form, frozen=True, kw_only=True):
    id: Short
    provider: Short
    receiver: Short
    minutes: int
    title: Short
    area: Short | None = None
    reason: Long = ""


async def _active_members(page: Page) -> list[people.Member]:
    async with reading(page.timebank.engine) as conn:
        found = await people.listing(conn, status="active", limit=2000)
    return sorted((m for m in found if m.account_id is not None), key=lambda m: m.name.lower())


async def _record_page(
    page: Page, *, status: int = 200, error: str | None = None, **values: Any
) -> Response[Any]:
    defaults = {
        "id": str(uuid.uuid4()),
        "provider": "",
        "receiver": "",
        "minutes": 60,
        "title": "",
        "area": "",
        "reason": "",
    }
    return render(
        page,
        "record.html",
        status=status,
        error=error,
        values={**defaults, **values},
        people=await _active_members(page),
        areas=AREAS,
    )


@get("/manage/record", opt={"access": WRITE}, include_in_schema=False)
async def record_page(page: NamedDependency[Page]) -> Response[Any]:
    return await _record_page(page)


@post("/manage/record", opt={"access": WRITE}, include_in_schema=False, status_code=200)
async def record(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, RecordForm)
    try:
        exchange_id = str(uuid.UUID(form.id))
    except ValueError:
        raise FormInvalid("id", "is not the form's exchange id") from None
    typed = {f: getattr(form, f) for f in RecordForm.__struct_fields__}
    try:
        proposal = exchanges.clean_proposal(
            exchange_id=exchange_id,
            provider=form.provider,
            receiver=form.receiver,
            minutes=form.minutes,
            title=form.title,
            area=form.area,
        )
        reason = exchanges.clean_reason(form.reason, required=False)
        ex, _created = await exchanges.record(page.timebank, page.user, proposal, reason)
    except RuleViolation as exc:
        if exc.code == "idempotency-conflict":
            raise
        return await _record_page(
            page, status=violation_status(exc), error=violation_message(page, exc), **typed
        )
    return redirect(page, f"/exchanges/{ex.id}?done=recorded")


# -- reversals -------------------------------------------------------------------------------


class ReverseForm(Form, frozen=True, kw_only=True):
    id: Short
    index: Annotated[int, msgspec.Meta(ge=0, le=_MAX_INDEX)]
    reason: Long


@get("/manage/reversals", opt={"access": WRITE}, include_in_schema=False)
async def reversals_page(
    page: NamedDependency[Page],
    index: Annotated[int | None, QueryParameter(ge=0, le=_MAX_INDEX)] = None,
) -> Response[Any]:
    entry = None
    if index is not None:
        async with page.timebank.ledger.read() as conn:
            stored = await queries.entry_range(conn, index, 1)
        if not stored or stored[0].index != index:
            raise RuleViolation("entry-not-found", f"there is no entry {index}")
        entry = decode_entry(stored[0].canonical)
    return render(page, "reversals.html", index=index, entry=entry, request_id=str(uuid.uuid4()))


@post("/manage/reversals", opt={"access": WRITE}, include_in_schema=False, status_code=200)
async def reverse(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, ReverseForm)
    try:
        request_id = str(uuid.UUID(form.id))
    except ValueError:
        raise FormInvalid("id", "is not the form's request id") from None
    reason = reversals.clean_reason(form.reason)
    done = await reversals.reverse_entry(
        page.timebank,
        authz.actor(page.user),
        request_id=request_id,
        index=form.index,
        reason=reason,
    )
    return redirect(page, f"/verify/{done.index}?done=reversed")


# -- the audit log ---------------------------------------------------------------------------


@get("/manage/audit", opt={"access": STAFF_READ}, include_in_schema=False)
async def audit_page(
    page: NamedDependency[Page],
    before: Annotated[int | None, QueryParameter(ge=1, le=_MAX_INDEX)] = None,
    action: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> Response[Any]:
    action = action or None
    if action is not None and not action.isprintable():
        raise FormInvalid("action", "must be printable text")
    query = select(audit_log).order_by(audit_log.c.idx.desc()).limit(AUDIT_PAGE)
    if before is not None:
        query = query.where(audit_log.c.idx < before)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    async with reading(page.timebank.engine) as conn:
        rows = list(await conn.execute(query))
    records = [
        audit.AuditRecord(
            index=int(r.idx),
            at=r.at,
            actor=r.actor,
            actor_member_id=r.actor_member_id,
            actor_token_id=r.actor_token_id,
            action=r.action,
            subject_type=r.subject_type,
            subject_id=r.subject_id,
            reason=r.reason,
            details=msgspec.json.decode(r.details),
        )
        for r in rows
    ]
    more = records[-1].index if len(records) == AUDIT_PAGE else None
    return render(page, "audit.html", records=records, more=more, action=action or "")


ROUTES: Final = [
    manage_index,
    approvals,
    approve,
    reject,
    queue,
    introduce,
    disputes,
    record_page,
    record,
    reversals_page,
    reverse,
    audit_page,
]
