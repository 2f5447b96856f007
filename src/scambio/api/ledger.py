"""The public, verifiable face of the ledger: checkpoint, key, entries and Merkle proofs.

Checkpoint, key and proofs need no token: anyone may check that the log they were shown
is the one the node signed. Reading entries (which name accounts and memos) needs one.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import QueryParameter

from scambio.api.auth import BEARER, PUBLIC, READ
from scambio.api.problems import problem_spec
from scambio.api.schemas import ConsistencyOut, EntryOut, InclusionOut, KeyOut
from scambio.store import queries
from scambio.store.ledger import LedgerService

ENTRIES_DEFAULT: Final = 100
ENTRIES_MAX: Final = 1000
#: Largest index or size a query may name (2^63 - 1, what the database can hold).
_MAX_INDEX: Final = 2**63 - 1

Index = Annotated[int, QueryParameter(ge=0, le=_MAX_INDEX)]
OptionalSize = Annotated[int | None, QueryParameter(ge=0, le=_MAX_INDEX)]


@get(
    "/ledger/checkpoint",
    operation_id="getCheckpoint",
    summary="The latest signed checkpoint (C2SP signed note)",
    description=(
        "Origin, tree size and RFC 9162 root hash, signed with the node's Ed25519 key as a "
        "C2SP signed note. Verify it with the key from /api/v1/ledger/key."
    ),
    media_type=MediaType.TEXT,
    opt={"access": PUBLIC},
    responses=problem_spec(503),
    tags=["ledger"],
    cache_control=None,
)
async def get_checkpoint(ledger: NamedDependency[LedgerService]) -> str:
    async with ledger.read() as conn:
        return (await queries.head(conn)).checkpoint


@get(
    "/ledger/key",
    operation_id="getVerifierKey",
    summary="The node's note verifier key",
    opt={"access": PUBLIC},
    tags=["ledger"],
)
async def get_key(ledger: NamedDependency[LedgerService]) -> KeyOut:
    return KeyOut(origin=ledger.origin, vkey=ledger.signer.verifier().to_string())


@get(
    "/ledger/entries",
    operation_id="listEntries",
    summary="Entries in index order, with their canonical bytes and leaf hashes",
    opt={"access": READ},
    security=BEARER,
    responses=problem_spec(400, 401, 503),
    tags=["ledger"],
)
async def list_entries(
    ledger: NamedDependency[LedgerService],
    start: Index = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=ENTRIES_MAX)] = ENTRIES_DEFAULT,
) -> list[EntryOut]:
    async with ledger.read() as conn:
        stored = await queries.entry_range(conn, start, limit)
    return [
        EntryOut(
            index=item.index,
            leaf_hash=item.leaf_hash,
            canonical=item.canonical,
            entry=msgspec.json.decode(item.canonical),
        )
        for item in stored
    ]


@get(
    "/ledger/proof/inclusion",
    operation_id="getInclusionProof",
    summary="Merkle inclusion proof of entry `index` in the tree of `size` entries",
    description="`size` defaults to the current tree size (that of the latest checkpoint).",
    opt={"access": PUBLIC},
    responses=problem_spec(400, 503),
    tags=["ledger"],
)
async def get_inclusion_proof(
    ledger: NamedDependency[LedgerService], index: Index, size: OptionalSize = None
) -> InclusionOut:
    async with ledger.read() as conn:
        tree_size = size if size is not None else (await queries.head(conn)).size
        leaf, proof = await queries.inclusion_proof(conn, index, tree_size)
    return InclusionOut(index=index, size=tree_size, leaf_hash=leaf, proof=proof)


@get(
    "/ledger/proof/consistency",
    operation_id="getConsistencyProof",
    summary="Merkle consistency proof between two tree sizes",
    description=(
        "Proves the tree of `to` entries extends the tree of `from` entries. `from` must be "
        "at least 1 and at most `to`; `to` defaults to the current tree size."
    ),
    opt={"access": PUBLIC},
    responses=problem_spec(400, 503),
    tags=["ledger"],
)
async def get_consistency_proof(
    ledger: NamedDependency[LedgerService],
    from_: Annotated[int, QueryParameter(name="from", ge=0, le=_MAX_INDEX)],
    to: OptionalSize = None,
) -> ConsistencyOut:
    async with ledger.read() as conn:
        size2 = to if to is not None else (await queries.head(conn)).size
        proof = await queries.consistency_proof(conn, from_, size2)
    return ConsistencyOut(from_=from_, to=size2, proof=proof)


ROUTES = [get_checkpoint, get_key, list_entries, get_inclusion_proof, get_consistency_proof]
