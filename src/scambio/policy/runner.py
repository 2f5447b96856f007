"""Running policies: from proposals to ledger entries, at most once each.

For one policy and one period the runner builds the context (`policy.context`), asks the
kind for its proposals, checks them, caps them to the budget, and issues them:

1. **Decide** (one database transaction, holding the policy's row): every proposal not
   decided before is recorded in `policy_issues` with the minutes it gets - all of them
   while the period's budget lasts, part of them when it runs out, none after (`short`,
   reported as not issued). Budget already used counts what was issued and what is
   being issued, so two runs at once cannot both spend the same budget.
2. **Issue**: the decided postings go to the ledger service as transfers whose ids derive
   from (policy, period, rule, subject) - ``pol.<policy>.<period>.<rule>.<subject>``,
   hashed to ``pol.h.<sha256>`` when longer than an entry id may be - and whose
   annotations name the policy, its version, the period and the rule. Accounts the
   postings need (the sponsor's, a member's restricted account, a pool) are opened
   first.
3. **Record**: each decision becomes `done` (with the entry's index) or `failed` (the
   ledger's reason: a pool without minutes, say). A crash between 1 and 3 leaves
   decisions `due`; the next run issues exactly them again, and the ledger answers with
   the entries already written. A `failed` or `short` decision is decided again by the
   next run; a `done` one never.

So re-running a period changes nothing, issuance never exceeds the budget, and every
entry says which rule of which version of which policy made it.

`run_due(tb, now)` runs what is due at `now` (the jobs module calls it); `run_period`
runs one policy for one explicit period; `simulate` shows what a policy (applied or just
a file) would do in a period, writing nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from scambio.ledger.entry import ENTRY_ID_RE, format_time, parse_time
from scambio.ledger.errors import RuleViolation
from scambio.ledger.rules import check_account_id
from scambio.policy import context as contexts
from scambio.policy.funding import RESTRICTED_PREFIX, SPONSOR_PREFIX, sponsor_account
from scambio.policy.kinds import (
    AT_END,
    AT_START,
    GRANT,
    NEEDS_LOTS,
    ON_REQUEST,
    RULE_RE,
    PolicyKind,
    PoolRequest,
    Proposed,
    load_kinds,
)
from scambio.policy.model import Policy, PolicyError, policy_from_canonical
from scambio.policy.periods import Period, PeriodError, parse_period, period_at
from scambio.store.commands import Appended, Transfer
from scambio.store.people_tables import organisations
from scambio.store.policy_tables import (
    policies,
    policy_issues,
    policy_restricted_accounts,
    policy_versions,
)
from scambio.timebank.audit import Actor
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, writing

log = logging.getLogger(__name__)

ENTRY_PREFIX: Final = "pol"
MAX_POSTING: Final = 10**9
MEMO_MAX: Final = 1000

# What a run did with each proposal.
ISSUED: Final = "issued"
WOULD_ISSUE: Final = "would issue"
ALREADY: Final = "already issued"
SHORT: Final = "not issued: budget used up"
NOTHING: Final = "nothing to do"
FAILED: Final = "failed"
REFUSED: Final = "refused"


class PostingOut(msgspec.Struct, frozen=True, kw_only=True):
    """One proposal and what became of it."""

    rule: str
    period: str
    subject: str
    payer: str
    payee: str
    #: Minutes proposed, and minutes issued (or, in a simulation, that would be).
    wanted: int
    minutes: int
    entry_id: str
    status: str
    why: str
    error: str | None = None
    entry_index: int | None = None


class PolicyRun(msgspec.Struct, frozen=True, kw_only=True):
    """One run of one policy for one period."""

    policy: str
    kind: str
    version: str
    period: str
    #: Entries written by this run, the minutes they issued (against the budget) and the
    #: minutes they returned (expired credit).
    issued: int = 0
    minutes: int = 0
    returned: int = 0
    #: Decisions found already done (a repeated run).
    already: int = 0
    #: Minutes proposed but over the budget.
    not_issued: int = 0
    failed: int = 0
    budget_minutes: int | None = None
    budget_used: int = 0
    skipped: str | None = None
    postings: tuple[PostingOut, ...] = ()


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What `run_due` did at `at`."""

    at: str
    runs: tuple[PolicyRun, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def issued(self) -> int:
        return sum(r.issued for r in self.runs)

    @property
    def not_issued(self) -> int:
        return sum(r.not_issued for r in self.runs)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.runs)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A policy as stored: the version in force."""

    policy: Policy
    kind: PolicyKind
    status: str
    first_applied_at: str

    @property
    def first_period(self) -> Period:
        return self.policy.first_period() or period_at(
            self.policy.every, parse_time(self.first_applied_at)
        )

    def runs_in(self, period: Period) -> bool:
        return self.policy.runs_in(period) and period.start >= self.first_period.start


@dataclass(frozen=True, slots=True)
class Decision:
    proposed: Proposed
    period: str
    entry_id: str
    #: issue, resume (decided before, not yet done), already, short, nothing, refused.
    action: str
    minutes: int
    payer: str
    payee: str
    memo: str
    version: str
    note: str | None = None
    entry_index: int | None = None


# -- entry ids and checks ----------------------------------------------------------------------


def entry_id(policy_id: str, period: str, rule: str, subject: str) -> str:
    """``pol.<policy>.<period>.<rule>.<subject>`` (':' in the subject becomes '_': it is
    reserved for ids the ledger derives), hashed when it would not be a valid id."""
    plain = ".".join((ENTRY_PREFIX, policy_id, period, rule, subject.replace(":", "_")))
    if ENTRY_ID_RE.fullmatch(plain):
        return plain
    digest = hashlib.sha256(f"{policy_id}\n{period}\n{rule}\n{subject}".encode()).hexdigest()
    return f"{ENTRY_PREFIX}.h.{digest}"


def refs_of(policy_id: str, version: str, period: str, rule: str) -> dict[str, str]:
    return {"policy": policy_id, "policy_version": version, "period": period, "rule": rule}


def _own_accounts(policy: Policy) -> tuple[set[str], str | None]:
    """Accounts a policy may take minutes from: its sponsor's and the organisation's own,
    any pool, and restricted accounts of its sponsor (prefix)."""
    own: set[str] = set()
    restricted = None
    if policy.sponsor is not None:
        own |= {sponsor_account(policy.sponsor), contexts.org_account(policy.sponsor)}
        restricted = f"{RESTRICTED_PREFIX}{policy.sponsor}:"
    return own, restricted


def check_proposed(policy: Policy, p: Any) -> str | None:
    """Why a proposal cannot be issued (a custom kind's mistake), or None."""
    if not isinstance(p, Proposed):
        return "not a Proposed posting"
    if not RULE_RE.fullmatch(p.rule):
        return f"rule {p.rule!r} is not a rule name"
    if not isinstance(p.minutes, int) or isinstance(p.minutes, bool):
        return "minutes must be a whole number"
    if not 0 <= p.minutes <= MAX_POSTING:
        return f"minutes must be 0 to {MAX_POSTING}"
    for name in ("payer", "payee"):
        if check_account_id(getattr(p, name)) is not None:
            return f"{name} {getattr(p, name)!r} is not an account id"
    if p.payer == p.payee:
        return "payer and payee are the same account"
    own, restricted = _own_accounts(policy)
    for name in ("payer", "payee"):
        account = getattr(p, name)
        if account.startswith(RESTRICTED_PREFIX) and (
            restricted is None or not account.startswith(restricted)
        ):
            return f"{name} {account!r} is another sponsor's restricted account"
        if account.startswith(SPONSOR_PREFIX) and account not in own:
            return f"{name} {account!r} is another sponsor's account"
    payer_ok = p.payer in own or p.payer.startswith("pool:")
    if restricted is not None and p.payer.startswith(restricted):
        payer_ok = True
    if not payer_ok:
        return f"a policy may not take minutes from {p.payer!r}"
    if len(p.memo) > MEMO_MAX or not p.subject or len(p.subject) > 128:
        return "memo or subject too long"
    if p.period is not None and len(p.period) > 16:
        return "period too long"
    return None


def decide(
    policy: Policy,
    period: str,
    proposals: Sequence[Any],
    existing: dict[tuple[str, str, str], Any],
    used: int,
) -> list[Decision]:
    """Which proposals to issue and with how many minutes (pure)."""
    left = None if policy.budget_minutes is None else max(0, policy.budget_minutes - used)
    decisions: list[Decision] = []
    seen: set[tuple[str, str, str]] = set()
    for p in proposals:
        problem = check_proposed(policy, p)
        if problem is not None:
            decisions.append(
                Decision(
                    Proposed(rule="invalid", subject="-", payer="-", payee="-", minutes=0, why=""),
                    period,
                    "-",
                    "refused",
                    0,
                    "-",
                    "-",
                    "",
                    policy.version,
                    problem,
                )
            )
            continue
        at = p.period or period
        key = (at, p.rule, p.subject)
        ident = entry_id(policy.id, at, p.rule, p.subject)
        if key in seen:
            continue
        seen.add(key)
        row = existing.get(key)
        if row is not None and row.state == "done":
            decisions.append(
                Decision(
                    p,
                    at,
                    row.entry_id,
                    "already",
                    int(row.minutes),
                    row.payer,
                    row.payee,
                    row.memo,
                    row.version,
                    entry_index=None if row.entry_index is None else int(row.entry_index),
                )
            )
            continue
        if row is not None and row.state == "due":
            decisions.append(
                Decision(
                    p,
                    at,
                    row.entry_id,
                    "resume",
                    int(row.minutes),
                    row.payer,
                    row.payee,
                    row.memo,
                    row.version,
                )
            )
            continue
        minutes = p.minutes
        if p.counts and left is not None:
            minutes = min(minutes, left)
            left -= minutes
        if minutes > 0:
            action = "issue"
        elif p.counts and p.minutes > 0:
            action = "short"
        else:
            action = "nothing"
        decisions.append(
            Decision(p, at, ident, action, minutes, p.payer, p.payee, p.memo, policy.version)
        )
    return decisions


# -- loading policies --------------------------------------------------------------------------


async def load_policy(
    conn: AsyncConnection, policy_id: str, kinds: dict[str, PolicyKind]
) -> Loaded | None:
    found = await _load(conn, kinds, policies.c.id == policy_id)
    return found[0] if found else None


async def load_all(conn: AsyncConnection, kinds: dict[str, PolicyKind]) -> list[Loaded]:
    return await _load(conn, kinds)


async def _load(conn: AsyncConnection, kinds: dict[str, PolicyKind], *where: Any) -> list[Loaded]:
    rows = await conn.execute(
        select(
            policies.c.id,
            policies.c.status,
            policies.c.first_applied_at,
            policies.c.file,
            policy_versions.c.canonical,
            policy_versions.c.source,
        )
        .join(policy_versions, policy_versions.c.version == policies.c.version)
        .where(*where)
        .order_by(policies.c.id)
    )
    found: list[Loaded] = []
    for row in rows:
        try:
            policy = policy_from_canonical(row.canonical, row.source, row.file, kinds)
        except (PolicyError, msgspec.ValidationError) as exc:
            log.error("policy %s cannot run: %s", row.id, exc)
            continue
        found.append(Loaded(policy, kinds[policy.kind], row.status, row.first_applied_at))
    return found


async def _sponsor_problem(conn: AsyncConnection, policy: Policy) -> str | None:
    if policy.sponsor is None:
        return None
    row = (
        await conn.execute(
            select(organisations.c.status).where(organisations.c.id == policy.sponsor)
        )
    ).one_or_none()
    if row is None:
        return f"sponsor organisation {policy.sponsor} does not exist"
    if row.status != "active":
        return f"sponsor organisation {policy.sponsor} is {row.status}"
    return None


# -- running -----------------------------------------------------------------------------------


async def _existing(
    conn: AsyncConnection, policy_id: str, periods: set[str]
) -> dict[tuple[str, str, str], Any]:
    rows = await conn.execute(
        select(policy_issues).where(
            policy_issues.c.policy_id == policy_id, policy_issues.c.period.in_(sorted(periods))
        )
    )
    return {(r.period, r.rule, r.subject): r for r in rows}


async def _used(conn: AsyncConnection, policy_id: str, period: str) -> int:
    rows = await conn.execute(
        select(policy_issues.c.minutes).where(
            policy_issues.c.policy_id == policy_id,
            policy_issues.c.period == period,
            policy_issues.c.counts.is_(True),
            policy_issues.c.state.in_(contexts.LIVE),
        )
    )
    return sum(int(r.minutes) for r in rows)


def _periods_of(period: str, proposals: Sequence[Any]) -> set[str]:
    return {period} | {p.period for p in proposals if isinstance(p, Proposed) and p.period}


async def _propose(
    tb: Timebank,
    loaded: Loaded,
    period: Period,
    now: datetime,
    *,
    issue: bool,
    lots_until: datetime | None = None,
    requests: Sequence[PoolRequest] = (),
) -> list[Any]:
    async with reading(tb.engine) as conn:
        ctx = await contexts.build(
            conn,
            loaded.policy,
            loaded.kind,
            period,
            now,
            issue=issue,
            lots_until=lots_until,
            requests=requests,
        )
    return list(loaded.kind.propose(loaded.policy.params, ctx))


async def _decide_and_record(
    tb: Timebank, loaded: Loaded, period: Period, proposals: list[Any], now: str
) -> tuple[list[Decision], int]:
    """Step 1: decide under the policy's row lock and record the decisions."""
    policy = loaded.policy
    expire_days = getattr(policy.params, "expire_after_days", None)
    async with writing(tb.engine) as conn:
        await conn.execute(
            select(policies.c.id).where(policies.c.id == policy.id).with_for_update()
        )
        existing = await _existing(conn, policy.id, _periods_of(period.label, proposals))
        used = await _used(conn, policy.id, period.label)
        decisions = decide(policy, period.label, proposals, existing, used)
        for d in decisions:
            if d.action not in ("issue", "short", "nothing"):
                continue
            state = {"issue": "due", "short": "short", "nothing": "done"}[d.action]
            values = {
                "entry_id": d.entry_id,
                "version": d.version,
                "payer": d.payer,
                "payee": d.payee,
                "wanted": max(d.proposed.minutes, d.minutes),
                "minutes": d.minutes,
                "counts": d.proposed.counts,
                "state": state,
                "memo": d.memo,
                "why": d.proposed.why,
                "expire_days": expire_days if d.proposed.rule == GRANT else None,
                "error": None,
                "entry_index": None,
                "entry_time": None,
                "expires_at": None,
                "updated_at": now,
            }
            key = (d.period, d.proposed.rule, d.proposed.subject)
            if key in existing:
                await conn.execute(
                    update(policy_issues)
                    .where(policy_issues.c.seq == existing[key].seq)
                    .values(**values)
                )
            else:
                await conn.execute(
                    insert(policy_issues).values(
                        policy_id=policy.id,
                        period=d.period,
                        rule=d.proposed.rule,
                        subject=d.proposed.subject,
                        created_at=now,
                        **values,
                    )
                )
    return decisions, used


async def _open(tb: Timebank, account: str, now: str) -> RuleViolation | None:
    """Open an account a policy posting needs, if it is one a policy may open."""
    if account.startswith(RESTRICTED_PREFIX):
        outcome = await tb.ledger.open_account(account, "sponsor", 0, None)
    elif account.startswith(SPONSOR_PREFIX):
        outcome = await tb.ledger.open_account(account, "sponsor")
    elif account.startswith("pool:"):
        outcome = await tb.ledger.open_account(account, "pool")
    else:
        return None
    if isinstance(outcome, RuleViolation) and outcome.code not in (
        "idempotency-conflict",
        "account-exists",
    ):
        return outcome
    if account.startswith(RESTRICTED_PREFIX):
        _prefix, org_id, member_id = account.split(":", 2)
        async with writing(tb.engine) as conn:
            known = (
                await conn.execute(
                    select(policy_restricted_accounts.c.account_id).where(
                        policy_restricted_accounts.c.account_id == account
                    )
                )
            ).one_or_none()
            if known is None:
                await conn.execute(
                    insert(policy_restricted_accounts).values(
                        account_id=account,
                        org_id=org_id,
                        member_id=member_id,
                        member_account=f"m-{member_id}",
                        opened_at=now,
                    )
                )
    return None


async def _issue(
    tb: Timebank, loaded: Loaded, decisions: list[Decision], now: str
) -> dict[str, Appended | RuleViolation]:
    """Steps 2 and 3: open accounts, write the transfers, record what happened."""
    todo = [d for d in decisions if d.action in ("issue", "resume")]
    if not todo:
        return {}
    outcomes: dict[str, Appended | RuleViolation] = {}
    accounts = sorted({a for d in todo for a in (d.payer, d.payee)})
    opened = dict(
        zip(accounts, await asyncio.gather(*(_open(tb, a, now) for a in accounts)), strict=True)
    )
    transfers: list[tuple[Decision, Transfer]] = []
    for d in todo:
        problem = opened.get(d.payer) or opened.get(d.payee)
        if problem is not None:
            outcomes[d.entry_id] = problem
            continue
        transfers.append(
            (
                d,
                Transfer(
                    d.entry_id,
                    d.payer,
                    d.payee,
                    d.minutes,
                    d.memo,
                    refs=refs_of(loaded.policy.id, d.version, d.period, d.proposed.rule),
                ),
            )
        )
    # Submitted together so that they share the appender's batches.
    results = await asyncio.gather(*(tb.ledger.transfer(t) for _d, t in transfers))
    for (d, _t), result in zip(transfers, results, strict=True):
        outcomes[d.entry_id] = result
    async with writing(tb.engine) as conn:
        for d in todo:
            result = outcomes[d.entry_id]
            if isinstance(result, RuleViolation):
                values: dict[str, Any] = {
                    "state": "failed",
                    "error": f"{result.code}: {result.detail}"[:500],
                }
            else:
                values = {
                    "state": "done",
                    "error": None,
                    "entry_index": result.index,
                    "entry_time": result.entry.time,
                }
                if d.proposed.rule == GRANT:
                    days = (
                        await conn.execute(
                            select(policy_issues.c.expire_days).where(
                                policy_issues.c.entry_id == d.entry_id
                            )
                        )
                    ).scalar_one()
                    if days is not None:
                        values["expires_at"] = format_time(
                            parse_time(result.entry.time) + timedelta(days=int(days))
                        )
            await conn.execute(
                update(policy_issues)
                .where(policy_issues.c.entry_id == d.entry_id, policy_issues.c.state == "due")
                .values(updated_at=now, **values)
            )
    return outcomes


def _report(
    loaded: Loaded,
    period: Period,
    decisions: list[Decision],
    used: int,
    outcomes: dict[str, Appended | RuleViolation] | None,
) -> PolicyRun:
    """Summarise a run (`outcomes` None: a simulation, nothing was written)."""
    postings: list[PostingOut] = []
    issued = minutes = returned = already = not_issued = failed = 0
    budget_used = used
    for d in decisions:
        p = d.proposed
        error = d.note
        index: int | None = None
        if d.action == "refused":
            status = REFUSED
            failed += 1
        elif d.action == "already":
            status = ALREADY
            already += 1
            index = d.entry_index
        elif d.action == "short":
            status = SHORT
        elif d.action == "nothing":
            status = NOTHING
        elif outcomes is None:
            status = WOULD_ISSUE
        else:
            result = outcomes.get(d.entry_id)
            if isinstance(result, RuleViolation) or result is None:
                status = FAILED
                failed += 1
                error = "not attempted" if result is None else f"{result.code}: {result.detail}"
            else:
                status = ISSUED if result.created else ALREADY
                index = result.index
                if result.created:
                    issued += 1
                    if p.counts:
                        minutes += d.minutes
                    else:
                        returned += d.minutes
                else:
                    already += 1
        if p.counts and d.action in ("issue", "short"):
            not_issued += max(0, p.minutes - d.minutes)
            if status in (ISSUED, WOULD_ISSUE, ALREADY):
                budget_used += d.minutes
        postings.append(
            PostingOut(
                rule=p.rule,
                period=d.period,
                subject=p.subject,
                payer=d.payer,
                payee=d.payee,
                wanted=p.minutes,
                minutes=d.minutes,
                entry_id=d.entry_id,
                status=status,
                why=p.why,
                error=error,
                entry_index=index,
            )
        )
    return PolicyRun(
        policy=loaded.policy.id,
        kind=loaded.policy.kind,
        version=loaded.policy.version,
        period=period.label,
        issued=issued,
        minutes=minutes,
        returned=returned,
        already=already,
        not_issued=not_issued,
        failed=failed,
        budget_minutes=loaded.policy.budget_minutes,
        budget_used=budget_used,
        postings=tuple(postings),
    )


def _skipped(loaded: Loaded, period: Period, why: str) -> PolicyRun:
    return PolicyRun(
        policy=loaded.policy.id,
        kind=loaded.policy.kind,
        version=loaded.policy.version,
        period=period.label,
        budget_minutes=loaded.policy.budget_minutes,
        skipped=why,
    )


async def _run(
    tb: Timebank,
    loaded: Loaded,
    period: Period,
    now: datetime,
    *,
    issue: bool,
    requests: Sequence[PoolRequest] = (),
) -> PolicyRun:
    async with reading(tb.engine) as conn:
        problem = await _sponsor_problem(conn, loaded.policy)
    if problem is not None:
        return _skipped(loaded, period, problem)
    proposals = await _propose(tb, loaded, period, now, issue=issue, requests=requests)
    stamp = format_time(now)
    decisions, used = await _decide_and_record(tb, loaded, period, proposals, stamp)
    outcomes = await _issue(tb, loaded, decisions, stamp)
    run = _report(loaded, period, decisions, used, outcomes)
    if run.issued or run.failed or run.not_issued:
        log.info(
            "policy %s %s: %d issued (%d minutes, %d returned), %d minutes over budget, %d failed",
            run.policy,
            run.period,
            run.issued,
            run.minutes,
            run.returned,
            run.not_issued,
            run.failed,
        )
    return run


def _clock(tb: Timebank, now: datetime | None) -> datetime:
    return tb.clock() if now is None else now


async def run_period(
    tb: Timebank, policy_id: str, period_label: str, now: datetime | None = None
) -> PolicyRun:
    """Run one applied policy for one period (its grants, matches, donations, and the
    expiries due by `now`). A period a kind settles after it ends must have ended."""
    moment = _clock(tb, now)
    kinds = load_kinds()
    async with reading(tb.engine) as conn:
        loaded = await load_policy(conn, policy_id, kinds)
    if loaded is None:
        raise RuleViolation(
            "policy-not-found", f"policy {policy_id!r} is not applied", policy=policy_id
        )
    period = _period(loaded.policy, period_label)
    if loaded.kind.timing == AT_END and moment < period.end:
        return _skipped(
            loaded,
            period,
            f"period {period.label} has not ended: a {loaded.policy.kind} policy settles a "
            "period once it is over",
        )
    if loaded.kind.timing == AT_START and moment < period.start:
        return _skipped(
            loaded,
            period,
            f"period {period.label} has not started: a {loaded.policy.kind} policy issues at "
            "the start of a period",
        )
    if loaded.kind.timing == ON_REQUEST:
        return _skipped(loaded, period, "a pool policy issues only what managers grant")
    issue = loaded.status == "active" and loaded.runs_in(period)
    return await _run(tb, loaded, period, moment, issue=issue)


def _period(policy: Policy, label: str) -> Period:
    try:
        return parse_period(policy.every, label)
    except PeriodError as exc:
        raise RuleViolation("invalid-period", str(exc), field="period") from None


async def run_due(tb: Timebank, now: datetime) -> RunSummary:
    """Run every policy whose schedule has something due at `now`.

    Grants are due for the period containing `now`; matching and staff time for the
    period that ended last; expiries whenever credit's expiry has passed (retired grant
    policies included). Idempotent: a second call at the same `now` issues nothing.
    """
    kinds = load_kinds()
    async with reading(tb.engine) as conn:
        loaded = await load_all(conn, kinds)
    runs: list[PolicyRun] = []
    errors: list[str] = []
    for item in loaded:
        try:
            current = period_at(item.policy.every, now)
            active = item.status == "active"
            if item.kind.timing == AT_START:
                runs.append(
                    await _run(tb, item, current, now, issue=active and item.runs_in(current))
                )
            elif item.kind.timing == AT_END:
                ended = current.previous()
                if active and item.runs_in(ended):
                    runs.append(await _run(tb, item, ended, now, issue=True))
                elif NEEDS_LOTS in item.kind.needs:
                    runs.append(await _run(tb, item, current, now, issue=False))
            elif NEEDS_LOTS in item.kind.needs:
                runs.append(await _run(tb, item, current, now, issue=False))
        except RuleViolation as exc:
            errors.append(f"{item.policy.id}: {exc.code}: {exc.detail}")
        except Exception as exc:  # one policy's failure must not stop the others
            log.exception("policy %s failed to run", item.policy.id)
            errors.append(f"{item.policy.id}: {type(exc).__name__}: {exc}")
    return RunSummary(at=format_time(now), runs=tuple(runs), errors=tuple(errors))


async def simulate(
    tb: Timebank, policy: Policy, period_label: str, now: datetime | None = None
) -> PolicyRun:
    """What `policy` (applied or not) would post in a period, and why; writes nothing.

    The period's grants or settlement are shown as if run now, with what was already
    issued for it; expiries are those falling due before the period ends.
    """
    moment = _clock(tb, now)
    kinds = load_kinds()
    kind = kinds.get(policy.kind)
    if kind is None:
        raise RuleViolation("unknown-kind", f"policy kind {policy.kind!r} is not installed")
    period = _period(policy, period_label)
    async with reading(tb.engine) as conn:
        stored = await load_policy(conn, policy.id, kinds)
        problem = await _sponsor_problem(conn, policy)
    first = stored.first_applied_at if stored is not None else format_time(moment)
    loaded = Loaded(policy, kind, "active", first)
    if problem is not None:
        return _skipped(loaded, period, problem)
    proposals = await _propose(
        tb,
        loaded,
        period,
        max(moment, period.start),
        issue=loaded.runs_in(period) and kind.timing != ON_REQUEST,
        lots_until=period.end,
    )
    async with reading(tb.engine) as conn:
        existing = await _existing(conn, policy.id, _periods_of(period.label, proposals))
        used = await _used(conn, policy.id, period.label)
    decisions = decide(policy, period.label, proposals, existing, used)
    return _report(loaded, period, decisions, used, None)


# -- the community pool: a manager's grant -----------------------------------------------------


class PoolGrant(msgspec.Struct, frozen=True, kw_only=True):
    """A grant from the pool: what was asked, what was issued, and the entry."""

    id: str
    policy: str
    period: str
    member: str
    account: str
    wanted: int
    minutes: int
    not_issued: int
    reason: str
    entry_id: str
    entry_index: int | None
    created: bool
    why: str


POOL_GRANTED: Final = "policy.pool-grant"


async def grant_from_pool(
    tb: Timebank,
    actor: Actor,
    policy_id: str,
    *,
    request_id: str,
    member_id: str,
    minutes: int,
    reason: str,
    now: datetime | None = None,
) -> PoolGrant:
    """Grant pool minutes to a member, with a reason, within the policy's caps.

    The request id (a UUID) makes it idempotent: a retry returns the first answer, the
    same id with other minutes or another reason is a conflict. Over a cap, what fits is
    issued and the rest reported; nothing fitting at all is refused (`pool-cap-reached`).
    """
    from scambio.store.people_tables import members
    from scambio.timebank import audit

    moment = _clock(tb, now)
    kinds = load_kinds()
    async with reading(tb.engine) as conn:
        loaded = await load_policy(conn, policy_id, kinds)
        if loaded is None:
            raise RuleViolation(
                "policy-not-found", f"policy {policy_id!r} does not exist", policy=policy_id
            )
        if loaded.kind.timing != ON_REQUEST:
            raise RuleViolation(
                "not-a-pool-policy",
                f"policy {policy_id!r} is a {loaded.policy.kind} policy, not a pool",
                policy=policy_id,
            )
        if loaded.status != "active":
            raise RuleViolation(
                "policy-retired", f"policy {policy_id!r} is retired", policy=policy_id
            )
        member = (
            await conn.execute(
                select(members.c.status, members.c.account_id).where(members.c.id == member_id)
            )
        ).one_or_none()
        if member is None:
            raise RuleViolation(
                "member-not-found", f"member {member_id!r} does not exist", member=member_id
            )
        if member.status != "active" or member.account_id is None:
            raise RuleViolation(
                "invalid-status",
                f"member {member_id} is {member.status}, not active",
                member=member_id,
                current_status=member.status,
            )
        account = str(member.account_id)
        subject = f"{account}.{request_id}"
        earlier = (
            await conn.execute(
                select(policy_issues).where(
                    policy_issues.c.policy_id == policy_id,
                    policy_issues.c.rule == "pool-grant",
                    policy_issues.c.subject == subject,
                )
            )
        ).one_or_none()
    if earlier is not None:
        for name, stored, asked in (
            ("minutes", earlier.wanted, minutes),
            ("reason", earlier.memo, reason),
        ):
            if stored != asked:
                raise RuleViolation(
                    "idempotency-conflict",
                    f"id {request_id!r} was already used for a different request: {name} differs",
                    field=name,
                )
        period = _period(loaded.policy, earlier.period)
    else:
        period = period_at(loaded.policy.every, moment)
    if not loaded.runs_in(period):
        raise RuleViolation(
            "policy-not-running",
            f"policy {policy_id!r} does not run in {period.label} (see its schedule)",
            policy=policy_id,
        )
    request = PoolRequest(
        id=request_id, member_id=member_id, account=account, minutes=minutes, reason=reason
    )
    run = await _run(tb, loaded, period, moment, issue=True, requests=[request])
    if run.skipped:
        raise RuleViolation("policy-not-running", run.skipped, policy=policy_id)
    posting = next((p for p in run.postings if p.subject == subject), None)
    if posting is None:  # pragma: no cover - the pool kind answers every request
        raise RuleViolation("pool-cap-reached", "the pool policy issued nothing")
    if posting.status == SHORT or (posting.status == NOTHING and posting.minutes == 0):
        raise RuleViolation(
            "pool-cap-reached",
            f"nothing can be granted: {posting.why}; the pool's budget for {period.label} "
            f"has {max(0, (run.budget_minutes or 0) - run.budget_used)} minutes left"
            if run.budget_minutes is not None
            else f"nothing can be granted: {posting.why}",
            policy=policy_id,
            member=member_id,
        )
    if posting.status in (FAILED, REFUSED):
        code, _sep, detail = (posting.error or "failed: the ledger refused").partition(": ")
        raise RuleViolation(code, f"nothing was granted: {detail}", policy=policy_id)
    created = posting.status == ISSUED
    if created:
        async with writing(tb.engine) as conn:
            await audit.record(
                conn,
                actor,
                POOL_GRANTED,
                "policy",
                policy_id,
                at=format_time(moment),
                reason=reason,
                details={
                    "member": member_id,
                    "minutes": posting.minutes,
                    "asked": minutes,
                    "request": request_id,
                    "ledger_index": posting.entry_index,
                },
            )
    return PoolGrant(
        id=request_id,
        policy=policy_id,
        period=period.label,
        member=member_id,
        account=account,
        wanted=minutes,
        minutes=posting.minutes,
        not_issued=minutes - posting.minutes,
        reason=reason,
        entry_id=posting.entry_id,
        entry_index=posting.entry_index,
        created=created,
        why=posting.why,
    )
