"""Policy files: TOML, validated into typed structs, and their versions.

A policy file holds one policy::

    id = "acme-care-grant"          # 1-48 of a-z 0-9 -, unique in the installation
    kind = "grant"                  # grant, match, staff_time, pool, or a registered kind
    title = "Childcare and elder care for Acme staff"
    sponsor = "0123456789abcdef"    # the sponsoring organisation's id (not for the pool)
    budget_minutes = 4800           # most minutes issued per period (optional)

    [schedule]
    every = "month"                 # month or quarter
    start = "2026-01"               # first period (optional; end likewise)

    [params]                        # the kind's own parameters (see `builtin`)
    minutes = 240

Anything else is refused: an unknown field, an unknown kind, a float where minutes are
expected. Every error names the file, the field and what was expected
(`PolicyError`), so that `scambio policy check` can say exactly what to fix.

The version of a policy is the SHA-256 of its canonical content: the validated policy,
defaults filled in, as RFC 8785 JSON. Comments and layout do not change it; any change
of meaning does. Entries a policy issues carry that hash, and the database keeps the
text of every version applied, so an auditor can read the rule behind any credit.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from scambio.ledger.canonical import canonical_json
from scambio.policy.kinds import PolicyKind
from scambio.policy.periods import EVERY, Period, PeriodError, parse_period

POLICY_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")
ORG_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
ZONE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_FILE_BYTES: Final = 64 * 1024
TITLE_MAX: Final = 200
DESCRIPTION_MAX: Final = 2000
BUDGET_MAX: Final = 10**9

_AT_RE: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_RE: Final = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")
_MISSING_RE: Final = re.compile(r"Object missing required field `(?P<name>[^`]*)`")


class PolicyError(ValueError):
    """A policy file that cannot be used: `file: field: what was expected`."""

    def __init__(self, file: str, field: str | None, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


class Schedule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    every: str
    start: str | None = None
    end: str | None = None


class PolicyFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A policy file's top level, before the kind's parameters are known."""

    id: str
    kind: str
    title: str
    schedule: Schedule
    sponsor: str | None = None
    description: str = ""
    budget_minutes: int | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy: its typed parameters, its version and the text it came from."""

    id: str
    kind: str
    title: str
    sponsor: str | None
    description: str
    budget_minutes: int | None
    schedule: Schedule
    params: Any
    version: str
    canonical: bytes
    source: str
    file: str

    @property
    def every(self) -> str:
        return self.schedule.every

    def first_period(self) -> Period | None:
        return (
            None if self.schedule.start is None else parse_period(self.every, self.schedule.start)
        )

    def last_period(self) -> Period | None:
        return None if self.schedule.end is None else parse_period(self.every, self.schedule.end)

    def runs_in(self, period: Period) -> bool:
        first, last = self.first_period(), self.last_period()
        if first is not None and period.start < first.start:
            return False
        return last is None or period.start <= last.start


def _field(prefix: str, path: str) -> str:
    """`$.params.minutes` -> `params.minutes`, `$.areas[0]` under `params` -> ..."""
    path = path.lstrip(".")
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _validation_error(file: str, exc: msgspec.ValidationError, prefix: str = "") -> PolicyError:
    """Turn msgspec's message into `field: expectation` (its wording otherwise kept)."""
    found = _AT_RE.match(str(exc))
    what = found["what"] if found else str(exc)
    path = (found["path"] if found else None) or ""
    unknown = _UNKNOWN_RE.fullmatch(what)
    if unknown:
        return PolicyError(file, _field(prefix, f"{path}.{unknown['name']}"), "unknown field")
    missing = _MISSING_RE.fullmatch(what)
    if missing:
        return PolicyError(
            file, _field(prefix, f"{path}.{missing['name']}"), "required field is missing"
        )
    return PolicyError(file, _field(prefix, path) or None, _lower_first(what).replace("`", ""))


def _check_text(file: str, field: str, value: str, limit: int, *, required: bool) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if required and not value:
        raise PolicyError(file, field, "expected a non-empty text")
    if len(value) > limit:
        raise PolicyError(file, field, f"expected at most {limit} characters, got {len(value)}")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise PolicyError(file, field, "expected text without control characters")
    return value


def _check_schedule(file: str, schedule: Schedule) -> None:
    if schedule.every not in EVERY:
        raise PolicyError(
            file, "schedule.every", f"expected one of {', '.join(EVERY)}, got {schedule.every!r}"
        )
    bounds: dict[str, Period] = {}
    for name in ("start", "end"):
        label = getattr(schedule, name)
        if label is None:
            continue
        try:
            bounds[name] = parse_period(schedule.every, label)
        except PeriodError as exc:
            raise PolicyError(file, f"schedule.{name}", str(exc)) from None
    if "start" in bounds and "end" in bounds and bounds["end"].start < bounds["start"].start:
        raise PolicyError(file, "schedule.end", "expected a period at or after schedule.start")


def content_of(policy: PolicyFile, params: Any) -> dict[str, Any]:
    """The canonical content of a policy (what its version hashes)."""
    return {
        "id": policy.id,
        "kind": policy.kind,
        "title": policy.title,
        "sponsor": policy.sponsor,
        "description": policy.description,
        "budget_minutes": policy.budget_minutes,
        "schedule": msgspec.to_builtins(policy.schedule),
        "params": msgspec.to_builtins(params),
    }


