"""The exchange workflow as a pure state machine: states, moves, who may make each move,
and what each move asks of the ledger. No I/O: `timebank.exchanges` reads an exchange,
asks `step` whether a move is allowed, and then performs it with a compare-and-set.

The life of an exchange::

    proposed --accept--> accepted --done--> done --confirm / auto-confirm--> confirmed
       |                    |  |              |
       +--decline/cancel    |  +--expire      +--dispute--> disputed --resolve--> resolved
                            +--cancel, dispute

- The receiver of help pays the provider. `accept` holds the agreed minutes on the
  receiver's account; `confirm` (or `auto-confirm`, after a configurable number of days)
  posts the minutes the provider reported at `done`; `decline`, `cancel` and `expire`
  void the hold; a manager `resolve`s a dispute by posting all, part (`minutes`) or none
  (a void) of the hold.
- A proposal names who proposed it (the provider's side, the receiver's side, or a
  manager introducing two members). The other side - the counterpart - accepts or
  declines; when a manager proposed, the receiver accepts, because it is their minutes
  that are held.
- Managers act community-wide on any move a party could make, except that they do not
  dispute (they resolve), and never resolve a dispute they are party to. `system` is the
  scheduled job (auto-confirm and expiry).

Every ledger entry an exchange produces has an id derived from the exchange's id (see
`entry_id`), so a retried or racing ledger call finds the entry already written instead
of writing a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from scambio.ledger.errors import RuleViolation

# -- states ------------------------------------------------------------------------------------

PROPOSED: Final = "proposed"
ACCEPTED: Final = "accepted"
DONE: Final = "done"
CONFIRMED: Final = "confirmed"
DECLINED: Final = "declined"
CANCELLED: Final = "cancelled"
DISPUTED: Final = "disputed"
RESOLVED: Final = "resolved"
EXPIRED: Final = "expired"

STATES: Final = (
    PROPOSED,
    ACCEPTED,
    DONE,
    CONFIRMED,
    DECLINED,
    CANCELLED,
    DISPUTED,
    RESOLVED,
    EXPIRED,
)
#: States nothing moves out of.
FINAL_STATES: Final = frozenset({CONFIRMED, DECLINED, CANCELLED, RESOLVED, EXPIRED})
#: States in which minutes changed hands (or may have: a resolution of 0 is a void).
SETTLED_STATES: Final = frozenset({CONFIRMED, RESOLVED})

# -- who ---------------------------------------------------------------------------------------

PROVIDER: Final = "provider"
RECEIVER: Final = "receiver"
PROPOSER: Final = "proposer"
COUNTERPART: Final = "counterpart"
MANAGER: Final = "manager"
SYSTEM: Final = "system"
SIDES: Final = (PROVIDER, RECEIVER)

# -- what the ledger is asked to do ------------------------------------------------------------

NOTHING: Final = "nothing"
HOLD: Final = "hold"
POST: Final = "post"
VOID: Final = "void"
#: A resolution: post the minutes the manager decided, or void when they decided 0.
POST_OR_VOID: Final = "post-or-void"

# -- actions -----------------------------------------------------------------------------------

ACCEPT: Final = "accept"
DECLINE: Final = "decline"
CANCEL: Final = "cancel"
MARK_DONE: Final = "done"
CONFIRM: Final = "confirm"
AUTO_CONFIRM: Final = "auto-confirm"
DISPUTE: Final = "dispute"
RESOLVE: Final = "resolve"
EXPIRE: Final = "expire"
THANK: Final = "thank"
#: Actions people take through the API (in the order a client would offer them).
USER_ACTIONS: Final = (ACCEPT, DECLINE, CANCEL, MARK_DONE, CONFIRM, DISPUTE, RESOLVE)

#: Most minutes one exchange may agree: 100 hours. A timebank exchange is a session of
#: help, not a job; more than this is almost certainly a typing mistake.
EXCHANGE_MAX_MINUTES: Final = 6000
TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 2000
REASON_MAX: Final = 1000
THANKS_MAX: Final = 500

ENTRY_PREFIX: Final = "xch-"
GROUP_PREFIX: Final = "grp-"


@dataclass(frozen=True, slots=True)
class Step:
    """One allowed move: where it leads, who may make it, and its ledger effect."""

    target: str
    who: frozenset[str]
    effect: str


def _step(target: str, effect: str, *who: str) -> Step:
    return Step(target, frozenset(who), effect)


#: (action, from state) -> step. Anything absent is not possible.
STEPS: Final[dict[tuple[str, str], Step]] = {
    (ACCEPT, PROPOSED): _step(ACCEPTED, HOLD, COUNTERPART, MANAGER),
    # Voiding on decline and on cancelling a proposal releases a hold left behind by an
    # accept that lost a race or crashed between its hold and its state change.
    (DECLINE, PROPOSED): _step(DECLINED, VOID, COUNTERPART, MANAGER),
    (CANCEL, PROPOSED): _step(CANCELLED, VOID, PROPOSER, MANAGER),
    (CANCEL, ACCEPTED): _step(CANCELLED, VOID, PROVIDER, RECEIVER, MANAGER),
    (MARK_DONE, ACCEPTED): _step(DONE, NOTHING, PROVIDER, MANAGER),
    (CONFIRM, DONE): _step(CONFIRMED, POST, RECEIVER, MANAGER),
    (AUTO_CONFIRM, DONE): _step(CONFIRMED, POST, SYSTEM),
    (DISPUTE, ACCEPTED): _step(DISPUTED, NOTHING, PROVIDER, RECEIVER),
    (DISPUTE, DONE): _step(DISPUTED, NOTHING, PROVIDER, RECEIVER),
    (RESOLVE, DISPUTED): _step(RESOLVED, POST_OR_VOID, MANAGER),
    (EXPIRE, ACCEPTED): _step(EXPIRED, VOID, SYSTEM),
}


def roles(
    *, holds_provider: bool, holds_receiver: bool, proposer_side: str | None, manager: bool
) -> frozenset[str]:
    """The roles a caller has on one exchange, from which accounts they hold."""
    found: set[str] = set()
    if holds_provider:
        found.add(PROVIDER)
    if holds_receiver:
        found.add(RECEIVER)
    if proposer_side is not None and proposer_side in found:
        found.add(PROPOSER)
    counterpart = counterpart_side(proposer_side)
    if counterpart in found:
        found.add(COUNTERPART)
    if manager:
        found.add(MANAGER)
    return frozenset(found)


def counterpart_side(proposer_side: str | None) -> str:
    """Who answers a proposal: the other side, or the paying receiver if a manager proposed."""
    if proposer_side == RECEIVER:
        return PROVIDER
    return RECEIVER


def is_party(who: frozenset[str]) -> bool:
    return PROVIDER in who or RECEIVER in who


def invalid_transition(exchange_id: str, state: str, action: str) -> RuleViolation:
    return RuleViolation(
        "invalid-transition",
        f"exchange {exchange_id} is {state}: {action} is not possible now",
        exchange=exchange_id,
        current_state=state,
        action=action,
    )


def _allowed(step: Step, who: frozenset[str], action: str) -> bool:
    if action == RESOLVE and is_party(who):
        # A manager who is a party to the exchange may not judge it.
        return False
    return bool(step.who & who)


def step(exchange_id: str, state: str, action: str, who: frozenset[str]) -> Step:
    """The step `who` may take with `action` from `state`; raise why not otherwise.

    A caller with no role in any form of the action is `forbidden` (403), whatever the
    state; one who could act but not now gets `invalid-transition` (409) with the state.
    """
    current = STEPS.get((action, state))
    if current is not None and _allowed(current, who, action):
        return current
    forms = [s for (name, _), s in STEPS.items() if name == action]
    if not any(_allowed(s, who, action) for s in forms):
        raise RuleViolation(
            "forbidden", f"you may not {action} exchange {exchange_id}", exchange=exchange_id
        )
    raise invalid_transition(exchange_id, state, action)


def reached_by(state: str, action: str) -> bool:
    """Whether `state` is where `action` leads: a repeat of a move already made (say, a
    confirmation retried, or two at once) is answered with the exchange as it is."""
    return any(s.target == state for (name, _), s in STEPS.items() if name == action)


def may_repeat(action: str, who: frozenset[str]) -> bool:
    return any(_allowed(s, who, action) for (name, _), s in STEPS.items() if name == action)


def available(state: str, who: frozenset[str]) -> list[str]:
    """The actions `who` may take now, for clients to offer as buttons."""
    return [
        action
        for action in USER_ACTIONS
        if (s := STEPS.get((action, state))) is not None and _allowed(s, who, action)
    ]


def needs_transfer_scope(action: str, who: frozenset[str]) -> bool:
    """Whether this act commits the caller's own minutes, which needs the `transfer` scope.

    A receiver proposing, accepting or confirming spends from their account; a manager
    acting on someone else's behalf is covered by their role instead.
    """
    if MANAGER in who:
        return False
    return RECEIVER in who and action in ("propose", ACCEPT, CONFIRM)


# -- amounts -----------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_agreed(minutes: int, field: str = "minutes") -> int:
    if not _is_int(minutes) or not 1 <= minutes <= EXCHANGE_MAX_MINUTES:
        raise RuleViolation(
            "invalid-amount",
            f"{field} must be a whole number from 1 to {EXCHANGE_MAX_MINUTES}",
            field=field,
        )
    return minutes


def check_actual(minutes: int, agreed: int) -> int:
    """Minutes the provider reports: at least 1, at most what was agreed (and held)."""
    check_agreed(minutes)
    if minutes > agreed:
        raise RuleViolation(
            "exceeds-agreed",
            f"{minutes} minutes is more than the {agreed} agreed and held; propose a new "
            "exchange for the difference",
            agreed=agreed,
            field="minutes",
        )
    return minutes


def check_resolution(minutes: int, held: int) -> int:
    """What a manager decides: 0 (void) up to the minutes held."""
    if not _is_int(minutes) or minutes < 0:
        raise RuleViolation(
            "invalid-amount", "minutes must be a whole number, 0 or more", field="minutes"
        )
    if minutes > held:
        raise RuleViolation(
            "exceeds-agreed",
            f"{minutes} minutes is more than the {held} held",
            agreed=held,
            field="minutes",
        )
    return minutes


# -- deadlines ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each phase may last, in days.

    The hold must outlast everything that can still post it: the provider has `done_days`
    after acceptance to report the exchange done, the receiver `confirm_days` after that to
    confirm or dispute (then it confirms itself), and a manager `resolve_days` more to
    resolve a dispute. The hold's expiry is their sum, so an exchange is never confirmed
    against a hold the ledger has already let expire; past it, a resolution falls back to
    a plain transfer (see `timebank.exchanges`).
    """

    confirm_days: int = 7
    done_days: int = 90
    resolve_days: int = 30

    def __post_init__(self) -> None:
        for name in ("confirm_days", "done_days", "resolve_days"):
            value = getattr(self, name)
            if not _is_int(value) or not 1 <= value <= 3660:
                raise ValueError(f"{name} must be 1 to 3660 days, got {value!r}")

    @property
    def hold_seconds(self) -> int:
        return (self.done_days + self.confirm_days + self.resolve_days) * 86400

    def done_due(self, accepted: datetime) -> datetime:
        return accepted + timedelta(days=self.done_days)

    def confirm_due(self, done: datetime) -> datetime:
        return done + timedelta(days=self.confirm_days)


