"""Sponsorship policies over HTTP: the policies and every version's text, simulations,
enrolments, pool grants, an organisation's sponsorship figures and a member's sponsored
credit.

Policies are public rules: anyone with a token reads them and the full text of every
version (so that the rule behind any credit can be checked). A sponsor's figures,
enrolments and simulations are for its org admins and staff; another organisation's are
a 403. Enrolling is for the sponsor's admins and managers; granting from the pool for
managers. A member's sponsored credit is for the member and staff.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import select

from scambio.api.auth import ACT, BEARER, READ, WRITE, require_principal
from scambio.api.decode import canonical_uuid, strict_body
from scambio.api.orgs import checked_org_id
from scambio.api.people import checked_member_id, member_not_found
from scambio.api.problems import problem_spec
from scambio.api.schemas import Input, Uuid
from scambio.ledger.errors import RuleViolation
from scambio.policy import views
from scambio.policy.kinds import load_kinds
from scambio.policy.model import POLICY_ID_RE
from scambio.policy.runner import PolicyRun, PoolGrant, grant_from_pool, load_policy, simulate
from scambio.store.people_tables import members
from scambio.store.tokens import Principal
from scambio.timebank import authz
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading

TAGS: Final = ["policies"]
_VERSION_RE: Final = re.compile(r"[0-9a-f]{64}")

Period = Annotated[
    str,
    QueryParameter(description="A period of the policy's schedule: 2026-12, or 2026-Q4."),
]


# -- shapes ------------------------------------------------------------------------------------


class ScheduleOut(msgspec.Struct, frozen=True, kw_only=True):
    every: str
    start: str | None
    end: str | None


class PolicySummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    title: str
    sponsor: str | None
    status: str
    version: str
    file: str
    applied_at: str


class PolicyPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PolicySummary]


class PolicyOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    title: str
    description: str
    sponsor: str | None
    status: str
    #: The version in force: the SHA-256 of its canonical content.
    version: str
    file: str
    first_applied_at: str
    applied_at: str
    budget_minutes: int | None
    schedule: ScheduleOut
    params: dict[str, Any]
    #: The error of the policy's file, when its last load refused it (this version then
    #: stays in force).
    file_error: str | None = None


class VersionOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    version: str
    policy: str
    kind: str
    file: str
    applied_at: str
    in_force: bool
    #: The file's text as applied, and the canonical content the version hashes.
    source: str | None = None
    canonical: str | None = None


class VersionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[VersionOut]


class EnrolledOut(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    name: str
    account: str
    enrolled_at: str | None
    enrolled_by: str | None


class EnrolledPage(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    items: list[EnrolledOut]


class PoolGrantIn(Input, frozen=True, kw_only=True):
    """A grant of pool minutes to a member who cannot reciprocate."""

    id: Uuid
    member_id: Annotated[str, msgspec.Meta(max_length=64)]
    minutes: Annotated[int, msgspec.Meta(ge=1, le=60_000, description="Whole minutes.")]
    #: Why: kept as the ledger entry's memo and in the audit log.
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class PeriodOut(msgspec.Struct, frozen=True, kw_only=True):
    period: str
    budget_minutes: int | None
    used: int
    left: int | None
    not_issued: int
    granted: int
    spent: int
    spent_by_area: dict[str, int]
    expired: int
    matched: int
    staff_time: int
    pool_granted: int
    failed: int


class PolicyFiguresOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    title: str
    status: str
    version: str
    budget_minutes: int | None
    enrolled: list[EnrolledOut]
    periods: list[PeriodOut]


class SponsorshipOut(msgspec.Struct, frozen=True, kw_only=True):
    organisation: str
    name: str
    policies: list[PolicyFiguresOut]


class LotOut(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    period: str
    granted: int
    unspent: int
    expires_at: str
    expired: bool


class CreditOut(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    organisation: str
    organisation_name: str
    posted: int
    held: int
    available: int
    policy: str | None
    areas: list[str]
    zones: list[str]
    lots: list[LotOut]


class SponsoredCreditOut(msgspec.Struct, frozen=True, kw_only=True):
    member: str
    items: list[CreditOut]


# -- helpers -----------------------------------------------------------------------------------


def checked_policy_id(policy_id: str) -> str:
    if not POLICY_ID_RE.fullmatch(policy_id):
        raise views.policy_not_found(policy_id)
    return policy_id


def _enrolled(found: list[views.Enrolled]) -> list[EnrolledOut]:
    return [
        EnrolledOut(
            member_id=e.member_id,
            name=e.name,
            account=e.account,
            enrolled_at=e.enrolled_at,
            enrolled_by=e.enrolled_by,
        )
        for e in found
    ]


def _sees_sponsor(principal: Principal, sponsor: str | None) -> None:
    """Staff, or an admin of the sponsoring organisation."""
    if principal.is_staff or (sponsor is not None and principal.admins(sponsor)):
        return
    raise authz.forbidden("only the sponsor's admins and staff may see this")


def _manages_sponsor(principal: Principal, sponsor: str | None) -> None:
    authz.require_scope(principal, "manage")
    if principal.can_write or (sponsor is not None and principal.admins(sponsor)):
        return
    raise authz.forbidden("only the sponsor's admins or a community manager may do this")


async def _policy(tb: Timebank, policy_id: str) -> views.PolicyRow:
    async with reading(tb.engine) as conn:
        return await views.get(conn, checked_policy_id(policy_id))


# -- policies and versions ---------------------------------------------------------------------


@get(
    "/policies",
    operation_id="listPolicies",
    summary="Sponsorship policies, in force and retired",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=TAGS,
)
async def list_policies(timebank: NamedDependency[Timebank]) -> PolicyPage:
    async with reading(timebank.engine) as conn:
        found = await views.listing(conn)
    return PolicyPage(
        items=[
            PolicySummary(
                id=p.id,
                kind=p.kind,
                title=p.title,
                sponsor=p.sponsor,
                status=p.status,
                version=p.version,
                file=p.file,
                applied_at=p.applied_at,
            )
            for p in found
        ]
    )


@get(
    "/policies/{policy_id:str}",
    operation_id="getPolicy",
    summary="A policy: the version in force, its schedule, budget and parameters",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def get_policy(timebank: NamedDependency[Timebank], policy_id: FromPath[str]) -> PolicyOut:
    p = await _policy(timebank, policy_id)
    content = p.content
    schedule = content.get("schedule", {})
    return PolicyOut(
        id=p.id,
        kind=p.kind,
        title=p.title,
        description=str(content.get("description", "")),
        sponsor=p.sponsor,
        status=p.status,
        version=p.version,
        file=p.file,
        first_applied_at=p.first_applied_at,
        applied_at=p.applied_at,
        budget_minutes=content.get("budget_minutes"),
        schedule=ScheduleOut(
            every=schedule.get("every", ""), start=schedule.get("start"), end=schedule.get("end")
        ),
        params=dict(content.get("params", {})),
        file_error=p.file_error,
    )


@get(
    "/policies/{policy_id:str}/versions",
    operation_id="listPolicyVersions",
    summary="Every version of a policy ever applied, oldest first",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def list_versions(
    timebank: NamedDependency[Timebank], policy_id: FromPath[str]
) -> VersionPage:
    async with reading(timebank.engine) as conn:
        found = await views.versions(conn, checked_policy_id(policy_id))
    return VersionPage(
        items=[
            VersionOut(
                version=v.version,
                policy=v.policy_id,
                kind=v.kind,
                file=v.file,
                applied_at=v.applied_at,
                in_force=v.in_force,
            )
            for v in found
        ]
    )


@get(
    "/policy-versions/{version:str}",
    operation_id="getPolicyVersion",
    summary="The full text of a policy version (the rule behind an entry's policy_version)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def get_version(timebank: NamedDependency[Timebank], version: FromPath[str]) -> VersionOut:
    if not _VERSION_RE.fullmatch(version):
        raise RuleViolation(
            "policy-version-not-found",
            f"{version!r} is not a policy version (64 lower-case hex digits)",
            version=version,
        )
    async with reading(timebank.engine) as conn:
        v = await views.version(conn, version)
    return VersionOut(
        version=v.version,
        policy=v.policy_id,
        kind=v.kind,
        file=v.file,
        applied_at=v.applied_at,
        in_force=v.in_force,
        source=v.source,
        canonical=v.canonical,
    )


@get(
    "/policies/{policy_id:str}/simulate",
    operation_id="simulatePolicy",
    summary="What the policy in force would post in a period, and why (writes nothing)",
    description="The sponsor's admins and staff.",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=TAGS,
)
async def simulate_policy(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    policy_id: FromPath[str],
    period: Period,
) -> PolicyRun:
    principal = require_principal(request)
    p = await _policy(timebank, policy_id)
    _sees_sponsor(principal, p.sponsor)
    async with reading(timebank.engine) as conn:
        loaded = await load_policy(conn, p.id, load_kinds())
    if loaded is None:
        raise views.policy_not_found(p.id)
    return await simulate(timebank, loaded.policy, period)


# -- enrolments --------------------------------------------------------------------------------


@get(
    "/policies/{policy_id:str}/enrolments",
    operation_id="listPolicyEnrolments",
    summary="Who the policy is for now: its enrolled employees (or named members)",
    description="The sponsor's admins and staff.",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def list_enrolments(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], policy_id: FromPath[str]
) -> EnrolledPage:
    principal = require_principal(request)
    p = await _policy(timebank, policy_id)
    _sees_sponsor(principal, p.sponsor)
    async with reading(timebank.engine) as conn:
        found = await views.enrolled(conn, p.id)
    return EnrolledPage(policy=p.id, items=_enrolled(found))


@put(
    "/policies/{policy_id:str}/enrolments/{member_id:str}",
    operation_id="enrolInPolicy",
    summary='Enrol an employee in a policy (policies with enrolment = "by-admin")',
    description=(
        "The sponsor's admins or a manager (scope manage). The member must be an active "
        "employee of the sponsor. 201 when enrolled, 200 when they already were. Audited."
    ),
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(401, 403, 404, 409, 422, 503),
    tags=TAGS,
)
async def enrol(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    policy_id: FromPath[str],
    member_id: FromPath[str],
) -> Response[EnrolledPage]:
    principal = require_principal(request)
    p = await _policy(timebank, policy_id)
    _manages_sponsor(principal, p.sponsor)
    added = await views.enrol(timebank, authz.actor(principal), p.id, checked_member_id(member_id))
    async with reading(timebank.engine) as conn:
        found = await views.enrolled(conn, p.id)
    return Response(
        EnrolledPage(policy=p.id, items=_enrolled(found)), status_code=201 if added else 200
    )


@delete(
    "/policies/{policy_id:str}/enrolments/{member_id:str}",
    operation_id="unenrolFromPolicy",
    summary="End an employee's enrolment in a policy",
    description="The sponsor's admins or a manager (scope manage). Audited.",
    opt={"access": ACT, "scope": "manage"},
    security=BEARER,
    status_code=204,
    responses=problem_spec(401, 403, 404, 409, 503),
    tags=TAGS,
)
async def unenrol(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    policy_id: FromPath[str],
    member_id: FromPath[str],
) -> None:
    principal = require_principal(request)
    p = await _policy(timebank, policy_id)
    _manages_sponsor(principal, p.sponsor)
    await views.unenrol(timebank, authz.actor(principal), p.id, checked_member_id(member_id))


# -- the pool ----------------------------------------------------------------------------------


@post(
    "/policies/{policy_id:str}/pool-grants",
    operation_id="grantFromPool",
    summary="Grant pool minutes to a member who cannot reciprocate (managers)",
    description=(
        "Within the pool policy's cap per member per period and its budget per period: "
        "what fits is granted and the rest reported (`not_issued`); nothing fitting is "
        "422 `pool-cap-reached`; a pool short of minutes is 422 `limit-exceeded`. The "
        "reason is the ledger entry's memo. `id` is a UUID and the idempotency key: 201 "
        "when granted, 200 for an identical retry, 409 for the same id with other fields."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=TAGS,
)
async def pool_grant(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    policy_id: FromPath[str],
    data: JSONBody[PoolGrantIn],
) -> Response[PoolGrant]:
    principal = require_principal(request)
    checked_policy_id(policy_id)
    body = await strict_body(request, PoolGrantIn)
    reason = body.reason.strip()
    if not reason:
        raise RuleViolation("invalid-field", "a reason is required", field="reason")
    grant = await grant_from_pool(
        timebank,
        authz.actor(principal),
        policy_id,
        request_id=canonical_uuid(body.id),
        member_id=checked_member_id(body.member_id),
        minutes=body.minutes,
        reason=reason,
    )
    return Response(grant, status_code=201 if grant.created else 200)


# -- an organisation's sponsorship, a member's sponsored credit ----------------------------------


@get(
    "/organisations/{org_id:str}/sponsorship",
    operation_id="getSponsorship",
    summary="An organisation's sponsorship: enrolled employees and figures per period",
    description=(
        "For each of its policies: who is enrolled, and per period the budget, what was "
        "used and is left, not issued for lack of budget, granted, spent (by area), "
        "expired, matched, donated staff time and pool grants (minutes). Its admins and "
        "staff."
    ),
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def sponsorship(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], org_id: FromPath[str]
) -> SponsorshipOut:
    principal = require_principal(request)
    checked_org_id(org_id)
    async with reading(timebank.engine) as conn:
        name = await views.require_org(conn, org_id)
        _sees_sponsor(principal, org_id)
        figures = await views.sponsorship(conn, org_id)
    return SponsorshipOut(
        organisation=org_id,
        name=name,
        policies=[
            PolicyFiguresOut(
                id=f.policy.id,
                kind=f.policy.kind,
                title=f.policy.title,
                status=f.policy.status,
                version=f.policy.version,
                budget_minutes=f.budget_minutes,
                enrolled=_enrolled(f.enrolled),
                periods=[
                    PeriodOut(
                        period=p.period,
                        budget_minutes=p.budget_minutes,
                        used=p.used,
                        left=p.left,
                        not_issued=p.not_issued,
                        granted=p.granted,
                        spent=p.spent,
                        spent_by_area=dict(sorted(p.spent_by_area.items())),
                        expired=p.expired,
                        matched=p.matched,
                        staff_time=p.staff_time,
                        pool_granted=p.pool_granted,
                        failed=p.failed,
                    )
                    for p in f.periods
                ],
            )
            for f in figures
        ],
    )


@get(
    "/members/{member_id:str}/sponsored-credit",
    operation_id="getSponsoredCredit",
    summary="A member's sponsored credit: per sponsor, the balance, where it may be spent, "
    "and when it expires",
    description="The member and staff.",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=TAGS,
)
async def sponsored_credit(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], member_id: FromPath[str]
) -> SponsoredCreditOut:
    principal = require_principal(request)
    checked_member_id(member_id)
    async with reading(timebank.engine) as conn:
        account = (
            await conn.execute(select(members.c.account_id).where(members.c.id == member_id))
        ).one_or_none()
        if account is None:
            raise member_not_found(member_id)
        if not authz.sees_private(principal, member_id):
            raise authz.forbidden("only the member and staff may see their sponsored credit")
        found = (
            await views.sponsored_credit(conn, account.account_id)
            if account.account_id is not None
            else []
        )
    return SponsoredCreditOut(
        member=member_id,
        items=[
            CreditOut(
                account=c.account,
                organisation=c.organisation,
                organisation_name=c.organisation_name,
                posted=c.posted,
                held=c.held,
                available=c.available,
                policy=c.policy,
                areas=list(c.areas),
                zones=list(c.zones),
                lots=[
                    LotOut(
                        policy=lot.policy,
                        period=lot.period,
                        granted=lot.granted,
                        unspent=lot.unspent,
                        expires_at=lot.expires_at,
                        expired=lot.expired,
                    )
                    for lot in c.lots
                ],
            )
            for c in found
        ],
    )


ROUTES: Final = [
    list_policies,
    get_policy,
    list_versions,
    get_version,
    simulate_policy,
    list_enrolments,
    enrol,
    unenrol,
    pool_grant,
    sponsorship,
    sponsored_credit,
]
