"""The command line creates the first admin and managers; zones come from a file or are
Milan's nine Municipi."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from scambio.cli import main
from scambio.settings import SettingsError, load_settings
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.zones import ZonesError, load_zones

from .api_helpers import Api, assert_problem, running_api


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'var' / 'cli.db'}",
        "SCAMBIO_LEDGER_ORIGIN": "cli.scambio.local/test",
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }


def test_the_first_admin_is_created_from_the_command_line(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    args = ["member", "add", "--email", "Sara@Example.org", "--name", "Sara", "--role", "admin"]
    created = runner.invoke(
        main,
        [*args, "--password-stdin", "--zone", "municipio-6"],
        env=env,
        input="a long secret!\n",
    )
    assert created.exit_code == 0, created.output
    member_id, role, email, _, account = created.output.split()
    assert (role, email, account) == ("admin", "sara@example.org", f"m-{member_id}")
    again = runner.invoke(main, [*args, "--password-stdin"], env=env, input="a long secret!\n")
    assert again.exit_code == 1
    assert "another member already uses this email" in again.output
    short = runner.invoke(
        main,
        ["member", "add", "--email", "x@y.org", "--name", "X", "--password-stdin"],
        env=env,
        input="short\n",
    )
    assert short.exit_code == 1 and "10 to 200 characters" in short.output
    bad_zone = runner.invoke(
        main, ["member", "add", "--email", "z@y.org", "--name", "Z", "--zone", "mars"], env=env
    )
    assert bad_zone.exit_code == 1 and "zone 'mars'" in bad_zone.output


def test_the_cli_admin_logs_in_over_http(db_url: str, tmp_path: Path) -> None:
    env = {
        "SCAMBIO_DATA_DIR": str(tmp_path / "var"),
        "SCAMBIO_DATABASE_URL": db_url,
        "SCAMBIO_LEDGER_ORIGIN": "test.scambio.local/ledger",
        "SCAMBIO_PASSWORD_HASH_COST": "minimal",
    }
    result = CliRunner().invoke(
        main,
        [
            "member",
            "add",
            "--email",
            "m@x.org",
            "--name",
            "Mara",
            "--role",
            "manager",
            "--password-stdin",
        ],
        env=env,
        input="manager password\n",
    )
    assert result.exit_code == 0, result.output

    async def over_http() -> None:
        async with running_api(db_url, tmp_path) as api:
            login = await api.login("m@x.org", "manager password", as_="mara")
            assert login.json()["member"]["role"] == "manager"
            log = (await api.get("/api/v1/audit", role="mara")).json()["items"]
            assert [(e["action"], e["actor"]) for e in log] == [("member.created", "cli")]

    # The command runs its own event loop, so this test is synchronous.
    asyncio.run(over_http())


def test_zones_default_to_milans_municipi(env: dict[str, str]) -> None:
    zones = load_zones(None)
    assert [z.id for z in zones.items] == [f"municipio-{n}" for n in range(1, 10)]
    assert [z.name for z in zones.items if z.pilot] == ["Municipio 4", "Municipio 6"]
    listed = CliRunner().invoke(main, ["zones"], env=env)
    assert "municipio-6          Municipio 6  (pilot)" in listed.output
    assert len(AREA_IDS) == 6


@pytest.mark.parametrize("suffix", [".toml", ".json"])
async def test_zones_come_from_a_file(db_url: str, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"zones{suffix}"
    if suffix == ".toml":
        path.write_text(
            '[[zone]]\nid = "centro"\nname = "Centro storico"\npilot = true\n\n'
            '[[zone]]\nid = "periferia"\nname = "Periferia"\n'
        )
    else:
        path.write_text(
            json.dumps(
                [
                    {"id": "centro", "name": "Centro storico", "pilot": True},
                    {"id": "periferia", "name": "Periferia"},
                ]
            )
        )
    async with running_api(db_url, tmp_path, SCAMBIO_ZONES_FILE=str(path)) as api:
        zones = (await api.get("/api/v1/zones", role=None)).json()
        assert zones == [
            {"id": "centro", "name": "Centro storico", "pilot": True},
            {"id": "periferia", "name": "Periferia", "pilot": False},
        ]
        await check_zone_is_validated(api)


async def check_zone_is_validated(api: Api) -> None:
    marco = await api.add_member("marco", zone="centro")
    moved = await api.request(
        "PATCH", f"/api/v1/members/{marco.id}", role="marco", json={"zone": "municipio-6"}
    )
    assert_problem(moved, 422, "unknown-zone")


@pytest.mark.parametrize(
    ("text", "suffix", "match"),
    [
        ("[]", ".json", "expected a list of 1 to 500 zones"),
        ("{", ".json", "zones file"),
        ('[{"id": "A B", "name": "x"}]', ".json", "id must match"),
        ('[{"id": "a", "name": ""}]', ".json", "name must be 1 to 200"),
        ('[{"id": "a", "name": "x", "colour": "red"}]', ".json", "unknown field"),
        ('[{"id": "a", "name": "x", "pilot": "yes"}]', ".json", "pilot must be true or false"),
        ('[{"id": "a", "name": "x"}, {"id": "a", "name": "y"}]', ".json", "must be unique"),
        ("[1]", ".json", "each zone must be"),
        ("zone = 1", ".toml", "expected a list"),
        ("[[zone", ".toml", "zones file"),
    ],
)
def test_bad_zone_files_are_named(tmp_path: Path, text: str, suffix: str, match: str) -> None:
    path = tmp_path / f"zones{suffix}"
    path.write_text(text)
    with pytest.raises(ZonesError, match=match):
        load_zones(path)
    with pytest.raises(ZonesError, match="No such file"):
        load_zones(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("SCAMBIO_PASSWORD_HASH_COST", "cheap", "'standard' or 'minimal'"),
        ("SCAMBIO_SMTP_STARTTLS", "maybe", "true or false"),
        ("SCAMBIO_MEMBER_TOKEN_TTL", "5", "60 seconds to ten years"),
        ("SCAMBIO_LOGIN_MAX_FAILURES", "0", "from 1 to 1000"),
        ("SCAMBIO_SMTP_PORT", "70000", "from 1 to 65535"),
    ],
)
def test_bad_people_settings_are_named(name: str, value: str, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load_settings({name: value})


def test_the_smtp_password_never_shows_in_a_repr() -> None:
    settings = load_settings({"SCAMBIO_SMTP_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)
    assert str(settings.smtp_password) == "hunter2-secret"
