"""Scheduled jobs, ledger verification and co-production reports over HTTP.

Staff only (managers, auditors, admins): the record of job runs, what `verify-ledger` last
proved (or the first bad entry it found), and the co-production report, computed on
demand for any date range or as the monthly job signed and stored it, as JSON (the signed
document) or CSV, with the directory it was computed from.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from scambio.api.auth import BEARER, STAFF_READ
from scambio.api.decode import InvalidRequest
from scambio.api.people import Cursor, index_cursor
from scambio.api.problems import problem_spec
from scambio.api.statement import CSV_MEDIA_TYPE
from scambio.ledger.entry import format_time
from scambio.ledger.errors import RuleViolation
from scambio.reports import stored
from scambio.reports.csvout import to_csv
from scambio.reports.dates import DateRangeError, check_range
from scambio.reports.live import compute_report
from scambio.reports.signing import encode_document
from scambio.store import verification as verification_store
from scambio.store.job_runs import JOB_NAME_RE, PERIOD_FILTER_RE, list_runs
from scambio.store.jobs_tables import RUN_STATUSES
from scambio.timebank.context import Timebank

RUNS_DEFAULT: Final = 50
RUNS_MAX: Final = 200
MONTH_RE: Final = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
JSON_MEDIA_TYPE: Final = "application/json"

Format = Annotated[
    str,
    QueryParameter(name="format", description="json (the signed document) or csv", max_length=8),
]


class JobRunOut(msgspec.Struct, frozen=True, kw_only=True):
    job: str
    #: The period the run was for (UTC): 2026-11-25T09:05, 2026-11-25T09, 2026-11-25, 2026-11.
    period: str
    #: succeeded, failed, or (SQLite only, while it runs) running.
    status: str
    attempts: int
    started_at: str
    finished_at: str | None
    #: What the run did: counts, ids, figures (per job).
    summary: dict[str, Any]
    error: str | None
    worker: str


class JobRunPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[JobRunOut]
    #: Pass as `cursor` for the next (older) page; null when this page is the last.
    next_cursor: str | None


class VerificationFailureOut(msgspec.Struct, frozen=True, kw_only=True):
    at: str | None
    #: The first bad entry, when the failure names one.
    index: int | None
    reason: str | None


class VerificationOut(msgspec.Struct, frozen=True, kw_only=True):
    #: verified, compromised, or unverified (verify-ledger has not run yet).
    status: str
    verified_size: int | None = None
    #: Hex root of the tree at `verified_size`.
    verified_root: str | None = None
    verified_checkpoint: str | None = None
    verified_at: str | None = None
    failure: VerificationFailureOut | None = None


# -- job runs ----------------------------------------------------------------------------------


@get(
    "/jobs/runs",
    operation_id="listJobRuns",
    summary="The record of scheduled job runs, newest first",
    description=(
        "One record per job and period: status, attempts, start and end, a summary of what "
        "the run did, the error of a failed run. Filter by `job`, `status` and `period` (a "
        "prefix: `2026-11` finds the month's runs of every job). Managers, auditors, admins."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 503),
    tags=["jobs"],
)
async def list_job_runs(  # noqa: PLR0917 - Litestar injects parameters by name
    timebank: NamedDependency[Timebank],
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=RUNS_MAX)] = RUNS_DEFAULT,
    job: Annotated[str | None, QueryParameter(max_length=64)] = None,
    status: Annotated[str | None, QueryParameter(max_length=16)] = None,
    period: Annotated[str | None, QueryParameter(max_length=32)] = None,
) -> JobRunPage:
    if job is not None and not JOB_NAME_RE.fullmatch(job):
        raise InvalidRequest(f"job {job!r} is not a job name (lower-case letters, digits, '-')")
    if status is not None and status not in RUN_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(RUN_STATUSES)}")
    if period is not None and not PERIOD_FILTER_RE.fullmatch(period):
        raise InvalidRequest("period must be a period key or its start, e.g. 2026-11")
    async with timebank.ledger.read() as conn:
        runs = await list_runs(
            conn, job=job, status=status, period=period, before=index_cursor(cursor), limit=limit
        )
    return JobRunPage(
        items=[
            JobRunOut(
                job=r.job,
                period=r.period,
                status=r.status,
                attempts=r.attempts,
                started_at=r.started_at,
                finished_at=r.finished_at,
                summary=r.summary,
                error=r.error,
                worker=r.worker,
            )
            for r in runs
        ],
        next_cursor=str(runs[-1].seq) if len(runs) == limit else None,
    )


# -- ledger verification -----------------------------------------------------------------------


@get(
    "/ledger/verification",
    operation_id="getLedgerVerification",
    summary="What the verify-ledger job last proved, or the first bad entry it found",
    description=(
        "`verified`: the log verified up to `verified_size` (entries, tree, signed "
        "checkpoints). `compromised`: the last run failed; `failure` names the first bad "
        "entry and why, and the last verified state is kept. `unverified`: no run yet. "
        "Managers, auditors, admins; `/health` shows the status alone."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["ledger"],
)
async def get_ledger_verification(timebank: NamedDependency[Timebank]) -> VerificationOut:
    async with timebank.ledger.read() as conn:
        state = await verification_store.load(conn)
    if state is None:
        return VerificationOut(status="unverified")
    failure = None
    if state.compromised:
        failure = VerificationFailureOut(
            at=state.failed_at, index=state.failed_index, reason=state.failure
        )
    return VerificationOut(
        status=state.status,
        verified_size=state.verified_size,
        verified_root=None if state.verified_root is None else state.verified_root.hex(),
        verified_checkpoint=state.verified_checkpoint,
        verified_at=state.verified_at,
        failure=failure,
    )


# -- co-production reports ---------------------------------------------------------------------


def _format(value: str) -> str:
    if value not in ("json", "csv"):
        raise InvalidRequest(f"format must be json or csv, got {value!r}")
    return value


def _document(data: bytes, csv_text: str | None, name: str) -> Response[bytes]:
    if csv_text is not None:
        return Response(
            csv_text.encode(),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(data, media_type=JSON_MEDIA_TYPE)


@get(
    "/reports/coproduction",
    operation_id="getCoproductionReport",
    summary="The co-production report for any date range, computed now and signed",
    description=(
        "Hours exchanged, exchanges, active and new members, reciprocity, reach and "
        "sponsorship figures, by area, zone, organisation and month, for `[from, to)` (UTC "
        "dates, `to` exclusive), at the current checkpoint. JSON is the signed document "
        "`{report, signature}`: an Ed25519 signature by the ledger's key over the report's "
        "canonical JSON. CSV has one line per row. Managers, auditors, admins."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 422, 503),
    tags=["reports"],
)
async def get_coproduction_report(
    timebank: NamedDependency[Timebank],
    date_from: Annotated[str, QueryParameter(name="from", max_length=10)],
    date_to: Annotated[str, QueryParameter(name="to", max_length=10)],
    fmt: Format = "json",
) -> Response[bytes]:
    fmt = _format(fmt)
    try:
        check_range(date_from, date_to)
    except DateRangeError as exc:
        if exc.field is not None:
            raise InvalidRequest(str(exc)) from None
        raise RuleViolation("invalid-range", str(exc)) from None
    ledger = timebank.ledger
    computed = await compute_report(
        ledger.engine,
        ledger.origin,
        date_from,
        date_to,
        generated_at=format_time(timebank.clock()),
    )
    document = encode_document(computed.signed(ledger.signer))
    csv_text = to_csv(computed.report) if fmt == "csv" else None
    return _document(document, csv_text, f"scambio-coproduction-{date_from}-{date_to}")


async def _stored(timebank: Timebank, month: str) -> stored.StoredReport:
    if not MONTH_RE.fullmatch(month):
        raise InvalidRequest(f"month must be YYYY-MM, got {month!r}")
    async with timebank.ledger.read() as conn:
        found = await stored.load(conn, month)
    if found is None:
        raise RuleViolation(
            "report-not-found",
            f"there is no monthly co-production report for {month} (the co-production-report "
            "job makes it after the month ends)",
            month=month,
        )
    return found


@get(
    "/reports/coproduction/{month:str}",
    operation_id="getMonthlyCoproductionReport",
    summary="The month's co-production report, as the scheduled job signed and stored it",
    description=(
        "The signed document (JSON) or its rows (CSV). The report states the checkpoint it "
        "was computed from; with an export and the directory "
        "(`/reports/coproduction/{month}/directory`) anyone can recompute it "
        "(`scambio report verify`). Managers, auditors, admins."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["reports"],
)
async def get_monthly_coproduction_report(
    timebank: NamedDependency[Timebank], month: FromPath[str], fmt: Format = "json"
) -> Response[bytes]:
    fmt = _format(fmt)
    found = await _stored(timebank, month)
    csv_text = None
    if fmt == "csv":
        csv_text = to_csv(msgspec.json.decode(found.document)["report"])
    return _document(found.document.encode(), csv_text, f"scambio-coproduction-{month}")


@get(
    "/reports/coproduction/{month:str}/directory",
    operation_id="getMonthlyCoproductionDirectory",
    summary="The directory (account zones and organisations) a monthly report used",
    description=(
        "Each participating account's zone and organisations when the report was computed; "
        "the report states its SHA-256. Managers, auditors, admins."
    ),
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 503),
    tags=["reports"],
)
async def get_monthly_coproduction_directory(
    timebank: NamedDependency[Timebank], month: FromPath[str]
) -> Response[bytes]:
    found = await _stored(timebank, month)
    return Response(found.directory.encode(), media_type=JSON_MEDIA_TYPE)


ROUTES = [
    list_job_runs,
    get_ledger_verification,
    get_coproduction_report,
    get_monthly_coproduction_report,
    get_monthly_coproduction_directory,
]
