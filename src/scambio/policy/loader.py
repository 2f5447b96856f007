"""Loading the policies directory into the database (`scambio policy apply`, start-up).

Every `*.toml` file in the directory is validated on its own, then the valid ones
together (`model.check_together`). In one transaction:

- a valid file's policy is stored: a new version (its text and canonical content, kept
  forever) when its content changed, and the policy row points at it;
- a bad file changes nothing: whatever version of its policy was in force stays in
  force, and the file's error is recorded (`/health` and the logs report it);
- a policy whose file is gone is retired: it issues nothing more (its sponsored credit
  still expires on time); a directory that does not exist changes nothing at all (a
  wrong setting should not retire every policy), an empty one retires them all;
- a policy keeps its kind and its sponsor for life: changing either is refused, because
  credit already issued depends on them (give the policy a new id instead).

Nothing is half-applied: either the whole directory's outcome is committed, or (the
database failing) nothing is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scambio.policy.kinds import PolicyKind, load_kinds
from scambio.policy.model import Policy, PolicyError, check_together, parse_policy
from scambio.store.people_tables import organisations
from scambio.store.policy_tables import policies, policy_files, policy_versions
from scambio.timebank import audit
from scambio.timebank.audit import Actor
from scambio.timebank.db import reading, writing

log = logging.getLogger(__name__)

POLICY_APPLIED: Final = "policy.applied"
POLICY_RETIRED: Final = "policy.retired"
#: How the start-up load appears in the audit log.
STARTUP: Final = Actor("system (start-up)")


@dataclass(frozen=True, slots=True)
class FileResult:
    file: str
    policy_id: str | None = None
    version: str | None = None
    error: str | None = None
    #: For a valid file: whether this load changed the version in force.
    changed: bool = False


@dataclass(slots=True)
class ApplyReport:
    files: list[FileResult] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    #: Valid, but not doing anything yet (an unknown sponsor organisation).
    warnings: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.error is not None]

    @property
    def ok(self) -> bool:
        return not self.errors


def policy_files_in(directory: Path) -> list[Path]:
    """The policy files of a directory, in name order (none if it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".toml" and p.is_file())


def read_files(
    paths: Sequence[Path],
    kinds: dict[str, PolicyKind] | None = None,
    *,
    zones: frozenset[str] | None = None,
) -> tuple[list[Policy], list[PolicyError]]:
    """Validate files one by one, then together; (valid policies, errors), in file order."""
    kinds = load_kinds() if kinds is None else kinds
    valid: list[Policy] = []
    errors: list[PolicyError] = []
    for path in paths:
        name = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            errors.append(PolicyError(name, None, f"cannot be read: {exc.strerror or exc}"))
            continue
        try:
            valid.append(parse_policy(raw, name, kinds, zones=zones))
        except PolicyError as exc:
            errors.append(exc)
    refused = check_together(valid)
    for policy, error in refused:
        valid.remove(policy)
        errors.append(error)
    return valid, errors


def _read_directory(
    directory: Path, kinds: dict[str, PolicyKind], zones: frozenset[str] | None
) -> tuple[list[Policy], list[PolicyError]] | None:
    if not directory.is_dir():
        return None
    return read_files(policy_files_in(directory), kinds, zones=zones)


async def apply_directory(
    engine: AsyncEngine,
    directory: Path,
    now: str,
    *,
    kinds: dict[str, PolicyKind] | None = None,
    zones: frozenset[str] | None = None,
    actor: Actor = STARTUP,
) -> ApplyReport:
    """Load every policy file of `directory` into the database (see the module doc)."""
    kinds = load_kinds() if kinds is None else kinds
    found = await asyncio.to_thread(_read_directory, directory, kinds, zones)
    if found is None:
        # More likely a wrong setting than a wish to retire every policy: change nothing.
        report = ApplyReport(
            warnings=[f"{directory} is not a directory: no policy was applied or retired"]
        )
        log.warning("policy: %s", report.warnings[0])
        return report
    valid, errors = found
    for attempt in range(3):
        try:
            async with writing(engine) as conn:
                report = await _apply(conn, valid, errors, now, actor)
            break
        except IntegrityError:
            # Another process applied the same files at the same moment: read again.
            if attempt == 2:
                raise
    for result in report.errors:
        log.error("policy file refused: %s", result.error)
    for warning in report.warnings:
        log.warning("policy: %s", warning)
    for result in report.files:
        if result.changed:
            log.info("policy %s: version %s now in force", result.policy_id, result.version)
    return report


