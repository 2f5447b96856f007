"""Every scheduled job, its schedule and how far back a start-up catches up.

| job | every | catch-up |
| --- | --- | --- |
| expire-holds | minute | the last minute (it voids everything due by now) |
| flush-mail | minute | the last minute |
| auto-confirm-exchanges | hour | the last hour |
| listing-reminders | hour | the last hour |
| expire-listings | hour | the last hour |
| verify-ledger | hour | the last hour (it verifies up to the head; whole log at 03:00) |
| reconcile-balances | day | the last day |
| send-digests | day | the last day |
| co-production-report | month | 12 months, never before the ledger's first entry |
| run-policies | hour | the last hour (each policy knows its own periods) |
| federation-recover | minute | the last minute |
| federation-reconcile | hour | the last hour |
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from scambio.jobs import federation_jobs, ledger_jobs, policy_jobs, report_job, timebank_jobs
from scambio.jobs.base import Job
from scambio.jobs.periods import Every

#: Runs of minute jobs are kept for two days, of hourly jobs for 90 days; daily and
#: monthly runs for ever.
_MINUTE_KEEP: Final = timedelta(days=2)
_HOUR_KEEP: Final = timedelta(days=90)

EXPIRE_HOLDS: Final = Job(
    "expire-holds",
    Every.MINUTE,
    ledger_jobs.expire_holds,
    "Void holds whose expiry has passed (through the append path).",
    keep=_MINUTE_KEEP,
)
FLUSH_MAIL: Final = Job(
    "flush-mail",
    Every.MINUTE,
    timebank_jobs.flush_mail,
    "Deliver due mail from the outbox (retries, and mail other processes queued).",
    keep=_MINUTE_KEEP,
)
AUTO_CONFIRM_EXCHANGES: Final = Job(
    "auto-confirm-exchanges",
    Every.HOUR,
    timebank_jobs.auto_confirm_exchanges,
    "Auto-confirm exchanges past their confirmation window, expire stale ones, retry "
    "ledger effects left due.",
    keep=_HOUR_KEEP,
)
LISTING_REMINDERS: Final = Job(
    "listing-reminders",
    Every.HOUR,
    timebank_jobs.listing_reminders,
    "Remind owners of listings about to expire (once per expiry date).",
    keep=_HOUR_KEEP,
)
EXPIRE_LISTINGS: Final = Job(
    "expire-listings",
    Every.HOUR,
    timebank_jobs.expire_listings,
    "Mark listings past their expiry as expired.",
    keep=_HOUR_KEEP,
)
VERIFY_LEDGER: Final = Job(
    "verify-ledger",
    Every.HOUR,
    ledger_jobs.verify_ledger,
    "Verify entries, tree and signed checkpoints since the last verified checkpoint "
    f"(the whole log at {ledger_jobs.FULL_VERIFY_HOUR:02d}:00 UTC).",
    keep=_HOUR_KEEP,
)
SEND_DIGESTS: Final = Job(
    "send-digests",
    Every.DAY,
    timebank_jobs.send_digests,
    "Email members who want a daily digest their unread notifications no email covered.",
)
RECONCILE_BALANCES: Final = Job(
    "reconcile-balances",
    Every.DAY,
    ledger_jobs.reconcile_balances,
    "Recompute balances from postings and report every difference from the cache.",
)
COPRODUCTION_REPORT: Final = Job(
    "co-production-report",
    Every.MONTH,
    report_job.coproduction_report,
    "Compute, sign and store the month's co-production report.",
    catch_up=report_job.CATCH_UP_MONTHS,
    since=report_job.ledger_start,
)

# The policy module decides itself which policy is due for which period (monthly grants,
# expiries, match settlements), so one job checking every hour is enough.
RUN_POLICIES: Final = Job(
    "run-policies",
    Every.HOUR,
    policy_jobs.run_policies,
    "Run every sponsorship policy due by now (grants, matching, staff time, expiries).",
    keep=_HOUR_KEEP,
)
POLICY_JOBS: Final[list[Job]] = [RUN_POLICIES]

FEDERATION_RECOVER: Final = Job(
    "federation-recover",
    Every.MINUTE,
    federation_jobs.federation_recover,
    "Finish in-doubt cross-timebank transfers with their peers; drop expired nonces.",
    keep=_MINUTE_KEEP,
)
FEDERATION_RECONCILE: Final = Job(
    "federation-reconcile",
    Every.HOUR,
    federation_jobs.federation_reconcile,
    "Check each peer's checkpoints, clearing statement and cross transfers against ours.",
    keep=_HOUR_KEEP,
)

ALL_JOBS: Final[tuple[Job, ...]] = (
    EXPIRE_HOLDS,
    FLUSH_MAIL,
    AUTO_CONFIRM_EXCHANGES,
    LISTING_REMINDERS,
    EXPIRE_LISTINGS,
    VERIFY_LEDGER,
    RECONCILE_BALANCES,
    SEND_DIGESTS,
    COPRODUCTION_REPORT,
    *POLICY_JOBS,
    FEDERATION_RECOVER,
    FEDERATION_RECONCILE,
)
