"""Settings, read once from `SCAMBIO_*` environment variables with safe defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

#: Values of SCAMBIO_RUN_JOBS.
RUN_JOBS = ("serve", "worker", "off")


class SettingsError(ValueError):
    """An environment variable holds a value Scambio cannot use."""


class Secret(str):
    """A string that never shows its value in a repr (settings may end up in a log)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    data_dir: Path
    database_url: str
    key_file: Path
    ledger_origin: str
    #: Default limits for member and organisation accounts (minutes; None = unbounded).
    default_min_balance: int | None = -600
    default_max_balance: int | None = None
    #: Most requests the appender commits in one transaction (and one checkpoint).
    batch_size: int = 1000
    #: Largest request body accepted, in bytes.
    max_body_size: int = 1_048_576
    #: Holds without an explicit expiry expire after this many seconds (None = never).
    default_hold_expiry: int | None = None
    #: Where the scheduled jobs run: "serve" (in every `scambio serve` process), "worker"
    #: (only in `scambio worker`) or "off".
    run_jobs: str = "serve"
    #: Days an accepted exchange has to be marked done, then confirmed (else it is
    #: auto-confirmed), and a dispute to be resolved, before its hold lapses.
    exchange_done_days: int = 90
    exchange_confirm_days: int = 7
    exchange_resolve_days: int = 30
    #: How long a listing lives before it must be renewed, and when its owner is reminded.
    listing_ttl_days: int = 60
    listing_reminder_days: int = 7
    #: A TOML or JSON file listing the community's zones (None = Milan's nine Municipi).
    zones_file: Path | None = None
    #: Outgoing mail: SMTP when `smtp_host` is set, otherwise messages go to the log.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: Secret | None = None
    smtp_starttls: bool = True
    mail_from: str = "scambio@localhost"
    #: Argon2id cost: "standard" (RFC 9106 low-memory profile) or "minimal" (tests only).
    password_hash_cost: str = "standard"  # noqa: S105 - a profile name
    #: Login throttling: failures allowed per email / per client address within the window.
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 20
    login_window: int = 900
    #: Lifetime of a member's bearer token, in seconds (None = until revoked).
    member_token_ttl: int | None = 30 * 24 * 3600
    #: Lifetime of a password-reset token, in seconds.
    password_reset_ttl: int = 3600
    #: Lifetime of the code that confirms a new email address, in seconds.
    email_change_ttl: int = 24 * 3600
    #: Write requests (POST, PUT, PATCH, DELETE under /api/v1) per second each bearer
    #: token may make, sustained, and in a burst (0 = no limit); each client address
    #: gets ten times as much (a household or a community centre shares one address).
    write_rate: float = 50.0
    write_burst: int = 500
    #: Addresses and networks of reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: tuple[str, ...] = ()
    #: Database connections each `serve` process keeps open (PostgreSQL; as many again may
    #: open briefly under bursts). Each request takes one for a few milliseconds at a time.
    db_pool_size: int = 20
    #: The sponsorship policy files (TOML), applied at start-up and by `scambio policy apply`.
    policies_dir: Path = Path("policies")
    #: Federation: this node's URL as peers reach it (behind a proxy; None = as requested),
    #: the timeout of one request to a peer, and how long a prepared transfer may wait for
    #: the peer's answer before this node aborts it (seconds).
    federation_public_url: str | None = None
    federation_timeout: float = 10.0
    federation_prepare_deadline: int = 900

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _int_or_none(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("none", "unbounded"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer or 'none', got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int_or_none(env, name, default)
    if value is None or not low <= value <= high:
        raise SettingsError(f"{name} must be an integer from {low} to {high}")
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of requests per second") from None
    if not 0 <= value <= 1_000_000:  # NaN fails this too
        raise SettingsError(f"{name} must be from 0 (no limit) to 1000000")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Addresses or CIDR networks, separated by commas or spaces, normalised."""
    found: list[str] = []
    for part in (env.get(name) or "").replace(",", " ").split():
        try:
            found.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name}: {part!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(found)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment (or a mapping, in tests)."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("SCAMBIO_DATA_DIR") or "var")
    url = env.get("SCAMBIO_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'scambio.db'}"
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
        raise SettingsError(
            "SCAMBIO_DATABASE_URL must start with sqlite+aiosqlite:/// or postgresql+psycopg://"
        )
    key_file = Path(env.get("SCAMBIO_KEY_FILE") or data_dir / "node.key")
    origin = env.get("SCAMBIO_LEDGER_ORIGIN") or "scambio.local/demo"
    if not origin or any(c.isspace() for c in origin) or "+" in origin:
        raise SettingsError("SCAMBIO_LEDGER_ORIGIN must be non-empty, without spaces or '+'")
    run_jobs = (env.get("SCAMBIO_RUN_JOBS") or "serve").lower()
    if run_jobs not in RUN_JOBS:
        raise SettingsError("SCAMBIO_RUN_JOBS must be serve, worker or off")
    zones_file = env.get("SCAMBIO_ZONES_FILE")
    cost = env.get("SCAMBIO_PASSWORD_HASH_COST") or "standard"
    if cost not in ("standard", "minimal"):
        raise SettingsError("SCAMBIO_PASSWORD_HASH_COST must be 'standard' or 'minimal'")
    starttls = (env.get("SCAMBIO_SMTP_STARTTLS") or "true").lower()
    if starttls not in ("true", "false", "1", "0", "yes", "no"):
        raise SettingsError("SCAMBIO_SMTP_STARTTLS must be true or false")
    token_ttl = _int_or_none(env, "SCAMBIO_MEMBER_TOKEN_TTL", 30 * 24 * 3600)
    if token_ttl is not None and not 60 <= token_ttl <= 10 * 366 * 24 * 3600:
        raise SettingsError("SCAMBIO_MEMBER_TOKEN_TTL must be 60 seconds to ten years, or none")
    return Settings(
        data_dir=data_dir,
        database_url=url,
        key_file=key_file,
        ledger_origin=origin,
        default_min_balance=_int_or_none(env, "SCAMBIO_DEFAULT_MIN_BALANCE", -600),
        default_max_balance=_int_or_none(env, "SCAMBIO_DEFAULT_MAX_BALANCE", None),
        batch_size=_int(env, "SCAMBIO_BATCH_SIZE", 1000, 1, 10_000),
        max_body_size=_int(env, "SCAMBIO_MAX_BODY_SIZE", 1_048_576, 1024, 64 * 1_048_576),
        default_hold_expiry=_int_or_none(env, "SCAMBIO_DEFAULT_HOLD_EXPIRY", None),
        run_jobs=run_jobs,
        exchange_done_days=_int(env, "SCAMBIO_EXCHANGE_DONE_DAYS", 90, 1, 3650),
        exchange_confirm_days=_int(env, "SCAMBIO_EXCHANGE_CONFIRM_DAYS", 7, 1, 365),
        exchange_resolve_days=_int(env, "SCAMBIO_EXCHANGE_RESOLVE_DAYS", 30, 1, 365),
        listing_ttl_days=_int(env, "SCAMBIO_LISTING_TTL_DAYS", 60, 1, 365),
        listing_reminder_days=_int(env, "SCAMBIO_LISTING_REMINDER_DAYS", 7, 0, 365),
        zones_file=Path(zones_file) if zones_file else None,
        smtp_host=env.get("SCAMBIO_SMTP_HOST") or None,
        smtp_port=_int(env, "SCAMBIO_SMTP_PORT", 587, 1, 65535),
        smtp_user=env.get("SCAMBIO_SMTP_USER") or None,
        smtp_password=Secret(env["SCAMBIO_SMTP_PASSWORD"])
        if env.get("SCAMBIO_SMTP_PASSWORD")
        else None,
        smtp_starttls=starttls in ("true", "1", "yes"),
        mail_from=env.get("SCAMBIO_MAIL_FROM") or "scambio@localhost",
        password_hash_cost=cost,
        login_max_failures=_int(env, "SCAMBIO_LOGIN_MAX_FAILURES", 5, 1, 1000),
        login_max_failures_per_ip=_int(env, "SCAMBIO_LOGIN_MAX_FAILURES_PER_IP", 20, 1, 100_000),
        login_window=_int(env, "SCAMBIO_LOGIN_WINDOW", 900, 1, 7 * 24 * 3600),
        member_token_ttl=token_ttl,
        password_reset_ttl=_int(env, "SCAMBIO_PASSWORD_RESET_TTL", 3600, 60, 7 * 24 * 3600),
        email_change_ttl=_int(env, "SCAMBIO_EMAIL_CHANGE_TTL", 24 * 3600, 60, 30 * 24 * 3600),
        write_rate=_rate(env, "SCAMBIO_WRITE_RATE", 50.0),
        write_burst=_int(env, "SCAMBIO_WRITE_BURST", 500, 1, 10_000_000),
        trusted_proxies=_networks(env, "SCAMBIO_TRUSTED_PROXIES"),
        db_pool_size=_int(env, "SCAMBIO_DB_POOL_SIZE", 20, 1, 1000),
        policies_dir=Path(env.get("SCAMBIO_POLICIES_DIR") or "policies"),
        federation_public_url=_public_url(env),
        federation_timeout=_seconds(env, "SCAMBIO_FEDERATION_TIMEOUT", 10.0),
        federation_prepare_deadline=_int(
            env, "SCAMBIO_FEDERATION_PREPARE_DEADLINE", 900, 10, 30 * 24 * 3600
        ),
    )


def _public_url(env: Mapping[str, str]) -> str | None:
    url = (env.get("SCAMBIO_FEDERATION_PUBLIC_URL") or "").rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise SettingsError("SCAMBIO_FEDERATION_PUBLIC_URL must start with http:// or https://")
    return url or None


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds") from None
    if not 0 < value <= 600:
        raise SettingsError(f"{name} must be more than 0 and at most 600 seconds")
    return value
