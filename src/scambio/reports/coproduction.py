"""The co-production report: what the timebank's ledger says about the help people gave.

Pure functions over ledger entries (no I/O): `scambio.reports.live` feeds them from the
database, `scambio.reports.offline` from an export, and both must give byte-identical
reports. Everything a figure depends on is either in the ledger or in the *directory*
(`Directory`: each account's zone and organisations, as recorded when the report is
computed), whose SHA-256 the report states.

## Which entries

A report covers `[from, to)` (UTC dates, `to` exclusive) of the ledger at a signed
checkpoint of size N. Its entries are the index range `[first, end)` where `first` is the
partition point of entry times for `from` over `[0, N)` (binary search: the first entry
whose time is not before `from`, assuming times increase with the index, as they do
unless appending processes' clocks disagree) and `end` the same for `to`. The report
states N, the root and both indexes, so a recompute takes exactly the same entries.

## Events

- An **exchange** is a `transfer` or `post` whose annotations (a post's are those of the
  hold it carries out) name an `exchange` or a `group`: exchange settlements, exchanges a
  manager recorded, and each transfer of a group exchange. Its payer received help, its
  payee gave it; its minutes are those credited. Its area is the `area` annotation (rows
  `area=none` when absent), and a group's `zone` annotation is an extra zone.
- A **policy** entry is a `transfer` or `post` whose `rule` annotation is one of `grant`,
  `spend`, `expiry`, `match`, `staff-time`, `pool-grant` (issued by a sponsorship policy).
- A **reversal** of either counts against the figures of the original's kind, area and
  parties, in the reversal's own month (`reversed_minutes`); it adds no exchange, member
  or pair.
- **New members**: accounts of kind member or organisation opened (their `account:<id>`
  entry) within the range.

*Participants* are accounts of ledger kind member or organisation (pools, sponsors and the
node's accounts are not people). A group exchange participant whose share the community
pool paid does not appear: the ledger shows the pool paying (the group's own record, not
the ledger, names them). A *pair* is an unordered pair of participants who were
payer and payee of an exchange; it is a *new connection* when their first exchange entry
in the whole ledger is within the range.

## Rows

One row per dimension value, each with the same figures:

- `total`: every event and participant;
- `month` (YYYY-MM of the entry time): events of that month;
- `area`: exchanges with that area (`none`: without one), policy entries annotated with it;
- `zone`: events where a party's directory zone, or the group's zone, is that zone;
  member figures count only that zone's residents;
- `organisation`: events where a party is the organisation's account or one of its
  employees (active employee link); member figures count only those.

So a cross-zone exchange counts in both zones' rows, and rows of one dimension need not
add up to the total. Figures: `minutes_exchanged` (net of reversals), `exchanges`
(distinct exchanges and group exchanges), `reversed_minutes`, `active_members` (gave or
received), `new_members` (not for areas), `reciprocal_members` (both gave and received),
`reciprocity_pct` (their share of the active, one decimal, null when none is active),
`distinct_pairs`, `new_connections`, `cross_zone_exchanges` (parties with different known
zones), and per policy rule `staff_time_minutes`, `sponsored_granted_minutes`,
`sponsored_spent_minutes`, `sponsored_expired_minutes`, `matched_minutes`,
`pool_granted_minutes` (net of reversals). Amounts are minutes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from scambio.ledger.entry import (
    KIND_ACCOUNT,
    KIND_HOLD,
    KIND_POST,
    KIND_REVERSAL,
    KIND_TRANSFER,
    Entry,
)

REPORT_FORMAT: Final = "scambio-coproduction-report"
REPORT_VERSION: Final = 1
DIRECTORY_FORMAT: Final = "scambio-directory"

PARTICIPANT_KINDS: Final = frozenset({"member", "organisation"})
#: Policy rules and the figure each one feeds.
RULE_FIGURES: Final = {
    "staff-time": "staff_time_minutes",
    "grant": "sponsored_granted_minutes",
    "spend": "sponsored_spent_minutes",
    "expiry": "sponsored_expired_minutes",
    "match": "matched_minutes",
    "pool-grant": "pool_granted_minutes",
}
DIMENSIONS: Final = ("total", "month", "area", "zone", "organisation")
FIGURES: Final = (
    "minutes_exchanged",
    "exchanges",
    "reversed_minutes",
    "active_members",
    "new_members",
    "reciprocal_members",
    "reciprocity_pct",
    "distinct_pairs",
    "new_connections",
    "cross_zone_exchanges",
    *RULE_FIGURES.values(),
)
NO_AREA: Final = "none"

Pair = tuple[str, str]


# -- the directory -----------------------------------------------------------------------------


class DirectoryAccount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    zone: str | None
    #: Organisation ids: its own for an organisation's account, its employers' for a member.
    organisations: list[str]


class DirectoryOrganisation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str


class Directory(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who is where: the one input of a report that is not in the ledger."""

    format: str
    version: int
    accounts: list[DirectoryAccount]
    organisations: list[DirectoryOrganisation]

    @classmethod
    def build(
        cls, accounts: Iterable[DirectoryAccount], organisations: Iterable[DirectoryOrganisation]
    ) -> Directory:
        return cls(
            format=DIRECTORY_FORMAT,
            version=1,
            accounts=sorted(accounts, key=lambda a: a.account),
            organisations=sorted(organisations, key=lambda o: o.id),
        )

    def canonical(self) -> bytes:
        """RFC 8785 bytes: keys sorted, strings and lists only (`canonical_json`'s encoder)."""
        return _sorted_encoder.encode(self)

    def digest(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


_directory_decoder: Final = msgspec.json.Decoder(Directory)
_sorted_encoder: Final = msgspec.json.Encoder(order="sorted")


def decode_directory(data: bytes | str) -> Directory:
    directory = _directory_decoder.decode(data)
    if directory.format != DIRECTORY_FORMAT or directory.version != 1:
        raise ValueError(f"not a {DIRECTORY_FORMAT} version 1 document")
    return directory


# -- events ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """One exchange or policy movement (not frozen: tens of thousands are made per report,
    and a frozen dataclass is several times slower to build; nothing changes one)."""

    index: int
    #: YYYY-MM of the entry's time.
    month: str
    #: "exchange" or "policy".
    kind: str
    #: exchange:<id> or group:<id> for exchanges; the rule for policy entries.
    key: str
    payer: str
    payee: str
    #: Negative for a reversal.
    minutes: int
    area: str | None
    zone: str | None
    reversal: bool = False


def _movement(entry: Entry) -> tuple[str, str, int] | None:
    """(payer, payee, minutes): the first debit's account, the first credit's account and
    all minutes credited (Scambio writes two legs: the debit, then the credit)."""
    postings = entry.postings
    if len(postings) == 2:
        debit, credit = postings
        if debit.minutes < 0 < credit.minutes:
            return debit.account, credit.account, credit.minutes
    debits = [p for p in postings if p.minutes < 0]
    credits = [p for p in postings if p.minutes > 0]
    if not debits or not credits:
        return None
    return debits[0].account, credits[0].account, sum(p.minutes for p in credits)


def _note(refs: Mapping[str, str | int], key: str) -> str | None:
    value = refs.get(key)
    return value if isinstance(value, str) else None


def classify(entry: Entry, hold: Entry | None = None) -> Event | None:
    """The exchange or policy event a transfer or post is, if any.

    A post's annotations are its hold's: pass the hold entry (`refs.hold`). Only annotation
    keys are read (exchange, group, area, zone, rule), and only string values count.
    """
    if entry.kind == KIND_TRANSFER:
        refs = entry.refs
    elif entry.kind == KIND_POST and hold is not None and hold.kind == KIND_HOLD:
        refs = hold.refs
    else:
        return None
    exchange, group, rule = _note(refs, "exchange"), _note(refs, "group"), _note(refs, "rule")
    if exchange is not None:
        kind, key = "exchange", f"exchange:{exchange}"
    elif group is not None:
        kind, key = "exchange", f"group:{group}"
    elif rule is not None and rule in RULE_FIGURES:
        kind, key = "policy", rule
    else:
        return None
    moved = _movement(entry)
    if moved is None:
        return None
    payer, payee, minutes = moved
    return Event(
        entry.index, entry.time[:7], kind, key, payer, payee, minutes,
        _note(refs, "area"), _note(refs, "zone"),
    )  # fmt: skip


def reversal_of(entry: Entry, original: Event | None) -> Event | None:
    """The event a reversal is: the original's, negated, in the reversal's month."""
    if entry.kind != KIND_REVERSAL or original is None:
        return None
    return Event(
        entry.index, entry.time[:7], original.kind, original.key, original.payer,
        original.payee, -original.minutes, original.area, original.zone, reversal=True,
    )  # fmt: skip


def opened_account(entry: Entry) -> tuple[str, str] | None:
    """(account, kind) when `entry` opens an account (not a limit change)."""
    spec = entry.account
    if entry.kind != KIND_ACCOUNT or spec is None or entry.id != f"account:{spec.id}":
        return None
    return spec.id, spec.kind


def hold_ref(entry: Entry) -> int | None:
    value = entry.refs.get("hold") if entry.kind == KIND_POST else None
    return value if isinstance(value, int) else None


def reversal_ref(entry: Entry) -> int | None:
    value = entry.refs.get("reverses") if entry.kind == KIND_REVERSAL else None
    return value if isinstance(value, int) else None


def pair_of(event: Event) -> Pair:
    a, b = event.payer, event.payee
    return (a, b) if a <= b else (b, a)


# -- which entries: partition points -----------------------------------------------------------


def boundary(date: str) -> str:
    """The entry time at which a date (YYYY-MM-DD) starts."""
    return f"{date}T00:00:00.000000Z"


def partition_point(size: int, time: str, time_at: Callable[[int], str]) -> int:
    """The first index in [0, size) whose time is not before `time`, by binary search."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if time_at(middle) < time:
            low = middle + 1
        else:
            high = middle
    return low


