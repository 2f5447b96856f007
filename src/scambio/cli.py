"""The `scambio` command: wiring only; every command delegates to a service module."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from scambio.settings import Settings, SettingsError, load_settings

T = TypeVar("T")

ROLES = ("admin", "manager", "auditor")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(factory: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(factory(_settings()))


@click.group()
@click.version_option(package_name="scambio")
def main() -> None:
    """Scambio: a timebank ledger that anyone can verify.

    Settings come from SCAMBIO_* environment variables (see README.md).
    """


# -- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API and pages (uvicorn)."""
    import uvicorn

    settings = _settings()
    _run(_preflight)
    click.echo(f"Scambio: ledger {settings.ledger_origin} on {settings.database_url}")
    click.echo(f"Serving on http://{host}:{port}/  (API docs: http://{host}:{port}/schema)")
    uvicorn.run(
        "scambio.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


async def _preflight(settings: Settings) -> None:
    """Fail fast, before uvicorn starts, with the schema and key checks' own messages."""
    from scambio.store.db import make_engine
    from scambio.store.keyfile import load_or_create_key
    from scambio.store.migrate import SchemaError, check_schema

    engine = make_engine(settings.database_url, null_pool=True)
    try:
        await check_schema(engine)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        await engine.dispose()
    load_or_create_key(settings.key_file, settings.ledger_origin)


# -- db --------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema (SQLite or PostgreSQL)."""

    async def go(settings: Settings) -> str | None:
        from scambio.store.db import make_engine
        from scambio.store.migrate import current_revision, upgrade

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await upgrade(engine, revision)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {_run(go)}")


@db.command("check")
def db_check() -> None:
    """Exit non-zero if the schema is behind this version of Scambio."""

    async def go(settings: Settings) -> None:
        from scambio.store.db import make_engine
        from scambio.store.migrate import SchemaError, check_schema

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await check_schema(engine)
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await engine.dispose()

    _run(go)
    click.echo("schema is up to date")


# -- tokens --------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """API bearer tokens (stored hashed; shown once)."""


@token.command("issue")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def token_issue(role: str, name: str) -> None:
    """Print a new bearer token for ROLE."""

    async def go(settings: Settings) -> str:
        from scambio.store.db import make_engine
        from scambio.store.tokens import TokenError, issue_token

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            return await issue_token(engine, role, name)
        except TokenError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await engine.dispose()

    click.echo(_run(go))


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by its id (the part after `scb_` and before the second `_`)."""

    async def go(settings: Settings) -> bool:
        from scambio.store.db import make_engine
        from scambio.store.tokens import revoke_token

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            return await revoke_token(engine, token_id)
        finally:
            await engine.dispose()

    if not _run(go):
        raise click.ClickException(f"no active token with id {token_id}")
    click.echo(f"token {token_id} revoked")


@token.command("list")
def token_list() -> None:
    """List tokens (id, role, name, created, revoked); never their secrets."""

    async def go(settings: Settings) -> list[Any]:
        from scambio.store.db import make_engine
        from scambio.store.tokens import list_tokens

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            return list(await list_tokens(engine))
        finally:
            await engine.dispose()

    for info in _run(go):
        revoked = f"revoked {info.revoked_at}" if info.revoked_at else "active"
        click.echo(f"{info.id}  {info.role:<8} {revoked:<38} {info.name}")


# -- members ---------------------------------------------------------------------------------

MEMBER_ROLES = ("member", "manager", "auditor", "admin")


@main.group()
def member() -> None:
    """Members: create the first admin and managers from the command line."""


@member.command("add")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(MEMBER_ROLES), default="member", show_default=True)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (otherwise the member has none yet and "
    "sets one through a password reset).",
)
@click.option("--zone", default=None, help="A zone id (see `scambio zones`).")
def member_add(email: str, name: str, role: str, password_stdin: bool, zone: str | None) -> None:
    """Create an active member (account opened in the ledger) and print their id."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None

    async def go(settings: Settings) -> Any:
        from scambio.ledger.errors import RuleViolation
        from scambio.store.db import make_engine
        from scambio.store.keyfile import load_or_create_key
        from scambio.store.ledger import LedgerService
        from scambio.store.migrate import SchemaError, check_schema
        from scambio.timebank import people
        from scambio.timebank.audit import CLI
        from scambio.timebank.context import Timebank
        from scambio.timebank.text import check_password, clean_name, normalise_email
        from scambio.timebank.zones import ZonesError

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await check_schema(engine)
            signer = load_or_create_key(settings.key_file, settings.ledger_origin)
            ledger = LedgerService(engine, signer, settings)
            timebank = Timebank.create(ledger, settings)
            address = normalise_email(email)
            if password is not None:
                check_password(password)
            profile = people.clean_profile(timebank.zones, {"zone": zone} if zone else {})
            await ledger.start()
            try:
                return await people.create(
                    timebank,
                    CLI,
                    name=clean_name(name),
                    email=address,
                    password=password,
                    role=role,
                    profile=profile,
                )
            finally:
                await ledger.stop()
        except (SchemaError, ZonesError) as exc:
            raise click.ClickException(str(exc)) from exc
        except RuleViolation as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            await engine.dispose()

    created = _run(go)
    click.echo(f"{created.id}  {created.role:<8} {created.email}  account {created.account_id}")


@main.group()
def demo() -> None:
    """The demo community (for trying Scambio; never on a real community's database)."""


@demo.command("seed")
@click.option(
    "--if-empty",
    is_flag=True,
    help="Succeed without doing anything when the database is not empty (for `make run`).",
)
def demo_seed(if_empty: bool) -> None:
    """Seed the demo community (Milan's Zones 4 and 6) into an EMPTY database.

    Members, organisations, listings and four months of exchanges, all through the
    timebank's services and the ledger; prints the demo logins (one shared, demo-only
    password). A database that already has members, organisations or ledger entries is
    left alone: an error, or with --if-empty a message.
    """

    async def go(settings: Settings) -> tuple[Any, Any]:
        from scambio.store.db import make_engine
        from scambio.store.keyfile import load_or_create_key
        from scambio.store.migrate import SchemaError, check_schema
        from scambio.timebank import demo as community
        from scambio.timebank.zones import ZonesError

        engine = make_engine(settings.database_url)
        try:
            await check_schema(engine)
            occupancy = await community.occupancy(engine)
            if not occupancy.empty:
                return occupancy, None
            signer = load_or_create_key(settings.key_file, settings.ledger_origin)
            return occupancy, await community.seed(engine, signer, settings)
        except (SchemaError, ZonesError) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await engine.dispose()

    from scambio.timebank.demo import describe

    occupancy, report = _run(go)
    if report is None:
        if not if_empty:
            raise click.ClickException(occupancy.describe())
        click.echo(f"demo seed: {occupancy.describe()}")
        return
    for line in describe(report):
        click.echo(line)


@main.command("zones")
def zones_show() -> None:
    """List the configured zones (SCAMBIO_ZONES_FILE, or Milan's nine Municipi)."""
    from scambio.timebank.zones import ZonesError, load_zones

    try:
        zones = load_zones(_settings().zones_file)
    except ZonesError as exc:
        raise click.ClickException(str(exc)) from exc
    for zone in zones.items:
        click.echo(f"{zone.id:<20} {zone.name}{'  (pilot)' if zone.pilot else ''}")


# -- key -------------------------------------------------------------------------------------


@main.command("key")
def key_show() -> None:
    """Print the node's verifier key (creating the node key if missing)."""
    from scambio.store.keyfile import load_or_create_key

    settings = _settings()
    click.echo(load_or_create_key(settings.key_file, settings.ledger_origin).verifier().to_string())


# -- ledger ----------------------------------------------------------------------------------


@main.group()
def ledger() -> None:
    """Export and verify the ledger."""


@ledger.command("export")
@click.option("--out", "out_path", type=click.Path(path_type=Path), required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("jsonl", "csv", "hledger")),
    default="jsonl",
    show_default=True,
    help="jsonl: the verifiable export; csv: accounts, transfers and members tables in the "
    "directory OUT; hledger: a journal for hledger.",
)
def ledger_export(out_path: Path, fmt: str) -> None:
    """Write the ledger as JSON Lines: header, canonical entries, signed checkpoints
    (or, with --format, as CSV tables or an hledger journal)."""
    if fmt != "jsonl":
        _export_other(out_path, fmt)
        return

    async def go(settings: Settings) -> int:
        from scambio.store.db import make_engine
        from scambio.store.export import export_ledger
        from scambio.store.keyfile import load_key

        signer = load_key(settings.key_file)
        engine = make_engine(settings.database_url, null_pool=True)
        tmp = out_path.with_name(out_path.name + ".partial")
        try:
            with tmp.open("wb") as out:
                count = await export_ledger(engine, out, signer.verifier())
            tmp.replace(out_path)
            return count
        finally:
            tmp.unlink(missing_ok=True)
            await engine.dispose()

    count = _run(go)
    click.echo(f"exported {count} entries to {out_path}")


