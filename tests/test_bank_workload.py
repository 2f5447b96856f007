"""The bank workload (tests/bank.py), short form: a real server, killed and restarted,
its database taken away once, and a checker that trusts nothing the server said.

`make soak` runs the same test longer (SCAMBIO_BANK_SECONDS, SCAMBIO_BANK_CLIENTS).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .bank import run_workload

SECONDS = float(os.environ.get("SCAMBIO_BANK_SECONDS", "20"))
CLIENTS = int(os.environ.get("SCAMBIO_BANK_CLIENTS", "16"))
KILLS = int(os.environ.get("SCAMBIO_BANK_KILLS", "3"))

pytestmark = pytest.mark.slow


async def test_bank_workload_survives_kills_and_a_database_outage(
    db_url: str, tmp_path: Path
) -> None:
    result = await run_workload(
        db_url, tmp_path / "node", seconds=SECONDS, clients=CLIENTS, kills=KILLS
    )
    history = result.history
    # The run did what it says: the server was killed, the database went away (PostgreSQL),
    # requests were acknowledged and refused, and some outcomes were left in doubt.
    assert history.kills == KILLS
    if db_url.startswith("postgresql"):
        assert history.outages == 1
        assert history.statuses[503] + sum(history.errors.values()) > 0
    assert result.acks > 30, (result.acks, result.size)
    assert result.refused > 0, history.statuses
    assert len(history.reads) > 10
    assert sum(a.tries > 1 for a in history.attempts) > 0, "no request was ever retried"
    print(
        f"bank workload: {result.acks} acknowledged, {result.refused} refused, "
        f"{result.unknown} unknown; {len(history.reads)} reads; ledger size {result.size}; "
        f"statuses {dict(history.statuses)}; errors {dict(history.errors)}"
    )
