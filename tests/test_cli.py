"""The `scambio` command: schema management, refusal to start, and the node key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scambio.cli import main
from scambio.store.migrate import head_revision


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'cli.db'}",
        "SCAMBIO_LEDGER_ORIGIN": "cli.scambio.local/test",
    }


def test_schema_behind_is_refused_with_the_command_to_run(env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["db", "check"], env=env)
    assert result.exit_code == 1
    assert "the database schema is empty" in result.output
    assert "run `scambio db upgrade`" in result.output

    served = runner.invoke(main, ["serve", "--port", "0"], env=env)
    assert served.exit_code == 1
    assert "run `scambio db upgrade`" in served.output

    upgraded = runner.invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert f"database at revision {head_revision()}" in upgraded.output
    assert runner.invoke(main, ["db", "check"], env=env).output.strip() == "schema is up to date"


def test_node_key_is_created_once_and_kept(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["key"], env=env)
    assert first.exit_code == 0, first.output
    vkey = first.output.strip()
    assert vkey.startswith("cli.scambio.local/test+")
    key_file = tmp_path / "var" / "node.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().startswith("PRIVATE+KEY+cli.scambio.local/test+")
    assert runner.invoke(main, ["key"], env=env).output.strip() == vkey


def test_bad_settings_are_reported_not_raised(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main, ["db", "check"], env={**env, "SCAMBIO_DATABASE_URL": "mysql://nope"}
    )
    assert result.exit_code == 1
    assert "SCAMBIO_DATABASE_URL must start with" in result.output
    result = CliRunner().invoke(main, ["db", "check"], env={**env, "SCAMBIO_BATCH_SIZE": "0"})
    assert "SCAMBIO_BATCH_SIZE must be an integer from 1 to 10000" in result.output


def test_tokens_are_issued_listed_and_revoked(env: dict[str, str]) -> None:
    import asyncio

    from scambio.store.db import make_engine
    from scambio.store.tokens import authenticate

    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    issued = runner.invoke(
        main, ["token", "issue", "--role", "auditor", "--name", "funder"], env=env
    )
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    token_id = token.split("_")[1]

    async def who() -> str | None:
        engine = make_engine(env["SCAMBIO_DATABASE_URL"], null_pool=True)
        try:
            principal = await authenticate(engine, token)
            return None if principal is None else principal.role
        finally:
            await engine.dispose()

    assert asyncio.run(who()) == "auditor"
    listed = runner.invoke(main, ["token", "list"], env=env).output
    assert token_id in listed and "funder" in listed and token not in listed
    assert runner.invoke(main, ["token", "revoke", token_id], env=env).exit_code == 0
    assert asyncio.run(who()) is None
    again = runner.invoke(main, ["token", "revoke", token_id], env=env)
    assert again.exit_code == 1 and "no active token" in again.output
    bad = runner.invoke(main, ["token", "issue", "--role", "root"], env=env)
    assert bad.exit_code == 2 and "Invalid value for '--role'" in bad.output
