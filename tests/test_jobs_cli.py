"""`scambio worker`, `scambio jobs list|run` and `scambio report coproduction|verify`, on
SQLite and PostgreSQL: the commands an operator runs, with their errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from scambio.cli import main
from scambio.ledger.canonical import canonical_json
from scambio.store.db import make_engine
from scambio.store.jobs_tables import job_runs

from .conftest import ORIGIN, SIGNER

SCAMBIO = Path(sys.executable).with_name("scambio")


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    key_file = tmp_path / "node.key"
    key_file.write_text(SIGNER.to_string() + "\n")
    key_file.chmod(0o600)
    return {
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_KEY_FILE": str(key_file),
        "SCAMBIO_LEDGER_ORIGIN": ORIGIN,
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }


def scambio(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def test_jobs_list_and_run(env: dict[str, str]) -> None:
    listed = scambio(env, "jobs", "list")
    assert listed.exit_code == 0, listed.output
    for name in ("expire-holds", "verify-ledger", "reconcile-balances", "co-production-report"):
        assert name in listed.output
    assert "co-production-report     every month   catch-up 12 month(s)   never run" in (
        listed.output
    )

    ran = scambio(env, "jobs", "run", "verify-ledger")
    assert ran.exit_code == 0, ran.output
    first_line, summary = ran.output.split("\n", 1)
    assert first_line.startswith("verify-ledger for ") and first_line.endswith(": succeeded")
    assert msgspec.json.decode(summary)["full"] is True
    again = scambio(env, "jobs", "run", "verify-ledger")
    assert again.exit_code == 0
    assert "already ran (use --force to run it again)" in again.output
    forced = scambio(env, "jobs", "run", "verify-ledger", "--force")
    assert forced.exit_code == 0 and forced.output.splitlines()[0].endswith(": succeeded")
    listed = scambio(env, "jobs", "list")
    assert "verify-ledger            every hour    catch-up 1 hour(s)     last " in listed.output

    for args, message in [
        (("jobs", "run", "nope"), "no job named 'nope'; jobs are: auto-confirm-exchanges"),
        (
            ("jobs", "run", "verify-ledger", "--period", "2026-11"),
            "period '2026-11' is not an hour (expected the form 2026-11-25T09)",
        ),
        (("jobs", "run", "co-production-report", "--period", "2199-01"), "has not ended yet"),
    ]:
        refused = scambio(env, *args)
        assert refused.exit_code == 1, refused.output
        assert message in refused.output


def test_a_failed_run_exits_1_with_its_error(env: dict[str, str]) -> None:
    member = scambio(env, "member", "add", "--email", "a@example.org", "--name", "Ada")
    assert member.exit_code == 0, member.output

    async def corrupt() -> None:
        engine = make_engine(env["SCAMBIO_DATABASE_URL"], null_pool=True)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE accounts SET posted = 3")
        await engine.dispose()

    asyncio.run(corrupt())
    failed = scambio(env, "jobs", "run", "reconcile-balances")
    assert failed.exit_code == 1
    assert ": failed" in failed.output
    assert "Error: 1 cached balance(s) differ from the postings: posted of 'm-" in failed.output


def test_a_report_from_the_command_line_verifies_against_an_export(
    env: dict[str, str], tmp_path: Path
) -> None:
    for name in ("Ada", "Bea"):
        added = scambio(env, "member", "add", "--email", f"{name}@example.org", "--name", name)
        assert added.exit_code == 0, added.output
    report, directory, export = (tmp_path / f for f in ("r.json", "d.json", "e.jsonl"))
    made = scambio(
        env,
        "report",
        "coproduction",
        "--from",
        "2020-01-01",
        "--to",
        "2030-01-01",
        "--out",
        str(report),
        "--directory-out",
        str(directory),
    )
    assert made.exit_code == 0, made.output
    document = msgspec.json.decode(report.read_bytes())
    assert document["report"]["rows"][0]["new_members"] == 2
    assert scambio(env, "ledger", "export", "--out", str(export)).exit_code == 0
    vkey = SIGNER.verifier().to_string()
    args = ["report", "verify", str(report), "--export", str(export), "--directory"]
    checked = scambio(env, *args, str(directory), "--vkey", vkey)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("OK: the report for 2020-01-01 to 2030-01-01 is signed")

    document["report"]["rows"][0]["new_members"] = 3
    report.write_bytes(canonical_json(document))
    tampered = scambio(env, *args, str(directory))
    assert tampered.exit_code == 1
    assert "FAILED: the signature does not verify: the report was altered" in tampered.output
    directory.write_text("{}")
    broken = scambio(env, *args, str(directory))
    assert broken.exit_code == 1 and "not a directory" in broken.output

    csv = scambio(env, "report", "coproduction", "--from", "2020-01-01", "--to", "2030-01-01",
                  "--format", "csv")  # fmt: skip
    assert csv.exit_code == 0, csv.output
    assert csv.output.splitlines()[0].startswith("ledger,from,to,checkpoint_size")
    bad = scambio(env, "report", "coproduction", "--from", "2026-11-01", "--to", "2026-10-01")
    assert bad.exit_code == 1
    assert "to (2026-10-01) must be after from (2026-11-01)" in bad.output


def test_the_worker_runs_jobs_until_it_is_stopped(env: dict[str, str]) -> None:
    assert scambio(env, "db", "check").exit_code == 0
    proc = subprocess.Popen(
        [str(SCAMBIO), "worker"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # At start every job catches up its latest period; wait for a few records.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _runs(env) < 3:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert _runs(env) >= 3
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.startswith(f"Scambio worker: ledger {ORIGIN} on ")
    assert "jobs: expire-holds, flush-mail, auto-confirm-exchanges" in out
    assert out.rstrip().endswith("Scambio worker stopped")


def _runs(env: dict[str, str]) -> int:
    async def count() -> int:
        engine = make_engine(env["SCAMBIO_DATABASE_URL"], null_pool=True)
        try:
            async with engine.connect() as conn:
                return int(
                    (
                        await conn.execute(
                            select(func.count())
                            .select_from(job_runs)
                            .where(job_runs.c.status == "succeeded")
                        )
                    ).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(count())