def policy_from(settings: Any) -> Policy:
    """The policy from settings, where they carry it (`exchange_confirm_days` and friends),
    else the defaults. Read through `getattr` until `Settings` grows these fields."""
    default = Policy()
    return Policy(
        confirm_days=int(getattr(settings, "exchange_confirm_days", default.confirm_days)),
        done_days=int(getattr(settings, "exchange_done_days", default.done_days)),
        resolve_days=int(getattr(settings, "exchange_resolve_days", default.resolve_days)),
    )


# -- ledger entry ids --------------------------------------------------------------------------


def entry_id(exchange_id: str) -> str:
    """The id of the exchange's hold (or, for a recorded exchange, its transfer).

    The appender derives `<id>:post` and `<id>:void` from it; a resolution that finds the
    hold expired pays with a transfer `<id>.settle`. Ids the exchange chooses itself for
    transfers use `.`, never `:`, which the appender keeps for the ids it derives.
    """
    return f"{ENTRY_PREFIX}{exchange_id}"


def settle_id(exchange_id: str) -> str:
    return f"{entry_id(exchange_id)}.settle"


def group_entry_id(group_id: str, seq: int) -> str:
    return f"{GROUP_PREFIX}{group_id}.{seq}"


def memo(exchange_id: str, *, recorded: bool = False) -> str:
    """The ledger memo names the exchange and nothing else: titles are people's words and
    may be personal, and the log can never forget them, so they stay in the exchange."""
    return f"exchange {exchange_id}" + (" (recorded by a manager)" if recorded else "")


