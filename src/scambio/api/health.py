"""Liveness and readiness in one probe: is the database reachable, is the appender running."""

from __future__ import annotations

import logging

from litestar import Response, get
from litestar.di import NamedDependency
from sqlalchemy.exc import SQLAlchemyError

from scambio.api.problems import RETRY_AFTER
from scambio.api.schemas import HealthOut, PoliciesHealth, PolicyFileError
from scambio.policy.loader import health as policy_health
from scambio.store import queries
from scambio.store.ledger import LedgerService

log = logging.getLogger(__name__)


def _appender_running(ledger: NamedDependency[LedgerService]) -> bool:
    return ledger.appender.running


async def _policies(ledger: LedgerService) -> PoliciesHealth | None:
    found = await policy_health(ledger.engine)
    if not found.loaded and not found.errors:
        return None
    return PoliciesHealth(
        loaded=found.loaded,
        errors=[PolicyFileError(file=file, error=error) for file, error in found.errors],
    )


@get(
    "/health",
    operation_id="getHealth",
    summary="Service health: 200 when the database answers, 503 otherwise",
    tags=["service"],
    cache_control=None,
)
async def health(ledger: NamedDependency[LedgerService]) -> Response[HealthOut]:
    appender = "running" if _appender_running(ledger) else "stopped"
    try:
        async with ledger.read() as conn:
            head = await queries.head(conn)
        policies = await _policies(ledger)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return Response(
            HealthOut(
                status="unavailable",
                database="unreachable",
                origin=ledger.origin,
                appender=appender,
                detail="the ledger database did not answer",
            ),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )
    return Response(
        HealthOut(
            status="ok" if appender == "running" else "unavailable",
            database="ok",
            origin=ledger.origin,
            tree_size=head.size,
            appender=appender,
            policies=policies,
        ),
        status_code=200 if appender == "running" else 503,
    )
