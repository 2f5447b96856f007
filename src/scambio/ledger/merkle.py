"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and the compact range.

The store keeps the hash of every complete aligned subtree under its `NodeId` (level, index):
level 0 holds the leaf hashes and node (l, i) covers leaves [i * 2**l, (i + 1) * 2**l). Every
hash a proof or a root needs is a range of leaves, and every such range is the right fold of at
most O(log n) stored nodes, so the work is split in three pure steps:

1. `root_ranges` / `inclusion_ranges` / `consistency_ranges` say which leaf ranges to hash;
2. `nodes_for` lists the stored nodes they need, for one batched read;
3. `assemble` folds the looked-up nodes into one hash per range.

`CompactRange` is the tree's right edge: appending a leaf returns exactly the nodes that became
complete, which are the rows to persist. `verify_inclusion` / `verify_consistency` follow the
client algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 and raise `VerificationError`.

Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias

from scambio.ledger.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "assemble",
    "consistency_ranges",
    "fold",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "nodes_for",
    "range_nodes",
    "root_of",
    "root_ranges",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE: Final = 32
"""Length in bytes of every hash: SHA-256."""

EMPTY_ROOT: Final[bytes] = hashlib.sha256(b"").digest()
"""MTH({}) of RFC 9162 2.1.1: the hash of the empty string."""

NodeId: TypeAlias = tuple[int, int]
"""(level, index) of a complete aligned subtree: leaves [index << level, (index + 1) << level)."""

_sha256 = hashlib.sha256
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the domain prefix keeps a leaf from passing for an inner node."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node from its two children."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly below `size` (> 1): RFC 9162's split point k."""
    return 1 << ((size - 1).bit_length() - 1)


# ---------------------------------------------------------------------------------------------
# Ranges and stored nodes
# ---------------------------------------------------------------------------------------------


