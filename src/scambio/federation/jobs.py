"""The federation's periodic jobs, for the scheduler (see the jobs issue) and the CLI.

Both are idempotent and safe to cancel and to run concurrently with live traffic:

- `recover(tb, now)`: finish in-doubt cross-timebank transfers (ask peers, deliver
  decisions, abort what waited past the deadline) and drop expired nonces. Suggested
  period: every minute.
- `reconcile(tb, now)`: exchange signed checkpoints and clearing statements with every
  active peer, check consistency, compare both views of every cross transfer. Suggested
  period: hourly (or daily for quiet peers).
"""

from __future__ import annotations

from datetime import datetime

from scambio.federation.reconcile import PeerReport
from scambio.federation.reconcile import reconcile as _reconcile
from scambio.federation.recovery import RecoveryReport
from scambio.federation.recovery import recover as _recover
from scambio.timebank.context import Timebank


async def recover(tb: Timebank, now: datetime) -> RecoveryReport:
    return await _recover(tb, now)


async def reconcile(tb: Timebank, now: datetime) -> list[PeerReport]:
    return await _reconcile(tb, now)


#: Job name -> function, for the scheduler.
JOBS = {"federation-recover": recover, "federation-reconcile": reconcile}