@ledger.command("verify")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--vkey", default=None, help="Pin the verifier key the ledger must be signed by.")
def ledger_verify(file: Path | None, vkey: str | None) -> None:
    """Verify an export FILE offline, or (no FILE) the live database and its cached balances.

    Exits 1 and names the first bad entry when anything fails to verify.
    """
    from scambio.ledger.errors import VerificationError

    try:
        if file is not None:
            from scambio.ledger.verify import verify_export_file

            report: Any = verify_export_file(file, trusted_vkey=vkey)
        else:
            report = _run(lambda s: _verify_database(s, vkey))
    except VerificationError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    click.echo(_describe(report))


async def _verify_database(settings: Settings, vkey: str | None) -> Any:
    from scambio.ledger.note import Verifier
    from scambio.store.audit import verify_database
    from scambio.store.db import make_engine
    from scambio.store.keyfile import load_key

    verifier = Verifier.from_string(vkey) if vkey else load_key(settings.key_file).verifier()
    engine = make_engine(settings.database_url, null_pool=True)
    try:
        return await verify_database(engine, verifier, settings.ledger_origin)
    finally:
        await engine.dispose()


def _describe(report: Any) -> str:
    describe = getattr(report, "describe", None)
    return str(describe()) if callable(describe) else f"OK: {report}"


