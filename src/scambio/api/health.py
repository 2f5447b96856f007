"""Liveness and readiness in one probe: is the database reachable, is the appender running.

It also says what the verify-ledger job last found (`ledger`: verified, compromised or
unverified). A compromised ledger does not make the probe fail (the service still works,
and taking it down would hide the evidence); it is loud in the body, in the job's record
and in the logs (CRITICAL), and staff see the first bad entry at
GET /api/v1/ledger/verification.
"""

from __future__ import annotations

import logging

from litestar import Response, get
from litestar.di import NamedDependency
from sqlalchemy.exc import SQLAlchemyError

from scambio.api.problems import RETRY_AFTER
from scambio.api.schemas import HealthOut, PoliciesHealth, PolicyFileError
from scambio.policy.loader import health as policy_health
from scambio.store import queries, verification
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
            verified = await verification.load(conn)
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
            ledger="unverified" if verified is None else verified.status,
            ledger_verified_size=None if verified is None else verified.verified_size,
        ),
        status_code=200 if appender == "running" else 503,
    )
