"""Offers and requests over HTTP: posting, search, editing, renewal and closing.

Members post and change their own listings; an organisation's admins post and change
the organisation's (spaces, equipment, staff skills); managers and admins act on anyone's
(audited); auditors read. Anyone with a token searches active listings; paused, expired
and closed ones are listed only to their owner's side and to staff. A suspended owner's
listings are hidden from everyone but staff.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from scambio.api.auth import ACT, BEARER, READ, require_principal
from scambio.api.decode import InvalidRequest, strict_body
from scambio.api.problems import problem_spec
from scambio.api.schemas import Input, ReasonIn, ShortText, Slots, Strings, Text
from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation
from scambio.store.listings_tables import LISTING_KINDS, LISTING_RESOURCES, LISTING_STATUSES
from scambio.store.tokens import Principal
from scambio.timebank import listings
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.authz import actor, forbidden, require_member
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.listings import MEMBER, ORGANISATION, Listing, Owner
from scambio.timebank.people import Slot
from scambio.timebank.search import BadCursor, Filters, search
from scambio.timebank.text import clean_tags

ID_RE: Final = re.compile(r"[0-9a-f]{16}")
PAGE_DEFAULT: Final = 20
PAGE_MAX: Final = 100
QUERY_MAX: Final = 200
_DAYS: Final = frozenset(listings.DAYS)

PageLimit = Annotated[int, QueryParameter(ge=1, le=PAGE_MAX)]
PageCursor = Annotated[
    str | None,
    QueryParameter(max_length=500, description="Opaque cursor from a previous page."),
]
Choice = Annotated[str | None, QueryParameter(max_length=64)]


# -- shapes ----------------------------------------------------------------------------------


class ListingIn(Input, frozen=True, kw_only=True):
    """A new offer or request. `zone` absent: the owner's zone; null: none (remote only)."""

    kind: Annotated[str, msgspec.Meta(max_length=20, description="offer or request")]
    title: Annotated[str, msgspec.Meta(max_length=1000, description="1 to 120 characters.")]
    area: Annotated[str, msgspec.Meta(max_length=64, description="One of /api/v1/areas.")]
    description: Annotated[
        str, msgspec.Meta(max_length=10_000, description="Up to 4,000 characters.")
    ] = ""
    tags: Annotated[Strings, msgspec.Meta(description="Up to 10 tags of 40 characters.")] = (
        msgspec.field(default_factory=list)
    )
    zone: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    mode: Annotated[str, msgspec.Meta(max_length=20, description="in_person, remote or either")] = (
        "in_person"
    )
    resource: Annotated[
        str, msgspec.Meta(max_length=20, description="service, space, equipment or skill")
    ] = "service"
    availability: Text = ""
    availability_slots: Slots = msgspec.field(default_factory=list)
    #: Post for this organisation (its admins, or staff).
    organisation_id: ShortText | None = None
    #: Post for this member (staff, for members who cannot post themselves).
    member_id: ShortText | None = None
    #: A shorter life than the community's default (in days).
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=listings.TTL_DAYS_MAX)] | None = None


