"""Custom policy kinds: another package registers one under the entry point group
`scambio.policies` (here a test distribution on sys.path, found by importlib.metadata
like any installed package), and it works exactly as a built-in kind does."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from scambio.policy import runner
from scambio.policy.funding import sponsor_account
from scambio.policy.kinds import ENTRY_POINT_GROUP, load_kinds
from scambio.policy.model import PolicyError, parse_policy
from scambio.store.ledger import LedgerService
from scambio.timebank.context import Timebank

from .policy_helpers import Town, policy_text


def install(site: Path, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution with these entry points in our group."""
    info = site / "scambio_test_kinds-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: scambio-test-kinds\nVersion: 1.0\n"
    )
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def bonus_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    install(
        site,
        {
            "hours_bonus": "tests.policy_custom_kind:BonusKind",
            "broken": "tests.policy_custom_kind:NotAKind",
            "grant": "tests.policy_custom_kind:Grant",
            "missing": "tests.no_such_module:Kind",
        },
    )
    monkeypatch.syspath_prepend(str(site))


def test_an_entry_point_adds_a_kind_and_bad_ones_are_skipped(
    bonus_kind: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="scambio.policy.kinds"):
        kinds = load_kinds()
    assert sorted(kinds) == ["grant", "hours_bonus", "match", "pool", "staff_time"]
    assert type(kinds["grant"]).__module__ == "scambio.policy.builtin"
    assert "kind 'grant' exists already" in caplog.text
    assert "not a policy kind" in caplog.text
    assert "tests.no_such_module" in caplog.text


def test_a_custom_kind_validates_its_own_parameters(bonus_kind: None) -> None:
    source = policy_text("bonus", "hours_bonus", "0123456789abcdef", {"minutes": 60, "members": []})
    with pytest.raises(
        PolicyError, match=f"^{re.escape('b.toml: params.members: expected at least one member')}$"
    ):
        parse_policy(source, "b.toml", load_kinds())
    with pytest.raises(PolicyError, match=r"^b\.toml: params\.minutes: expected int <= 600$"):
        parse_policy(source.replace("minutes = 60", "minutes = 601"), "b.toml", load_kinds())


@pytest.fixture
async def town(ledger: LedgerService, tmp_path: Path, bonus_kind: None) -> AsyncIterator[Town]:
    tb = Timebank.create(ledger, ledger.settings)
    try:
        yield Town(tb, tmp_path / "policies")
    finally:
        await tb.mailer.aclose()


async def test_a_custom_kind_issues_through_the_runner_within_the_budget(town: Town) -> None:
    acme = await town.company("Acme")
    anna, bruno = await town.join("Anna"), await town.join("Bruno")
    town.write(
        "bonus.toml",
        policy_text(
            "bonus",
            "hours_bonus",
            acme.id,
            {"minutes": 60, "members": sorted([anna.id, bruno.id])},
            budget=90,
            start="2026-11",
        ),
    )
    assert (await town.apply()).ok
    run = await town.run("bonus", "2026-11")
    assert (run.issued, run.minutes, run.not_issued) == (2, 90, 30)
    first, second = sorted([anna, bruno], key=lambda p: p.id)
    assert await town.balance(first.account) == 60
    assert await town.balance(second.account) == 30
    assert await town.balance(sponsor_account(acme.id)) == -90
    again = await town.run("bonus", "2026-11")
    assert (again.issued, again.already) == (0, 2)


async def test_a_custom_kind_cannot_take_members_minutes(town: Town) -> None:
    acme = await town.company("Acme")
    anna = await town.join("Anna")
    town.write(
        "bonus.toml",
        policy_text(
            "bonus",
            "hours_bonus",
            acme.id,
            {"minutes": 60, "members": [anna.id], "backwards": True},
            start="2026-11",
        ),
    )
    assert (await town.apply()).ok
    size = await town.size()
    run = await town.run("bonus", "2026-11")
    assert (run.issued, run.failed) == (0, 1)
    assert run.postings[0].status == runner.REFUSED
    assert run.postings[0].error == f"a policy may not take minutes from {anna.account!r}"
    assert await town.size() == size
