"""Exchanges as pages: the member's list, one exchange with the moves they may make now
(accept, decline, cancel, mark done, confirm, dispute, resolve, thank), each a small form.

The moves go through `timebank.exchanges.act`, which checks who may make which move, as
for the API; a page only offers the moves `actions_for` lists, but the service decides.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from scambio.store.exchanges_tables import EXCHANGE_STATES
from scambio.store.tokens import SCOPE_WRITE
from scambio.timebank import exchange_rules as rules
from scambio.timebank import exchanges
from scambio.timebank.db import reading
from scambio.web.context import ACT, READ, Page
from scambio.web.forms import Form, FormInvalid, read_form
from scambio.web.pages.home import exchange_views, own_accounts
from scambio.web.render import redirect, render

Long = Annotated[str, msgspec.Meta(max_length=10_000)]
PAGE_SIZE: Final = 30
_MAX_SEQ: Final = 2**63 - 1


def checked_exchange_id(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise exchanges.not_found(value) from None
    if str(parsed) != value.lower():
        raise exchanges.not_found(value)
    return str(parsed)


@get("/exchanges", opt={"access": READ}, include_in_schema=False)
async def exchange_list(
    page: NamedDependency[Page],
    state_: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
    before: Annotated[int | None, QueryParameter(ge=1, le=_MAX_SEQ)] = None,
) -> Response[Any]:
    state = state_
    if state is not None and state != "" and state not in EXCHANGE_STATES:
        raise FormInvalid("state", f"must be one of {', '.join(EXCHANGE_STATES)}")
    accounts = (
        None if page.is_staff and page.request.query_params.get("all") else own_accounts(page)
    )
    async with reading(page.timebank.engine) as conn:
        found = await exchanges.listing(
            conn, accounts=accounts, state=state or None, before=before, limit=PAGE_SIZE
        )
        views = await exchange_views(page, conn, found)
    more = found[-1].seq if len(found) == PAGE_SIZE else None
    return render(
        page, "exchanges.html", views=views, more=more, state=state or "", states=EXCHANGE_STATES
    )


@get("/exchanges/{exchange_id:str}", opt={"access": READ}, include_in_schema=False)
async def exchange_page(page: NamedDependency[Page], exchange_id: FromPath[str]) -> Response[Any]:
    async with reading(page.timebank.engine) as conn:
        ex = await exchanges.require_visible(conn, page.user, checked_exchange_id(exchange_id))
        view = (await exchange_views(page, conn, [ex]))[0]
    return render(page, "exchange.html", v=view, ex=ex, hold_expires=exchanges.hold_expiry(ex))


class MoveForm(Form, frozen=True, kw_only=True):
    minutes: int | None = None
    reason: Long = ""
    message: Long = ""


#: The moves a page may ask for, and the notice shown after each.
MOVES: Final = {
    rules.ACCEPT: "exchange-updated",
    rules.DECLINE: "exchange-updated",
    rules.CANCEL: "exchange-updated",
    rules.MARK_DONE: "exchange-updated",
    rules.CONFIRM: "exchange-updated",
    rules.DISPUTE: "exchange-updated",
    rules.RESOLVE: "resolved",
    rules.THANK: "thanked",
}


@post(
    "/exchanges/{exchange_id:str}/{action:str}",
    opt={"access": ACT, "scope": SCOPE_WRITE},
    include_in_schema=False,
    status_code=200,
)
async def exchange_move(
    page: NamedDependency[Page], exchange_id: FromPath[str], action: FromPath[str]
) -> Response[Any]:
    form = await read_form(page, MoveForm)
    checked = checked_exchange_id(exchange_id)
    if action not in MOVES:
        raise exchanges.not_found(exchange_id)
    tb = page.timebank
    principal = page.user
    if action == rules.THANK:
        await exchanges.thank(tb, principal, checked, form.message)
    elif action == rules.RESOLVE:
        if not principal.can_write:
            raise _forbidden()
        if form.minutes is None:
            raise FormInvalid("minutes", "is required to resolve a dispute")
        reason = exchanges.clean_reason(form.reason, required=True)
        rules.check_resolution(form.minutes, rules.EXCHANGE_MAX_MINUTES)
        await exchanges.act(tb, principal, checked, action, minutes=form.minutes, reason=reason)
    elif action == rules.DISPUTE:
        reason = exchanges.clean_reason(form.reason, required=True)
        await exchanges.act(tb, principal, checked, action, reason=reason)
    elif action in (rules.DECLINE, rules.CANCEL):
        reason = exchanges.clean_reason(form.reason, required=False)
        await exchanges.act(tb, principal, checked, action, reason=reason)
    elif action == rules.MARK_DONE:
        await exchanges.act(tb, principal, checked, action, minutes=form.minutes)
    else:
        await exchanges.act(tb, principal, checked, action)
    return redirect(page, f"/exchanges/{checked}?done={MOVES[action]}")


def _forbidden() -> Exception:
    from scambio.timebank.authz import forbidden

    return forbidden("only a community manager or an admin may resolve a dispute")


ROUTES: Final = [exchange_list, exchange_page, exchange_move]