# -- policies --------------------------------------------------------------------------------


@main.group()
def policy() -> None:
    """Sponsorship policies: check, apply and simulate policy files (TOML)."""


def _zone_ids(settings: Settings) -> frozenset[str]:
    from scambio.timebank.zones import ZonesError, load_zones

    try:
        return load_zones(settings.zones_file).ids
    except ZonesError as exc:
        raise click.ClickException(str(exc)) from exc


@policy.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def policy_check(files: tuple[Path, ...]) -> None:
    """Validate policy FILES (default: every file in the policies directory).

    Prints each file's policy and version, or exactly what is wrong with it (file, field,
    what was expected); exits 1 if any file is refused. Needs no database.
    """
    from scambio.policy.loader import policy_files_in, read_files

    settings = _settings()
    paths = list(files) or policy_files_in(settings.policies_dir)
    if not paths:
        click.echo(f"no policy files in {settings.policies_dir}")
        return
    valid, errors = read_files(paths, zones=_zone_ids(settings))
    for checked in valid:
        click.echo(
            f"ok     {checked.file}: policy {checked.id} ({checked.kind}), "
            f"version {checked.version[:12]}"
        )
    for error in errors:
        click.echo(f"error  {error}", err=True)
    if errors:
        sys.exit(1)


@policy.command("apply")
def policy_apply() -> None:
    """Load the policies directory into the database (also done at start-up).

    A refused file changes nothing: the last valid version of its policy stays in force.
    Exits 1 if any file was refused (the others are applied).
    """

    async def go(settings: Settings) -> Any:
        from scambio.ledger.entry import now_time
        from scambio.policy.loader import apply_directory
        from scambio.store.db import make_engine
        from scambio.store.migrate import SchemaError, check_schema
        from scambio.timebank.audit import CLI

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await check_schema(engine)
            return await apply_directory(
                engine, settings.policies_dir, now_time(), zones=_zone_ids(settings), actor=CLI
            )
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await engine.dispose()

    report = _run(go)
    if not report.files and not report.warnings:
        click.echo(f"no policy files in {_settings().policies_dir}")
    for result in report.files:
        if result.error is None:
            state = "new version in force" if result.changed else "unchanged"
            click.echo(
                f"ok     {result.file}: policy {result.policy_id}, version "
                f"{(result.version or '')[:12]} ({state})"
            )
        else:
            click.echo(f"error  {result.error}", err=True)
    for policy_id in report.retired:
        click.echo(f"retired policy {policy_id} (its file is gone)")
    for warning in report.warnings:
        click.echo(f"warning {warning}", err=True)
    if report.errors:
        sys.exit(1)


