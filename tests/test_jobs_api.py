"""Job runs, ledger verification and co-production reports over HTTP: pages, filters,
formats and every error path (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from scambio.jobs.periods import Period, PeriodError
from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner, RunOutcome
from scambio.ledger.note import Verifier
from scambio.reports.signing import open_document
from scambio.timebank.context import Timebank

from .api_helpers import Api, assert_problem, running_api
from .conftest import Clock


def run_in_app(api: Api, name: str, *keys: str) -> list[RunOutcome]:
    """Run job `name` for the given periods inside the app, as its scheduler would."""

    async def go(tb: Timebank) -> list[RunOutcome]:
        runner = JobRunner(tb, ALL_JOBS)
        job = runner.job(name)
        return [await runner.run_period(job, Period.parse(job.every, key)) for key in keys]

    outcomes: list[RunOutcome] = api.client.blocking_portal.call(go, api.app.state.timebank)
    return outcomes


@pytest.fixture
async def api(db_url: str, tmp_path: Path, clock: Clock) -> Any:
    async with running_api(db_url, tmp_path, clock=clock) as api:
        await api.open("marco")
        await api.open("giulia")
        yield api


# -- job runs ----------------------------------------------------------------------------------


async def test_job_runs_are_listed_newest_first_with_filters_and_cursors(
    api: Api, clock: Clock
) -> None:
    minutes = [f"2026-11-25T08:{m:02d}" for m in range(55, 60)]
    assert {o.status for o in run_in_app(api, "expire-holds", *minutes)} == {"succeeded"}
    assert run_in_app(api, "verify-ledger", "2026-11-25T08")[0].status == "succeeded"
    # A corrupted cache makes a failed run.
    async with api.ledger.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE accounts SET posted = 5 WHERE id = 'marco'")
    (failed,) = run_in_app(api, "reconcile-balances", "2026-11-24")
    assert failed.status == "failed"

    page = (await api.get("/api/v1/jobs/runs", role="auditor", limit=3)).json()
    assert [(r["job"], r["period"]) for r in page["items"]] == [
        ("reconcile-balances", "2026-11-24"),
        ("verify-ledger", "2026-11-25T08"),
        ("expire-holds", "2026-11-25T08:59"),
    ]
    first = page["items"][0]
    assert (first["status"], first["attempts"], first["summary"]["differences"]) == (
        "failed",
        1,
        1,
    )
    assert first["error"].startswith("1 cached balance(s) differ from the postings: posted of")
    assert first["finished_at"] >= first["started_at"] and first["worker"]
    rest = (await api.get("/api/v1/jobs/runs", limit=3, cursor=page["next_cursor"])).json()
    assert [r["period"][-2:] for r in rest["items"]] == ["58", "57", "56"]
    last = (await api.get("/api/v1/jobs/runs", limit=3, cursor=rest["next_cursor"])).json()
    assert ([r["period"][-2:] for r in last["items"]], last["next_cursor"]) == (["55"], None)

    only = (await api.get("/api/v1/jobs/runs", job="expire-holds", period="2026-11-25T08:5")).json()
    assert len(only["items"]) == 5 and only["next_cursor"] is None
    failed_only = (await api.get("/api/v1/jobs/runs", status="failed")).json()
    assert [r["job"] for r in failed_only["items"]] == ["reconcile-balances"]
    assert (await api.get("/api/v1/jobs/runs", job="no-such-job")).json()["items"] == []


BAD_RUN_QUERIES: list[tuple[dict[str, Any], str]] = [
    ({"status": "done"}, "status must be one of running, succeeded, failed"),
    ({"job": "Verify Ledger"}, "job 'Verify Ledger' is not a job name"),
    ({"period": "2026%"}, "period must be a period key or its start, e.g. 2026-11"),
    ({"cursor": "abc"}, "cursor 'abc' is not one returned as next_cursor"),
    ({"limit": 0}, "limit"),
    ({"limit": 201}, "limit"),
]


async def test_bad_job_run_queries_are_400s(api: Api) -> None:
    for params, message in BAD_RUN_QUERIES:
        response = await api.get("/api/v1/jobs/runs", **params)
        body = assert_problem(response, 400, "invalid-request")
        assert message in body["detail"], (params, body)


# -- verification -------------------------------------------------------------------------------


async def test_verification_status_before_and_after_a_run(api: Api) -> None:
    before = (await api.get("/api/v1/ledger/verification")).json()
    assert (before["status"], before["verified_size"], before["failure"]) == (
        "unverified",
        None,
        None,
    )
    assert (await api.client.get("/health")).json()["ledger"] == "unverified"
    run_in_app(api, "verify-ledger", "2026-11-25T08")
    after = (await api.get("/api/v1/ledger/verification", role="auditor")).json()
    checkpoint = (await api.get("/api/v1/ledger/checkpoint", role=None)).text
    assert after["status"] == "verified" and after["verified_size"] == 2
    assert after["verified_checkpoint"] == checkpoint and after["failure"] is None


# -- co-production reports ---------------------------------------------------------------------


async def test_an_on_demand_report_is_signed_json_or_csv(api: Api) -> None:
    assert (await api.transfer("marco", "giulia", 30)).status_code == 201
    response = await api.get(
        "/api/v1/reports/coproduction", role="manager", **{"from": "2026-11-01", "to": "2026-12-01"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    key = (await api.get("/api/v1/ledger/key", role=None)).json()["vkey"]
    report = open_document(response.content, Verifier.from_string(key))
    assert (report["from"], report["to"], report["checkpoint"]["size"]) == (
        "2026-11-01",
        "2026-12-01",
        3,
    )
    # A plain transfer is no exchange; two members were opened this month.
    assert report["rows"][0]["minutes_exchanged"] == 0
    assert report["rows"][0]["new_members"] == 2

    csv = await api.get(
        "/api/v1/reports/coproduction", **{"from": "2026-11-01", "to": "2026-12-01"}, format="csv"
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert (
        'filename="scambio-coproduction-2026-11-01-2026-12-01.csv"'
        in csv.headers["content-disposition"]
    )
    header, total, month = csv.text.splitlines()
    assert header.startswith("ledger,from,to,checkpoint_size,checkpoint_root,dimension,key")
    assert ",total,," in total and ",month,2026-11," in month


BAD_REPORT_QUERIES: list[tuple[dict[str, str], int, str, str]] = [
    ({"from": "2026-11-01"}, 400, "invalid-request", "to"),
    ({"from": "2026-11-1", "to": "2026-12-01"}, 400, "invalid-request",
     "from must be a date YYYY-MM-DD, got '2026-11-1'"),
    ({"from": "2026-02-30", "to": "2026-12-01"}, 400, "invalid-request",
     "from '2026-02-30' is not a valid date"),
    ({"from": "2026-11-01", "to": "2026-11-01"}, 422, "invalid-range",
     "to (2026-11-01) must be after from (2026-11-01): `to` is exclusive"),
    ({"from": "2000-01-01", "to": "2020-01-01"}, 422, "invalid-range",
     "a report covers at most 3660 days"),
    ({"from": "2026-11-01", "to": "2026-12-01", "format": "xml"}, 400, "invalid-request",
     "format must be json or csv, got 'xml'"),
]  # fmt: skip


async def test_bad_report_requests_are_problems_and_change_nothing(api: Api) -> None:
    size = await api.tree_size()
    for params, status, slug, message in BAD_REPORT_QUERIES:
        response = await api.get("/api/v1/reports/coproduction", **params)
        body = assert_problem(response, status, slug)
        assert message in body["detail"], (params, body)
    assert await api.tree_size() == size


async def test_monthly_reports_as_the_job_stored_them(api: Api, clock: Clock) -> None:
    missing = await api.get("/api/v1/reports/coproduction/2026-11")
    body = assert_problem(missing, 404, "report-not-found")
    assert body["detail"].startswith("there is no monthly co-production report for 2026-11")
    assert body["month"] == "2026-11"
    bad = await api.get("/api/v1/reports/coproduction/2026-13")
    assert assert_problem(bad, 400, "invalid-request")["detail"] == (
        "month must be YYYY-MM, got '2026-13'"
    )
    bad = await api.get("/api/v1/reports/coproduction/2026-11/directory", format="csv")
    assert_problem(bad, 404, "report-not-found")
    bad = await api.get("/api/v1/reports/coproduction/2026-11", format="pdf")
    assert_problem(bad, 400, "invalid-request")

    clock.advance(days=10)  # into December: November has ended
    (made,) = run_in_app(api, "co-production-report", "2026-11")
    assert made.status == "succeeded", made.error
    document = await api.get("/api/v1/reports/coproduction/2026-11", role="auditor")
    assert document.status_code == 200
    key = (await api.get("/api/v1/ledger/key", role=None)).json()["vkey"]
    report = open_document(document.content, Verifier.from_string(key))
    assert (report["from"], report["to"]) == ("2026-11-01", "2026-12-01")
    assert made.summary["size"] == report["checkpoint"]["size"]
    directory = await api.get("/api/v1/reports/coproduction/2026-11/directory")
    assert directory.status_code == 200
    assert hashlib.sha256(directory.content).hexdigest() == report["directory"]["sha256"]
    csv = await api.get("/api/v1/reports/coproduction/2026-11", format="csv")
    assert csv.text.splitlines()[1].startswith("test.scambio.local/ledger,2026-11-01,2026-12-01")
    # A month not over is not a period the job can run yet.
    with pytest.raises(PeriodError, match="period 2026-12 has not ended yet"):
        run_in_app(api, "co-production-report", "2026-12")
