"""Policy files: every kind of mistake gives its exact error (file, field, expectation);
a valid file has one version whatever its layout; the directory is applied all or
nothing, and a bad file leaves the last valid version of its policy in force."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from scambio.policy import loader
from scambio.policy.kinds import load_kinds
from scambio.policy.loader import apply_directory, read_files
from scambio.policy.model import PolicyError, parse_policy
from scambio.store.db import make_engine
from scambio.store.people_tables import audit_log
from scambio.store.policy_tables import policies, policy_files, policy_versions
from scambio.timebank.zones import MILAN_MUNICIPI

from .api_helpers import running_api
from .policy_helpers import policy_text

SPONSOR = "0123456789abcdef"
ZONES = frozenset(z.id for z in MILAN_MUNICIPI)
GOOD = """\
id = "acme-care"
kind = "grant"
title = "Childcare for Acme staff"
sponsor = "0123456789abcdef"
budget_minutes = 2400

[schedule]
every = "month"
start = "2026-01"

[params]
minutes = 240
areas = ["childcare", "health_wellbeing"]
zones = ["municipio-4", "municipio-6"]
"""


def parse(source: str, file: str = "acme.toml") -> object:
    return parse_policy(source, file, load_kinds(), zones=ZONES)


def edit(old: str, new: str, source: str = GOOD) -> str:
    assert old in source
    return source.replace(old, new, 1)


BAD: list[tuple[str, str, str]] = [
    (
        "unknown top-level field",
        edit("budget_minutes = 2400", 'colour = "red"'),
        "acme.toml: colour: unknown field",
    ),
    (
        "unknown parameter",
        edit("\nminutes = 240", "\nminutes = 240\nhourz = 4"),
        "acme.toml: params.hourz: unknown field",
    ),
    (
        "unknown schedule field",
        edit('every = "month"', 'every = "month"\nat = "noon"'),
        "acme.toml: schedule.at: unknown field",
    ),
    (
        "unknown kind",
        edit('kind = "grant"', 'kind = "gift"'),
        "acme.toml: kind: unknown kind 'gift' (known: grant, match, pool, staff_time)",
    ),
    (
        "missing title",
        edit('title = "Childcare for Acme staff"\n', ""),
        "acme.toml: title: required field is missing",
    ),
    (
        "missing parameter",
        edit("\nminutes = 240\n", "\n"),
        "acme.toml: params.minutes: required field is missing",
    ),
    (
        "minutes as a float",
        edit("\nminutes = 240", "\nminutes = 240.0"),
        "acme.toml: params.minutes: expected int, got float",
    ),
    (
        "minutes as text",
        edit("\nminutes = 240", '\nminutes = "240"'),
        "acme.toml: params.minutes: expected int, got str",
    ),
    (
        "no minutes",
        edit("\nminutes = 240", "\nminutes = 0"),
        "acme.toml: params.minutes: expected int >= 1",
    ),
    (
        "too many minutes",
        edit("\nminutes = 240", "\nminutes = 60001"),
        "acme.toml: params.minutes: expected int <= 60000",
    ),
    (
        "an id with capitals",
        edit('id = "acme-care"', 'id = "Acme-Care"'),
        "acme.toml: id: expected 1 to 48 lower-case letters, digits or '-', starting with a "
        "letter or digit, got 'Acme-Care'",
    ),
    (
        "an id as a number",
        edit('id = "acme-care"', "id = 7"),
        "acme.toml: id: expected str, got int",
    ),
    (
        "a grant without a sponsor",
        edit('sponsor = "0123456789abcdef"\n', ""),
        "acme.toml: sponsor: required for a grant policy: the sponsoring organisation's id "
        "(16 hex digits)",
    ),
    (
        "a sponsor by name",
        edit('sponsor = "0123456789abcdef"', 'sponsor = "Acme"'),
        "acme.toml: sponsor: expected an organisation's id (16 hex digits), got 'Acme'",
    ),
    (
        "a weekly schedule",
        edit('every = "month"', 'every = "week"'),
        "acme.toml: schedule.every: expected one of month, quarter, got 'week'",
    ),
    (
        "a month that is not",
        edit('start = "2026-01"', 'start = "2026-13"'),
        "acme.toml: schedule.start: expected a month like 2026-12, got '2026-13'",
    ),
    (
        "a quarter for a monthly policy",
        edit('start = "2026-01"', 'start = "2026-Q1"'),
        "acme.toml: schedule.start: expected a month like 2026-12, got '2026-Q1'",
    ),
    (
        "an end before the start",
        edit('start = "2026-01"', 'start = "2026-05"\nend = "2026-04"'),
        "acme.toml: schedule.end: expected a period at or after schedule.start",
    ),
    (
        "an unknown area",
        edit('"childcare", "health_wellbeing"', '"childcare", "elder_care"'),
        "acme.toml: params.areas[1]: expected one of childcare, employment_flexible_work, "
        "health_wellbeing, housing, parenting, training_empowerment, got 'elder_care'",
    ),
    (
        "no area",
        edit('areas = ["childcare", "health_wellbeing"]', "areas = []"),
        "acme.toml: params.areas: expected at least one area the credit may be spent on",
    ),
    (
        "an area twice",
        edit('"childcare", "health_wellbeing"', '"childcare", "childcare"'),
        "acme.toml: params.areas: expected each value once, got a repeated value",
    ),
    (
        "an unknown zone",
        edit('"municipio-4", "municipio-6"', '"municipio-4", "zona-6"'),
        "acme.toml: params.zones[1]: expected one of the configured zones (municipio-1, "
        "municipio-2, municipio-3, municipio-4, municipio-5, municipio-6, municipio-7, "
        "municipio-8, municipio-9), got 'zona-6'",
    ),
    (
        "expiry to nowhere",
        edit("\nminutes = 240", '\nminutes = 240\nexpire_to = "charity"'),
        "acme.toml: params.expire_to: expected one of sponsor, pool, got 'charity'",
    ),
    (
        "a pool that is not",
        edit("\nminutes = 240", '\nminutes = 240\npool = "community"'),
        "acme.toml: params.pool: expected a pool account id such as pool:community, got "
        "'community'",
    ),
    (
        "an unknown enrolment",
        edit("\nminutes = 240", '\nminutes = 240\nenrolment = "everyone"'),
        "acme.toml: params.enrolment: expected one of employees, by-admin, got 'everyone'",
    ),
    (
        "a member by name",
        edit("\nminutes = 240", '\nminutes = 240\nmembers = ["giulia"]'),
        "acme.toml: params.members[0]: expected a member id (16 hex digits), got 'giulia'",
    ),
    (
        "expiry after zero days",
        edit("\nminutes = 240", "\nminutes = 240\nexpire_after_days = 0"),
        "acme.toml: params.expire_after_days: expected int >= 1",
    ),
    (
        "a budget of nothing",
        edit("budget_minutes = 2400", "budget_minutes = 0"),
        "acme.toml: budget_minutes: expected an integer from 1 to 1000000000 (minutes)",
    ),
    (
        "a date where a month is expected",
        edit('start = "2026-01"', "start = 2026-01-01"),
        "acme.toml: schedule.start: expected str | null, got date",
    ),
    (
        "not TOML",
        edit("\nminutes = 240", "\nminutes = "),
        "acme.toml: invalid TOML: Invalid value (at line 12, column 11)",
    ),
    (
        "an empty title",
        edit('title = "Childcare for Acme staff"', 'title = "  "'),
        "acme.toml: title: expected a non-empty text",
    ),
    (
        "params not a table",
        edit(
            "budget_minutes = 2400",
            "budget_minutes = 2400\nparams = 240",
            GOOD.replace("[params]", "[extra]"),
        ),
        "acme.toml: params: expected object, got int",
    ),
]


@pytest.mark.parametrize(("source", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_mistake_gives_its_exact_error(source: str, message: str) -> None:
    with pytest.raises(PolicyError, match=f"^{re.escape(message)}$"):
        parse(source)


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        (
            "match",
            {"cap_minutes": 480, "ratio": "1.5"},
            "m.toml: params.ratio: expected a ratio of whole numbers like \"1:1\", got '1.5'",
        ),
        (
            "match",
            {"cap_minutes": 480, "credit_to": "giulia"},
            "m.toml: params.credit_to: expected a pool (pool:...) or a member's or "
            "organisation's account (m-..., o-...), got 'giulia'",
        ),
        ("match", {"ratio": "1:1"}, "m.toml: params.cap_minutes: required field is missing"),
        ("staff_time", {"pledge_minutes": -5}, "m.toml: params.pledge_minutes: expected int >= 1"),
        (
            "staff_time",
            {"pledge_minutes": 60, "donate_to": "sponsor:x"},
            "m.toml: params.donate_to: expected a pool (pool:...) or a member's or "
            "organisation's account (m-..., o-...), got 'sponsor:x'",
        ),
        (
            "pool",
            {"member_cap_minutes": 60, "pool": "o-0123456789abcdef"},
            "m.toml: params.pool: expected a pool account id such as pool:community, got "
            "'o-0123456789abcdef'",
        ),
        ("pool", {"member_cap_minutes": 60, "minutes": 5}, "m.toml: params.minutes: unknown field"),
    ],
)
def test_each_kind_checks_its_parameters(
    kind: str, params: dict[str, object], message: str
) -> None:
    source = policy_text("m", kind, SPONSOR, params)
    with pytest.raises(PolicyError, match=f"^{re.escape(message)}$"):
        parse(source, "m.toml")


def test_the_bytes_are_checked_before_anything_else() -> None:
    kinds = load_kinds()
    with pytest.raises(PolicyError, match=r"^x\.toml: expected UTF-8 text$"):
        parse_policy(b'id = "\xff"', "x.toml", kinds)
    with pytest.raises(PolicyError, match=r"^x\.toml: expected at most 65536 bytes, got 65537$"):
        parse_policy(b"#" * 65537, "x.toml", kinds)


def test_the_version_is_the_hash_of_the_content_not_of_the_layout() -> None:
    policy = parse(GOOD)
    relaid = parse("# a comment\n" + GOOD.replace(" = ", "=").replace("\n\n", "\n"))
    assert relaid.version == policy.version  # type: ignore[attr-defined]
    explicit = parse(edit("\nminutes = 240", "\nminutes = 240\nexpire_after_days = 90"))
    assert explicit.version == policy.version  # type: ignore[attr-defined]
    changed = parse(edit("\nminutes = 240", "\nminutes = 241"))
    assert changed.version != policy.version  # type: ignore[attr-defined]
    assert len(policy.version) == 64  # type: ignore[attr-defined]


def test_files_are_checked_together(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(GOOD)
    (tmp_path / "b.toml").write_text(GOOD.replace("budget_minutes = 2400", "budget_minutes = 10"))
    (tmp_path / "c.toml").write_text(GOOD.replace('id = "acme-care"', 'id = "acme-care-2"'))
    valid, errors = read_files(sorted(tmp_path.iterdir()), load_kinds(), zones=ZONES)
    assert [p.file for p in valid] == [str(tmp_path / "a.toml")]
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'b.toml'}: id: policy id 'acme-care' is already used by "
        f"{tmp_path / 'a.toml'}",
        f"{tmp_path / 'c.toml'}: sponsor: organisation 0123456789abcdef already has a grant "
        f"policy ('acme-care' in {tmp_path / 'a.toml'}): one grant policy per sponsor",
    ]


# -- applying a directory (SQLite and PostgreSQL) ---------------------------------------------


async def stored(engine: object, policy_id: str) -> tuple[str, str]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        row = (
            await conn.execute(
                select(policies.c.version, policies.c.status).where(policies.c.id == policy_id)
            )
        ).one()
    return row.version, row.status


async def test_a_bad_file_keeps_the_last_valid_version_in_force(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(db_url, null_pool=True)
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "acme.toml"
    try:
        path.write_text(GOOD)
        first = await apply_directory(engine, folder, "2026-11-25T09:00:00.000000Z")
        assert first.ok and first.files[0].changed
        v1 = first.files[0].version
        assert v1 is not None
        assert await stored(engine, "acme-care") == (v1, "active")

        path.write_text(edit("\nminutes = 240", "\nminutes = 240.5"))
        with caplog.at_level(logging.ERROR, logger="scambio.policy.loader"):
            second = await apply_directory(engine, folder, "2026-11-26T09:00:00.000000Z")
        message = (
            f"{path}: params.minutes: expected int, got float; version {v1[:12]} of policy "
            "'acme-care' stays in force"
        )
        assert [r.error for r in second.errors] == [message]
        assert message in caplog.text
        assert await stored(engine, "acme-care") == (v1, "active")
        health = await loader.health(engine)
        assert (health.loaded, health.errors) == (0, [(str(path), message)])

        path.write_text(edit("\nminutes = 240", "\nminutes = 180"))
        third = await apply_directory(engine, folder, "2026-11-27T09:00:00.000000Z")
        v2 = third.files[0].version
        assert third.ok and third.files[0].changed and v2 != v1
        assert await stored(engine, "acme-care") == (v2, "active")
        assert (await loader.health(engine)).errors == []
        async with engine.connect() as conn:
            texts = {
                r.version: r.source
                for r in await conn.execute(
                    select(policy_versions.c.version, policy_versions.c.source)
                )
            }
            actions = [
                r.action
                for r in await conn.execute(
                    select(audit_log.c.action).where(audit_log.c.subject_id == "acme-care")
                )
            ]
        assert texts == {v1: GOOD, v2: edit("\nminutes = 240", "\nminutes = 180")}
        assert actions == ["policy.applied", "policy.applied"]

        # Applying the same files again changes nothing.
        again = await apply_directory(engine, folder, "2026-11-28T09:00:00.000000Z")
        assert again.ok and not again.files[0].changed

        # A policy whose file is gone is retired.
        path.unlink()
        gone = await apply_directory(engine, folder, "2026-11-29T09:00:00.000000Z")
        assert gone.retired == ["acme-care"]
        assert await stored(engine, "acme-care") == (v2, "retired")
    finally:
        await engine.dispose()


async def test_kind_and_sponsor_are_fixed_for_life(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url, null_pool=True)
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "acme.toml"
    try:
        path.write_text(GOOD)
        v1 = (await apply_directory(engine, folder, "2026-11-25T09:00:00.000000Z")).files[0].version
        path.write_text(policy_text("acme-care", "match", SPONSOR, {"cap_minutes": 60}))
        report = await apply_directory(engine, folder, "2026-11-26T09:00:00.000000Z")
        assert report.errors[0].error == (
            f"{path}: kind: policy 'acme-care' is a grant policy: its kind cannot change (give "
            f"the new policy a new id); version {v1[:12]} of policy 'acme-care' stays in force"  # type: ignore[index]
        )
        path.write_text(GOOD.replace(SPONSOR, "fedcba9876543210"))
        report = await apply_directory(engine, folder, "2026-11-26T09:00:00.000000Z")
        assert report.errors[0].error is not None
        assert (
            "sponsor: policy 'acme-care' is sponsored by 0123456789abcdef" in report.errors[0].error
        )
        assert await stored(engine, "acme-care") == (v1, "active")
    finally:
        await engine.dispose()


async def test_nothing_is_half_applied(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url, null_pool=True)
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a.toml").write_text(GOOD)
    (folder / "b.toml").write_text(policy_text("pool", "pool", None, {"member_cap_minutes": 60}))
    calls = []
    original = loader._store

    async def failing(*args: object, **kwargs: object) -> bool:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "_store", failing)
    try:
        with pytest.raises(RuntimeError, match="the disk is full"):
            await apply_directory(engine, folder, "2026-11-25T09:00:00.000000Z")
        async with engine.connect() as conn:
            for table in (policies, policy_versions, policy_files):
                assert (await conn.execute(select(table))).all() == []
    finally:
        await engine.dispose()


async def test_versions_are_append_only(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url, null_pool=True)
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a.toml").write_text(GOOD)
    try:
        await apply_directory(engine, folder, "2026-11-25T09:00:00.000000Z")
        for statement in (
            update(policy_versions).values(source="rewritten"),
            text("DELETE FROM policy_versions"),
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(statement)
    finally:
        await engine.dispose()


async def test_the_service_starts_with_a_bad_file_and_reports_it(
    db_url: str, tmp_path: Path
) -> None:
    """(The log line is checked above: the app's logging config owns the root logger.)"""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "pool.toml").write_text(policy_text("pool", "pool", None, {"member_cap_minutes": 60}))
    bad = folder / "broken.toml"
    bad.write_text(edit('kind = "grant"', 'kind = "grnat"'))
    async with running_api(db_url, tmp_path, SCAMBIO_POLICIES_DIR=str(folder)) as api:
        health = await api.client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok"
        assert body["policies"] == {
            "loaded": 1,
            "errors": [
                {
                    "file": str(bad),
                    "error": f"{bad}: kind: unknown kind 'grnat' (known: grant, match, "
                    "pool, staff_time)",
                }
            ],
        }
        listed = (await api.get("/api/v1/policies")).json()["items"]
        assert [p["id"] for p in listed] == ["pool"]


async def test_a_missing_directory_changes_nothing(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url, null_pool=True)
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "a.toml").write_text(GOOD)
    try:
        await apply_directory(engine, folder, "2026-11-25T09:00:00.000000Z")
        report = await apply_directory(
            engine, tmp_path / "elsewhere", "2026-11-26T09:00:00.000000Z"
        )
        assert report.files == [] and report.retired == []
        assert report.warnings == [
            f"{tmp_path / 'elsewhere'} is not a directory: no policy was applied or retired"
        ]
        assert (await stored(engine, "acme-care"))[1] == "active"
    finally:
        await engine.dispose()