@policy.command("simulate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--period", required=True, help="A period of its schedule: 2026-12, or 2026-Q4.")
def policy_simulate(file: Path, period: str) -> None:
    """Print every posting the policy in FILE would make in PERIOD, and why.

    Reads the database (who is enrolled, what help was given, what was issued already);
    writes nothing, not even a node key. The file need not be applied.
    """
    from scambio.ledger.errors import RuleViolation
    from scambio.policy.kinds import load_kinds
    from scambio.policy.model import PolicyError, parse_policy

    settings = _settings()
    try:
        parsed = parse_policy(file.read_bytes(), str(file), load_kinds(), zones=_zone_ids(settings))
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go(settings: Settings) -> Any:
        from scambio.ledger.note import Signer
        from scambio.policy.runner import simulate
        from scambio.store.db import make_engine
        from scambio.store.ledger import LedgerService
        from scambio.store.migrate import SchemaError, check_schema
        from scambio.timebank.context import Timebank

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await check_schema(engine)
            # Never started: nothing is appended or signed, so a throwaway key will do.
            ledger = LedgerService(engine, Signer.generate(settings.ledger_origin), settings)
            return await simulate(Timebank.create(ledger, settings), parsed, period)
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from exc
        except RuleViolation as exc:
            raise click.ClickException(exc.detail) from exc
        finally:
            await engine.dispose()

    run = _run(go)
    click.echo(f"policy {run.policy} ({run.kind}), version {run.version[:12]}, period {run.period}")
    if run.skipped:
        click.echo(f"nothing: {run.skipped}")
        return
    budget = "no budget" if run.budget_minutes is None else f"budget {run.budget_minutes}"
    click.echo(f"{budget}; would use {run.budget_used}; {run.not_issued} minutes over budget")
    if not run.postings:
        click.echo("no postings")
    for posting in run.postings:
        click.echo(
            f"  {posting.rule:<10} {posting.period:<8} {posting.payer} -> {posting.payee}: "
            f"{posting.minutes} min ({posting.status})"
        )
        click.echo(f"      {posting.why}")
        if posting.error:
            click.echo(f"      {posting.error}")


# -- scheduled jobs --------------------------------------------------------------------------


@asynccontextmanager
async def _timebank(settings: Settings) -> AsyncIterator[Any]:
    """A started ledger service and the timebank around it, stopped afterwards."""
    from scambio.store.db import make_engine
    from scambio.store.keyfile import load_or_create_key
    from scambio.store.ledger import LedgerService
    from scambio.store.migrate import SchemaError, check_schema
    from scambio.timebank.context import Timebank
    from scambio.timebank.zones import ZonesError

    engine = make_engine(settings.database_url)
    try:
        try:
            await check_schema(engine)
            signer = load_or_create_key(settings.key_file, settings.ledger_origin)
            ledger = LedgerService(engine, signer, settings)
            timebank = Timebank.create(ledger, settings)
        except (SchemaError, ZonesError) as exc:
            raise click.ClickException(str(exc)) from exc
        await ledger.start()
        try:
            yield timebank
        finally:
            await timebank.mailer.aclose()
            await ledger.stop()
    finally:
        await engine.dispose()


