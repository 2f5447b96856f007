"""Periods: the minute, hour, day or month a job run is for, in UTC.

A period is due once it has ended: the hourly run for 09:00-10:00 happens after 10:00, the
monthly report for November on or after 1 December. Its key is the text stored in
`job_runs.period` and accepted by `scambio jobs run --period`:

| every  | key                | covers                          |
| ------ | ------------------ | ------------------------------- |
| minute | `2026-11-25T09:05` | 09:05:00 to 09:06:00            |
| hour   | `2026-11-25T09`    | 09:00 to 10:00                  |
| day    | `2026-11-25`       | that day, 00:00 to 24:00        |
| month  | `2026-11`          | 1 November 00:00 to 1 December  |
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final


class Every(enum.Enum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


_FORMATS: Final = {
    Every.MINUTE: ("%Y-%m-%dT%H:%M", re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")),
    Every.HOUR: ("%Y-%m-%dT%H", re.compile(r"\d{4}-\d\d-\d\dT\d\d")),
    Every.DAY: ("%Y-%m-%d", re.compile(r"\d{4}-\d\d-\d\d")),
    Every.MONTH: ("%Y-%m", re.compile(r"\d{4}-\d\d")),
}


_NAMES: Final = {
    Every.MINUTE: "a minute",
    Every.HOUR: "an hour",
    Every.DAY: "a day",
    Every.MONTH: "a month",
}


class PeriodError(ValueError):
    """A period key that does not name a period of the job's kind."""


def _floor(every: Every, moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    if every is Every.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if every is Every.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    if every is Every.DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _shift(every: Every, start: datetime, steps: int) -> datetime:
    if every is Every.MINUTE:
        return start + timedelta(minutes=steps)
    if every is Every.HOUR:
        return start + timedelta(hours=steps)
    if every is Every.DAY:
        return start + timedelta(days=steps)
    months = start.year * 12 + start.month - 1 + steps
    return start.replace(year=months // 12, month=months % 12 + 1)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One period of a kind; ordered by start."""

    start: datetime
    every: Every

    @classmethod
    def containing(cls, every: Every, moment: datetime) -> Period:
        return cls(_floor(every, moment), every)

    @classmethod
    def parse(cls, every: Every, key: str) -> Period:
        fmt, pattern = _FORMATS[every]
        if not pattern.fullmatch(key):
            raise PeriodError(
                f"period {key!r} is not {_NAMES[every]} "
                f"(expected the form {datetime(2026, 11, 25, 9, 5, tzinfo=UTC).strftime(fmt)})"
            )
        try:
            start = datetime.strptime(key, fmt).replace(tzinfo=UTC)
        except ValueError:
            raise PeriodError(f"period {key!r} is not a valid {every.value}") from None
        return cls(start, every)

    @property
    def key(self) -> str:
        return self.start.strftime(_FORMATS[self.every][0])

    @property
    def end(self) -> datetime:
        return _shift(self.every, self.start, 1)

    def shift(self, steps: int) -> Period:
        return Period(_shift(self.every, self.start, steps), self.every)

    def ended_by(self, moment: datetime) -> bool:
        return self.end <= moment

    def __str__(self) -> str:
        return self.key


def last_complete(every: Every, now: datetime) -> Period:
    """The latest period of this kind that has ended by `now`."""
    return Period.containing(every, now).shift(-1)
