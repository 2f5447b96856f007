"""The four built-in policy kinds: grant, match, staff_time and pool.

Each is a pure function from a `Context` to proposed postings; the runner does the rest
(budget, entry ids, the ledger). Semantics, in the words a company admin would use:

- `grant`: every period, each enrolled employee (or each member the policy names)
  receives `minutes` of sponsored credit in a restricted account (one per member and
  sponsor), spendable only on exchanges in the policy's `areas` and `zones`, and spent
  before the member's own hours. Credit unspent `expire_after_days` after it was granted
  goes back to the sponsor, or to the community pool (`expire_to`).
- `match`: once a period has ended, for each enrolled employee who gave help (was the
  provider of a settled exchange, or facilitated a group exchange) in eligible areas and
  zones, the sponsor credits the pool (or `credit_to`) `ratio` times those minutes,
  capped at `cap_minutes` per employee per period.
- `staff_time`: the company pledges `pledge_minutes` of staff time per period. Time its
  staff give on company time is booked on the company's own account (the company is
  the provider of the exchange: its listed staff skills, spaces and sessions). Once the
  period has ended, what the company earned so, up to the pledge, is donated on to the
  pool (`donate_to`) or in equal shares to named members (`members`); a shortfall
  against the pledge is reported.
- `pool`: the community solidarity pool. A manager grants pool minutes to a member who
  cannot reciprocate, with a reason (the entry's memo), within `member_cap_minutes` per
  member per period and the policy's budget per period.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Final

import msgspec

from scambio.ledger.rules import check_account_id
from scambio.policy.kinds import (
    AT_END,
    AT_START,
    EXPIRY,
    GRANT,
    MATCH,
    NEEDS_GIVEN,
    NEEDS_LOTS,
    NEEDS_MEMBERS,
    ON_REQUEST,
    POOL_GRANT,
    STAFF_TIME,
    Context,
    Given,
    Proposed,
)
from scambio.timebank.areas import AREA_IDS

POOL_RE: Final = re.compile(r"pool:[a-z0-9][a-z0-9._-]{0,58}")
PARTY_RE: Final = re.compile(r"[mo]-[0-9a-f]{16}")
MEMBER_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
RATIO_RE: Final = re.compile(r"([1-9][0-9]{0,2}):([1-9][0-9]{0,2})")
DEFAULT_POOL: Final = "pool:community"
#: Most minutes one posting of a policy may move: 1,000 hours.
MAX_MINUTES: Final = 60_000
ENROLMENTS: Final = ("employees", "by-admin")
EXPIRE_TO: Final = ("sponsor", "pool")

Minutes = Annotated[int, msgspec.Meta(ge=1, le=MAX_MINUTES)]
Names = Annotated[tuple[str, ...], msgspec.Meta(max_length=200)]


class _Params(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class GrantParams(_Params, frozen=True, kw_only=True):
    minutes: Minutes
    areas: Names
    zones: Names = ()
    expire_after_days: Annotated[int, msgspec.Meta(ge=1, le=3660)] = 90
    expire_to: str = "sponsor"
    pool: str = DEFAULT_POOL
    enrolment: str = "employees"
    members: Names = ()


class MatchParams(_Params, frozen=True, kw_only=True):
    cap_minutes: Minutes
    ratio: str = "1:1"
    areas: Names = ()
    zones: Names = ()
    credit_to: str = DEFAULT_POOL
    enrolment: str = "employees"
    members: Names = ()


class StaffTimeParams(_Params, frozen=True, kw_only=True):
    pledge_minutes: Minutes
    areas: Names = ()
    zones: Names = ()
    donate_to: str = DEFAULT_POOL
    #: Donate to these members (equal shares) instead of `donate_to`.
    members: Names = ()


class PoolParams(_Params, frozen=True, kw_only=True):
    member_cap_minutes: Minutes
    pool: str = DEFAULT_POOL


# -- shared checks -----------------------------------------------------------------------------


def _check_common(params: Any) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for i, area in enumerate(getattr(params, "areas", ())):
        if area not in AREA_IDS:
            errors.append(
                (f"areas[{i}]", f"expected one of {', '.join(sorted(AREA_IDS))}, got {area!r}")
            )
    for name in ("areas", "zones", "members"):
        values = getattr(params, name, ())
        if len(set(values)) != len(values):
            errors.append((name, "expected each value once, got a repeated value"))
    for i, member in enumerate(getattr(params, "members", ())):
        if not MEMBER_ID_RE.fullmatch(member):
            errors.append(
                (f"members[{i}]", f"expected a member id (16 hex digits), got {member!r}")
            )
    enrolment = getattr(params, "enrolment", None)
    if enrolment is not None and enrolment not in ENROLMENTS:
        errors.append(("enrolment", f"expected one of {', '.join(ENROLMENTS)}, got {enrolment!r}"))
    return errors


def _check_pool(value: str, name: str) -> list[tuple[str, str]]:
    if POOL_RE.fullmatch(value):
        return []
    return [(name, f"expected a pool account id such as {DEFAULT_POOL}, got {value!r}")]


def _check_target(value: str, name: str) -> list[tuple[str, str]]:
    if POOL_RE.fullmatch(value) or (PARTY_RE.fullmatch(value) and not check_account_id(value)):
        return []
    return [
        (
            name,
            f"expected a pool (pool:...) or a member's or organisation's account (m-..., o-...), "
            f"got {value!r}",
        )
    ]


def eligible(gift: Given, areas: Sequence[str], zones: Sequence[str]) -> bool:
    """Whether help in this area and zone counts (no areas or zones listed: any)."""
    if areas and gift.area not in areas:
        return False
    return not zones or gift.zone in zones


def _places(areas: Sequence[str], zones: Sequence[str]) -> str:
    where = ", ".join(areas) if areas else "any area"
    return where + (f" in {', '.join(zones)}" if zones else "")


def parse_ratio(ratio: str) -> tuple[int, int]:
    found = RATIO_RE.fullmatch(ratio)
    if found is None:
        raise ValueError(f"not a ratio: {ratio!r}")
    return int(found[1]), int(found[2])


# -- grant -------------------------------------------------------------------------------------


class GrantKind:
    name = "grant"
    params_type = GrantParams
    timing = AT_START
    needs_sponsor = True
    needs = frozenset({NEEDS_MEMBERS, NEEDS_LOTS})

    def check(self, params: GrantParams) -> list[tuple[str, str]]:
        errors = _check_common(params)
        if not params.areas:
            errors.append(("areas", "expected at least one area the credit may be spent on"))
        if params.expire_to not in EXPIRE_TO:
            errors.append(
                ("expire_to", f"expected one of {', '.join(EXPIRE_TO)}, got {params.expire_to!r}")
            )
        return errors + _check_pool(params.pool, "pool")

    def propose(self, params: GrantParams, ctx: Context) -> list[Proposed]:
        sponsor = ctx.policy.sponsor_account
        if sponsor is None:
            return []
        found: list[Proposed] = []
        places = _places(params.areas, params.zones)
        for member in ctx.members:
            if member.restricted is None:
                continue
            found.append(
                Proposed(
                    rule=GRANT,
                    subject=member.account,
                    payer=sponsor,
                    payee=member.restricted,
                    minutes=params.minutes,
                    memo=f"sponsored credit: policy {ctx.policy.id}, {ctx.period}",
                    why=(
                        f"member {member.member_id} is enrolled: {params.minutes} minutes of "
                        f"sponsored credit for {ctx.period}, spendable on {places}, "
                        f"expiring {params.expire_after_days} days after the grant"
                    ),
                )
            )
        to_pool = params.expire_to == "pool"
        target = params.pool if to_pool else sponsor
        for lot in ctx.lots:
            amount = max(0, min(lot.unspent, lot.available))
            held = lot.unspent - amount
            found.append(
                Proposed(
                    rule=EXPIRY,
                    subject=lot.account,
                    period=lot.period,
                    payer=lot.restricted,
                    payee=target,
                    minutes=amount,
                    counts=False,
                    memo=f"sponsored credit expired: policy {ctx.policy.id}, {lot.period}",
                    why=(
                        f"member {lot.member_id}: {lot.granted} minutes granted for "
                        f"{lot.period} expired at {lot.expires_at} with {lot.unspent} unspent; "
                        f"{amount} go back to the {'pool' if to_pool else 'sponsor'}"
                        + (f" ({held} held by open exchanges stay)" if held > 0 else "")
                    ),
                )
            )
        return found


# -- match -------------------------------------------------------------------------------------


class MatchKind:
    name = "match"
    params_type = MatchParams
    timing = AT_END
    needs_sponsor = True
    needs = frozenset({NEEDS_MEMBERS, NEEDS_GIVEN})

    def check(self, params: MatchParams) -> list[tuple[str, str]]:
        errors = _check_common(params)
        if not RATIO_RE.fullmatch(params.ratio):
            errors.append(
                ("ratio", f'expected a ratio of whole numbers like "1:1", got {params.ratio!r}')
            )
        return errors + _check_target(params.credit_to, "credit_to")

    def propose(self, params: MatchParams, ctx: Context) -> list[Proposed]:
        sponsor = ctx.policy.sponsor_account
        if sponsor is None:
            return []
        num, den = parse_ratio(params.ratio)
        found: list[Proposed] = []
        for member in ctx.members:
            gifts = [
                g
                for g in ctx.given
                if g.account == member.account and eligible(g, params.areas, params.zones)
            ]
            given = sum(g.minutes for g in gifts)
            matched = given * num // den
            minutes = min(matched, params.cap_minutes)
            if minutes <= 0:
                continue
            why = (
                f"member {member.member_id} gave {given} minutes in {len(gifts)} exchange(s) "
                f"in {_places(params.areas, params.zones)} during {ctx.period}; "
                f"matched {params.ratio}: {matched}"
            )
            if matched > params.cap_minutes:
                why += f", capped at {params.cap_minutes}"
            found.append(
                Proposed(
                    rule=MATCH,
                    subject=member.account,
                    payer=sponsor,
                    payee=params.credit_to,
                    minutes=minutes,
                    memo=f"matched volunteering: policy {ctx.policy.id}, {ctx.period}",
                    why=why,
                )
            )
        return found


# -- staff time --------------------------------------------------------------------------------


class StaffTimeKind:
    name = "staff_time"
    params_type = StaffTimeParams
    timing = AT_END
    needs_sponsor = True
    needs = frozenset({NEEDS_MEMBERS, NEEDS_GIVEN})

    def check(self, params: StaffTimeParams) -> list[tuple[str, str]]:
        errors = _check_common(params)
        if not params.members:
            errors += _check_target(params.donate_to, "donate_to")
        return errors

    def propose(self, params: StaffTimeParams, ctx: Context) -> list[Proposed]:
        company = ctx.policy.org_account
        if company is None:
            return []
        gifts = [
            g for g in ctx.given if g.account == company and eligible(g, params.areas, params.zones)
        ]
        earned = sum(g.minutes for g in gifts)
        donated = min(earned, params.pledge_minutes)
        if donated <= 0:
            return []
        short = params.pledge_minutes - earned
        base = (
            f"staff gave {earned} minutes on company time in {len(gifts)} exchange(s) during "
            f"{ctx.period} against a pledge of {params.pledge_minutes}"
            + (f" (short by {short})" if short > 0 else "")
            + f"; {donated} donated"
        )
        recipients = [m.account for m in ctx.members] if params.members else [params.donate_to]
        if not recipients:
            return []
        share, extra = divmod(donated, len(recipients))
        found: list[Proposed] = []
        for position, account in enumerate(recipients):
            minutes = share + (1 if position < extra else 0)
            if minutes <= 0:
                continue
            found.append(
                Proposed(
                    rule=STAFF_TIME,
                    subject=account,
                    payer=company,
                    payee=account,
                    minutes=minutes,
                    memo=f"donated staff time: policy {ctx.policy.id}, {ctx.period}",
                    why=base
                    + (f", {minutes} to {account}" if len(recipients) > 1 else f" to {account}"),
                )
            )
        return found


# -- pool --------------------------------------------------------------------------------------


class PoolKind:
    name = "pool"
    params_type = PoolParams
    timing = ON_REQUEST
    needs_sponsor = False
    needs: frozenset[str] = frozenset()

    def check(self, params: PoolParams) -> list[tuple[str, str]]:
        return _check_pool(params.pool, "pool")

    def propose(self, params: PoolParams, ctx: Context) -> list[Proposed]:
        granted: dict[str, int] = {}
        for issued in ctx.issued:
            if issued.rule == POOL_GRANT:
                account = issued.subject.split(".", 1)[0]
                granted[account] = granted.get(account, 0) + issued.minutes
        found: list[Proposed] = []
        for request in ctx.requests:
            before = granted.get(request.account, 0)
            left = max(0, params.member_cap_minutes - before)
            minutes = min(request.minutes, left)
            why = (
                f"a manager grants member {request.member_id} {request.minutes} minutes from "
                f"{params.pool}; {before} granted to them in {ctx.period} already, "
                f"cap {params.member_cap_minutes}"
            )
            if minutes < request.minutes:
                why += f": {minutes} within the cap"
            granted[request.account] = before + minutes
            found.append(
                Proposed(
                    rule=POOL_GRANT,
                    subject=f"{request.account}.{request.id}",
                    payer=params.pool,
                    payee=request.account,
                    minutes=minutes,
                    memo=request.reason,
                    why=why,
                )
            )
        return found


KINDS: Final = (GrantKind(), MatchKind(), StaffTimeKind(), PoolKind())
