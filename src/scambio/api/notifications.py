"""In-app notifications and notification settings over HTTP.

A member reads their own notifications (newest first, cursor-paged, optionally only the
unread ones, with the unread count), marks one or all read, and chooses which kinds also
come by email and whether they want a digest. Operator tokens belong to no member and
have no notifications (403). Marking read needs only the `read` scope: it changes nothing
but the reader's own view, so an app with a read-only token can do it.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from scambio.api.auth import BEARER, READ, SESSION, require_principal
from scambio.api.decode import strict_body
from scambio.api.people import PAGE_DEFAULT, Cursor, Limit, index_cursor
from scambio.api.problems import problem_spec
from scambio.api.schemas import Input
from scambio.store.tokens import SCOPE_READ, SCOPE_WRITE
from scambio.timebank import authz, notifications
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, writing
from scambio.timebank.notifications import KINDS, Notification

#: Largest notification id a path or cursor may name.
_ID_MAX: Final = 2**63 - 1

Kind = Annotated[str, msgspec.Meta(max_length=40)]


class NotificationOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    #: exchange.proposed, exchange.accepted, exchange.done, ..., listing.expiring,
    #: introduction, employee-link.proposed, organisation.suspended (see the settings).
    kind: str
    text: str
    #: What it is about (null when not about one).
    exchange_id: str | None
    listing_id: str | None
    link_id: str | None
    organisation_id: str | None
    introduction_id: str | None
    created_at: str
    read_at: str | None
    #: The same event also went to the member's email.
    emailed: bool


class NotificationPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[NotificationOut]
    next_cursor: str | None
    #: All of the member's unread notifications (not just this page's).
    unread_count: int


class EmptyIn(Input, frozen=True, kw_only=True):
    """No fields; an empty body is accepted too."""


class ReadAllIn(Input, frozen=True, kw_only=True):
    #: Mark only notifications up to this id (the newest the client has shown), so one
    #: that arrived meanwhile stays unread. Absent: all of them.
    up_to: Annotated[int, msgspec.Meta(ge=1, le=_ID_MAX)] | None = None


class ReadAllOut(msgspec.Struct, frozen=True, kw_only=True):
    marked: int
    unread_count: int


class SettingsIn(Input, frozen=True, kw_only=True):
    """The whole of a member's settings (PUT replaces them)."""

    #: Kind -> whether it also goes to email. Kinds left out take their default.
    email: Annotated[dict[Kind, bool], msgspec.Meta(max_length=50)]
    #: A digest email of unread notifications that no email covered yet.
    digest: bool


class SettingsOut(msgspec.Struct, frozen=True, kw_only=True):
    #: Every kind, and whether it also goes to email. In-app notifications are always kept.
    email: dict[str, bool]
    digest: bool
    #: What each kind does when the member has not chosen.
    defaults: dict[str, bool]
    updated_at: str | None


def notification_out(found: Notification) -> NotificationOut:
    return NotificationOut(
        id=found.id,
        kind=found.kind,
        text=found.text,
        exchange_id=found.refs.exchange,
        listing_id=found.refs.listing,
        link_id=found.refs.link,
        organisation_id=found.refs.organisation,
        introduction_id=found.refs.introduction,
        created_at=found.created_at,
        read_at=found.read_at,
        emailed=found.emailed,
    )


def settings_out(found: notifications.Settings) -> SettingsOut:
    return SettingsOut(
        email=found.email, digest=found.digest, defaults=dict(KINDS), updated_at=found.updated_at
    )


def _checked_id(notification_id: str) -> int:
    if (
        not notification_id.isascii()
        or not notification_id.isdigit()
        or len(notification_id) > 19
        or not 1 <= int(notification_id) <= _ID_MAX
    ):
        raise notifications.not_found(notification_id)
    return int(notification_id)


