"""The Litestar application factory: wiring only.

The lifespan opens the engine, refuses to start on a schema that is behind, loads (or
creates) the node key, starts the ledger service and, unless `SCAMBIO_RUN_JOBS` says
otherwise, the scheduled jobs (`scambio.jobs`), and stops them in reverse order on
shutdown. Everything else lives in `api/` and `web/`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.static_files import create_static_files_router

from scambio import __version__
from scambio.api import api_router
from scambio.api.auth import provide_timebank
from scambio.api.deps import provide_ledger
from scambio.api.health import health
from scambio.api.problems import EXCEPTION_HANDLERS
from scambio.api.ratelimit import scope_client
from scambio.api.security import add_security_headers
from scambio.jobs import scheduler_for
from scambio.settings import Settings, load_settings
from scambio.store.appender import Clock
from scambio.store.db import make_engine
from scambio.store.keyfile import load_or_create_key
from scambio.store.ledger import LedgerService
from scambio.store.migrate import check_schema
from scambio.timebank.context import Timebank
from scambio.web import STATIC_DIR, STATIC_URL
from scambio.web.docs import LocalRedocRenderPlugin, LocalSwaggerRenderPlugin
from scambio.web.home import home
from scambio.web.router import web_router

log = logging.getLogger(__name__)

DESCRIPTION = """\
Scambio is a timebank ledger: append-only, signed, double-entry, verifiable.

**Authentication.** Send `Authorization: Bearer <token>`. Members get tokens from
`POST /api/v1/auth/login` (scoped: read, write, transfer, manage; revocable; expiring);
operators issue admin, manager and auditor tokens with `scambio token issue`. Managers and
admins act community-wide; a member acts on their own profile and spends only from their
own account (or, as an org admin, their organisation's); auditors read everything and
write nothing (403). The checkpoint, the verifier key and the Merkle proofs are public:
anyone may verify the ledger.

**Errors** are RFC 9457 problem details (`application/problem+json`) with a stable `type`
`urn:scambio:problem:<slug>`, e.g. `limit-exceeded` (422, with `account`, `available`,
`shortfall`), `idempotency-conflict` (409, with `field`), `unknown-account`,
`hold-not-found`, `hold-resolved`, `hold-expired`, `already-reversed`, `not-reversible`,
`invalid-amount`, `invalid-id`, `beyond-tree`, `invalid-proof-request`,
`invalid-request` (400: bad JSON, unknown field, wrong type), `unauthenticated`,
`forbidden`, `body-too-large`, `storage-unavailable` (503, with `Retry-After`).

**Idempotency.** Transfer and reversal ids are client-generated UUIDs. Repeating a request
returns 200 and the original body; reusing an id for different fields is a 409 naming
the field. Success is reported only after the commit.

**Amounts** are whole minutes, strictly integers: `90.0` and `"90"` are refused.

**Rate limits.** Write requests are limited per token and per client address (settings
`SCAMBIO_WRITE_RATE`, `SCAMBIO_WRITE_BURST`); beyond them: 429 `too-many-requests` with
`Retry-After`, and nothing changes.
"""


async def apply_policies(timebank: Timebank) -> None:
    """Load the policies directory. A bad file keeps the last valid version of its policy
    in force and is reported in `/health` and the log; nothing here stops the service."""
    from scambio.ledger.entry import format_time
    from scambio.policy.loader import apply_directory

    settings = timebank.settings
    try:
        report = await apply_directory(
            timebank.engine,
            settings.policies_dir,
            format_time(timebank.clock()),
            zones=timebank.zones.ids,
        )
    except Exception as exc:
        log.error("policies not applied: %s: %s", type(exc).__name__, exc)
        return
    if report.files:
        log.info(
            "policies: %d file(s) applied from %s, %d refused",
            len(report.files) - len(report.errors),
            settings.policies_dir,
            len(report.errors),
        )


def make_lifespan(
    settings: Settings, clock: Clock | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        try:
            await check_schema(engine)
            signer = load_or_create_key(settings.key_file, settings.ledger_origin)
            ledger = LedgerService(engine, signer, settings, clock=clock)
            timebank = Timebank.create(ledger, settings)
            await ledger.start()
        except BaseException:
            await engine.dispose()
            raise
        app.state.ledger = ledger
        app.state.timebank = timebank
        await apply_policies(timebank)
        # Mail left over from a previous run (or a crash) goes out now.
        timebank.mailer.kick()
        # Scheduled jobs (expiring holds, verification, reports...): see scambio.jobs.
        jobs = scheduler_for(timebank) if settings.run_jobs == "serve" else None
        app.state.jobs = jobs
        if jobs is not None:
            jobs.start()
        try:
            yield
        finally:
            if jobs is not None:
                await jobs.stop()
            await timebank.mailer.aclose()
            await ledger.stop()
            await engine.dispose()

    return lifespan


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Scambio",
        version=__version__,
        description=DESCRIPTION,
        path="/schema",
        render_plugins=[
            LocalSwaggerRenderPlugin(path="/swagger"),
            LocalRedocRenderPlugin(path="/redoc"),
            JsonRenderPlugin(path="/openapi.json"),
        ],
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="A Scambio API token (scb_...): from a member's login, or "
                    "issued by an operator.",
                )
            }
        ),
        tags=[
            Tag(name="accounts", description="Open accounts and read balances and statements"),
            Tag(name="transfers", description="Transfers, holds, linked batches, reversals"),
            Tag(name="ledger", description="Checkpoints, entries and Merkle proofs"),
            Tag(name="session", description="Log in, tokens, passwords"),
            Tag(name="people", description="Members, profiles, approval, the audit log, zones"),
            Tag(name="organisations", description="Organisations, their admins, employee links"),
            Tag(name="listings", description="Offers and requests: post, search, renew, close"),
            Tag(name="matching", description="Suggestions, the manager's queue, introductions"),
            Tag(
                name="exchanges",
                description="Exchanges, group exchanges, thanks, member statements",
            ),
            Tag(name="notifications", description="In-app notifications and their settings"),
            Tag(
                name="policies",
                description="Sponsorship policies, versions, enrolments, pool grants, figures",
            ),
            Tag(name="jobs", description="Scheduled jobs and the record of their runs"),
            Tag(
                name="reports",
                description="Co-production reports: signed, recomputable from an export",
            ),
            Tag(
                name="federation",
                description="Peer timebanks, cross-timebank transfers, node-to-node protocol",
            ),
            Tag(name="service", description="Home page and health"),
        ],
    )


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> Litestar:
    """Build the application; `clock` lets tests control the appender's time."""
    settings = settings or load_settings()
    return Litestar(
        route_handlers=[
            api_router(),
            home,
            web_router(client_address=scope_client),
            health,
            create_static_files_router(
                path=STATIC_URL, directories=[STATIC_DIR], include_in_schema=False
            ),
        ],
        dependencies={
            "ledger": Provide(provide_ledger, sync_to_thread=False),
            "timebank": Provide(provide_timebank, sync_to_thread=False),
        },
        lifespan=[make_lifespan(settings, clock)],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_send=[add_security_headers],
        openapi_config=openapi_config(),
        request_max_body_size=settings.max_body_size,
        state=State({"settings": settings}),
    )