@main.command()
def worker() -> None:
    """Run the scheduled jobs only (no HTTP), until interrupted.

    For deployments with several app processes: set SCAMBIO_RUN_JOBS=worker so that
    `scambio serve` runs none, and run one or more workers. Each period of each job runs
    once however many workers (and serving processes) run jobs.
    """
    import signal

    from scambio.jobs import scheduler_for

    async def go(settings: Settings) -> None:
        async with _timebank(settings) as timebank:
            scheduler = scheduler_for(timebank)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            scheduler.start()
            click.echo(
                f"Scambio worker: ledger {settings.ledger_origin} on {settings.database_url}; "
                f"jobs: {', '.join(job.name for job in scheduler.jobs)}"
            )
            if settings.run_jobs == "serve":
                click.echo("note: SCAMBIO_RUN_JOBS=serve, so `scambio serve` runs jobs too")
            try:
                await stop.wait()
            finally:
                await scheduler.stop()
        click.echo("Scambio worker stopped")

    _run(go)


@main.group()
def jobs() -> None:
    """Scheduled jobs: list them, run one now."""


@jobs.command("list")
def jobs_list() -> None:
    """List the jobs, their schedule and catch-up window, and each one's latest run."""
    from scambio.jobs.registry import ALL_JOBS

    async def go(settings: Settings) -> dict[str, Any]:
        from scambio.store.db import make_engine
        from scambio.store.job_runs import last_runs

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            async with engine.connect() as conn:
                return dict(await last_runs(conn))
        finally:
            await engine.dispose()

    latest = _run(go)
    for job in ALL_JOBS:
        run = latest.get(job.name)
        last = f"last {run.period} {run.status}" if run else "never run"
        catch_up = f"catch-up {job.catch_up} {job.every.value}(s)"
        click.echo(f"{job.name:<24} every {job.every.value:<7} {catch_up:<22} {last}")
        click.echo(f"    {job.description}")


@jobs.command("run")
@click.argument("name")
@click.option("--period", default=None, help="The period (default: the latest one that ended).")
@click.option("--force", is_flag=True, help="Run it even if that period already ran.")
def jobs_run(name: str, period: str | None, force: bool) -> None:
    """Run job NAME for one period now, in this process (recorded like a scheduled run).

    Exits 1 when the run fails or another worker is running that period.
    """
    from scambio.jobs.periods import Period, PeriodError, last_complete
    from scambio.jobs.registry import ALL_JOBS
    from scambio.jobs.runner import ALREADY_DONE, BUSY, GAVE_UP, JobRunner, UnknownJob

    async def go(settings: Settings) -> Any:
        async with _timebank(settings) as timebank:
            runner = JobRunner(timebank, ALL_JOBS)
            try:
                job = runner.job(name)
                chosen = (
                    Period.parse(job.every, period)
                    if period
                    else last_complete(job.every, runner.now())
                )
                return await runner.run_period(job, chosen, force=force)
            except (UnknownJob, PeriodError) as exc:
                raise click.ClickException(str(exc)) from exc

    outcome = _run(go)
    label = f"{outcome.job} for {outcome.period}"
    if outcome.status == ALREADY_DONE:
        click.echo(f"{label} already ran (use --force to run it again)")
        return
    if outcome.status == BUSY:
        raise click.ClickException(f"{label} is being run by another worker right now")
    if outcome.status == GAVE_UP:
        raise click.ClickException(
            f"{label} failed {outcome.attempts} times; use --force to run it again"
        )
    click.echo(f"{label}: {outcome.status}")
    click.echo(json.dumps(outcome.summary, indent=2, sort_keys=True))
    if outcome.status != "succeeded":
        raise click.ClickException(outcome.error or "the run failed")


