"""Offers and requests as pages: search by words, area and zone; post; renew and close;
and propose an exchange from a listing.

The search form updates its results in place with HTMX (and the URL with them, so the
back button and a shared link work); without JavaScript it is an ordinary GET form. The
proposal form carries a UUID made when the page was shown, the exchange's idempotency
key: a form sent twice proposes once.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation
from scambio.store.listings_tables import LISTING_KINDS, LISTING_MODES, LISTING_RESOURCES
from scambio.store.tokens import SCOPE_WRITE
from scambio.timebank import exchanges, listings, matching
from scambio.timebank.areas import AREA_IDS, AREAS
from scambio.timebank.authz import actor
from scambio.timebank.db import reading
from scambio.timebank.listings import MEMBER, ORGANISATION, Listing, Owner
from scambio.timebank.orgs import org_account_id
from scambio.timebank.people import member_account_id
from scambio.timebank.search import BadCursor, Filters, search
from scambio.web.context import ACT, READ, Page
from scambio.web.errors import violation_message, violation_status
from scambio.web.forms import Form, FormInvalid, read_form
from scambio.web.pages.home import zone_names
from scambio.web.render import redirect, render

ID_RE: Final = re.compile(r"[0-9a-f]{16}")
PAGE_SIZE: Final = 20
Choice = Annotated[str | None, QueryParameter(max_length=64)]
Short = Annotated[str, msgspec.Meta(max_length=1000)]
Long = Annotated[str, msgspec.Meta(max_length=10_000)]


def _choice(value: str | None, name: str, allowed: frozenset[str] | tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise FormInvalid(name, f"must be one of {', '.join(sorted(allowed))}")
    return value


def owner_account(owner: Owner) -> str:
    return member_account_id(owner.id) if owner.is_member else org_account_id(owner.id)


async def visible_listing(page: Page, listing_id: str) -> Listing:
    if not ID_RE.fullmatch(listing_id):
        raise listings.not_found(listing_id)
    async with reading(page.timebank.engine) as conn:
        listing = await listings.get(conn, listing_id)
    if listing is None or not listings.visible_to(page.user, listing):
        raise listings.not_found(listing_id)
    return listing


# -- browsing --------------------------------------------------------------------------------


@get("/listings", opt={"access": READ}, include_in_schema=False)
async def browse(  # noqa: PLR0917 - Litestar injects parameters by name
    page: NamedDependency[Page],
    q: Annotated[str | None, QueryParameter(max_length=200)] = None,
    kind: Choice = None,
    area: Choice = None,
    zone: Choice = None,
    mode: Choice = None,
    cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
) -> Response[Any]:
    tb = page.timebank
    filters = Filters(
        text=q or "",
        kind=_choice(kind, "kind", LISTING_KINDS),
        area=_choice(area, "area", AREA_IDS),
        zone=_choice(zone, "zone", tb.zones.ids),
        mode=_choice(mode, "mode", ("in_person", "remote")),
    )
    try:
        async with reading(tb.engine) as conn:
            found = await search(
                conn, filters, now=format_time(tb.clock()), limit=PAGE_SIZE, cursor=cursor or None
            )
    except BadCursor:
        raise FormInvalid("cursor", "is not one this page made") from None
    params = {
        "q": q or "",
        "kind": kind or "",
        "area": area or "",
        "zone": zone or "",
        "mode": mode or "",
    }
    more = None
    if found.next_cursor:
        query = "&".join(f"{k}={v}" for k, v in params.items() if v)
        more = "/listings?" + (query + "&" if query else "") + "cursor=" + found.next_cursor
    context: dict[str, Any] = {
        "items": found.items,
        "more": more,
        "params": params,
        "zones": tb.zones.items,
        "zone_names": zone_names(page),
        "areas": AREAS,
    }
    if page.is_htmx and page.request.headers.get("hx-target") == "results":
        return render(page, "_listing_results.html", **context)
    return render(page, "listings.html", **context)


@get("/listings/mine", opt={"access": READ}, include_in_schema=False)
async def mine(page: NamedDependency[Page]) -> Response[Any]:
    tb = page.timebank
    filters = Filters(member=page.member_id, statuses=("active", "paused", "expired", "closed"))
    async with reading(tb.engine) as conn:
        found = await search(conn, filters, now=format_time(tb.clock()), limit=100)
    now = format_time(tb.clock())
    return render(
        page,
        "listings_mine.html",
        items=[(item, item.status_at(now)) for item in found.items],
        zone_names=zone_names(page),
    )


# -- posting ---------------------------------------------------------------------------------


class ListingForm(Form, frozen=True, kw_only=True):
    kind: Short
    title: Short
    area: Short
    description: Long = ""
    zone: Short | None = None
    mode: Short = "in_person"
    resource: Short = "service"
    tags: Short = ""
    availability: Long = ""
    #: "me", or the id of an organisation the member administers.
    owner: Short = "me"
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=listings.TTL_DAYS_MAX)] | None = None


def _form_page(
    page: Page, *, status: int = 200, error: str | None = None, **values: Any
) -> Response[Any]:
    defaults = {
        "kind": "offer",
        "title": "",
        "area": "",
        "description": "",
        "zone": page.me.zone if page.me else None,
        "mode": "in_person",
        "resource": "service",
        "tags": "",
        "availability": "",
        "owner": "me",
    }
    return render(
        page,
        "listing_new.html",
        status=status,
        error=error,
        values={**defaults, **values},
        zones=page.timebank.zones.items,
        areas=AREAS,
        modes=LISTING_MODES,
        resources=LISTING_RESOURCES,
        orgs=sorted(page.user.org_admin_of),
    )


@get("/listings/new", opt={"access": ACT, "scope": SCOPE_WRITE}, include_in_schema=False)
async def new_listing(page: NamedDependency[Page], kind: Choice = None) -> Response[Any]:
    return _form_page(page, kind=kind if kind in LISTING_KINDS else "offer")


@post(
    "/listings", opt={"access": ACT, "scope": SCOPE_WRITE}, include_in_schema=False, status_code=200
)
async def create_listing(page: NamedDependency[Page]) -> Response[Any]:
    form = await read_form(page, ListingForm)
    principal = page.user
    if form.owner == "me":
        owner = Owner(MEMBER, page.member_id)
    elif ID_RE.fullmatch(form.owner) and principal.admins(form.owner):
        owner = Owner(ORGANISATION, form.owner)
    else:
        raise FormInvalid("owner", "must be yourself or an organisation you administer")
    typed = {f: getattr(form, f) for f in ListingForm.__struct_fields__}
    try:
        listings.may_change(principal, owner)
        raw: dict[str, Any] = {
            "kind": form.kind,
            "title": form.title,
            "area": form.area,
            "description": form.description,
            "mode": form.mode,
            "resource": form.resource,
            "tags": [t.strip() for t in form.tags.split(",") if t.strip()],
            "availability": form.availability,
        }
        if form.zone is not None or form.mode == "remote":
            raw["zone"] = form.zone
        values = listings.clean_fields(page.timebank.zones, raw)
        listing = await listings.create(
            page.timebank,
            actor(principal),
            owner=owner,
            values=values,
            expires_in_days=form.expires_in_days,
            audited=False,
        )
    except RuleViolation as exc:
        return _form_page(
            page, status=violation_status(exc), error=violation_message(page, exc), **typed
        )
    return redirect(page, f"/listings/{listing.id}?done=listing-created")


# -- one listing -----------------------------------------------------------------------------


async def _listing_page(
    page: Page,
    listing: Listing,
    *,
    status: int = 200,
    exchange_id: str | None = None,
    error: str | None = None,
    values: dict[str, Any] | None = None,
) -> Response[Any]:
    principal = page.user
    tb = page.timebank
    mine = listings.owner_side(principal, listing.owner)
    suggestions = None
    if listing.kind == listings.REQUEST and (mine or principal.is_staff):
        async with reading(tb.engine) as conn:
            suggestions = await matching.suggestions(
                conn, listing, tb.clock(), limit=5, zone_names=zone_names(page)
            )
    state = listing.status_at(format_time(tb.clock()))
    return render(
        page,
        "listing.html",
        status=status,
        listing=listing,
        state=state,
        mine=mine,
        may_change=mine or principal.can_write,
        may_propose=not mine
        and state == "active"
        and principal.role != "auditor"
        and principal.account_id is not None,
        suggestions=suggestions,
        zone_names=zone_names(page),
        exchange_id=exchange_id or str(uuid.uuid4()),
        error=error,
        values=values or {"minutes": 60, "title": listing.title, "description": ""},
    )


@get("/listings/{listing_id:str}", opt={"access": READ}, include_in_schema=False)
async def listing_page(page: NamedDependency[Page], listing_id: FromPath[str]) -> Response[Any]:
    return await _listing_page(page, await visible_listing(page, listing_id))


@post(
    "/listings/{listing_id:str}/renew",
    opt={"access": ACT, "scope": SCOPE_WRITE},
    include_in_schema=False,
    status_code=200,
)
async def renew(page: NamedDependency[Page], listing_id: FromPath[str]) -> Response[Any]:
    await read_form(page, Form)
    listing = await visible_listing(page, listing_id)
    listings.may_change(page.user, listing.owner)
    await listings.renew(
        page.timebank,
        actor(page.user),
        listing_id,
        audited=not listings.owner_side(page.user, listing.owner),
    )
    return redirect(page, f"/listings/{listing_id}?done=listing-renewed")


class CloseForm(Form, frozen=True, kw_only=True):
    reason: Long = ""


@post(
    "/listings/{listing_id:str}/close",
    opt={"access": ACT, "scope": SCOPE_WRITE},
    include_in_schema=False,
    status_code=200,
)
async def close(page: NamedDependency[Page], listing_id: FromPath[str]) -> Response[Any]:
    form = await read_form(page, CloseForm)
    listing = await visible_listing(page, listing_id)
    listings.may_change(page.user, listing.owner)
    await listings.close(
        page.timebank,
        actor(page.user),
        listing_id,
        reason=listings.clean_reason(form.reason),
        audited=not listings.owner_side(page.user, listing.owner),
    )
    return redirect(page, f"/listings/{listing_id}?done=listing-closed")


class ProposeForm(Form, frozen=True, kw_only=True):
    id: Short
    minutes: int
    title: Short
    description: Long = ""


@post(
    "/listings/{listing_id:str}/propose",
    opt={"access": ACT, "scope": SCOPE_WRITE},
    include_in_schema=False,
    status_code=200,
)
async def propose(page: NamedDependency[Page], listing_id: FromPath[str]) -> Response[Any]:
    form = await read_form(page, ProposeForm)
    listing = await visible_listing(page, listing_id)
    me = page.user.account_id
    if me is None:
        raise RuleViolation("forbidden", "you have no time account yet")
    theirs = owner_account(listing.owner)
    provider, receiver = (theirs, me) if listing.kind == listings.OFFER else (me, theirs)
    try:
        exchange_id = str(uuid.UUID(form.id))
    except ValueError:
        raise FormInvalid("id", "is not the form's exchange id") from None
    try:
        proposal = exchanges.clean_proposal(
            exchange_id=exchange_id,
            provider=provider,
            receiver=receiver,
            minutes=form.minutes,
            title=form.title,
            description=form.description,
            area=listing.area,
            listing_id=listing.id,
        )
        ex, _created = await exchanges.propose(page.timebank, page.user, proposal)
    except RuleViolation as exc:
        if exc.code == "idempotency-conflict":
            raise
        return await _listing_page(
            page,
            listing,
            status=violation_status(exc),
            exchange_id=exchange_id,
            error=violation_message(page, exc),
            values={"minutes": form.minutes, "title": form.title, "description": form.description},
        )
    return redirect(page, f"/exchanges/{ex.id}?done=proposed")


ROUTES: Final = [browse, mine, new_listing, create_listing, listing_page, renew, close, propose]
