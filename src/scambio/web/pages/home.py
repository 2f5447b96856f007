"""The member's home (balance, what needs them, suggestions) and their notifications.

"What needs my action" is the notifications not yet read, the exchanges where the member
holds the next move (accept, mark done, confirm) and employee links waiting for their
answer. Suggestions are, for each of the member's open requests, the best-ranked helpers
(the same ranking managers see), and recent offers in the member's zone.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.tokens import SCOPE_WRITE
from scambio.timebank import exchange_rules as rules
from scambio.timebank import exchanges, listings, matching, notifications, orgs
from scambio.timebank.authz import actor, may_move_link
from scambio.timebank.db import reading, writing
from scambio.timebank.search import Filters, search
from scambio.web.context import ACT, READ, Page
from scambio.web.forms import Form, read_form
from scambio.web.render import redirect, render

#: Moves that are the member's to make (rather than to wait for).
MY_MOVES: Final = frozenset({rules.ACCEPT, rules.MARK_DONE, rules.CONFIRM})
_ID_MAX: Final = 2**63 - 1


def zone_names(page: Page) -> dict[str, str]:
    return {zone.id: zone.name for zone in page.timebank.zones.items}


async def exchange_views(
    page: Page, conn: Any, found: list[exchanges.Exchange]
) -> list[dict[str, Any]]:
    """Exchanges as the pages show them: with parties' names and the caller's moves."""
    named = await exchanges.parties(
        conn, [a for ex in found for a in (ex.provider_account, ex.receiver_account)]
    )
    thanked = await exchanges.thanked_by(
        conn, [ex.id for ex in found if ex.state in rules.SETTLED_STATES]
    )
    views = []
    for ex in found:
        who = exchanges.who_of(page.principal, ex)
        views.append(
            {
                "ex": ex,
                "provider": named.get(ex.provider_account),
                "receiver": named.get(ex.receiver_account),
                "actions": exchanges.actions_for(ex, who, thanked.get(ex.id, set())),
                "who": who,
            }
        )
    return views


def own_accounts(page: Page) -> list[str]:
    principal = page.user
    return sorted({a for a in (principal.account_id, *principal.org_accounts) if a is not None})


@get("/home", opt={"access": READ}, include_in_schema=False)
async def home(page: NamedDependency[Page]) -> Response[Any]:
    principal = page.user
    tb = page.timebank
    now = tb.clock()
    at = format_time(now)
    account = None
    async with reading(tb.engine) as conn:
        if principal.account_id is not None:
            try:
                account = await queries.account(conn, principal.account_id)
            except RuleViolation:
                account = None
        unread = await notifications.listing(conn, page.member_id, unread=True, limit=5)
        mine = await exchanges.listing(conn, accounts=own_accounts(page), limit=50)
        views = await exchange_views(page, conn, mine)
        links = await orgs.links(conn, member_id=page.member_id, status="proposed", limit=20)
        org_names = {}
        for link in links:
            org = await orgs.get(conn, link.org_id)
            org_names[link.org_id] = org.name if org else link.org_id
        requests = await search(
            conn,
            Filters(kind=listings.REQUEST, member=page.member_id),
            now=at,
            limit=3,
        )
        suggested = []
        for request in requests.items:
            found = await matching.suggestions(
                conn, request, now, limit=3, zone_names=zone_names(page)
            )
            suggested.append((request, found))
        nearby = None
        if page.me is not None and page.me.zone is not None:
            nearby = await search(
                conn,
                Filters(kind=listings.OFFER, zone=page.me.zone),
                now=at,
                limit=6,
            )
    to_do = [v for v in views if MY_MOVES & set(v["actions"])]
    return render(
        page,
        "home.html",
        account=account,
        unread=unread,
        to_do=to_do,
        links=links,
        org_names=org_names,
        suggested=suggested,
        zone_names=zone_names(page),
        nearby=[
            item for item in (nearby.items if nearby else []) if item.owner.id != page.member_id
        ],
    )


# -- notifications ---------------------------------------------------------------------------


@get("/notifications", opt={"access": READ}, include_in_schema=False)
async def notification_list(
    page: NamedDependency[Page],
    before: Annotated[int | None, QueryParameter(ge=1, le=_ID_MAX)] = None,
) -> Response[Any]:
    limit = 30
    async with reading(page.timebank.engine) as conn:
        found = await notifications.listing(conn, page.member_id, before=before, limit=limit)
    more = found[-1].id if len(found) == limit else None
    return render(page, "notifications.html", items=found, more=more)


@post(
    "/notifications/{notification_id:int}/read",
    opt={"access": READ},
    include_in_schema=False,
    status_code=200,
)
async def notification_read(
    page: NamedDependency[Page], notification_id: FromPath[int]
) -> Response[Any]:
    await read_form(page, Form)
    if not 1 <= notification_id <= _ID_MAX:
        raise notifications.not_found(str(notification_id))
    async with writing(page.timebank.engine) as conn:
        found = await notifications.mark_read(
            conn, page.timebank.clock, page.member_id, notification_id
        )
    if page.is_htmx:
        return render(page, "_notification.html", n=found)
    return redirect(page, "/notifications")


class ReadAllForm(Form, frozen=True, kw_only=True):
    up_to: Annotated[int, msgspec.Meta(ge=1, le=_ID_MAX)] | None = None


@post("/notifications/read-all", opt={"access": READ}, include_in_schema=False, status_code=200)
async def notification_read_all(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, ReadAllForm)
    async with writing(page.timebank.engine) as conn:
        await notifications.mark_all_read(
            conn, page.timebank.clock, page.member_id, up_to=form.up_to
        )
    return redirect(page, "/notifications?done=all-read")


# -- employee links, the worker's side -------------------------------------------------------


@post(
    "/links/{link_id:str}/{action:str}",
    opt={"access": ACT, "scope": SCOPE_WRITE},
    include_in_schema=False,
    status_code=200,
)
async def link_answer(
    page: NamedDependency[Page], link_id: FromPath[str], action: FromPath[str]
) -> Response[Any]:
    await read_form(page, Form)
    if action not in ("accept", "decline"):
        raise orgs.link_not_found(link_id)
    async with reading(page.timebank.engine) as conn:
        link = await orgs.get_link(conn, link_id) if len(link_id) == 16 else None
    if link is None or link.member_id != page.member_id:
        raise orgs.link_not_found(link_id)
    may_move_link(page.user, link, action)
    await orgs.move_link(page.timebank, actor(page.user), link_id, action)
    return redirect(page, "/home?done=link-updated")


ROUTES: Final = [home, notification_list, notification_read, notification_read_all, link_answer]