@get(
    "/notifications",
    operation_id="listNotifications",
    summary="The member's notifications, newest first, with the unread count",
    description=(
        "`unread=true` lists only the unread ones. Page with `next_cursor`. For a member's "
        "token; operator tokens have no notifications (403)."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["notifications"],
)
async def list_notifications(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Limit = PAGE_DEFAULT,
    unread: Annotated[bool, QueryParameter(description="Only unread ones.")] = False,
) -> NotificationPage:
    member_id = authz.require_member(require_principal(request))
    before = index_cursor(cursor)
    async with reading(timebank.engine) as conn:
        found = await notifications.listing(
            conn, member_id, unread=unread, before=before, limit=limit
        )
        count = await notifications.unread_count(conn, member_id)
    return NotificationPage(
        items=[notification_out(n) for n in found],
        next_cursor=str(found[-1].id) if len(found) == limit else None,
        unread_count=count,
    )


@post(
    "/notifications/{notification_id:str}/read",
    operation_id="readNotification",
    summary="Mark one of the member's notifications read",
    description="Idempotent: marking it again keeps the first read time. Scope `read`.",
    opt={"access": SESSION},
    security=BEARER,
    status_code=200,
    responses=problem_spec(400, 401, 403, 404, 413, 503),
    tags=["notifications"],
)
async def read_notification(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    notification_id: FromPath[str],
    data: JSONBody[EmptyIn | None] = None,
) -> NotificationOut:
    principal = require_principal(request)
    member_id = authz.require_member(principal)
    authz.require_scope(principal, SCOPE_READ)
    wanted = _checked_id(notification_id)
    await strict_body(request, EmptyIn, optional=True)
    async with writing(timebank.engine) as conn:
        found = await notifications.mark_read(conn, timebank.clock, member_id, wanted)
    return notification_out(found)


@post(
    "/notifications/read-all",
    operation_id="readAllNotifications",
    summary="Mark all the member's notifications read (up to an id, if given)",
    opt={"access": SESSION},
    security=BEARER,
    status_code=200,
    responses=problem_spec(400, 401, 403, 413, 503),
    tags=["notifications"],
)
async def read_all_notifications(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[ReadAllIn | None] = None,
) -> ReadAllOut:
    principal = require_principal(request)
    member_id = authz.require_member(principal)
    authz.require_scope(principal, SCOPE_READ)
    body = await strict_body(request, ReadAllIn, optional=True)
    async with writing(timebank.engine) as conn:
        marked = await notifications.mark_all_read(
            conn, timebank.clock, member_id, up_to=body.up_to
        )
        count = await notifications.unread_count(conn, member_id)
    return ReadAllOut(marked=marked, unread_count=count)


@get(
    "/members/me/notification-settings",
    operation_id="getNotificationSettings",
    summary="Which notifications also come by email, and the digest",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["notifications"],
)
async def get_notification_settings(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]
) -> SettingsOut:
    member_id = authz.require_member(require_principal(request))
    async with reading(timebank.engine) as conn:
        return settings_out(await notifications.get_settings(conn, member_id))


@put(
    "/members/me/notification-settings",
    operation_id="putNotificationSettings",
    summary="Choose which notifications also come by email, and the digest",
    description=(
        "Replaces the settings: `email` maps kinds to whether they also go to email (kinds "
        "left out take their default; an unknown kind is a 422), `digest` switches the "
        "digest of unread notifications on or off. In-app notifications are always kept. "
        "Scope `write`."
    ),
    opt={"access": SESSION},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 413, 422, 503),
    tags=["notifications"],
)
async def put_notification_settings(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[SettingsIn],
) -> SettingsOut:
    principal = require_principal(request)
    member_id = authz.require_member(principal)
    authz.require_scope(principal, SCOPE_WRITE)
    body = await strict_body(request, SettingsIn)
    notifications.clean_email_choices(body.email)
    async with writing(timebank.engine) as conn:
        found = await notifications.put_settings(
            conn, timebank.clock, member_id, email=body.email, digest=body.digest
        )
    return settings_out(found)


ROUTES = [
    list_notifications,
    read_notification,
    read_all_notifications,
    get_notification_settings,
    put_notification_settings,
]