@ledger.command("repair-cache")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def ledger_repair_cache(reason: str, dry_run: bool) -> None:
    """Set cached balances that differ from the postings to what the postings give.

    `reconcile-balances` reports differences and never fixes them; this does, holding the
    ledger head lock, and records every change in the audit log with the reason.
    """
    from sqlalchemy.exc import IntegrityError

    from scambio.timebank.audit import CLI
    from scambio.timebank.cache_repair import repair_cache

    async def go(settings: Settings) -> Any:
        async with _timebank(settings) as timebank:
            try:
                return await repair_cache(timebank, CLI, reason=reason, dry_run=dry_run)
            except IntegrityError as exc:
                raise click.ClickException(
                    f"the postings give a balance outside the account's limits: {exc.orig}; "
                    "run `scambio ledger verify`"
                ) from exc

    repair = _run(go)
    verb = "would repair" if dry_run else "repaired"
    for difference in repair.repaired:
        click.echo(f"{verb}: {difference.describe()}")
    for difference in repair.left:
        click.echo(f"cannot repair: {difference.describe()}", err=True)
    click.echo(
        f"{repair.checked} accounts checked, {len(repair.repaired)} cached figure(s) {verb}"
        + (f", {len(repair.left)} account(s) left" if repair.left else "")
    )
    if repair.left:
        sys.exit(1)


# -- reports ---------------------------------------------------------------------------------


@main.group()
def report() -> None:
    """Reports computed from the ledger (signed; recomputable from an export)."""


@report.command("coproduction")
@click.option("--from", "date_from", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "date_to", required=True, help="Day after the last, YYYY-MM-DD.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--directory-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the directory (account zones and organisations) the report used.",
)
def report_coproduction(
    date_from: str, date_to: str, fmt: str, out_path: Path | None, directory_out: Path | None
) -> None:
    """The co-production report for [--from, --to): hours, members, reach, sponsorship."""
    from scambio.reports.csvout import to_csv
    from scambio.reports.dates import DateRangeError, check_range
    from scambio.reports.signing import encode_document

    try:
        check_range(date_from, date_to)
    except DateRangeError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go(settings: Settings) -> Any:
        from scambio.ledger.entry import now_time
        from scambio.reports.live import compute_report
        from scambio.reports.pairs import ingest_pairs
        from scambio.store.db import make_engine
        from scambio.store.keyfile import load_key
        from scambio.store.migrate import SchemaError, check_schema

        signer = load_key(settings.key_file)
        engine = make_engine(settings.database_url, null_pool=True)
        try:
            await check_schema(engine)
            await ingest_pairs(engine)
            computed = await compute_report(
                engine, settings.ledger_origin, date_from, date_to, generated_at=now_time()
            )
        except SchemaError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            await engine.dispose()
        return computed, computed.signed(signer)

    computed, document = _run(go)
    csv = fmt == "csv"
    data = to_csv(computed.report).encode() if csv else encode_document(document) + b"\n"
    if out_path is None:
        sys.stdout.buffer.write(data)
    else:
        out_path.write_bytes(data)
        click.echo(f"wrote the report to {out_path}", err=True)
    if directory_out is not None:
        directory_out.write_bytes(computed.directory.canonical() + b"\n")


@report.command("verify")
@click.argument("report_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--export",
    "export_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A ledger export (scambio ledger export) at or after the report's checkpoint.",
)
@click.option(
    "--directory",
    "directory_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The directory the report was computed with.",
)
@click.option("--vkey", default=None, help="Pin the verifier key the ledger must be signed by.")
def report_verify(
    report_file: Path, export_file: Path, directory_file: Path, vkey: str | None
) -> None:
    """Check a signed co-production report against an export, with no database.

    Verifies the export, the report's signature and checkpoint, recomputes the report
    from the export and the directory, and exits 1 naming every difference.
    """
    from scambio.ledger.errors import VerificationError
    from scambio.reports.coproduction import decode_directory
    from scambio.reports.offline import check_report

    try:
        directory = decode_directory(directory_file.read_bytes())
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{directory_file}: not a directory: {exc}") from exc
    try:
        check = check_report(
            report_file.read_bytes().strip(), export_file, directory, trusted_vkey=vkey
        )
    except VerificationError as exc:
        click.echo(f"FAILED: {exc}", err=True)
        sys.exit(1)
    if not check.ok:
        click.echo(check.describe(), err=True)
        sys.exit(1)
    click.echo(check.describe())


# -- federation: peers, recovery, reconciliation ------------------------------------------


