"""Helpers for the policy tests: a small company town, policy files, and shorthand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from scambio.ledger.errors import RuleViolation
from scambio.policy import loader, runner
from scambio.store import queries
from scambio.store.ledger import LedgerService
from scambio.store.tables import accounts, entries
from scambio.store.tokens import SCOPES, Principal
from scambio.timebank import exchanges, orgs, people
from scambio.timebank.audit import CLI
from scambio.timebank.context import Timebank
from scambio.timebank.db import stamp
from scambio.timebank.exchanges import Exchange

MANAGER = Principal("op-sara", "Sara (manager)", "manager")


@dataclass
class Person:
    name: str
    id: str
    account: str
    principal: Principal


def policy_text(
    policy_id: str,
    kind: str,
    sponsor: str | None,
    params: dict[str, Any],
    *,
    every: str = "month",
    start: str | None = None,
    end: str | None = None,
    budget: int | None = None,
    title: str = "A policy",
) -> str:
    """A policy file's text (TOML) from its fields."""
    lines = [f'id = "{policy_id}"', f'kind = "{kind}"', f'title = "{title}"']
    if sponsor is not None:
        lines.append(f'sponsor = "{sponsor}"')
    if budget is not None:
        lines.append(f"budget_minutes = {budget}")
    lines += ["", "[schedule]", f'every = "{every}"']
    if start is not None:
        lines.append(f'start = "{start}"')
    if end is not None:
        lines.append(f'end = "{end}"')
    lines += ["", "[params]"]
    for key, value in params.items():
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


@dataclass
class Town:
    """A timebank with a company in it, and shorthand for what people do."""

    tb: Timebank
    policies: Path
    people: dict[str, Person] = field(default_factory=dict)

    @property
    def ledger(self) -> LedgerService:
        return self.tb.ledger

    async def join(self, name: str, *, zone: str | None = "municipio-6") -> Person:
        profile = people.clean_profile(self.tb.zones, {"zone": zone} if zone else {})
        member = await people.create(
            self.tb,
            CLI,
            name=name,
            email=f"{name.lower()}.{uuid.uuid4().hex[:6]}@example.org",
            password=None,
            profile=profile,
        )
        assert member.account_id is not None
        principal = Principal(f"tok-{name}", name, "member", member.id, SCOPES, member.account_id)
        person = Person(name, member.id, member.account_id, principal)
        self.people[name] = person
        return person

    async def company(self, name: str) -> orgs.Organisation:
        return await orgs.create(
            self.tb, CLI, name=name, kind="company", zone="municipio-6", description=""
        )

    async def employ(self, org: orgs.Organisation, person: Person) -> None:
        link = await orgs.propose_link(self.tb, CLI, org.id, person.id, title="staff")
        await orgs.move_link(self.tb, CLI, link.id, "accept")

    def write(self, name: str, text: str) -> Path:
        self.policies.mkdir(exist_ok=True)
        path = self.policies / name
        path.write_text(text, encoding="utf-8")
        return path

    async def apply(self) -> loader.ApplyReport:
        return await loader.apply_directory(
            self.tb.engine, self.policies, stamp(self.tb.clock), zones=self.tb.zones.ids
        )

    async def run(self, policy_id: str, period: str) -> runner.PolicyRun:
        return await runner.run_period(self.tb, policy_id, period)

    async def run_due(self, now: datetime | None = None) -> runner.RunSummary:
        return await runner.run_due(self.tb, now or self.tb.clock())

    # -- exchanges ---------------------------------------------------------------------------

    async def exchange(
        self,
        provider: Person | str,
        receiver: Person,
        minutes: int,
        area: str | None,
        *,
        confirm: bool = True,
        provider_principal: Principal | None = None,
    ) -> Exchange:
        """Propose (as the receiver), accept (the provider's side), mark done, confirm."""
        provider_account = provider if isinstance(provider, str) else provider.account
        proposal = exchanges.clean_proposal(
            exchange_id=str(uuid.uuid4()),
            provider=provider_account,
            receiver=receiver.account,
            minutes=minutes,
            title="Help",
            area=area,
        )
        ex, _created = await exchanges.propose(self.tb, MANAGER, proposal)
        ex = await exchanges.accept(self.tb, receiver.principal, ex.id)
        if not confirm:
            return ex
        ex = await exchanges.mark_done(self.tb, MANAGER, ex.id)
        return await exchanges.confirm(self.tb, receiver.principal, ex.id)

    # -- reading -----------------------------------------------------------------------------

    async def balance(self, account: str) -> int:
        """Posted balance (0 for an account never opened)."""
        async with self.ledger.read() as conn:
            try:
                return (await queries.account(conn, account)).posted
            except RuleViolation:
                return 0

    async def available(self, account: str) -> int:
        async with self.ledger.read() as conn:
            return (await queries.account(conn, account)).available

    async def size(self) -> int:
        async with self.ledger.read() as conn:
            return (await queries.head(conn)).size

    async def total(self) -> tuple[int, int, int]:
        """Sum of posted, debits pending and credits pending over every account."""
        async with self.ledger.read() as conn:
            row = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(accounts.c.posted), 0),
                        func.coalesce(func.sum(accounts.c.debits_pending), 0),
                        func.coalesce(func.sum(accounts.c.credits_pending), 0),
                    )
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def entry_ids(self, prefix: str = "") -> list[str]:
        async with self.ledger.read() as conn:
            rows = await conn.execute(select(entries.c.id).order_by(entries.c.idx))
            return [r.id for r in rows if r.id.startswith(prefix)]
