"""Matching over HTTP: suggestions for a request, the manager's queue, introductions.

A request's owner and staff see who could help, ranked, each with the reasons and their
weights. Managers, auditors and admins read the queue of requests nobody has been
introduced to yet (oldest first, each with its best suggestions); managers and admins
introduce a helper to a request's owner, which emails both and is audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from scambio.api.auth import BEARER, READ, STAFF_READ, WRITE, require_principal
from scambio.api.decode import InvalidRequest, strict_body
from scambio.api.listings import (
    ID_RE,
    ListingOut,
    PageCursor,
    checked_listing_id,
    listing_out,
    visible_listing,
)
from scambio.api.problems import problem_spec
from scambio.api.schemas import Input, ShortText, Text
from scambio.ledger.entry import format_time, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.timebank import listings, matching
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.authz import actor, forbidden
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading
from scambio.timebank.listings import MEMBER, ORGANISATION, Owner
from scambio.timebank.matching import Suggestion
from scambio.timebank.search import BadCursor

SUGGESTIONS_DEFAULT: Final = 10
SUGGESTIONS_MAX: Final = 50
QUEUE_DEFAULT: Final = 20
QUEUE_MAX: Final = 50


class ReasonOut(msgspec.Struct, frozen=True, kw_only=True):
    #: A stable slug (same-area, same-zone, slot-overlap, received-not-given, ...).
    code: str
    #: Points this reason adds (or, if negative, takes away).
    weight: int
    detail: str


class CandidateOut(msgspec.Struct, frozen=True, kw_only=True):
    #: member or organisation.
    type: str
    id: str
    name: str


class OfferRefOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    title: str


class SuggestionOut(msgspec.Struct, frozen=True, kw_only=True):
    candidate: CandidateOut
    #: The candidate's best matching offer; null when suggested for their profile.
    offer: OfferRefOut | None
    #: The sum of the reasons' weights.
    score: int
    reasons: list[ReasonOut]


class SuggestionsOut(msgspec.Struct, frozen=True, kw_only=True):
    request: ListingOut
    suggestions: list[SuggestionOut]


class QueueItemOut(msgspec.Struct, frozen=True, kw_only=True):
    request: ListingOut
    #: Whole days since the request was posted.
    waiting_days: int
    suggestions: list[SuggestionOut]


class QueueOut(msgspec.Struct, frozen=True, kw_only=True):
    items: list[QueueItemOut]
    next_cursor: str | None


class IntroductionIn(Input, frozen=True, kw_only=True):
    """Introduce a helper (a member or an organisation) to the owner of a request."""

    request_id: ShortText
    member_id: ShortText | None = None
    organisation_id: ShortText | None = None
    #: One of the helper's offers the introduction is about.
    offer_id: ShortText | None = None
    #: A word from the manager, included in both emails.
    note: Text = ""


class HelperOut(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    id: str


class IntroductionOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    request_id: str
    helper: HelperOut
    offer_id: str | None
    note: str
    created_at: str
    created_by: str


class IntroductionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[IntroductionOut]
    next_cursor: str | None


def suggestion_out(suggestion: Suggestion) -> SuggestionOut:
    offer = None
    if suggestion.offer_id is not None and suggestion.offer_title is not None:
        offer = OfferRefOut(id=suggestion.offer_id, title=suggestion.offer_title)
    return SuggestionOut(
        candidate=CandidateOut(
            type=suggestion.owner.type, id=suggestion.owner.id, name=suggestion.name
        ),
        offer=offer,
        score=suggestion.score,
        reasons=[
            ReasonOut(code=r.code, weight=r.weight, detail=r.detail) for r in suggestion.reasons
        ],
    )


def introduction_out(intro: matching.Introduction) -> IntroductionOut:
    return IntroductionOut(
        id=intro.id,
        request_id=intro.request_id,
        helper=HelperOut(type=intro.helper.type, id=intro.helper.id),
        offer_id=intro.offer_id,
        note=intro.note,
        created_at=intro.created_at,
        created_by=intro.created_by,
    )


def _zone_names(tb: Timebank) -> dict[str, str]:
    return {zone.id: zone.name for zone in tb.zones.items}


@get(
    "/requests/{listing_id:str}/suggestions",
    operation_id="suggestForRequest",
    summary="Who could help with a request, ranked, and why",
    description=(
        "Owners of matching offers and members competent in the request's area, ranked by "
        "area, zone, availability, recent activity and reciprocity. Each suggestion lists "
        "its reasons with their weights. For the request's owner and staff."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["matching"],
)
async def suggest_for_request(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    listing_id: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=SUGGESTIONS_MAX)] = SUGGESTIONS_DEFAULT,
) -> SuggestionsOut:
    principal = require_principal(request)
    listing = await visible_listing(timebank, principal, listing_id)
    if listing.kind != listings.REQUEST:
        raise RuleViolation(
            "listing-not-found",
            f"listing {listing_id} is an offer, not a request",
            listing=listing_id,
        )
    if not (principal.is_staff or listings.owner_side(principal, listing.owner)):
        raise forbidden("only the request's owner and staff may see its suggestions")
    now = timebank.clock()
    async with reading(timebank.engine) as conn:
        found = await matching.suggestions(
            conn, listing, now, limit=limit, zone_names=_zone_names(timebank)
        )
    return SuggestionsOut(
        request=listing_out(listing, format_time(now)),
        suggestions=[suggestion_out(s) for s in found],
    )


def _waiting_days(created_at: str, now: datetime) -> int:
    return max(0, (now - parse_time(created_at)).days)


@get(
    "/manager/queue",
    operation_id="managerQueue",
    summary="Requests waiting for a match, oldest first, with suggestions",
    description=(
        "Active requests nobody has been introduced to yet. Filter by `zone` and `area`; "
        "`suggestions` sets how many suggestions each item carries (0 to 10)."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["matching"],
)
async def manager_queue(  # noqa: PLR0917 - Litestar injects parameters by name
    timebank: NamedDependency[Timebank],
    zone: Annotated[str | None, QueryParameter(max_length=64)] = None,
    area: Annotated[str | None, QueryParameter(max_length=64)] = None,
    cursor: PageCursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=QUEUE_MAX)] = QUEUE_DEFAULT,
    suggestions: Annotated[int, QueryParameter(ge=0, le=10)] = 3,
) -> QueueOut:
    if zone is not None and zone not in timebank.zones.ids:
        raise InvalidRequest("zone must be one of the community's zones (see /api/v1/zones)")
    if area is not None and area not in AREA_IDS:
        raise InvalidRequest(f"area must be one of {', '.join(sorted(AREA_IDS))}")
    now = timebank.clock()
    at = format_time(now)
    names = _zone_names(timebank)
    items: list[QueueItemOut] = []
    try:
        async with reading(timebank.engine) as conn:
            page = await matching.queue(
                conn, now, zone=zone, area=area, cursor=cursor or None, limit=limit
            )
            for listing in page.requests:
                found = (
                    await matching.suggestions(
                        conn, listing, now, limit=suggestions, zone_names=names
                    )
                    if suggestions
                    else []
                )
                items.append(
                    QueueItemOut(
                        request=listing_out(listing, at),
                        waiting_days=_waiting_days(listing.created_at, now),
                        suggestions=[suggestion_out(s) for s in found],
                    )
                )
    except BadCursor as exc:
        raise InvalidRequest(str(exc)) from None
    return QueueOut(items=items, next_cursor=page.next_cursor)


def _helper(body: IntroductionIn) -> Owner:
    if (body.member_id is None) == (body.organisation_id is None):
        raise RuleViolation(
            "invalid-field", "give exactly one of member_id and organisation_id", field="member_id"
        )
    if body.member_id is not None:
        if not ID_RE.fullmatch(body.member_id):
            raise RuleViolation(
                "member-not-found",
                f"member {body.member_id!r} does not exist",
                member=body.member_id,
            )
        return Owner(MEMBER, body.member_id)
    assert body.organisation_id is not None
    if not ID_RE.fullmatch(body.organisation_id):
        raise RuleViolation(
            "organisation-not-found",
            f"organisation {body.organisation_id!r} does not exist",
            organisation=body.organisation_id,
        )
    return Owner(ORGANISATION, body.organisation_id)


@post(
    "/introductions",
    operation_id="createIntroduction",
    summary="Introduce a helper to the owner of a request (managers)",
    description=(
        "Records the introduction, emails both sides (names and listings; contact details "
        "stay private) and writes the audit log. Once per request and helper (409 "
        "`already-introduced`). The request leaves the queue."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["matching"],
)
async def create_introduction(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[IntroductionIn],
) -> Response[IntroductionOut]:
    principal = require_principal(request)
    body = await strict_body(request, IntroductionIn)
    helper = _helper(body)
    request_id = checked_listing_id(body.request_id)
    offer_id = None
    if body.offer_id is not None:
        if not ID_RE.fullmatch(body.offer_id):
            raise RuleViolation(
                "invalid-field", "offer_id must be one of the helper's offers", field="offer_id"
            )
        offer_id = body.offer_id
    intro = await matching.introduce(
        timebank,
        actor(principal),
        request_id=request_id,
        helper=helper,
        offer_id=offer_id,
        note=matching.clean_note(body.note),
    )
    return Response(introduction_out(intro), status_code=201)


@get(
    "/introductions",
    operation_id="listIntroductions",
    summary="Introductions made by managers, newest first",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["matching"],
)
async def list_introductions(
    timebank: NamedDependency[Timebank],
    request_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
    cursor: PageCursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
) -> IntroductionPage:
    if request_id is not None and not ID_RE.fullmatch(request_id):
        raise InvalidRequest("request_id must be a listing id")
    try:
        async with reading(timebank.engine) as conn:
            found, next_cursor = await matching.list_introductions(
                conn, request_id=request_id, cursor=cursor or None, limit=limit
            )
    except BadCursor as exc:
        raise InvalidRequest(str(exc)) from None
    return IntroductionPage(items=[introduction_out(i) for i in found], next_cursor=next_cursor)


ROUTES = [suggest_for_request, manager_queue, create_introduction, list_introductions]