def group_memo(group_id: str) -> str:
    return f"group exchange {group_id}"


def ledger_refs(
    exchange_id: str, area: str | None, *, group: bool = False, zone: str | None = None
) -> dict[str, str]:
    """The annotation refs of an exchange's ledger entries (see ledger/SPEC.md): which
    exchange or group they settle and its area and zone, so that an export alone gives
    hours by area (co-production reports). Nothing personal: ids and codes only."""
    refs = {"group" if group else "exchange": exchange_id}
    if area:
        refs["area"] = area
    if zone:
        refs["zone"] = zone
    return refs


_UUID_LEN: Final = 36


def parse_entry_id(entry: str) -> tuple[str, str] | None:
    """("exchange" | "group", uuid) for an entry id an exchange produced, else None."""
    for prefix, kind in ((ENTRY_PREFIX, "exchange"), (GROUP_PREFIX, "group")):
        if entry.startswith(prefix):
            rest = entry[len(prefix) :]
            ident = rest[:_UUID_LEN]
            tail = rest[_UUID_LEN:]
            if len(ident) == _UUID_LEN and (tail == "" or tail[0] in ":."):
                return kind, ident
    return None


# -- group exchanges ---------------------------------------------------------------------------

SELF: Final = "self"
POOL: Final = "pool"
PAID_BY: Final = (SELF, POOL)
FACILITATORS_MAX: Final = 20
PARTICIPANTS_MAX: Final = 400


