"""The co-production report as CSV: one line per row, for spreadsheets.

RFC 4180, a header row, and on every line the report's ledger, range and checkpoint, so
that a line copied elsewhere still says where it comes from. The CSV is a view: the
signed JSON document is what a verifier checks. Cells a spreadsheet would read as a
formula are quoted as in member statements; numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Final

from scambio.reports.coproduction import FIGURES

#: Characters that make a spreadsheet read a cell as a formula.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
CONTEXT: Final = ("ledger", "from", "to", "checkpoint_size", "checkpoint_root")
COLUMNS: Final = (*CONTEXT, "dimension", "key", "label", *FIGURES)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    context = [
        report["ledger"],
        report["from"],
        report["to"],
        report["checkpoint"]["size"],
        report["checkpoint"]["root"],
    ]
    names: dict[str, str] = report.get("organisations", {})
    for row in report["rows"]:
        label = names.get(row["key"], "") if row["dimension"] == "organisation" else ""
        values = [*context, row["dimension"], row["key"], label]
        values.extend(row[figure] for figure in FIGURES)
        writer.writerow([_cell(v) for v in values])
    return out.getvalue()
