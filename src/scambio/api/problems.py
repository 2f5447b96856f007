"""RFC 9457 problem details for every error the API returns.

Each error has a stable `type`, ``urn:scambio:problem:<slug>``, where the slug is the
domain's `RuleViolation.code` or one of the HTTP-level slugs below. Clients branch on
`type`, never on `detail`, which is prose. The violation's fields (account, available,
shortfall, field...) become extension members, so a client can act without parsing text.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from scambio.api.decode import InvalidRequest
from scambio.ledger.errors import RuleViolation
from scambio.store.appender import StorageUnavailable

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
TYPE_PREFIX: Final = "urn:scambio:problem:"
#: Seconds a client should wait before retrying after a 503.
RETRY_AFTER: Final = "5"

#: HTTP status and title for each domain rule code. Unlisted codes are 422.
RULE_STATUS: Final[dict[str, tuple[int, str]]] = {
    "limit-exceeded": (422, "Account limit exceeded"),
    "unknown-account": (422, "Unknown account"),
    "idempotency-conflict": (409, "Id already used for a different request"),
    "hold-not-found": (404, "Hold not found"),
    "hold-resolved": (409, "Hold already resolved"),
    "hold-expired": (409, "Hold expired"),
    "post-exceeds-hold": (422, "Post exceeds the hold"),
    "already-reversed": (409, "Entry already reversed"),
    "not-reversible": (422, "Entry cannot be reversed"),
    "same-account": (422, "Payer and payee are the same account"),
    "invalid-amount": (422, "Invalid amount"),
    "invalid-account-id": (422, "Invalid account id"),
    "invalid-account-kind": (422, "Invalid account kind"),
    "invalid-limits": (422, "Invalid account limits"),
    "invalid-id": (422, "Invalid id"),
    "account-exists": (409, "Account already exists"),
    "account-kind-change": (409, "Account kind cannot change"),
    "linked-failed": (422, "Linked transfer not applied"),
    "beyond-tree": (400, "Beyond the tree"),
    "invalid-proof-request": (400, "Invalid proof request"),
    # people, organisations, sessions (timebank)
    "forbidden": (403, "Forbidden"),
    "invalid-field": (422, "Invalid field"),
    "invalid-email": (422, "Invalid email"),
    "invalid-password": (422, "Invalid password"),
    "invalid-scope": (422, "Invalid scope"),
    "unknown-zone": (422, "Unknown zone"),
    "unknown-area": (422, "Unknown area"),
    "member-not-found": (404, "Member not found"),
    "organisation-not-found": (404, "Organisation not found"),
    "link-not-found": (404, "Employee link not found"),
    "admin-not-found": (404, "Not an admin of this organisation"),
    "token-not-found": (404, "Token not found"),
    "invalid-status": (409, "Not possible in the current status"),
    "email-taken": (409, "Email already in use"),
    "link-exists": (409, "Employee link already exists"),
    "account-suspended": (409, "Account suspended"),
    "invalid-credentials": (401, "Invalid credentials"),
    "member-pending": (403, "Membership pending approval"),
    "member-suspended": (403, "Member suspended"),
    "member-rejected": (403, "Registration rejected"),
    "too-many-attempts": (429, "Too many attempts"),
    "invalid-reset-token": (422, "Invalid reset code"),
    # exchanges
    "exchange-not-found": (404, "Exchange not found"),
    "group-not-found": (404, "Group exchange not found"),
    "invalid-transition": (409, "Not possible in the exchange's current state"),
    "exchange-lapsed": (409, "Exchange lapsed"),
    "already-thanked": (409, "Already thanked"),
    "exceeds-agreed": (422, "More minutes than agreed"),
    "invalid-party": (422, "Invalid party"),
    "invalid-group": (422, "Invalid group exchange"),
    "invalid-pool": (422, "Invalid pool account"),
    "group-settlement-failed": (422, "Group settlement failed"),
    # listings and matching
    "listing-not-found": (404, "Listing not found"),
    "already-introduced": (409, "Already introduced"),
    "not-a-request": (422, "Not a request"),
    # notifications, email changes
    "notification-not-found": (404, "Notification not found"),
    "invalid-confirmation-token": (422, "Invalid confirmation code"),
    # sponsorship policies
    "policy-not-found": (404, "Policy not found"),
    "policy-version-not-found": (404, "Policy version not found"),
    "not-a-pool-policy": (422, "Not a pool policy"),
    "policy-retired": (409, "Policy retired"),
    "policy-not-running": (409, "Policy not running in this period"),
    "pool-cap-reached": (422, "Pool cap reached"),
    "enrolment-not-needed": (409, "Policy takes no enrolments"),
    "enrolment-not-found": (404, "Enrolment not found"),
    "not-an-employee": (422, "Not an employee of the sponsor"),
    "invalid-period": (400, "Invalid period"),
    # jobs and reports
    "report-not-found": (404, "Report not found"),
    "invalid-range": (422, "Invalid date range"),
    # federation: signatures between nodes, peers, cross-timebank transfers
    "signature-required": (401, "Signature required"),
    "malformed-signature": (400, "Malformed signature"),
    "unknown-key": (401, "Unknown key"),
    "bad-signature": (401, "Bad signature"),
    "stale-request": (401, "Stale request"),
    "replayed-request": (401, "Replayed request"),
    "net-position-exceeded": (422, "Net position limit exceeded"),
    "peer-not-found": (404, "Peer not found"),
    "peer-exists": (409, "Peer already exists"),
    "peer-suspended": (403, "Peer suspended"),
    "peer-refused": (422, "Refused by the peer"),
    "unknown-peer": (422, "Unknown peer"),
    "invalid-address": (422, "Invalid address"),
    "invalid-transfer": (422, "Invalid cross-timebank transfer"),
    "unknown-payee": (422, "Unknown payee"),
    "payee-inactive": (422, "Payee inactive"),
    "rate-mismatch": (422, "Exchange rate mismatch"),
    "inexact-amount": (422, "Amount does not convert exactly"),
    "transfer-unknown": (404, "Transfer unknown"),
    "transfer-aborted": (409, "Transfer aborted"),
    "transfer-committed": (409, "Transfer committed"),
    "peer-unreachable": (422, "Peer unreachable"),
    "interrupted": (422, "Transfer interrupted"),
}

#: Slugs for errors raised by the HTTP layer itself.
HTTP_SLUGS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid-request", "Invalid request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal error"),
    503: ("storage-unavailable", "Storage unavailable"),
}

_RESERVED: Final = frozenset({"type", "title", "status", "detail", "instance"})


def problem_type(slug: str) -> str:
    return TYPE_PREFIX + slug


def problem_body(
    slug: str, status: int, title: str, detail: str, **extensions: object
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "detail": detail,
    }
    for name, value in extensions.items():
        if name not in _RESERVED:
            body[name] = value
    return body


def violation_status(violation: RuleViolation) -> int:
    return RULE_STATUS.get(violation.code, (422, ""))[0]


def violation_body(violation: RuleViolation, status: int | None = None) -> dict[str, Any]:
    default_status, title = RULE_STATUS.get(
        violation.code, (422, violation.code.replace("-", " ").capitalize())
    )
    return problem_body(
        violation.code,
        status or default_status,
        title,
        violation.detail,
        # A field named like a problem member (status, type...) must not clash with it.
        **{k: v for k, v in violation.fields.items() if k not in _RESERVED},
    )


def problem_response(
    body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        msgspec.json.encode(body),
        status_code=int(body["status"]),
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def http_problem(status: int, detail: str, **extensions: object) -> Response[bytes]:
    slug, title = HTTP_SLUGS.get(status, (f"http-{status}", "Error"))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": RETRY_AFTER}
    return problem_response(problem_body(slug, status, title, detail, **extensions), headers)


class NotFoundViolation(RuleViolation):
    """A rule violation that a GET reports as 404 (e.g. an unknown account)."""


def not_found(violation: RuleViolation) -> NotFoundViolation:
    return NotFoundViolation(violation.code, violation.detail, **violation.fields)


# -- exception handlers ----------------------------------------------------------------


def _validation_detail(exc: HTTPException) -> tuple[str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict):
            errors.append({k: item[k] for k in ("message", "key", "source") if k in item})
    if errors:
        parts = []
        for e in errors:
            message, key, source = e.get("message"), e.get("key"), e.get("source")
            where = f"{source} `{key}`" if key and key != "data" else (source or "request")
            parts.append(f"{message} (in {where})")
        return "; ".join(parts), errors
    return exc.detail, errors


def handle_http(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 400:
        detail, errors = _validation_detail(exc)
        return http_problem(400, detail, **({"errors": errors} if errors else {}))
    if status >= 500:
        log.error("HTTP %d: %s", status, exc.detail)
        return http_problem(status, "the server could not handle this request")
    response = http_problem(status, exc.detail)
    if isinstance(exc, NotAuthorizedException) and exc.headers:
        response.headers.update(exc.headers)
    return response


def handle_invalid(_request: Request[Any, Any, Any], exc: InvalidRequest) -> Response[bytes]:
    return http_problem(400, exc.detail)


def handle_violation(_request: Request[Any, Any, Any], exc: RuleViolation) -> Response[bytes]:
    status = 404 if isinstance(exc, NotFoundViolation) else None
    headers: dict[str, str] | None = None
    if exc.code == "too-many-attempts":
        headers = {"Retry-After": str(exc.fields.get("retry_after", RETRY_AFTER))}
    elif exc.code == "invalid-credentials":
        headers = {"WWW-Authenticate": 'Bearer realm="scambio"'}
    return problem_response(violation_body(exc, status), headers)


def handle_unavailable(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    # The driver's message may carry the connection string: log it, answer in general terms.
    log.warning("storage unavailable: %s: %s", type(exc).__name__, exc)
    return http_problem(503, "the ledger database is unavailable; retry shortly")


def handle_internal(_request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled error", exc_info=exc)
    return http_problem(500, "the server could not handle this request")


EXCEPTION_HANDLERS: Final = {
    HTTPException: handle_http,
    InvalidRequest: handle_invalid,
    RuleViolation: handle_violation,
    StorageUnavailable: handle_unavailable,
    OperationalError: handle_unavailable,
    InterfaceError: handle_unavailable,
    PoolTimeout: handle_unavailable,
    ConnectionError: handle_unavailable,
    Exception: handle_internal,
}


def problem_spec(*statuses: int) -> dict[int, Any]:
    """OpenAPI response entries for the given error statuses (problem+json)."""
    return {
        status: ResponseSpec(
            data_container=dict[str, Any],
            description=_DESCRIPTIONS.get(status, "Problem details (RFC 9457)"),
            media_type=PROBLEM_JSON,
        )
        for status in statuses
    }


_DESCRIPTIONS: Final = {
    400: "Invalid request: malformed JSON, unknown field, wrong type (problem details)",
    401: "No valid bearer token (problem details)",
    403: "The token's role may not do this (problem details)",
    404: "Not found (problem details)",
    409: "Conflict: id reused with different fields, hold resolved or expired, entry "
    "already reversed (problem details)",
    413: "Request body too large (problem details)",
    422: "A rule refused the request: limits, unknown account, invalid amount, id or field "
    "(problem details)",
    429: "Too many attempts; retry after the Retry-After delay (problem details)",
    503: "The database is unavailable; retry after the Retry-After delay (problem details)",
}
