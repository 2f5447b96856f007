"""The timebank's services in one place: what the API, the CLI and jobs pass around.

`Timebank` bundles the ledger service (for opening accounts), the clock (the ledger's, so
tests move one time for everything), the configured zones, the password hasher, the mail
outbox and the login throttle. It holds no state of its own beyond those.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from scambio.settings import Settings
from scambio.store.ledger import LedgerService
from scambio.timebank.db import Clock
from scambio.timebank.outbox import Mailer
from scambio.timebank.passwords import Passwords
from scambio.timebank.throttle import Throttle
from scambio.timebank.zones import Zones, load_zones


@dataclass
class Timebank:
    ledger: LedgerService
    settings: Settings
    clock: Clock
    zones: Zones
    passwords: Passwords
    mailer: Mailer
    throttle: Throttle

    @property
    def engine(self) -> AsyncEngine:
        return self.ledger.engine

    @classmethod
    def create(
        cls,
        ledger: LedgerService,
        settings: Settings,
        *,
        passwords: Passwords | None = None,
        zones: Zones | None = None,
    ) -> Timebank:
        """Build from settings; raises `ZonesError` on a bad zones file."""
        clock = ledger.clock
        return cls(
            ledger=ledger,
            settings=settings,
            clock=clock,
            zones=zones or load_zones(settings.zones_file),
            passwords=passwords or Passwords(settings.password_hash_cost),
            mailer=Mailer(ledger.engine, settings, clock),
            throttle=Throttle(clock, settings.login_window),
        )
