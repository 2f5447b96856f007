"""Policy periods: calendar months (`2026-12`) and quarters (`2026-Q4`), in UTC.

A period is half-open, [start, end). Labels sort in time order within one kind, and are
what entries carry in their `period` annotation. Pure: no clock, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

MONTH: Final = "month"
QUARTER: Final = "quarter"
EVERY: Final = (MONTH, QUARTER)

_MONTH_RE: Final = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_QUARTER_RE: Final = re.compile(r"(\d{4})-Q([1-4])")


class PeriodError(ValueError):
    """A period label that does not name a period of the expected kind."""


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One period: its label and its bounds (start inclusive, end exclusive)."""

    start: datetime
    end: datetime
    label: str
    every: str

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def next(self) -> Period:
        return period_at(self.every, self.end)

    def previous(self) -> Period:
        year, month = self.start.year, self.start.month - (1 if self.every == MONTH else 3)
        if month < 1:
            year, month = year - 1, month + 12
        return period_at(self.every, datetime(year, month, 1, tzinfo=UTC))


def _months(every: str) -> int:
    if every not in EVERY:
        raise PeriodError(f"a schedule runs every {' or '.join(EVERY)}, not {every!r}")
    return 1 if every == MONTH else 3


def period_at(every: str, moment: datetime) -> Period:
    """The period of kind `every` that contains `moment` (naive times are taken as UTC)."""
    step = _months(every)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    first = (moment.month - 1) // step * step + 1
    start = datetime(moment.year, first, 1, tzinfo=UTC)
    end_month = first + step
    end = (
        datetime(moment.year + 1, end_month - 12, 1, tzinfo=UTC)
        if end_month > 12
        else datetime(moment.year, end_month, 1, tzinfo=UTC)
    )
    label = (
        f"{moment.year:04d}-{first:02d}"
        if every == MONTH
        else f"{moment.year:04d}-Q{(first - 1) // 3 + 1}"
    )
    return Period(start, end, label, every)


def parse_period(every: str, label: str) -> Period:
    """The period a label names; `PeriodError` if it is not a label of that kind."""
    _months(every)
    if every == MONTH:
        found = _MONTH_RE.fullmatch(label)
        if found is None:
            raise PeriodError(f"expected a month like 2026-12, got {label!r}")
        year, month = int(found[1]), int(found[2])
    else:
        found = _QUARTER_RE.fullmatch(label)
        if found is None:
            raise PeriodError(f"expected a quarter like 2026-Q4, got {label!r}")
        year, month = int(found[1]), (int(found[2]) - 1) * 3 + 1
    if year < 1970:
        raise PeriodError(f"period {label!r} is before 1970")
    return period_at(every, datetime(year, month, 1, tzinfo=UTC))


def periods_between(first: Period, last: Period) -> list[Period]:
    """Every period from `first` to `last`, both included (same kind)."""
    found: list[Period] = []
    current = first
    while current.start <= last.start:
        found.append(current)
        current = current.next()
    return found