async def _apply(
    conn: AsyncConnection,
    valid: list[Policy],
    errors: list[PolicyError],
    now: str,
    actor: Actor,
) -> ApplyReport:
    report = ApplyReport()
    stored = {row.id: row for row in await conn.execute(select(policies))}
    bad_files = {error.file for error in errors}
    # Policies kept in force because their file is now bad.
    kept = {row.id: row for row in stored.values() if row.file in bad_files}
    kept_grants = {
        row.sponsor_org: row
        for row in kept.values()
        if row.kind == "grant" and row.status == "active" and row.sponsor_org
    }
    accepted: list[Policy] = []
    for policy in valid:
        row = stored.get(policy.id)
        error: PolicyError | None = None
        if row is not None and row.kind != policy.kind:
            error = PolicyError(
                policy.file,
                "kind",
                f"policy {policy.id!r} is a {row.kind} policy: its kind cannot change "
                "(give the new policy a new id)",
            )
        elif row is not None and row.sponsor_org != policy.sponsor:
            error = PolicyError(
                policy.file,
                "sponsor",
                f"policy {policy.id!r} is sponsored by {row.sponsor_org}: its sponsor cannot "
                "change (give the new policy a new id)",
            )
        elif (
            policy.kind == "grant"
            and policy.sponsor in kept_grants
            and kept_grants[policy.sponsor].id != policy.id
        ):
            other = kept_grants[policy.sponsor]
            error = PolicyError(
                policy.file,
                "sponsor",
                f"organisation {policy.sponsor} already has a grant policy ({other.id!r}, "
                f"still in force from {other.file}): one grant policy per sponsor",
            )
        if error is not None:
            errors.append(error)
            kept.update({policy.id: row} if row is not None else {})
            continue
        accepted.append(policy)
    for policy in accepted:
        changed = await _store(conn, policy, stored.get(policy.id), now, actor)
        report.files.append(FileResult(policy.file, policy.id, policy.version, None, changed))
    for error in errors:
        in_force = next((row for row in stored.values() if row.file == error.file), None)
        note = (
            f"; version {in_force.version[:12]} of policy {in_force.id!r} stays in force"
            if in_force is not None and in_force.status == "active"
            else ""
        )
        report.files.append(
            FileResult(
                error.file,
                in_force.id if in_force is not None else None,
                in_force.version if in_force is not None else None,
                f"{error}{note}",
            )
        )
    live = {p.id for p in accepted} | set(kept)
    for row in stored.values():
        if row.status == "active" and row.id not in live:
            await conn.execute(
                update(policies)
                .where(policies.c.id == row.id)
                .values(status="retired", applied_at=now)
            )
            await audit.record(
                conn,
                actor,
                POLICY_RETIRED,
                "policy",
                row.id,
                at=now,
                details={"file": row.file, "version": row.version},
            )
            report.retired.append(row.id)
    await conn.execute(delete(policy_files))
    if report.files:
        await conn.execute(
            insert(policy_files),
            [
                {
                    "file": result.file[:255],
                    "policy_id": result.policy_id,
                    "version": result.version,
                    "status": "error" if result.error else "ok",
                    "error": result.error,
                    "checked_at": now,
                }
                for result in report.files
            ],
        )
    sponsors = {p.sponsor for p in accepted if p.sponsor is not None}
    known = await _known_orgs(conn, sponsors)
    for policy in accepted:
        if policy.sponsor is not None and policy.sponsor not in known:
            report.warnings.append(
                f"{policy.file}: sponsor: organisation {policy.sponsor} does not exist (yet): "
                f"policy {policy.id!r} issues nothing until it does"
            )
    report.files.sort(key=lambda r: r.file)
    return report


async def _store(conn: AsyncConnection, policy: Policy, row: Any, now: str, actor: Actor) -> bool:
    """Store a valid policy; whether the version in force changed."""
    known = (
        await conn.execute(
            select(policy_versions.c.version).where(policy_versions.c.version == policy.version)
        )
    ).one_or_none()
    if known is None:
        await conn.execute(
            insert(policy_versions).values(
                version=policy.version,
                policy_id=policy.id,
                kind=policy.kind,
                source=policy.source,
                canonical=policy.canonical.decode("utf-8"),
                file=policy.file[:255],
                applied_at=now,
            )
        )
    values = {
        "kind": policy.kind,
        "sponsor_org": policy.sponsor,
        "title": policy.title,
        "version": policy.version,
        "file": policy.file[:255],
        "status": "active",
    }
    if row is None:
        await conn.execute(
            insert(policies).values(id=policy.id, first_applied_at=now, applied_at=now, **values)
        )
    elif all(getattr(row, k) == v for k, v in values.items()):
        return False
    else:
        await conn.execute(
            update(policies).where(policies.c.id == policy.id).values(applied_at=now, **values)
        )
    previous = None if row is None else row.version
    if previous == policy.version and row is not None and row.status == "active":
        return False
    await audit.record(
        conn,
        actor,
        POLICY_APPLIED,
        "policy",
        policy.id,
        at=now,
        details={
            "file": policy.file,
            "version": policy.version,
            "previous": previous,
            "kind": policy.kind,
        },
    )
    return previous != policy.version


async def _known_orgs(conn: AsyncConnection, org_ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(org_ids))
    if not wanted:
        return set()
    rows = await conn.execute(select(organisations.c.id).where(organisations.c.id.in_(wanted)))
    return {row.id for row in rows}


@dataclass(frozen=True, slots=True)
class Health:
    loaded: int
    errors: list[tuple[str, str]]


async def health(engine: AsyncEngine) -> Health:
    """What the last load of the policies directory found (for `/health`)."""
    async with reading(engine) as conn:
        rows = list(await conn.execute(select(policy_files).order_by(policy_files.c.file)))
    return Health(
        loaded=sum(1 for r in rows if r.status == "ok"),
        errors=[(r.file, r.error or "") for r in rows if r.status == "error"],
    )
