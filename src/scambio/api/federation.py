"""Federation over HTTP: peers (admins), cross-timebank transfers (members), and the
node-to-node protocol (other Scambio nodes).

Node-to-node routes are `public` for the bearer guard: they are authenticated by an
RFC 9421 signature with the peer's Ed25519 key instead, checked here before anything else,
even before the body is decoded (unknown key, bad signature, stale or replayed request are
each their own 401 problem). Their bodies are documented in docs/federation.md.
The nonce of every accepted request is kept for the freshness window, so a replay is
refused. See docs/federation.md for the protocol.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from scambio.api.auth import ACT, BEARER, PUBLIC, READ, STAFF_READ, WRITE, require_principal
from scambio.api.decode import canonical_uuid, strict_body
from scambio.api.problems import not_found, problem_spec
from scambio.api.schemas import Input, Memo, Minutes
from scambio.federation import httpsig, recovery
from scambio.federation import peers as peers_mod
from scambio.federation import reconcile as reconcile_mod
from scambio.federation import transfers as fed
from scambio.federation.peers import Peer
from scambio.federation.protocol import (
    DecisionIn,
    PrepareIn,
    SignedStatement,
    StatusIn,
    StatusOut,
    TransferState,
)
from scambio.ledger.errors import RuleViolation
from scambio.store import queries
from scambio.store.federation_tables import federation_nonces
from scambio.store.tokens import ROLE_ADMIN, Principal
from scambio.timebank import authz
from scambio.timebank.context import Timebank
from scambio.timebank.db import reading, writing

NODE: Final = "node-to-node (signed with the peer's key, RFC 9421)"
NODE_PROBLEMS: Final = (400, 401, 403, 404, 409, 422, 503)
MAX_STATUS_IDS: Final = 500

# -- shapes -------------------------------------------------------------------------------


class PeerIn(Input, frozen=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(description="Our name for the peer: the @peer part.")]
    base_url: str
    vkey: Annotated[str, msgspec.Meta(description="The peer's C2SP verifier key.")]
    max_we_owe: int = peers_mod.DEFAULT_LIMIT
    max_they_owe: int = peers_mod.DEFAULT_LIMIT
    rate_ours: int = 1
    rate_theirs: int = 1
    reason: str | None = None


class PeerPatch(Input, frozen=True, kw_only=True):
    base_url: str | None = None
    vkey: str | None = None
    max_we_owe: int | None = None
    max_they_owe: int | None = None
    rate_ours: int | None = None
    rate_theirs: int | None = None
    status: str | None = None
    reason: str


class PeerOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    base_url: str
    vkey: str
    origin: str
    clearing_account: str
    rate_ours: int
    rate_theirs: int
    max_we_owe: int
    max_they_owe: int
    status: str
    #: The clearing account's posted balance: > 0 we owe them, < 0 they owe us.
    position: int
    pending: int
    created_at: str
    updated_at: str


class PeersOut(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PeerOut]


class SendIn(Input, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(description="A client UUID: the global transfer id.")]
    payer: str
    payee: Annotated[str, msgspec.Meta(description="account@peer", examples=["m-1a2b@zona6"])]
    minutes: Minutes
    memo: Memo = ""


class FedTransferOut(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    peer: str
    direction: str
    state: str
    local_account: str
    remote_account: str
    minutes: int
    peer_minutes: int
    memo: str
    decision: str | None
    reason_code: str | None
    reason: str | None
    hold_index: int | None
    commit_index: int | None
    peer_acked: bool
    last_error: str | None
    created_at: str
    updated_at: str


class FedTransfersOut(msgspec.Struct, frozen=True, kw_only=True):
    items: list[FedTransferOut]


class RecoveryOut(msgspec.Struct, frozen=True, kw_only=True):
    summary: str
    examined: int
    committed: list[str]
    aborted: list[str]
    told: list[str]
    pending: list[str]
    errors: list[str]


class ReconciliationsOut(msgspec.Struct, frozen=True, kw_only=True):
    items: list[dict[str, Any]]


def transfer_out(row: fed.FedTransfer) -> FedTransferOut:
    return FedTransferOut(
        id=row.id,
        peer=row.peer,
        direction=row.direction,
        state=row.state,
        local_account=row.local_account,
        remote_account=row.remote_account,
        minutes=row.minutes,
        peer_minutes=row.peer_minutes,
        memo=row.memo,
        decision=row.decision,
        reason_code=row.reason_code,
        reason=row.reason,
        hold_index=row.hold_index,
        commit_index=row.commit_index,
        peer_acked=row.peer_acked,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def peer_out(tb: Timebank, peer: Peer) -> PeerOut:
    async with reading(tb.engine) as conn:
        account = await queries.account(conn, peer.clearing_account)
    return PeerOut(
        name=peer.name,
        base_url=peer.base_url,
        vkey=peer.vkey,
        origin=peer.origin,
        clearing_account=peer.clearing_account,
        rate_ours=peer.rate_ours,
        rate_theirs=peer.rate_theirs,
        max_we_owe=peer.max_we_owe,
        max_they_owe=peer.max_they_owe,
        status=peer.status,
        position=account.posted,
        pending=account.pending,
        created_at=peer.created_at,
        updated_at=peer.updated_at,
    )


def _admin(principal: Principal) -> None:
    if principal.role != ROLE_ADMIN:
        raise authz.forbidden("only an admin may manage peers and run federation jobs")


# -- peers (admins) ------------------------------------------------------------------------


@get(
    "/federation/peers",
    operation_id="listPeers",
    summary="Peer timebanks, with the net position of each",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["federation"],
)
async def list_peers(timebank: NamedDependency[Timebank]) -> PeersOut:
    async with reading(timebank.engine) as conn:
        every = await peers_mod.listing(conn)
    return PeersOut(items=[await peer_out(timebank, peer) for peer in every])


@post(
    "/federation/peers",
    operation_id="addPeer",
    summary="Add a peer timebank (admins)",
    description=(
        "Opens the peer's clearing account (`clearing.<name>`) with the net-position limits "
        "as its ledger limits; audited. The exchange rate is `rate_ours` of our minutes for "
        "`rate_theirs` of theirs (1:1 by default)."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 409, 413, 422, 503),
    tags=["federation"],
)
async def add_peer(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[PeerIn],
) -> PeerOut:
    principal = require_principal(request)
    _admin(principal)
    body = await strict_body(request, PeerIn)
    peer = await peers_mod.add(
        timebank,
        authz.actor(principal),
        name=body.name,
        base_url=body.base_url,
        vkey=body.vkey,
        max_we_owe=body.max_we_owe,
        max_they_owe=body.max_they_owe,
        rate_ours=body.rate_ours,
        rate_theirs=body.rate_theirs,
        reason=body.reason,
    )
    return await peer_out(timebank, peer)


@get(
    "/federation/peers/{name:str}",
    operation_id="getPeer",
    summary="A peer timebank",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=["federation"],
)
async def get_peer(timebank: NamedDependency[Timebank], name: FromPath[str]) -> PeerOut:
    return await peer_out(timebank, await _peer(timebank, name))


async def _peer(tb: Timebank, name: str) -> Peer:
    async with reading(tb.engine) as conn:
        peer = await peers_mod.get(conn, name)
    if peer is None:
        raise not_found(peers_mod.peer_not_found(name))
    return peer


@patch(
    "/federation/peers/{name:str}",
    operation_id="changePeer",
    summary="Change a peer: URL, key, rate, net-position limits, status (admins)",
    description=(
        "A reason is required (audit log). New limits are an `account` entry on the "
        "clearing account, refused (`invalid-limits`) when the position is beyond them."
    ),
    opt={"access": WRITE},
    security=BEARER,
    responses=problem_spec(400, 401, 403, 404, 413, 422, 503),
    tags=["federation"],
)
async def change_peer(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    name: FromPath[str],
    data: JSONBody[PeerPatch],
) -> PeerOut:
    principal = require_principal(request)
    _admin(principal)
    body = await strict_body(request, PeerPatch)
    await _peer(timebank, name)
    peer = await peers_mod.change(
        timebank,
        authz.actor(principal),
        name,
        base_url=body.base_url,
        vkey=body.vkey,
        max_we_owe=body.max_we_owe,
        max_they_owe=body.max_they_owe,
        rate_ours=body.rate_ours,
        rate_theirs=body.rate_theirs,
        status=body.status,
        reason=body.reason,
    )
    return await peer_out(timebank, peer)


@post(
    "/federation/peers/{name:str}/reconcile",
    operation_id="reconcilePeer",
    summary="Reconcile with a peer now (admins)",
    description=(
        "Checks the peer's signed checkpoint against the last one seen (consistency proof), "
        "fetches its signed clearing statement and compares both views of every cross "
        "transfer. Returns the report (also stored; see /federation/reconciliations)."
    ),
    opt={"access": WRITE},
    security=BEARER,
    status_code=200,
    responses=problem_spec(401, 403, 404, 503),
    tags=["federation"],
)
async def reconcile_peer(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank], name: FromPath[str]
) -> dict[str, Any]:
    _admin(require_principal(request))
    peer = await _peer(timebank, name)
    report = await reconcile_mod.reconcile_peer(timebank, peer, timebank.clock())
    return report.to_json()


@get(
    "/federation/reconciliations",
    operation_id="listReconciliations",
    summary="Reconciliation reports, newest first",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["federation"],
)
async def list_reconciliations(
    timebank: NamedDependency[Timebank],
    peer: Annotated[str | None, QueryParameter(max_length=32)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
) -> ReconciliationsOut:
    return ReconciliationsOut(items=await reconcile_mod.history(timebank, peer=peer, limit=limit))


@post(
    "/federation/recover",
    operation_id="recoverTransfers",
    summary="Run the recovery of in-doubt cross transfers now (admins)",
    opt={"access": WRITE},
    security=BEARER,
    status_code=200,
    responses=problem_spec(401, 403, 503),
    tags=["federation"],
)
async def recover_now(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]
) -> RecoveryOut:
    _admin(require_principal(request))
    report = await recovery.recover(timebank, timebank.clock())
    return RecoveryOut(
        summary=report.summary(),
        examined=report.examined,
        committed=report.committed,
        aborted=report.aborted,
        told=report.told,
        pending=report.pending,
        errors=report.errors,
    )


# -- cross-timebank transfers (members) ----------------------------------------------------


@post(
    "/federation/transfers",
    operation_id="sendFederatedTransfer",
    summary="Pay a member of another timebank (account@peer)",
    description=(
        "Holds the payer's minutes, asks the peer to hold its side (signed prepare), then "
        "commits both. 201 when committed on both ledgers' terms; 202 when the peer's "
        "answer is not known yet (the transfer stays held; recovery finishes it, and "
        "GET tells the outcome). A refusal, here or at the peer, is a problem: e.g. "
        "`unknown-payee`, `payee-inactive`, `net-position-exceeded`, `limit-exceeded`, "
        "`peer-refused`. Idempotent by `id`."
    ),
    opt={"access": ACT, "scope": "transfer"},
    security=BEARER,
    status_code=201,
    responses=problem_spec(400, 401, 403, 404, 409, 413, 422, 503),
    tags=["federation"],
)
async def send_transfer(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    data: JSONBody[SendIn],
) -> Response[FedTransferOut]:
    principal = require_principal(request)
    body = await strict_body(request, SendIn)
    transfer_id = canonical_uuid(body.id)
    authz.may_spend_from(principal, body.payer)
    async with reading(timebank.engine) as conn:
        await authz.check_not_suspended(conn, [body.payer])
    try:
        row = await fed.send(
            timebank,
            transfer_id=transfer_id,
            payer=body.payer,
            payee=body.payee,
            minutes=body.minutes,
            memo=body.memo,
        )
    except RuleViolation as exc:
        if exc.code == "peer-not-found":
            raise RuleViolation("unknown-peer", exc.detail, field="payee") from None
        raise
    return Response(transfer_out(row), status_code=201 if row.state == "committed" else 202)


@get(
    "/federation/transfers",
    operation_id="listFederatedTransfers",
    summary="Cross-timebank transfers (staff)",
    opt={"access": STAFF_READ},
    security=BEARER,
    responses=problem_spec(401, 403, 503),
    tags=["federation"],
)
async def list_transfers(
    timebank: NamedDependency[Timebank],
    peer: Annotated[str | None, QueryParameter(max_length=32)] = None,
    state_: Annotated[str | None, QueryParameter(name="state", max_length=20)] = None,
    after: Annotated[str | None, QueryParameter(max_length=36)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> FedTransfersOut:
    rows = await fed.listing(
        timebank,
        peer=peer,
        states=None if state_ is None else (state_,),
        limit=limit,
        after=after,
    )
    return FedTransfersOut(items=[transfer_out(row) for row in rows])


@get(
    "/federation/transfers/{transfer_id:str}",
    operation_id="getFederatedTransfer",
    summary="A cross-timebank transfer (its member, or staff)",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(401, 403, 404, 503),
    tags=["federation"],
)
async def get_transfer(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
    transfer_id: FromPath[str],
) -> FedTransferOut:
    principal = require_principal(request)
    row = await fed.get(timebank, transfer_id)
    missing = RuleViolation("transfer-unknown", f"no cross transfer {transfer_id!r}")
    if row is None:
        raise not_found(missing)
    if not (principal.is_staff or principal.holds_account(row.local_account)):
        raise not_found(missing)
    return transfer_out(row)


# -- node to node --------------------------------------------------------------------------


def _target_uri(request: Request[Any, Any, Any], public_url: str | None) -> str:
    scope = request.scope
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else str(scope["path"])
    query = scope.get("query_string", b"")
    if query:
        path += "?" + query.decode("latin-1")
    if public_url:
        return public_url + path
    host = request.headers.get("host") or "localhost"
    return f"{scope.get('scheme', 'http')}://{host}{path}"


async def authenticate_peer(request: Request[Any, Any, Any], tb: Timebank) -> Peer:
    """The peer whose key signed this request; every refusal is its own problem."""
    body = await request.body()
    headers: dict[str, list[str]] = {}
    for name, value in request.scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    async with reading(tb.engine) as conn:
        known = {peer.key_id: peer for peer in await peers_mod.listing(conn)}

    def lookup(key: str) -> Any:
        peer = known.get(key)
        return None if peer is None else peer.verifier.verify

    message = httpsig.Message(
        request.method, _target_uri(request, tb.settings.federation_public_url), headers
    )
    try:
        signed = httpsig.verify_request(
            message,
            body,
            ", ".join(headers.get("signature-input", [])) or None,
            ", ".join(headers.get("signature", [])) or None,
            lookup,
            now=int(tb.clock().timestamp()),
        )
    except httpsig.SignatureError as exc:
        raise RuleViolation(exc.code, exc.detail) from None
    try:
        async with writing(tb.engine) as conn:
            await conn.execute(
                insert(federation_nonces).values(
                    key_id=signed.key_id, nonce=signed.nonce, created=signed.created
                )
            )
    except IntegrityError:
        raise RuleViolation(
            "replayed-request",
            "this request (its nonce) was already received: a replay is refused",
        ) from None
    return known[signed.key_id]


@post(
    "/federation/prepare",
    operation_id="federationPrepare",
    summary="Prepare a transfer to one of our members (node to node)",
    description=(
        "Signed by the paying node. Checks the payee, the rate and the net position, holds "
        "the minutes and answers with this node's signed accept; a repeated prepare gets "
        f"the same answer. {NODE}."
    ),
    opt={"access": PUBLIC},
    status_code=200,
    responses=problem_spec(*NODE_PROBLEMS),
    tags=["federation"],
)
async def node_prepare(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
) -> TransferState:
    peer = await authenticate_peer(request, timebank)
    return await fed.on_prepare(timebank, peer, await strict_body(request, PrepareIn))


@post(
    "/federation/commit",
    operation_id="federationCommit",
    summary="The paying node's commit decision (node to node)",
    opt={"access": PUBLIC},
    status_code=200,
    responses=problem_spec(*NODE_PROBLEMS),
    tags=["federation"],
)
async def node_commit(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
) -> TransferState:
    peer = await authenticate_peer(request, timebank)
    return await fed.on_commit(timebank, peer, await strict_body(request, DecisionIn))


@post(
    "/federation/abort",
    operation_id="federationAbort",
    summary="The paying node's abort decision (node to node)",
    description=(
        "Voids the hold if there is one; for a transfer never seen, records it as aborted "
        f"so that a late prepare is refused. {NODE}."
    ),
    opt={"access": PUBLIC},
    status_code=200,
    responses=problem_spec(*NODE_PROBLEMS),
    tags=["federation"],
)
async def node_abort(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
) -> TransferState:
    peer = await authenticate_peer(request, timebank)
    return await fed.on_abort(timebank, peer, await strict_body(request, DecisionIn))


@post(
    "/federation/status",
    operation_id="federationStatus",
    summary="This node's view of some transfers with the asking peer (node to node)",
    description=(
        "As the paying side, the decision and its signature (a signed abort for a transfer "
        f"never had). At most {MAX_STATUS_IDS} ids. {NODE}."
    ),
    opt={"access": PUBLIC},
    status_code=200,
    responses=problem_spec(*NODE_PROBLEMS),
    tags=["federation"],
)
async def node_status(
    request: Request[Any, Any, Any],
    timebank: NamedDependency[Timebank],
) -> StatusOut:
    peer = await authenticate_peer(request, timebank)
    body = await strict_body(request, StatusIn)
    if len(body.ids) > MAX_STATUS_IDS:
        raise RuleViolation("invalid-field", f"at most {MAX_STATUS_IDS} ids", field="ids")
    return StatusOut(transfers=await fed.status(timebank, peer, body.ids))


@get(
    "/federation/statement",
    operation_id="federationStatement",
    summary="This node's signed clearing statement for the asking peer (node to node)",
    opt={"access": PUBLIC},
    responses=problem_spec(*NODE_PROBLEMS),
    tags=["federation"],
)
async def node_statement(
    request: Request[Any, Any, Any], timebank: NamedDependency[Timebank]
) -> SignedStatement:
    peer = await authenticate_peer(request, timebank)
    return await reconcile_mod.clearing_statement(timebank, peer)


ROUTES = [
    list_peers,
    add_peer,
    get_peer,
    change_peer,
    reconcile_peer,
    list_reconciliations,
    recover_now,
    send_transfer,
    list_transfers,
    get_transfer,
    node_prepare,
    node_commit,
    node_abort,
    node_status,
    node_statement,
]