def range_nodes(begin: int, end: int) -> list[NodeId]:
    """The stored nodes whose right fold is MTH(D[begin:end]), left to right.

    MTH splits a range at the largest power of two below its size, so for a range starting at a
    multiple of its highest power of two the pieces are the binary digits of `end - begin`,
    largest first, each one a complete aligned subtree. Every range that occurs in an RFC 9162
    tree (and every proof range) is of this form; any other range is refused with ValueError,
    because folding its aligned decomposition would not give its MTH.
    """
    if begin < 0 or end < begin:
        raise ValueError(f"invalid leaf range [{begin}, {end})")
    size = end - begin
    if size == 0:
        return []
    top = size.bit_length() - 1
    if begin & ((1 << top) - 1):
        raise ValueError(
            f"leaf range [{begin}, {end}) does not start at a multiple of {1 << top}, "
            "so its hash is not a fold of aligned subtrees"
        )
    nodes: list[NodeId] = []
    pos = begin
    for level in range(top, -1, -1):
        if (size >> level) & 1:
            nodes.append((level, pos >> level))
            pos += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from the hashes of its `range_nodes`: node(h0, node(h1, ...)).

    The right fold mirrors MTH's recursion, whose right part is always the smaller one.
    """
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    sha = _sha256
    prefix = _NODE_PREFIX
    acc = hashes[n - 1]
    for i in range(n - 2, -1, -1):
        acc = sha(prefix + hashes[i] + acc).digest()
    return acc


def root_ranges(size: int) -> list[tuple[int, int]]:
    """The one range whose hash is the root of a tree of `size` leaves (none when empty)."""
    if size < 0:
        raise ValueError(f"tree size {size} is negative")
    return [(0, size)] if size else []


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form PATH(index, D[0:size]) of RFC 9162 2.1.3.1, bottom-up."""
    if size < 0 or index < 0 or index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    begin, end = 0, size
    while end - begin > 1:
        mid = begin + _split(end - begin)
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((begin, mid))
            begin = mid
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The ranges whose hashes form PROOF(size1, D[0:size2]) of RFC 9162 2.1.4.1, in order.

    Requires 0 < size1 <= size2; equal sizes need no proof, so the list is empty.
    """
    if size1 <= 0 or size1 > size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[tuple[int, int]] = []
    begin, end = 0, size2
    whole = True  # SUBPROOF's b: the old tree's root is known to the verifier
    while end != size1:
        mid = begin + _split(end - begin)
        if size1 <= mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((begin, mid))
            begin = mid
            whole = False
    if not whole:
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[tuple[int, int]]) -> list[NodeId]:
    """Every stored node the ranges need, each once, so a store can fetch them in one read."""
    return list(dict.fromkeys(n for begin, end in ranges for n in range_nodes(begin, end)))


def assemble(ranges: Sequence[tuple[int, int]], lookup: Mapping[NodeId, bytes]) -> list[bytes]:
    """One hash per range, folded from the looked-up nodes (KeyError if one is missing)."""
    return [fold([lookup[n] for n in range_nodes(begin, end)]) for begin, end in ranges]


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, straight from RFC 9162 2.1.1: the reference the rest is tested on."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


# ---------------------------------------------------------------------------------------------
# Verification (RFC 9162 2.1.3.2 and 2.1.4.2)
# ---------------------------------------------------------------------------------------------


def _check_hash(what: str, value: bytes) -> None:
    """Refuse a hash of the wrong length before it is hashed into anything."""
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(kind: str, proof: Sequence[bytes], expected: int) -> None:
    """Refuse a proof of the wrong length or with a malformed hash, naming which."""
    if len(proof) != expected:
        raise VerificationError(f"{kind} proof has {len(proof)} hashes, expected {expected}")
    for i, p in enumerate(proof):
        _check_hash(f"proof hash {i}", p)


def _inclusion_proof_size(index: int, size: int) -> int:
    """Length of PATH(index, D[0:size]): inner levels where the paths to index and size-1
    differ, plus one per left sibling on the shared upper part (see transparency-dev/merkle)."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` (a leaf hash) is entry `index` of the tree of `size` leaves with `root`.

    Raises VerificationError on any failure, including index >= size, so that callers handling
    untrusted proofs need to catch one type only.
    """
    if index < 0 or index >= size:
        raise VerificationError(f"leaf index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf)
    _check_hash("root", root)
    _check_proof("inclusion", proof, _inclusion_proof_size(index, size))

    sha = _sha256
    prefix = _NODE_PREFIX
    fn = index
    sn = size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = sha(prefix + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(prefix + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise VerificationError(
            f"computed root {r.hex()} does not match expected root {root.hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the one of `size1` with `root1`.

    A proof from the empty tree is refused (it proves nothing), as in transparency-dev/merkle.
    Equal sizes need an empty proof and equal roots. Raises VerificationError on any failure.
    """
    if size1 > size2:
        raise VerificationError(f"size1 ({size1}) is greater than size2 ({size2})")
    if size1 <= 0:
        raise VerificationError(f"consistency proof from tree size {size1} is refused")
    if size1 == size2:
        if proof:
            raise VerificationError(
                f"consistency proof between equal sizes must be empty, got {len(proof)} hashes"
            )
        if root1 != root2:
            raise VerificationError(
                f"root1 {root1.hex()} does not match root2 {root2.hex()} for equal sizes"
            )
        return
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    # Same count as transparency-dev/merkle: the inclusion path of leaf size1-1 in size2, minus
    # the levels below the subtree the old tree ends in, plus that subtree's hash unless it is
    # the whole old tree (size1 a power of two, where the verifier already has it as root1).
    shift = (size1 & -size1).bit_length() - 1
    power_of_two = size1 == 1 << shift
    expected = _inclusion_proof_size(size1 - 1, size2) - shift + (0 if power_of_two else 1)
    _check_proof("consistency", proof, expected)

    # RFC 9162 2.1.4.2, steps 1-7.
    path = [root1, *proof] if power_of_two else list(proof)
    sha = _sha256
    prefix = _NODE_PREFIX
    fn = size1 - 1
    sn = size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = sha(prefix + c + fr).digest()
            sr = sha(prefix + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = sha(prefix + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the path to the root")
    if fr != root1:
        raise VerificationError(
            f"computed root1 {fr.hex()} does not match expected root1 {root1.hex()}"
        )
    if sr != root2:
        raise VerificationError(
            f"computed root2 {sr.hex()} does not match expected root2 {root2.hex()}"
        )


# ---------------------------------------------------------------------------------------------
# Compact range
# ---------------------------------------------------------------------------------------------


class CompactRange:
    """The right edge of a tree: the hashes of `range_nodes(0, size)`, largest subtree first.

    popcount(size) hashes are all that is needed to append further leaves and to compute the
    root, which makes this the state of the append path and of an offline replaying verifier.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start from a stored frontier; ValueError unless it has one 32-byte hash per set bit."""
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        want = size.bit_count()
        if len(hashes) != want:
            raise ValueError(f"compact range of size {size} needs {want} hashes, got {len(hashes)}")
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"compact range hash {i} is {len(h)} bytes, expected {HASH_SIZE}")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The frontier hashes, left to right (a copy: the range is only changed by append)."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Append one leaf hash; return the nodes that became complete, the leaf (0, i) first.

        Appending leaf i completes one node per trailing one bit of i, merging it with the
        frontier's smallest subtrees; those (and the leaf) are exactly the rows to store.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
        idx = self._size
        self._size = idx + 1
        out: list[tuple[NodeId, bytes]] = [((0, idx), leaf)]
        if idx & 1:
            hashes = self._hashes
            pop = hashes.pop
            sha = _sha256
            h = leaf
            level = 0
            while idx & 1:
                h = sha(b"\x01" + pop() + h).digest()
                level += 1
                idx >>= 1
                out.append(((level, idx), h))
            hashes.append(h)
        else:
            self._hashes.append(leaf)
        return out

    def root(self) -> bytes:
        """MTH of the tree so far: the right fold of the frontier."""
        return fold(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy, e.g. to compute a root ahead without touching the original."""
        new = CompactRange.__new__(CompactRange)
        new._size = self._size
        new._hashes = list(self._hashes)
        return new

    def __repr__(self) -> str:
        """Size and root prefix only: the full hashes are rarely what one wants to see."""
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"