def _rate(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    ours, sep, theirs = text.partition(":")
    if not sep or not ours.isdigit() or not theirs.isdigit():
        raise click.BadParameter("a rate is OURS:THEIRS, e.g. 1:1 or 2:1")
    return int(ours), int(theirs)


def _echo_peer(peer: Any) -> None:
    click.echo(
        f"{peer.name:<16} {peer.status:<9} rate {peer.rate_ours}:{peer.rate_theirs}  "
        f"we may owe {peer.max_we_owe}, they may owe {peer.max_they_owe}  "
        f"{peer.clearing_account}  {peer.base_url}  {peer.vkey}"
    )


@main.group()
def peer() -> None:
    """Peer timebanks (federation): add, change, list. Changes are audited."""


@peer.command("add")
@click.argument("name")
@click.option("--url", "base_url", required=True, help="The peer's base URL.")
@click.option("--vkey", required=True, help="The peer's verifier key (`scambio key` there).")
@click.option("--max-we-owe", type=click.IntRange(0), default=600, show_default=True)
@click.option("--max-they-owe", type=click.IntRange(0), default=600, show_default=True)
@click.option("--rate", default="1:1", show_default=True, help="OURS:THEIRS minutes.")
@click.option("--reason", default=None)
def peer_add(
    name: str,
    *,
    base_url: str,
    vkey: str,
    max_we_owe: int,
    max_they_owe: int,
    rate: str,
    reason: str | None,
) -> None:
    """Add peer NAME and open its clearing account."""
    ours, theirs = _rate(rate)

    async def go(settings: Settings) -> Any:
        from scambio.federation import peers
        from scambio.ledger.errors import RuleViolation
        from scambio.timebank.audit import CLI

        async with _timebank(settings) as tb:
            try:
                return await peers.add(
                    tb,
                    CLI,
                    name=name,
                    base_url=base_url,
                    vkey=vkey,
                    max_we_owe=max_we_owe,
                    max_they_owe=max_they_owe,
                    rate_ours=ours or 1,
                    rate_theirs=theirs or 1,
                    reason=reason,
                )
            except RuleViolation as exc:
                raise click.ClickException(exc.detail) from exc

    _echo_peer(_run(go))


@peer.command("change")
@click.argument("name")
@click.option("--url", "base_url", default=None)
@click.option("--vkey", default=None)
@click.option("--max-we-owe", type=click.IntRange(0), default=None)
@click.option("--max-they-owe", type=click.IntRange(0), default=None)
@click.option("--rate", default=None, help="OURS:THEIRS minutes.")
@click.option("--status", type=click.Choice(("active", "suspended")), default=None)
@click.option("--reason", required=True)
def peer_change(
    name: str,
    *,
    base_url: str | None,
    vkey: str | None,
    max_we_owe: int | None,
    max_they_owe: int | None,
    rate: str | None,
    status: str | None,
    reason: str,
) -> None:
    """Change peer NAME (URL, key, limits, rate, status)."""
    ours, theirs = _rate(rate)

    async def go(settings: Settings) -> Any:
        from scambio.federation import peers
        from scambio.ledger.errors import RuleViolation
        from scambio.timebank.audit import CLI

        async with _timebank(settings) as tb:
            try:
                return await peers.change(
                    tb,
                    CLI,
                    name,
                    base_url=base_url,
                    vkey=vkey,
                    max_we_owe=max_we_owe,
                    max_they_owe=max_they_owe,
                    rate_ours=ours,
                    rate_theirs=theirs,
                    status=status,
                    reason=reason,
                )
            except RuleViolation as exc:
                raise click.ClickException(exc.detail) from exc

    _echo_peer(_run(go))


@peer.command("list")
def peer_list() -> None:
    """List peers."""

    async def go(settings: Settings) -> list[Any]:
        from scambio.federation import peers
        from scambio.store.db import make_engine
        from scambio.timebank.db import reading

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            async with reading(engine) as conn:
                return await peers.listing(conn)
        finally:
            await engine.dispose()

    for item in _run(go):
        _echo_peer(item)


@main.group()
def federation() -> None:
    """Run the federation jobs once: recovery of in-doubt transfers, reconciliation."""


@federation.command("recover")
def federation_recover() -> None:
    """Finish in-doubt cross-timebank transfers (asks peers; idempotent)."""

    async def go(settings: Settings) -> Any:
        from scambio.federation import jobs

        async with _timebank(settings) as tb:
            return await jobs.recover(tb, tb.clock())

    report = _run(go)
    click.echo(report.summary())
    for error in report.errors:
        click.echo(f"  error: {error}", err=True)


@federation.command("reconcile")
@click.option("--peer", "peer_name", default=None, help="Only this peer.")
def federation_reconcile(peer_name: str | None) -> None:
    """Check every peer's checkpoint and clearing statement; exit 1 on any finding."""

    async def go(settings: Settings) -> list[Any]:
        from scambio.federation import jobs
        from scambio.federation import peers as peers_mod
        from scambio.federation.reconcile import reconcile_peer
        from scambio.ledger.errors import RuleViolation
        from scambio.timebank.db import reading

        async with _timebank(settings) as tb:
            if peer_name is None:
                return await jobs.reconcile(tb, tb.clock())
            async with reading(tb.engine) as conn:
                try:
                    one = await peers_mod.require(conn, peer_name)
                except RuleViolation as exc:
                    raise click.ClickException(exc.detail) from exc
            return [await reconcile_peer(tb, one, tb.clock())]

    reports = _run(go)
    for report in reports:
        status = "OK" if report.ok else "DIFFERENCES"
        click.echo(
            f"{report.peer}: {status}: checkpoint {report.checkpoint_size}, position "
            f"{report.position} here / {report.peer_position} there, "
            f"{report.transfers_compared} transfers compared, {len(report.in_flight)} in flight"
        )
        for finding in report.findings:
            where = f" [{finding.transfer}]" if finding.transfer else ""
            click.echo(f"  {finding.kind}{where}: {finding.detail}")
    if any(not r.ok for r in reports):
        sys.exit(1)


# -- import and export for other tools -------------------------------------------------------


def _export_other(out_path: Path, fmt: str) -> None:
    if fmt == "csv":
        out_path.mkdir(parents=True, exist_ok=True)

    async def go(settings: Settings) -> str:
        from scambio.federation.export import export_csv, export_hledger
        from scambio.store.db import make_engine

        engine = make_engine(settings.database_url, null_pool=True)
        try:
            if fmt == "csv":
                counts = await export_csv(engine, out_path)
                return ", ".join(f"{n} {name}" for name, n in counts.items())
            tmp = out_path.with_name(out_path.name + ".partial")
            try:
                with tmp.open("w", encoding="utf-8") as out:
                    count = await export_hledger(engine, out)
                tmp.replace(out_path)
            finally:
                tmp.unlink(missing_ok=True)
            return f"{count} transactions"
        finally:
            await engine.dispose()

    click.echo(f"exported {_run(go)} to {out_path}")


@main.command("import")
@click.argument("source", type=click.Choice(("timeoverflow", "komunitin", "ces")))
@click.argument("files", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check and report; write nothing.")
def import_cmd(source: str, files: tuple[Path, Path], dry_run: bool) -> None:
    """Import members, balances and transfers from SOURCE's CSV export.

    FILES: TimeOverflow members.csv transfers.csv; Komunitin accounts.csv transfers.csv;
    CES users.csv trades.csv. A malformed file imports nothing (exit 1, every error with
    its line).
    """
    from scambio.federation import imports

    try:
        parsed = imports.parse(source, imports.read_files(files))
    except imports.ImportFailed as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        sys.exit(1)

    async def go(settings: Settings) -> Any:
        from scambio.ledger.errors import RuleViolation
        from scambio.timebank.audit import CLI

        async with _timebank(settings) as tb:
            try:
                return await imports.run_import(tb, CLI, parsed, dry_run=dry_run)
            except RuleViolation as exc:
                raise click.ClickException(exc.detail) from exc

    report = _run(go)
    click.echo(report.summary())
    for skipped in report.skipped:
        click.echo(f"  skipped {skipped.where}: {skipped.reason}")
    for opening in report.opening_balances:
        click.echo(
            f"  opening balance {opening['person']}: {opening['adjustment']:+d} minutes "
            f"(source {opening['source_balance']}, history {opening['from_history']})"
        )


if __name__ == "__main__":  # pragma: no cover
    main()
