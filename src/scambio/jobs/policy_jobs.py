"""The job that runs the sponsorship policies (scambio.policy.runner)."""

from __future__ import annotations

from typing import Any

from scambio.jobs.base import JobFailed, Result, RunContext
from scambio.policy.runner import run_due


async def run_policies(ctx: RunContext) -> Result:
    """Run every policy due by now: this period's grants, last period's matching and
    staff time, expiries whose date has passed. Idempotent: each (policy, period,
    member) issues at most once, so an hourly run repeats nothing."""
    outcome = await run_due(ctx.tb, ctx.now)
    summary: dict[str, Any] = {
        "issued": outcome.issued,
        "not_issued_minutes": outcome.not_issued,
        "failed": outcome.failed,
        "runs": [
            {
                "policy": run.policy,
                "period": run.period,
                "issued": run.issued,
                "minutes": run.minutes,
                "returned": run.returned,
                "not_issued": run.not_issued,
                **({"skipped": run.skipped} if run.skipped else {}),
            }
            for run in outcome.runs
            if run.issued or run.not_issued or run.failed or run.skipped
        ],
    }
    if outcome.errors or outcome.failed:
        summary["errors"] = list(outcome.errors)[:20]
        raise JobFailed(
            f"{len(outcome.errors)} policy error(s), {outcome.failed} failed issue(s)", summary
        )
    return Result(summary)
