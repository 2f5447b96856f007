"""Tests for the RFC 9162 Merkle module: known roots, proofs from stored nodes, tampering,
the transparency-dev/merkle vectors, and the compact range."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scambio.ledger.errors import VerificationError
from scambio.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    NodeId,
    assemble,
    consistency_ranges,
    fold,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_for,
    range_nodes,
    root_of,
    root_ranges,
    verify_consistency,
    verify_inclusion,
)

# --- RFC 6962 / certificate-transparency test tree ------------------------------------------

RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


Store = dict[NodeId, bytes]


def build_store(leaves: Sequence[bytes]) -> tuple[Store, list[CompactRange]]:
    """Append every leaf hash; return the node store and the compact range after each size."""
    store: Store = {}
    cr = CompactRange()
    ranges = [cr.copy()]
    for leaf in leaves:
        for node, h in cr.append(leaf):
            assert node not in store
            store[node] = h
        ranges.append(cr.copy())
    return store, ranges


def stored_for(node: NodeId, size: int) -> bool:
    """Whether node (level, index) is complete, hence stored, in a tree of `size` leaves."""
    level, index = node
    return (index + 1) << level <= size


def numbered_leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


N = 64
LEAVES = numbered_leaves(N)
STORE, COMPACT = build_store(LEAVES)
ROOTS = [root_of(LEAVES[:n]) for n in range(N + 1)]


def log_bound(size: int) -> int:
    """An honest O(log n) bound on node lookups for one proof in a tree of `size` leaves."""
    return 2 * math.ceil(math.log2(size)) + 2 if size > 1 else 2


def inclusion_proof(index: int, size: int, store: Store = STORE) -> list[bytes]:
    return assemble(inclusion_ranges(index, size), store)


def consistency_proof(size1: int, size2: int, store: Store = STORE) -> list[bytes]:
    return assemble(consistency_ranges(size1, size2), store)


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# --- 1. known roots --------------------------------------------------------------------------


def test_primitives() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT.hex() == RFC_ROOTS[0].hex()
    assert leaf_hash(b"") == RFC_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == RFC_ROOTS[2]


@pytest.mark.parametrize("n", range(len(RFC_ROOTS)))
def test_rfc6962_roots(n: int) -> None:
    hashes = [leaf_hash(d) for d in RFC_LEAVES]
    store, ranges = build_store(hashes)
    assert root_of(hashes[:n]) == RFC_ROOTS[n]
    assert ranges[n].root() == RFC_ROOTS[n]
    assert ranges[n].size == n
    assert assemble(root_ranges(n), store) == ([RFC_ROOTS[n]] if n else [])
    assert fold([store[node] for node in range_nodes(0, n)]) == RFC_ROOTS[n]
    assert list(ranges[n].hashes) == [store[node] for node in range_nodes(0, n)]


def test_fold_and_range_nodes() -> None:
    assert fold([]) == EMPTY_ROOT
    assert range_nodes(0, 0) == []
    assert range_nodes(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert range_nodes(8, 13) == [(2, 2), (0, 12)]
    assert range_nodes(16, 32) == [(4, 1)]
    for begin, end in [(1, 3), (2, 6), (-1, 2), (5, 4)]:
        with pytest.raises(ValueError):
            range_nodes(begin, end)
    for size in range(N + 1):
        for begin in range(0, N - size + 1, 1 << max(size.bit_length() - 1, 0)):
            nodes = range_nodes(begin, begin + size)
            assert fold([STORE[n] for n in nodes]) == root_of(LEAVES[begin : begin + size])


def test_root_ranges() -> None:
    assert root_ranges(0) == []
    assert root_ranges(5) == [(0, 5)]


def test_rfc9162_proof_shapes() -> None:
    # The 7-leaf example tree of RFC 9162 2.1.5: d0..d6, with a..l its inner nodes.
    assert inclusion_ranges(0, 7) == [(1, 2), (2, 4), (4, 7)]  # b, h, l
    assert inclusion_ranges(3, 7) == [(2, 3), (0, 2), (4, 7)]  # c, g, l
    assert inclusion_ranges(4, 7) == [(5, 6), (6, 7), (0, 4)]  # f, j, k
    assert inclusion_ranges(6, 7) == [(4, 6), (0, 4)]  # i, k
    assert consistency_ranges(3, 7) == [(2, 3), (3, 4), (0, 2), (4, 7)]  # c, d, g, l
    assert consistency_ranges(4, 7) == [(4, 7)]  # l
    assert consistency_ranges(6, 7) == [(4, 6), (6, 7), (0, 4)]  # i, j, k
    assert consistency_ranges(5, 5) == []


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (inclusion_ranges, (0, 0)),
        (inclusion_ranges, (5, 5)),
        (inclusion_ranges, (-1, 5)),
        (consistency_ranges, (0, 5)),
        (consistency_ranges, (6, 5)),
        (root_ranges, (-1,)),
    ],
)
def test_builders_reject_bad_arguments(fn: Any, args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        fn(*args)


# --- 2. proofs assembled from stored nodes -----------------------------------------------------


def test_every_inclusion_proof_verifies() -> None:
    for size in range(1, N + 1):
        for index in range(size):
            ranges = inclusion_ranges(index, size)
            nodes = nodes_for(ranges)
            assert all(stored_for(n, size) for n in nodes), (index, size)
            assert len(nodes) <= log_bound(size), (index, size, len(nodes))
            proof = assemble(ranges, STORE)
            verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


def test_every_consistency_proof_verifies() -> None:
    for size2 in range(1, N + 1):
        for size1 in range(1, size2 + 1):
            ranges = consistency_ranges(size1, size2)
            nodes = nodes_for(ranges)
            assert all(stored_for(n, size2) for n in nodes), (size1, size2)
            assert len(nodes) <= log_bound(size2), (size1, size2, len(nodes))
            proof = assemble(ranges, STORE)
            verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


def test_root_lookup_is_logarithmic() -> None:
    for size in range(1, N + 1):
        nodes = nodes_for(root_ranges(size))
        assert len(nodes) == size.bit_count()
        assert all(stored_for(n, size) for n in nodes)
        assert assemble(root_ranges(size), STORE) == [ROOTS[size]]


def test_nodes_for_deduplicates() -> None:
    assert nodes_for([(0, 4), (0, 4), (4, 6)]) == [(2, 0), (1, 2)]
    assert nodes_for([]) == []


def test_assemble_missing_node() -> None:
    with pytest.raises(KeyError):
        assemble([(0, 8)], {})


# --- 3. tampered proofs --------------------------------------------------------------------


INDEX, SIZE = 5, 13
GOOD = inclusion_proof(INDEX, SIZE)
LEAF, ROOT = LEAVES[INDEX], ROOTS[SIZE]


def test_inclusion_good_case() -> None:
    assert len(GOOD) == 4
    verify_inclusion(LEAF, INDEX, SIZE, GOOD, ROOT)


@pytest.mark.parametrize("i", range(len(GOOD)))
def test_inclusion_flipped_bit(i: int) -> None:
    proof = list(GOOD)
    proof[i] = flip(proof[i], i % 8)
    with pytest.raises(VerificationError, match=r"computed root .* does not match expected root"):
        verify_inclusion(LEAF, INDEX, SIZE, proof, ROOT)


def test_inclusion_wrong_lengths() -> None:
    with pytest.raises(VerificationError, match="inclusion proof has 3 hashes, expected 4"):
        verify_inclusion(LEAF, INDEX, SIZE, GOOD[:-1], ROOT)
    with pytest.raises(VerificationError, match="inclusion proof has 5 hashes, expected 4"):
        verify_inclusion(LEAF, INDEX, SIZE, [*GOOD, GOOD[0]], ROOT)
    with pytest.raises(VerificationError, match="inclusion proof has 0 hashes, expected 4"):
        verify_inclusion(LEAF, INDEX, SIZE, [], ROOT)
    for n in (31, 33, 0):
        proof = list(GOOD)
        proof[2] = (proof[2] * 2)[:n]
        with pytest.raises(VerificationError, match=f"proof hash 2 is {n} bytes, expected 32"):
            verify_inclusion(LEAF, INDEX, SIZE, proof, ROOT)
    with pytest.raises(VerificationError, match="leaf hash is 31 bytes, expected 32"):
        verify_inclusion(LEAF[:31], INDEX, SIZE, GOOD, ROOT)
    with pytest.raises(VerificationError, match="root is 33 bytes, expected 32"):
        verify_inclusion(LEAF, INDEX, SIZE, GOOD, ROOT + b"\x00")


def test_inclusion_wrong_position() -> None:
    for index in (INDEX - 1, INDEX + 1):
        with pytest.raises(VerificationError, match="does not match"):
            verify_inclusion(LEAF, index, SIZE, GOOD, ROOT)
    with pytest.raises(VerificationError, match="does not match"):
        verify_inclusion(LEAVES[INDEX + 1], INDEX, SIZE, GOOD, ROOT)
    with pytest.raises(VerificationError, match="does not match"):
        verify_inclusion(LEAF, INDEX, SIZE, GOOD, ROOTS[SIZE - 1])
    with pytest.raises(VerificationError):
        verify_inclusion(LEAF, INDEX, SIZE + 1, GOOD, ROOTS[SIZE + 1])
    for index, size in ((SIZE, SIZE), (SIZE + 1, SIZE), (0, 0), (-1, SIZE)):
        with pytest.raises(VerificationError, match="is not below tree size"):
            verify_inclusion(LEAF, index, size, GOOD, ROOT)


S1, S2 = 6, 13
CGOOD = consistency_proof(S1, S2)
R1, R2 = ROOTS[S1], ROOTS[S2]


def test_consistency_good_case() -> None:
    assert len(CGOOD) == 4
    verify_consistency(S1, S2, CGOOD, R1, R2)
    verify_consistency(S2, S2, [], R2, R2)


@pytest.mark.parametrize("i", range(len(CGOOD)))
def test_consistency_flipped_bit(i: int) -> None:
    proof = list(CGOOD)
    proof[i] = flip(proof[i], 7 - i)
    with pytest.raises(VerificationError, match=r"computed root[12] .* does not match"):
        verify_consistency(S1, S2, proof, R1, R2)


def test_consistency_flipped_bit_power_of_two() -> None:
    # With size1 a power of two root1 seeds the path, so every proof hash feeds root2 only.
    proof = consistency_proof(8, 13)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = flip(bad[i])
        with pytest.raises(VerificationError, match="does not match"):
            verify_consistency(8, 13, bad, ROOTS[8], ROOTS[13])


def test_consistency_tampering() -> None:
    with pytest.raises(VerificationError, match="consistency proof has 3 hashes, expected 4"):
        verify_consistency(S1, S2, CGOOD[:-1], R1, R2)
    with pytest.raises(VerificationError, match="consistency proof has 5 hashes, expected 4"):
        verify_consistency(S1, S2, [*CGOOD, CGOOD[0]], R1, R2)
    with pytest.raises(VerificationError, match="consistency proof has 0 hashes, expected 4"):
        verify_consistency(S1, S2, [], R1, R2)
    for n in (31, 33):
        proof = list(CGOOD)
        proof[1] = (proof[1] * 2)[:n]
        with pytest.raises(VerificationError, match=f"proof hash 1 is {n} bytes, expected 32"):
            verify_consistency(S1, S2, proof, R1, R2)
    with pytest.raises(VerificationError, match="root1 is 31 bytes, expected 32"):
        verify_consistency(S1, S2, CGOOD, R1[:31], R2)
    with pytest.raises(VerificationError, match=r"computed root1 .* does not match"):
        verify_consistency(S1, S2, CGOOD, ROOTS[S1 + 1], R2)
    with pytest.raises(VerificationError, match=r"computed root2 .* does not match"):
        verify_consistency(S1, S2, CGOOD, R1, ROOTS[S2 - 1])
    with pytest.raises(VerificationError, match="does not match"):
        verify_consistency(S1, S2, CGOOD, R2, R1)
    for size1 in (S1 - 1, S1 + 1):
        with pytest.raises(VerificationError):
            verify_consistency(size1, S2, CGOOD, R1, R2)
    with pytest.raises(VerificationError):
        verify_consistency(S1, S2 + 1, CGOOD, R1, ROOTS[S2 + 1])


def test_consistency_bad_sizes() -> None:
    with pytest.raises(VerificationError, match=r"size1 \(13\) is greater than size2 \(6\)"):
        verify_consistency(S2, S1, CGOOD, R2, R1)
    with pytest.raises(VerificationError, match="from tree size 0 is refused"):
        verify_consistency(0, S2, CGOOD, EMPTY_ROOT, R2)
    with pytest.raises(VerificationError, match="from tree size 0 is refused"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(VerificationError, match="must be empty, got 1 hashes"):
        verify_consistency(S2, S2, [R2], R2, R2)
    with pytest.raises(VerificationError, match=r"root1 .* does not match root2"):
        verify_consistency(S2, S2, [], R1, R2)


# --- 4. transparency-dev/merkle vectors -------------------------------------------------------

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
TESTDATA = VECTORS / "transparency-dev-merkle" / "testdata"


def vector_files(kind: str) -> list[str]:
    base = TESTDATA / kind
    if not base.is_dir():
        return []
    return sorted(p.relative_to(TESTDATA).as_posix() for p in base.rglob("*.json"))


def load_vector(rel: str) -> dict[str, Any]:
    if not TESTDATA.is_dir():
        pytest.skip(f"transparency-dev/merkle vectors not found at {TESTDATA}")
    data: dict[str, Any] = json.loads((TESTDATA / rel).read_text())
    return data


def b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def b64_list(values: list[str] | None) -> list[bytes]:
    return [b64(v) for v in values or []]


def _params(kind: str) -> list[Any]:
    files = vector_files(kind)
    if not files:
        reason = f"transparency-dev/merkle vectors not found at {TESTDATA / kind}"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="missing")]
    return files


@pytest.mark.parametrize("rel", _params("inclusion"))
def test_transparency_dev_inclusion(rel: str) -> None:
    v = load_vector(rel)
    args = (b64(v["leafHash"]), v["leafIdx"], v["treeSize"], b64_list(v["proof"]), b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("rel", _params("consistency"))
def test_transparency_dev_consistency(rel: str) -> None:
    v = load_vector(rel)
    args = (v["size1"], v["size2"], b64_list(v["proof"]), b64(v["root1"]), b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_transparency_dev_vectors_present() -> None:
    if not TESTDATA.is_dir():
        pytest.skip(f"transparency-dev/merkle vectors not found at {TESTDATA}")
    assert len(vector_files("inclusion")) + len(vector_files("consistency")) == 196


def test_transparency_dev_happy_paths_match_our_proofs() -> None:
    """Our builders produce exactly the upstream happy-path proofs over the RFC 6962 leaves."""
    if not TESTDATA.is_dir():
        pytest.skip(f"transparency-dev/merkle vectors not found at {TESTDATA}")
    store, _ = build_store([leaf_hash(d) for d in RFC_LEAVES])
    compared = 0
    for rel in vector_files("inclusion") + vector_files("consistency"):
        v = load_vector(rel)
        if v["wantErr"] or rel.split("/")[1] not in {"0", "1", "2", "3", "4"}:
            continue
        if "leafIdx" in v:
            assert b64_list(v["proof"]) == inclusion_proof(v["leafIdx"], v["treeSize"], store)
            assert b64(v["root"]) == RFC_ROOTS[v["treeSize"]]
        else:
            assert b64_list(v["proof"]) == consistency_proof(v["size1"], v["size2"], store)
            assert b64(v["root2"]) == RFC_ROOTS[v["size2"]]
        compared += 1
    assert compared == 10


# --- 5. property test --------------------------------------------------------------------------

BIG = 300
BIG_LEAVES = numbered_leaves(BIG)
BIG_STORE, _BIG_RANGES = build_store(BIG_LEAVES)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, BIG))
    return draw(st.integers(0, size - 1)), size


@settings(max_examples=300, deadline=None)
@given(index_and_size(), st.integers(1, BIG))
def test_property_proofs_verify(pair: tuple[int, int], other: int) -> None:
    index, size = pair
    root = root_of(BIG_LEAVES[:size])
    ranges = inclusion_ranges(index, size)
    nodes = nodes_for(ranges)
    assert all(stored_for(n, size) for n in nodes)
    assert len(nodes) <= log_bound(size)
    verify_inclusion(BIG_LEAVES[index], index, size, assemble(ranges, BIG_STORE), root)

    size1, size2 = sorted((other, size))
    ranges = consistency_ranges(size1, size2)
    nodes = nodes_for(ranges)
    assert all(stored_for(n, size2) for n in nodes)
    assert len(nodes) <= log_bound(size2)
    proof = assemble(ranges, BIG_STORE)
    verify_consistency(
        size1, size2, proof, root_of(BIG_LEAVES[:size1]), root_of(BIG_LEAVES[:size2])
    )
    if size1 < size2:
        bad = list(proof)
        bad[-1] = flip(bad[-1])
        with pytest.raises(VerificationError):
            verify_consistency(
                size1, size2, bad, root_of(BIG_LEAVES[:size1]), root_of(BIG_LEAVES[:size2])
            )


# --- 6. compact range --------------------------------------------------------------------------


def test_compact_range_validation() -> None:
    h = LEAVES[0]
    CompactRange(0, ())
    CompactRange(5, [h, h])
    with pytest.raises(ValueError, match="needs 2 hashes, got 1"):
        CompactRange(5, [h])
    with pytest.raises(ValueError, match="needs 0 hashes, got 1"):
        CompactRange(0, [h])
    with pytest.raises(ValueError, match="needs 1 hashes, got 2"):
        CompactRange(8, [h, h])
    with pytest.raises(ValueError, match="negative"):
        CompactRange(-1)
    with pytest.raises(ValueError, match="hash 1 is 31 bytes"):
        CompactRange(3, [h, h[:31]])
    with pytest.raises(ValueError, match="leaf hash is 33 bytes"):
        CompactRange().append(h + b"\x00")


def test_compact_range_resume_and_copy() -> None:
    for size in range(N + 1):
        restored = CompactRange(size, [STORE[n] for n in range_nodes(0, size)])
        assert restored.size == size
        assert restored.hashes == COMPACT[size].hashes
        assert restored.root() == ROOTS[size]
        if size < N:
            fork = restored.copy()
            fork.append(LEAVES[size])
            assert fork.root() == ROOTS[size + 1]
            assert restored.root() == ROOTS[size]
    assert CompactRange().root() == EMPTY_ROOT


def test_compact_range_append_returns_completed_nodes() -> None:
    cr = CompactRange(7, [STORE[n] for n in range_nodes(0, 7)])
    out = cr.append(LEAVES[7])
    assert [node for node, _ in out] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert all(STORE[node] == h for node, h in out)
    assert [node for node, _ in cr.append(LEAVES[8])] == [(0, 8)]
    # Over all appends, each complete node was emitted exactly once (checked in build_store).
    assert len(STORE) == 2 * N - 1
