"""Report date ranges: [from, to) in whole UTC days, `to` exclusive."""

from __future__ import annotations

import re
from datetime import date
from typing import Final

_DATE_RE: Final = re.compile(r"\d{4}-\d\d-\d\d")
#: The longest range a report may cover.
MAX_DAYS: Final = 3660
#: The earliest and latest dates accepted.
FIRST: Final = date(2000, 1, 1)
LAST: Final = date(2199, 12, 31)


class DateRangeError(ValueError):
    """A report range that is malformed (`field` names which end) or impossible."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


def parse_date(value: str, field: str) -> date:
    if not _DATE_RE.fullmatch(value):
        raise DateRangeError(f"{field} must be a date YYYY-MM-DD, got {value!r}", field)
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise DateRangeError(f"{field} {value!r} is not a valid date", field) from None
    if not FIRST <= parsed <= LAST:
        raise DateRangeError(f"{field} must be between {FIRST} and {LAST}", field)
    return parsed


def check_range(date_from: str, date_to: str) -> tuple[date, date]:
    start, end = parse_date(date_from, "from"), parse_date(date_to, "to")
    if end <= start:
        raise DateRangeError(f"to ({date_to}) must be after from ({date_from}): `to` is exclusive")
    if (end - start).days > MAX_DAYS:
        raise DateRangeError(f"a report covers at most {MAX_DAYS} days")
    return start, end