class ListingPatchIn(Input, frozen=True, kw_only=True):
    """Fields to change; `status` pauses (paused) or resumes (active) the listing."""

    title: ShortText | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    area: Annotated[str, msgspec.Meta(max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    tags: Strings | msgspec.UnsetType = msgspec.UNSET
    zone: ShortText | msgspec.UnsetType | None = msgspec.UNSET
    mode: Annotated[str, msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    resource: Annotated[str, msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    availability: Text | msgspec.UnsetType = msgspec.UNSET
    availability_slots: Slots | msgspec.UnsetType = msgspec.UNSET
    status: Annotated[str, msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET


class NoBodyIn(Input, frozen=True, kw_only=True):
    """No fields; an empty body is accepted too."""


class OwnerOut(msgspec.Struct, frozen=True, kw_only=True):
    #: member or organisation.
    type: str
    id: str
    name: str


class ListingOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    resource: str
    title: str
    description: str
    area: str
    tags: list[str]
    zone: str | None
    mode: str
    availability: str
    availability_slots: list[Slot]
    #: active, paused, expired or closed, as of now (a lapsed listing reads expired).
    status: str
    owner: OwnerOut
    #: The member who posted it (null: an operator token).
    posted_by: str | None
    created_at: str
    updated_at: str
    expires_at: str
    renewed_at: str | None
    closed_at: str | None


class ListingPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ListingOut]
    #: Pass as `cursor` for the next page; null when this page is the last.
    next_cursor: str | None


# -- helpers ---------------------------------------------------------------------------------


def listing_out(listing: Listing, now: str) -> ListingOut:
    return ListingOut(
        id=listing.id,
        kind=listing.kind,
        resource=listing.resource,
        title=listing.title,
        description=listing.description,
        area=listing.area,
        tags=listing.tags,
        zone=listing.zone,
        mode=listing.mode,
        availability=listing.availability,
        availability_slots=listing.availability_slots,
        status=listing.status_at(now),
        owner=OwnerOut(type=listing.owner.type, id=listing.owner.id, name=listing.owner_name),
        posted_by=listing.posted_by,
        created_at=listing.created_at,
        updated_at=listing.updated_at,
        expires_at=listing.expires_at,
        renewed_at=listing.renewed_at,
        closed_at=listing.closed_at,
    )


def now_of(tb: Timebank) -> str:
    return format_time(tb.clock())


def checked_listing_id(listing_id: str) -> str:
    """Ids that cannot exist are unknown without asking the database."""
    if not ID_RE.fullmatch(listing_id):
        raise listings.not_found(listing_id)
    return listing_id


async def visible_listing(tb: Timebank, principal: Principal, listing_id: str) -> Listing:
    checked_listing_id(listing_id)
    async with reading(tb.engine) as conn:
        listing = await listings.get(conn, listing_id)
    if listing is None or not listings.visible_to(principal, listing):
        raise listings.not_found(listing_id)
    return listing


def _present(body: msgspec.Struct, names: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: getattr(body, name)
        for name in names
        if not isinstance(getattr(body, name), msgspec.UnsetType)
    }


def _checked_owner_id(value: str, field: str) -> str:
    if not ID_RE.fullmatch(value):
        if field == "organisation_id":
            raise RuleViolation(
                "organisation-not-found",
                f"organisation {value!r} does not exist",
                organisation=value,
                field=field,
            )
        raise RuleViolation(
            "member-not-found", f"member {value!r} does not exist", member=value, field=field
        )
    return value


def owner_for(principal: Principal, body: ListingIn) -> Owner:
    if body.organisation_id is not None and body.member_id is not None:
        raise RuleViolation(
            "invalid-field",
            "give organisation_id or member_id, not both",
            field="organisation_id",
        )
    if body.organisation_id is not None:
        return Owner(ORGANISATION, _checked_owner_id(body.organisation_id, "organisation_id"))
    if body.member_id is not None:
        return Owner(MEMBER, _checked_owner_id(body.member_id, "member_id"))
    return Owner(MEMBER, require_member(principal))


_CREATE_FIELDS: Final = (
    "kind",
    "title",
    "area",
    "description",
    "tags",
    "zone",
    "mode",
    "resource",
    "availability",
    "availability_slots",
)
_PATCH_FIELDS: Final = tuple(name for name in ListingPatchIn.__struct_fields__ if name != "status")


def _act() -> dict[str, Any]:
    """Route options shared by the owner's acts (fresh dicts each time)."""
    return {
        "opt": {"access": ACT, "scope": "write"},
        "security": BEARER,
        "responses": problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
        "tags": ["listings"],
    }


# -- routes ----------------------------------------------------------------------------------


@post(
    "/listings",
    operation_id="createListing",
    summary="Post an offer or a request",
    description=(
        "For yourself; for an organisation you administer (`organisation_id`: spaces, "
        "equipment, staff skills); or, as a manager, for a member (`member_id`, audited). "
        "The zone defaults to the owner's; a listing that can happen in person needs one. "
        "It expires after the community's listing lifetime (60 days by default) unless "
        "`expires_in_days` asks for less; its owner is reminded a week before."
    ),
    status_code=201,
    **_act(),
)
async def create_listing(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], data: JSONBody[ListingIn]
) -> Response[ListingOut]:
    principal = require_principal(request)
    body = await strict_body(request, ListingIn)
    owner = owner_for(principal, body)
    listings.may_change(principal, owner)
    values = listings.clean_fields(timebank.zones, _present(body, _CREATE_FIELDS))
    listing = await listings.create(
        timebank,
        actor(principal),
        owner=owner,
        values=values,
        expires_in_days=body.expires_in_days,
        audited=not listings.owner_side(principal, owner),
    )
    return Response(
        listing_out(listing, now_of(timebank)),
        status_code=201,
        headers={"Location": f"/api/v1/listings/{listing.id}"},
    )


def _choice(value: str | None, name: str, allowed: tuple[str, ...] | frozenset[str]) -> None:
    if value is not None and value not in allowed:
        raise InvalidRequest(f"{name} must be one of {', '.join(sorted(allowed))}")


def _list(value: str | None, name: str, allowed: frozenset[str]) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = tuple(dict.fromkeys(part.strip() for part in value.split(",")))
    for item in items:
        if item not in allowed:
            raise InvalidRequest(
                f"{name} must be a comma-separated list of {', '.join(sorted(allowed))}"
            )
    return items


def _owner_filter(value: str | None, name: str, principal: Principal) -> str | None:
    if value is None:
        return None
    if value == "me" and name == "member":
        return require_member(principal)
    if not ID_RE.fullmatch(value):
        raise InvalidRequest(f"{name} must be an id" + (" or 'me'" if name == "member" else ""))
    return value


@get(
    "/listings",
    operation_id="searchListings",
    summary="Search offers and requests",
    description=(
        "Active listings, newest first; with `q`, by relevance. `q` reads like a web "
        'search box: every word must match, `"a phrase"`, `-word` excludes, `or` between '
        "two words accepts either; word endings are forgiving; the 1,000 newest matches are "
        "ranked, title hits first. Filters: `kind`, `area`, "
        "`zone`, `mode` (in_person or remote; listings doable either way match both), "
        "`day` (weekdays with a weekly slot, e.g. `tue,thu`), `resource`, `tag`, `member` "
        "(an id or `me`), `organisation`. `status` (comma-separated) lists paused, expired "
        "or closed listings to their owner (with `member=me` or `organisation`) and staff."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["listings"],
)
async def search_listings(  # noqa: PLR0917 - Litestar injects parameters by name
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    q: Annotated[str | None, QueryParameter(max_length=QUERY_MAX)] = None,
    kind: Choice = None,
    area: Choice = None,
    zone: Choice = None,
    mode: Choice = None,
    day: Choice = None,
    resource: Choice = None,
    tag: Annotated[str | None, QueryParameter(max_length=100)] = None,
    member: Choice = None,
    organisation: Choice = None,
    status: Choice = None,
    cursor: PageCursor = None,
    limit: PageLimit = PAGE_DEFAULT,
) -> ListingPage:
    principal = require_principal(request)
    _choice(kind, "kind", LISTING_KINDS)
    _choice(area, "area", AREA_IDS)
    _choice(zone, "zone", timebank.zones.ids)
    _choice(mode, "mode", ("in_person", "remote"))
    _choice(resource, "resource", LISTING_RESOURCES)
    days = _list(day, "day", _DAYS)
    statuses = _list(status, "status", frozenset(LISTING_STATUSES)) or ("active",)
    tags: list[str] = []
    if tag is not None:
        try:
            tags = clean_tags([tag], "tag")
        except RuleViolation as exc:
            raise InvalidRequest(exc.detail) from None
    member_id = _owner_filter(member, "member", principal)
    org_id = _owner_filter(organisation, "organisation", principal)
    own = (member_id is not None and member_id == principal.member_id) or (
        org_id is not None and principal.admins(org_id)
    )
    if statuses != ("active",) and not (principal.is_staff or own):
        raise forbidden(
            "only the owner (with member=me or organisation=<yours>) and staff may list "
            "paused, expired or closed listings"
        )
    filters = Filters(
        text=q or "",
        kind=kind,
        area=area,
        zone=zone,
        mode=mode,
        days=days,
        resource=resource,
        tag=tags[0] if tags else None,
        member=member_id,
        organisation=org_id,
        statuses=statuses,
        include_suspended=principal.is_staff and (member_id or org_id) is not None,
    )
    now = now_of(timebank)
    try:
        async with reading(timebank.engine) as conn:
            page = await search(conn, filters, now=now, limit=limit, cursor=cursor or None)
    except BadCursor as exc:
        raise InvalidRequest(str(exc)) from None
    return ListingPage(
        items=[listing_out(item, now) for item in page.items], next_cursor=page.next_cursor
    )


@get(
    "/listings/{listing_id:str}",
    operation_id="getListing",
    summary="An offer or request",
    description="Any listing by its id, whatever its status; a suspended owner's to staff only.",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 404, 503),
    tags=["listings"],
)
async def get_listing(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], listing_id: FromPath[str]
) -> ListingOut:
    listing = await visible_listing(timebank, require_principal(request), listing_id)
    return listing_out(listing, now_of(timebank))


@patch(
    "/listings/{listing_id:str}",
    operation_id="updateListing",
    summary="Change a listing, or pause and resume it",
    description=(
        "Only the fields present change. `status`: paused hides it from search, active "
        "shows it again (an expired listing is renewed instead). A closed listing cannot "
        "change. By a manager on someone else's listing: audited."
    ),
    status_code=200,
    **_act(),
)
async def update_listing(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    listing_id: FromPath[str],
    data: JSONBody[ListingPatchIn],
) -> ListingOut:
    principal = require_principal(request)
    listing = await visible_listing(timebank, principal, listing_id)
    listings.may_change(principal, listing.owner)
    body = await strict_body(request, ListingPatchIn)
    values = listings.clean_fields(timebank.zones, _present(body, _PATCH_FIELDS))
    if not isinstance(body.status, msgspec.UnsetType):
        if body.status not in ("active", "paused"):
            raise RuleViolation(
                "invalid-field", "status may be set to active or paused", field="status"
            )
        values["status"] = body.status
    changed = await listings.change(
        timebank,
        actor(principal),
        listing_id,
        values,
        audited=not listings.owner_side(principal, listing.owner),
    )
    return listing_out(changed, now_of(timebank))


@post(
    "/listings/{listing_id:str}/renew",
    operation_id="renewListing",
    summary="Renew a listing: one click, another full period from now",
    description=(
        "An expired listing becomes active again; a paused one stays paused. The owner is "
        "reminded again before the new expiry."
    ),
    status_code=200,
    **_act(),
)
async def renew_listing(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    listing_id: FromPath[str],
    data: JSONBody[NoBodyIn | None] = None,
) -> ListingOut:
    principal = require_principal(request)
    listing = await visible_listing(timebank, principal, listing_id)
    listings.may_change(principal, listing.owner)
    await strict_body(request, NoBodyIn, optional=True)
    renewed = await listings.renew(
        timebank,
        actor(principal),
        listing_id,
        audited=not listings.owner_side(principal, listing.owner),
    )
    return listing_out(renewed, now_of(timebank))


@post(
    "/listings/{listing_id:str}/close",
    operation_id="closeListing",
    summary="Close a listing for good",
    description="Found help, or no longer offered. A second close is a 409.",
    status_code=200,
    **_act(),
)
async def close_listing(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    listing_id: FromPath[str],
    data: JSONBody[ReasonIn | None] = None,
) -> ListingOut:
    principal = require_principal(request)
    listing = await visible_listing(timebank, principal, listing_id)
    listings.may_change(principal, listing.owner)
    body = await strict_body(request, ReasonIn, optional=True)
    closed = await listings.close(
        timebank,
        actor(principal),
        listing_id,
        reason=listings.clean_reason(body.reason),
        audited=not listings.owner_side(principal, listing.owner),
    )
    return listing_out(closed, now_of(timebank))


ROUTES = [
    create_listing,
    search_listings,
    get_listing,
    update_listing,
    renew_listing,
    close_listing,
]
