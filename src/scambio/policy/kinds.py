"""The typed protocol every policy kind implements, and the registry of kinds.

A kind is a pure function: given a `Context` (who is enrolled, what help they gave, which
sponsored credit is due to expire, what was issued already in the period) and its typed
parameters, it returns the postings it proposes, each with the rule that fired and why.
It never writes: the runner caps proposals to the budget, checks them, and issues them
through the ledger service.

The four built-in kinds live in `builtin`. Other Python packages add kinds through the
entry point group ``scambio.policies``: each entry point names an object with the same
attributes as the built-ins (see `PolicyKind`). A kind whose name clashes with a built-in
is refused, so that installing a package cannot change what an existing policy means.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Final, Protocol, runtime_checkable

import msgspec

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "scambio.policies"
KIND_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: A rule name (the `rule` annotation of what a policy issues).
RULE_RE: Final = re.compile(r"[a-z][a-z-]{0,31}")

# The rules the built-in kinds fire (the `rule` annotation; the reports read them).
GRANT: Final = "grant"
SPEND: Final = "spend"
EXPIRY: Final = "expiry"
MATCH: Final = "match"
STAFF_TIME: Final = "staff-time"
POOL_GRANT: Final = "pool-grant"

#: When a kind's periodic postings are due: at the start of a period (grants), once it has
#: ended (matching, staff time: they count what happened in it), or never (the pool,
#: whose grants a manager asks for).
AT_START: Final = "start"
AT_END: Final = "end"
ON_REQUEST: Final = "none"
TIMINGS: Final = (AT_START, AT_END, ON_REQUEST)

# What a kind may ask the runner to load into its context.
NEEDS_MEMBERS: Final = "members"
NEEDS_GIVEN: Final = "given"
NEEDS_LOTS: Final = "lots"


class PolicyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    version: str
    #: The sponsoring organisation's id (None: a community policy, such as the pool).
    sponsor: str | None
    #: `sponsor:<org id>`: the account the sponsor issues credit from (unbounded).
    sponsor_account: str | None
    #: `o-<org id>`: the organisation's own time account (what its staff earned).
    org_account: str | None
    budget_minutes: int | None


class Member(msgspec.Struct, frozen=True, kw_only=True):
    """An enrolled member (or one named in the policy)."""

    member_id: str
    account: str
    #: Their restricted account for this sponsor (`restricted:<org id>:<member id>`).
    restricted: str | None
    zone: str | None


class Given(msgspec.Struct, frozen=True, kw_only=True):
    """Help an enrolled member (or the sponsor's own account) gave in the period."""

    account: str
    #: `exchange` or `group`, and its id.
    source: str
    id: str
    minutes: int
    area: str | None
    zone: str | None
    at: str


class Lot(msgspec.Struct, frozen=True, kw_only=True):
    """Sponsored credit granted once (one grant entry) that has reached its expiry."""

    member_id: str
    account: str
    restricted: str
    period: str
    granted: int
    #: Not yet spent (spending draws on the soonest-expiring lots first).
    unspent: int
    #: What the restricted account can give back now (minutes held by open exchanges stay).
    available: int
    expires_at: str


class Issued(msgspec.Struct, frozen=True, kw_only=True):
    """What the policy issued already in this period."""

    rule: str
    subject: str
    minutes: int


class PoolRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A manager's request to grant pool minutes to a member."""

    id: str
    member_id: str
    account: str
    minutes: int
    reason: str


class Context(msgspec.Struct, frozen=True, kw_only=True):
    policy: PolicyInfo
    period: str
    period_start: str
    period_end: str
    now: str
    members: tuple[Member, ...] = ()
    given: tuple[Given, ...] = ()
    lots: tuple[Lot, ...] = ()
    issued: tuple[Issued, ...] = ()
    requests: tuple[PoolRequest, ...] = ()


class Proposed(msgspec.Struct, frozen=True, kw_only=True):
    """One posting a kind proposes, and why (what `scambio policy simulate` prints)."""

    rule: str
    #: Whom it is for: a member's account, or an account plus a request id; with the
    #: policy, period and rule it makes the entry id, so it is issued at most once.
    subject: str
    payer: str
    payee: str
    minutes: int
    why: str
    #: The period the posting belongs to (None: the context's). An expiry belongs to the
    #: period of the grant it returns.
    period: str | None = None
    memo: str = ""
    #: Whether it counts against the sponsor's budget (returns of expired credit do not).
    counts: bool = True


@runtime_checkable
class PolicyKind(Protocol):
    """What a kind provides (built-in or from an entry point)."""

    name: str
    #: A msgspec Struct type (forbid_unknown_fields) for the `[params]` table.
    params_type: type[Any]
    timing: str
    needs_sponsor: bool
    needs: frozenset[str]

    def check(self, params: Any) -> list[tuple[str, str]]:
        """Semantic checks beyond the types: (field within params, what is expected)."""
        ...

    def propose(self, params: Any, ctx: Context) -> Sequence[Proposed]:
        """The postings this policy proposes in `ctx` (pure: no I/O, no clock)."""
        ...


class KindError(ValueError):
    """An entry point that does not provide a usable policy kind."""


def _check_kind(kind: Any, where: str) -> PolicyKind:
    if not isinstance(kind, PolicyKind):
        raise KindError(f"{where}: not a policy kind (needs name, params_type, propose, ...)")
    if not isinstance(kind.name, str) or not KIND_NAME_RE.fullmatch(kind.name):
        raise KindError(f"{where}: kind name must match {KIND_NAME_RE.pattern}")
    if not (isinstance(kind.params_type, type) and issubclass(kind.params_type, msgspec.Struct)):
        raise KindError(f"{where}: params_type must be a msgspec Struct type")
    if kind.timing not in TIMINGS:
        raise KindError(f"{where}: timing must be one of {', '.join(TIMINGS)}")
    return kind


def builtin_kinds() -> dict[str, PolicyKind]:
    from scambio.policy import builtin

    return {kind.name: kind for kind in builtin.KINDS}


def load_kinds() -> dict[str, PolicyKind]:
    """The built-in kinds plus those other packages register under ``scambio.policies``.

    A broken entry point is logged and skipped (a policy of that kind then fails to load,
    naming its kind as unknown); it never hides the built-ins.
    """
    kinds = builtin_kinds()
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {entry.name} = {entry.value}"
        try:
            loaded = entry.load()
            kind = _check_kind(loaded() if isinstance(loaded, type) else loaded, where)
        except Exception as exc:
            log.error("policy kind from %s not loaded: %s", where, exc)
            continue
        if kind.name in kinds:
            log.error("policy kind from %s not loaded: kind %r exists already", where, kind.name)
            continue
        kinds[kind.name] = kind
    return kinds
