"""`scambio policy check | apply | simulate`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scambio.cli import main

from .policy_helpers import policy_text

SPONSOR = "0123456789abcdef"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "policies"
    folder.mkdir()
    return {
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'cli.db'}",
        "SCAMBIO_LEDGER_ORIGIN": "cli.scambio.local/test",
        "SCAMBIO_POLICIES_DIR": str(folder),
    }


def write(env: dict[str, str], name: str, text: str) -> Path:
    path = Path(env["SCAMBIO_POLICIES_DIR"]) / name
    path.write_text(text)
    return path


GRANT = policy_text("acme-care", "grant", SPONSOR, {"minutes": 240, "areas": ["childcare"]})
POOL = policy_text("pool", "pool", None, {"member_cap_minutes": 60}, budget=600)


def test_check_names_each_file_and_exactly_what_is_wrong(env: dict[str, str]) -> None:
    runner = CliRunner()
    empty = runner.invoke(main, ["policy", "check"], env=env)
    assert empty.exit_code == 0 and "no policy files in" in empty.output
    good = write(env, "a.toml", GRANT)
    result = runner.invoke(main, ["policy", "check"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"ok     {good}: policy acme-care (grant), version ")
    bad = write(env, "b.toml", POOL.replace("member_cap_minutes = 60", "member_cap_minutes = 6.5"))
    result = runner.invoke(main, ["policy", "check"], env=env)
    assert result.exit_code == 1
    assert f"error  {bad}: params.member_cap_minutes: expected int, got float" in result.output
    one = runner.invoke(main, ["policy", "check", str(good)], env=env)
    assert one.exit_code == 0 and str(bad) not in one.output


def test_apply_loads_the_directory_and_reports_refused_files(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    write(env, "a.toml", GRANT)
    write(env, "b.toml", POOL)
    result = runner.invoke(main, ["policy", "apply"], env=env)
    assert result.exit_code == 0, result.output
    assert (
        "policy acme-care, version" in result.output and "(new version in force)" in result.output
    )
    assert (
        f"warning {Path(env['SCAMBIO_POLICIES_DIR']) / 'a.toml'}: sponsor: organisation "
        f"{SPONSOR} does not exist (yet): policy 'acme-care' issues nothing until it does"
    ) in result.output
    again = runner.invoke(main, ["policy", "apply"], env=env)
    assert again.output.count("(unchanged)") == 2
    write(env, "b.toml", POOL.replace('kind = "pool"', 'kind = "puddle"'))
    broken = runner.invoke(main, ["policy", "apply"], env=env)
    assert broken.exit_code == 1
    assert "kind: unknown kind 'puddle'" in broken.output
    assert "of policy 'pool' stays in force" in broken.output


def test_simulate_prints_and_writes_nothing(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    grant = write(env, "a.toml", GRANT)
    result = runner.invoke(main, ["policy", "simulate", str(grant), "--period", "2026-12"], env=env)
    assert result.exit_code == 0, result.output
    assert "policy acme-care (grant), version" in result.output
    assert f"nothing: sponsor organisation {SPONSOR} does not exist" in result.output
    pool = write(env, "b.toml", POOL)
    result = runner.invoke(main, ["policy", "simulate", str(pool), "--period", "2026-12"], env=env)
    assert result.exit_code == 0, result.output
    assert "budget 600; would use 0; 0 minutes over budget\nno postings" in result.output
    wrong = runner.invoke(main, ["policy", "simulate", str(pool), "--period", "2026-Q4"], env=env)
    assert wrong.exit_code == 1
    assert "expected a month like 2026-12, got '2026-Q4'" in wrong.output
    bad = write(env, "c.toml", GRANT.replace("minutes = 240", "minutes = -1"))
    refused = runner.invoke(main, ["policy", "simulate", str(bad), "--period", "2026-12"], env=env)
    assert refused.exit_code == 1
    assert f"{bad}: params.minutes: expected int >= 1" in refused.output
    assert not (tmp_path / "var" / "node.key").exists()
