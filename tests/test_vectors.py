"""The committed conformance vectors (`ledger/vectors/`): re-checked from scratch, and stable.

Everything is recomputed here with code written for this test from the RFCs (SHA-256 via
hashlib, a recursive RFC 9162 MTH/PATH/PROOF, RFC 8785 via the independent `rfc8785`
package, Ed25519 via `cryptography`), then also checked with Scambio's own functions, so
the vectors vouch for the implementation and not the other way round. Finally the
generator must reproduce the committed files byte for byte: a change to the entry format,
the canonical encoding, the tree or the checkpoints shows up as a failing test here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scambio.ledger import merkle, vectorgen
from scambio.ledger.entry import (
    ACCOUNT_ID_RE,
    ACCOUNT_KINDS,
    ENTRY_ID_RE,
    ENTRY_KINDS,
    Entry,
    decode_entry,
    encode_entry,
)
from scambio.ledger.errors import RuleViolation
from scambio.ledger.note import Signer, Verifier, open_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.ledger.verify import LogReplayer

VECTORS = Path(__file__).resolve().parents[1] / "ledger" / "vectors"


@cache
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "vectors.json").read_text(encoding="ascii"))
    return data


@cache
def lines() -> list[bytes]:
    raw = (VECTORS / "entries.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    return raw[:-1].split(b"\n")  # only 0x0A separates lines; U+2028 does not


# -- an independent RFC 9162 reference -------------------------------------------------


def h_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def h_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = k_of(len(leaves))
    return h_node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = k_of(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def leaves() -> list[bytes]:
    return [h_leaf(line) for line in lines()]


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


# -- the entries -------------------------------------------------------------------------


def test_every_entry_is_canonical_rfc8785_at_its_index() -> None:
    v = vectors()
    assert len(lines()) == len(v["entries"]) == v["size"] > 20
    kinds = set()
    for i, (line, item) in enumerate(zip(lines(), v["entries"], strict=True)):
        assert line == base64.b64decode(item["canonical_base64"], validate=True)
        assert line == item["canonical"].encode("utf-8")
        assert rfc8785.dumps(json.loads(line)) == line, f"entry {i} is not RFC 8785"
        entry = decode_entry(line)
        assert encode_entry(entry) == line
        assert (entry.index, entry.id, entry.kind) == (i, item["id"], item["kind"])
        assert (entry.v, entry.ledger) == (v["format_version"], v["origin"])
        assert item["leaf_hash"] == h_leaf(line).hex() == merkle.leaf_hash(line).hex()
        kinds.add(entry.kind)
    assert kinds == {"account", "transfer", "hold", "post", "void", "reversal"}
    assert len({item["id"] for item in v["entries"]}) == len(v["entries"])


def test_the_entries_replay_to_the_published_balances() -> None:
    state = LedgerState()
    for line in lines():
        apply_entry(state, decode_entry(line))
    balances = {
        a.id: {
            "kind": a.kind,
            "min_balance": a.min_balance,
            "max_balance": a.max_balance,
            "posted": a.posted,
            "debits_pending": a.debits_pending,
            "credits_pending": a.credits_pending,
        }
        for a in state.accounts.values()
    }
    assert balances == vectors()["balances"]
    assert sum(b["posted"] for b in balances.values()) == 0
    open_holds = sorted(i for i, h in state.holds.items() if h.resolved_by is None)
    assert open_holds == vectors()["open_holds"]


def test_every_rejection_is_refused_with_its_code() -> None:
    state = LedgerState()
    for line in lines():
        apply_entry(state, decode_entry(line))
    rejections = vectors()["rejections"]
    assert len(rejections) >= 10
    for case in rejections:
        data = base64.b64decode(case["canonical_base64"], validate=True)
        assert data == case["canonical"].encode("utf-8")
        assert rfc8785.dumps(json.loads(data)) == data
        entry = decode_entry(data)
        assert entry.index == vectors()["size"]
        with pytest.raises(RuleViolation) as info:
            apply_entry(copy.deepcopy(state), entry)
        assert info.value.code == case["code"], case["description"]


# -- the tree --------------------------------------------------------------------------


def test_roots_of_every_size() -> None:
    all_leaves = leaves()
    roots = vectors()["roots"]
    assert [r["size"] for r in roots] == list(range(len(all_leaves) + 1))
    for item in roots:
        size = item["size"]
        assert item["root"] == mth(all_leaves[:size]).hex(), size
        assert item["root"] == merkle.root_of(all_leaves[:size]).hex()


def test_stored_nodes_are_every_complete_subtree() -> None:
    all_leaves = leaves()
    n = len(all_leaves)
    expected = {
        (level, index): mth(all_leaves[index << level : (index + 1) << level])
        for level in range(1, n.bit_length())
        for index in range(n >> level)
    }
    nodes = {(x["level"], x["index"]): bytes.fromhex(x["hash"]) for x in vectors()["nodes"]}
    assert nodes == expected
    lookup = {**nodes, **{(0, i): leaf for i, leaf in enumerate(all_leaves)}}
    assert merkle.assemble(merkle.root_ranges(n), lookup)[0] == mth(all_leaves)


def test_inclusion_proofs() -> None:
    all_leaves = leaves()
    cases = vectors()["inclusion_proofs"]
    assert len(cases) >= 5
    for case in cases:
        index, size = case["index"], case["size"]
        proof = unhex(case["proof"])
        assert proof == path(index, all_leaves[:size]), (index, size)
        root = bytes.fromhex(case["root"])
        assert root == mth(all_leaves[:size])
        assert bytes.fromhex(case["leaf_hash"]) == all_leaves[index]
        merkle.verify_inclusion(all_leaves[index], index, size, proof, root)


def test_consistency_proofs() -> None:
    all_leaves = leaves()
    cases = vectors()["consistency_proofs"]
    assert len(cases) >= 5
    for case in cases:
        size1, size2 = case["size1"], case["size2"]
        proof = unhex(case["proof"])
        assert proof == subproof(size1, all_leaves[:size2], True), (size1, size2)
        root1, root2 = bytes.fromhex(case["root1"]), bytes.fromhex(case["root2"])
        assert (root1, root2) == (mth(all_leaves[:size1]), mth(all_leaves[:size2]))
        merkle.verify_consistency(size1, size2, proof, root1, root2)


# -- the checkpoints ---------------------------------------------------------------------


def _verify_note_independently(note: str, vkey: str) -> str:
    """Check a C2SP signed note with `cryptography` alone; return its text."""
    name, key_hash_hex, key64 = vkey.split("+")
    raw_key = base64.b64decode(key64)
    assert raw_key[0] == 0x01  # Ed25519
    public = raw_key[1:]
    expected_hash = hashlib.sha256(name.encode() + b"\n" + raw_key).digest()[:4]
    assert expected_hash.hex() == key_hash_hex
    text, _, sig_line = note.rpartition("\n\n")
    text += "\n"
    prefix = f"\u2014 {name} "
    assert sig_line.startswith(prefix) and sig_line.endswith("\n")
    blob = base64.b64decode(sig_line[len(prefix) : -1])
    assert blob[:4] == expected_hash
    Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], text.encode("utf-8"))
    return text


def test_checkpoints_are_signed_tlog_checkpoints_of_the_published_roots() -> None:
    v = vectors()
    verifier = Verifier.from_string(v["verifier_key"])
    assert verifier.name == v["origin"]
    assert Signer.from_string(v["test_signer_key"]).verifier() == verifier
    roots = {r["size"]: r["root"] for r in v["roots"]}
    sizes = [c["size"] for c in v["checkpoints"]]
    assert sizes[0] == 0 and sizes[-1] == v["size"] and sizes == sorted(set(sizes))
    for item in v["checkpoints"]:
        text = _verify_note_independently(item["note"], v["verifier_key"])
        root64 = base64.b64encode(bytes.fromhex(roots[item["size"]])).decode()
        assert text == f"{v['origin']}\n{item['size']}\n{root64}\n"
        cp = open_checkpoint(item["note"], verifier, v["origin"])
        assert (
            (cp.size, cp.root.hex())
            == (item["size"], item["root"])
            == (
                item["size"],
                roots[item["size"]],
            )
        )


def test_scambio_s_offline_verifier_accepts_the_vectors() -> None:
    v = vectors()
    replayer = LogReplayer(v["origin"], Verifier.from_string(v["verifier_key"]))
    notes = {c["size"]: c["note"] for c in v["checkpoints"]}
    replayer.check_checkpoint(notes[0])
    for line in lines():
        replayer.feed_entry(line)
        if replayer.size in notes:
            replayer.check_checkpoint(notes[replayer.size])
    replayer.finish()
    assert replayer.root().hex() == v["roots"][-1]["root"]
    assert replayer.checkpoints == len(notes)


# -- stability ---------------------------------------------------------------------------


def test_regenerating_gives_the_committed_files() -> None:
    generated = vectorgen.build_vectors()
    assert set(generated) == {"entries.jsonl", "vectors.json"}
    for name, content in generated.items():
        committed = (VECTORS / name).read_bytes()
        assert content == committed, (
            f"ledger/vectors/{name} differs from what vectorgen now produces: the ledger "
            "format changed. If that is intended, bump the format version, update "
            "ledger/SPEC.md and run `make vectors`."
        )
    assert vectorgen.build_vectors() == generated  # deterministic within a run too


def test_the_command_writes_the_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scambio.ledger.vectorgen", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "entries.jsonl" in done.stdout
    for name in ("entries.jsonl", "vectors.json"):
        assert (tmp_path / "out" / name).read_bytes() == (VECTORS / name).read_bytes()


def test_the_command_needs_one_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert vectorgen.main([]) == 2
    assert "usage: python -m scambio.ledger.vectorgen OUTDIR" in capsys.readouterr().err


def test_the_readme_describes_every_file() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    for name in ("entries.jsonl", "vectors.json", *vectors()):
        assert name in readme, f"README.md does not mention {name}"


# -- the specification -------------------------------------------------------------------

SPEC = Path(__file__).resolve().parents[1] / "ledger" / "SPEC.md"
SRC = Path(__file__).resolve().parents[1] / "src" / "scambio"


def _codes(*modules: str) -> set[str]:
    found: set[str] = set()
    for module in modules:
        text = (SRC / module).read_text(encoding="utf-8")
        found.update(re.findall(r'RuleViolation\(\s*"([a-z-]+)"', text))
    return found


def test_the_spec_names_what_the_code_enforces() -> None:
    spec = SPEC.read_text(encoding="utf-8")
    assert f"`{ACCOUNT_ID_RE.pattern}`" in spec
    assert f"`{ENTRY_ID_RE.pattern}`" in spec
    for kind in (*ENTRY_KINDS, *ACCOUNT_KINDS):
        assert f"`{kind}`" in spec, kind
    for name in Entry.__struct_fields__:
        assert f"| `{name}` |" in spec, f"field {name} is not in the entry table"
    codes = _codes("ledger/rules.py", "store/appender.py", "store/commands.py", "store/queries.py")
    assert len(codes) > 15
    for code in codes:
        assert f"`{code}`" in spec, f"rule code {code} is not documented"
    assert "## 12. Export format" in spec and "src/scambio/store/export.py" in spec
    assert "## 13. Federation addresses (member@peer)" in spec
    for key in ("peer", "peer_transfer", "peer_account", "peer_minutes", "peer_sig"):
        assert f"| `{key}` |" in spec, f"federation annotation {key} is not in section 13"