async def partition_point_async(
    size: int, time: str, time_at: Callable[[int], Awaitable[str]]
) -> int:
    """`partition_point` with an asynchronous probe (the same probes, the same answer)."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        if await time_at(middle) < time:
            low = middle + 1
        else:
            high = middle
    return low


# -- the rows ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Row:
    minutes: int = 0
    reversed: int = 0
    exchanges: set[str] = field(default_factory=set)
    gave: set[str] = field(default_factory=set)
    received: set[str] = field(default_factory=set)
    pairs: set[Pair] = field(default_factory=set)
    cross_zone: int = 0
    new_members: set[str] = field(default_factory=set)
    policy: dict[str, int] = field(default_factory=dict)


def _percent(part: int, whole: int) -> str | None:
    if whole == 0:
        return None
    tenths = (1000 * part + whole // 2) // whole
    return f"{tenths // 10}.{tenths % 10}"


class Builder:
    """Accumulates the events of a report's range into its rows."""

    def __init__(self, directory: Directory, kinds: Mapping[str, str]) -> None:
        self.kinds = kinds
        self.zone: dict[str, str] = {}
        self.orgs: dict[str, list[str]] = {}
        for item in directory.accounts:
            if item.zone is not None:
                self.zone[item.account] = item.zone
            if item.organisations:
                self.orgs[item.account] = list(item.organisations)
        self.rows: dict[tuple[str, str], _Row] = {}
        #: Pairs of participants who exchanged in the range.
        self.pairs: set[Pair] = set()
        self._accounts: dict[str, tuple[bool, str | None, tuple[str, ...]]] = {}

    def participant(self, account: str) -> bool:
        return self.kinds.get(account) in PARTICIPANT_KINDS

    def _info(self, account: str) -> tuple[bool, str | None, tuple[str, ...]]:
        """(is a participant, zone, organisations) of an account, computed once."""
        info = self._accounts.get(account)
        if info is None:
            info = self._accounts[account] = (
                self.participant(account),
                self.zone.get(account),
                tuple(self.orgs.get(account, ())),
            )
        return info

    def _row(self, dimension: str, key: str) -> _Row:
        row = self.rows.get((dimension, key))
        if row is None:
            row = self.rows[(dimension, key)] = _Row()
        return row

    def add_event(self, event: Event) -> None:
        """Add an event to every row it belongs to (see the module text): the total, its
        month, its area, its parties' zones (and a group's zone), their organisations.
        Member figures of a zone or organisation row count only that zone's residents or
        that organisation's people."""
        payer_in, payer_zone, payer_orgs = self._info(event.payer)
        payee_in, payee_zone, payee_orgs = self._info(event.payee)
        #: (row, count the payee as giving, count the payer as receiving)
        targets = [
            (self._row("total", ""), payee_in, payer_in),
            (self._row("month", event.month), payee_in, payer_in),
        ]
        if event.kind == "exchange" or event.area is not None:
            targets.append((self._row("area", event.area or NO_AREA), payee_in, payer_in))
        zones = {payer_zone, payee_zone, event.zone}
        zones.discard(None)
        for zone in zones:
            assert zone is not None
            targets.append(
                (
                    self._row("zone", zone),
                    payee_in and payee_zone == zone,
                    payer_in and payer_zone == zone,
                )
            )
        for org in set(payer_orgs) | set(payee_orgs):
            targets.append(
                (
                    self._row("organisation", org),
                    payee_in and org in payee_orgs,
                    payer_in and org in payer_orgs,
                )
            )
        if event.kind == "policy":
            figure = RULE_FIGURES[event.key]
            for row, _, _ in targets:
                row.policy[figure] = row.policy.get(figure, 0) + event.minutes
            return
        if event.reversal:
            for row, _, _ in targets:
                row.minutes += event.minutes
                row.reversed -= event.minutes
            return
        pair: Pair | None = None
        if payer_in and payee_in:
            pair = pair_of(event)
            self.pairs.add(pair)
        cross = payer_zone is not None and payee_zone is not None and payer_zone != payee_zone
        for row, gave, received in targets:
            row.minutes += event.minutes
            row.exchanges.add(event.key)
            if gave:
                row.gave.add(event.payee)
            if received:
                row.received.add(event.payer)
            if pair is not None:
                row.pairs.add(pair)
            if cross:
                row.cross_zone += 1

    def add_new_account(self, account: str, kind: str, month: str) -> None:
        if kind not in PARTICIPANT_KINDS:
            return
        self._row("total", "").new_members.add(account)
        self._row("month", month).new_members.add(account)
        if account in self.zone:
            self._row("zone", self.zone[account]).new_members.add(account)
        for org in self.orgs.get(account, ()):
            self._row("organisation", org).new_members.add(account)

    def finish(self, new_pairs: set[Pair]) -> list[dict[str, Any]]:
        """The rows, in dimension then key order; `new_pairs` are this range's pairs whose
        first exchange in the ledger is within the range."""
        self._row("total", "")
        order = {name: position for position, name in enumerate(DIMENSIONS)}
        out: list[dict[str, Any]] = []
        for (dimension, key), row in sorted(
            self.rows.items(), key=lambda i: (order[i[0][0]], i[0][1])
        ):
            active = row.gave | row.received
            both = row.gave & row.received
            figures: dict[str, Any] = {
                "dimension": dimension,
                "key": key,
                "minutes_exchanged": row.minutes,
                "exchanges": len(row.exchanges),
                "reversed_minutes": row.reversed,
                "active_members": len(active),
                "new_members": None if dimension == "area" else len(row.new_members),
                "reciprocal_members": len(both),
                "reciprocity_pct": _percent(len(both), len(active)),
                "distinct_pairs": len(row.pairs),
                "new_connections": len(row.pairs & new_pairs),
                "cross_zone_exchanges": row.cross_zone,
            }
            for figure in RULE_FIGURES.values():
                figures[figure] = row.policy.get(figure, 0)
            out.append(figures)
        return out


# -- the document ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report was computed from."""

    origin: str
    date_from: str
    date_to: str
    size: int
    root: bytes
    checkpoint: str
    first: int
    end: int


def report_body(
    scope: Scope,
    directory: Directory,
    rows: list[dict[str, Any]],
    generated_at: str,
) -> dict[str, Any]:
    """The report as plain JSON data (no floats: it is signed as canonical JSON)."""
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "ledger": scope.origin,
        "from": scope.date_from,
        "to": scope.date_to,
        "checkpoint": {"size": scope.size, "root": scope.root.hex(), "note": scope.checkpoint},
        "entries": {"first": scope.first, "end": scope.end},
        "directory": {"sha256": directory.digest(), "accounts": len(directory.accounts)},
        "generated_at": generated_at,
        "organisations": {o.id: o.name for o in directory.organisations},
        "rows": rows,
    }