def parse_policy(
    source: bytes | str,
    file: str,
    kinds: dict[str, PolicyKind],
    *,
    zones: frozenset[str] | None = None,
) -> Policy:
    """Validate one policy file's contents; raise `PolicyError` naming what is wrong.

    `zones`, when given, are the configured zone ids a policy's `zones` must come from.
    """
    raw = source.encode("utf-8") if isinstance(source, str) else source
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyError(file, None, f"expected at most {MAX_FILE_BYTES} bytes, got {len(raw)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(file, None, "expected UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(file, None, f"invalid TOML: {exc}") from None
    try:
        top = msgspec.convert(data, PolicyFile, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(file, exc) from None
    if not POLICY_ID_RE.fullmatch(top.id):
        raise PolicyError(
            file,
            "id",
            "expected 1 to 48 lower-case letters, digits or '-', starting with a letter or "
            f"digit, got {top.id!r}",
        )
    kind = kinds.get(top.kind)
    if kind is None:
        raise PolicyError(
            file, "kind", f"unknown kind {top.kind!r} (known: {', '.join(sorted(kinds))})"
        )
    title = _check_text(file, "title", top.title, TITLE_MAX, required=True)
    description = _check_text(file, "description", top.description, DESCRIPTION_MAX, required=False)
    if top.sponsor is None:
        if kind.needs_sponsor:
            raise PolicyError(
                file,
                "sponsor",
                f"required for a {top.kind} policy: the sponsoring organisation's id "
                "(16 hex digits)",
            )
    elif not ORG_ID_RE.fullmatch(top.sponsor):
        raise PolicyError(
            file, "sponsor", f"expected an organisation's id (16 hex digits), got {top.sponsor!r}"
        )
    if top.budget_minutes is not None and not 1 <= top.budget_minutes <= BUDGET_MAX:
        raise PolicyError(
            file, "budget_minutes", f"expected an integer from 1 to {BUDGET_MAX} (minutes)"
        )
    _check_schedule(file, top.schedule)
    try:
        params = msgspec.convert(top.params, kind.params_type, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(file, exc, "params") from None
    for field, message in kind.check(params):
        raise PolicyError(file, _field("params", field), message)
    for i, zone in enumerate(getattr(params, "zones", ())):
        if not isinstance(zone, str) or not ZONE_ID_RE.fullmatch(zone):
            raise PolicyError(file, f"params.zones[{i}]", f"expected a zone id, got {zone!r}")
        if zones is not None and zone not in zones:
            raise PolicyError(
                file,
                f"params.zones[{i}]",
                f"expected one of the configured zones ({', '.join(sorted(zones))}), got {zone!r}",
            )
    checked = msgspec.structs.replace(top, title=title, description=description)
    canonical = canonical_json(content_of(checked, params))
    return Policy(
        id=top.id,
        kind=top.kind,
        title=title,
        sponsor=top.sponsor,
        description=description,
        budget_minutes=top.budget_minutes,
        schedule=top.schedule,
        params=params,
        version=hashlib.sha256(canonical).hexdigest(),
        canonical=canonical,
        source=text,
        file=file,
    )


def check_together(policies: list[Policy]) -> list[tuple[Policy, PolicyError]]:
    """Rules across files, in file order: a policy id once, and one grant policy per
    sponsor (its sponsored credit sits in one restricted account per member and
    sponsor, so one rule must say where that account may be spent). The later file of a
    clashing pair is the one refused."""
    refused: list[tuple[Policy, PolicyError]] = []
    ids: dict[str, Policy] = {}
    grants: dict[str, Policy] = {}
    for policy in policies:
        earlier = ids.get(policy.id)
        if earlier is not None:
            refused.append(
                (
                    policy,
                    PolicyError(
                        policy.file,
                        "id",
                        f"policy id {policy.id!r} is already used by {earlier.file}",
                    ),
                )
            )
            continue
        if policy.kind == "grant" and policy.sponsor is not None:
            other = grants.get(policy.sponsor)
            if other is not None:
                refused.append(
                    (
                        policy,
                        PolicyError(
                            policy.file,
                            "sponsor",
                            f"organisation {policy.sponsor} already has a grant policy "
                            f"({other.id!r} in {other.file}): one grant policy per sponsor",
                        ),
                    )
                )
                continue
            grants[policy.sponsor] = policy
        ids[policy.id] = policy
    return refused


def decode_params(policy_kind: PolicyKind, canonical: bytes | str) -> Any:
    """The typed parameters stored in a version's canonical content."""
    content = msgspec.json.decode(canonical)
    return msgspec.convert(content["params"], policy_kind.params_type, strict=True)


def policy_from_canonical(
    canonical: bytes | str, source: str, file: str, kinds: dict[str, PolicyKind]
) -> Policy:
    """Rebuild a stored version (its canonical content is authoritative)."""
    raw = canonical.encode() if isinstance(canonical, str) else canonical
    content = msgspec.json.decode(raw)
    kind = kinds.get(content["kind"])
    if kind is None:
        raise PolicyError(file, "kind", f"unknown kind {content['kind']!r} (no longer installed)")
    params = msgspec.convert(content["params"], kind.params_type, strict=True)
    return Policy(
        id=content["id"],
        kind=content["kind"],
        title=content["title"],
        sponsor=content["sponsor"],
        description=content["description"],
        budget_minutes=content["budget_minutes"],
        schedule=msgspec.convert(content["schedule"], Schedule, strict=True),
        params=params,
        version=hashlib.sha256(raw).hexdigest(),
        canonical=raw,
        source=source,
        file=file,
    )