@dataclass(frozen=True, slots=True)
class Leg:
    """One transfer of a group settlement. `participant` is whose share it pays (None
    for the pool's combined share)."""

    payer: str
    payee: str
    minutes: int
    participant: str | None


def plan_group(
    minutes: int,
    facilitators: list[str],
    participants: list[tuple[str, str]],
    pool: str,
) -> list[Leg]:
    """Split a group session into transfers that sum to what the facilitators gave.

    Each facilitator is credited `minutes`. The total is shared equally among the
    participants present (the first `total % n` pay one minute more, so nothing is lost
    to rounding); a participant's share is paid by them or, as the manager set, by the
    community pool, whose shares are combined. Payers are matched to facilitators in
    order (the north-west corner rule), which needs at most payers + facilitators - 1
    transfers, each with exactly one payer and one payee as ledger entries require.
    """
    if not facilitators or not participants:
        raise RuleViolation("invalid-group", "a group needs facilitators and participants")
    total = minutes * len(facilitators)
    base, extra = divmod(total, len(participants))
    sources: list[tuple[str, int, str | None]] = []
    pooled = 0
    for position, (account, paid_by) in enumerate(participants):
        share = base + (1 if position < extra else 0)
        if share == 0:
            continue
        if paid_by == POOL:
            pooled += share
        else:
            sources.append((account, share, account))
    if pooled:
        sources.append((pool, pooled, None))
    legs: list[Leg] = []
    room = [minutes] * len(facilitators)
    sink = 0
    for payer, share, participant in sources:
        left = share
        while left:
            amount = min(left, room[sink])
            legs.append(Leg(payer, facilitators[sink], amount, participant))
            left -= amount
            room[sink] -= amount
            if room[sink] == 0:
                sink += 1
    assert sum(leg.minutes for leg in legs) == total
    return legs
