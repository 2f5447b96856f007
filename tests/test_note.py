"""Tests for C2SP signed notes and tlog checkpoints: Go's documented example, round trips,
every rejection path, the Wycheproof Ed25519 vectors, and a property test."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scambio.ledger.errors import VerificationError
from scambio.ledger.note import (
    MAX_SIGNATURES,
    Checkpoint,
    Signer,
    Verifier,
    key_hash,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_note,
)

# From the golang.org/x/mod/sumdb/note package documentation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG
# The second signature from the same documentation, by a key we do not know.
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLo"
    "x33WWd1RvMc+QQ=\n"
)

WYCHEPROOF = (
    Path(__file__).resolve().parents[2] / "shared" / "vectors" / "wycheproof" / "ed25519_test.json"
)

SIGNER = Signer.generate("example.com/ledger")
VERIFIER = SIGNER.verifier()
ROOT = bytes(range(32))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _note_with_sig(text: str, name: str, raw: bytes) -> str:
    return f"{text}\n— {name} {_b64(raw)}\n"


# --------------------------------------------------------------------------------------------
# 1. Go's documented example


def test_go_example_verifies() -> None:
    v = Verifier.from_string(GO_VKEY)
    assert v.name == "PeterNeumann"
    assert v.key_hash == bytes.fromhex("c74f20a3")
    assert open_note(GO_NOTE, v) == GO_TEXT


def test_go_example_changed_text_fails() -> None:
    v = Verifier.from_string(GO_VKEY)
    tampered = GO_NOTE.replace("cryptography", "cryptographz", 1)
    with pytest.raises(VerificationError, match=r"invalid signature by PeterNeumann\+c74f20a3"):
        open_note(tampered, v)


def test_go_example_extra_unknown_signature_is_ignored() -> None:
    v = Verifier.from_string(GO_VKEY)
    assert open_note(GO_NOTE + ENOCH_SIG, v) == GO_TEXT
    assert open_note(GO_TEXT + "\n" + ENOCH_SIG + GO_SIG, v) == GO_TEXT


def test_go_example_only_unknown_signature_fails() -> None:
    v = Verifier.from_string(GO_VKEY)
    with pytest.raises(
        VerificationError,
        match=r"no signature by PeterNeumann\+c74f20a3 \(ignored 1 signature by unknown key: "
        r"EnochRoot\+",
    ):
        open_note(GO_TEXT + "\n" + ENOCH_SIG, v)


def test_go_example_signer_reproduces_signature() -> None:
    signer = Signer.from_string(GO_SKEY)
    assert signer.to_string() == GO_SKEY
    assert signer.verifier().to_string() == GO_VKEY
    assert signer.verifier() == Verifier.from_string(GO_VKEY)
    assert sign_note(GO_TEXT, signer) == GO_NOTE


def test_go_example_split() -> None:
    text, sigs = split_note(GO_NOTE + ENOCH_SIG)
    assert text == GO_TEXT
    assert [(name, len(khash), len(sig)) for name, khash, sig in sigs] == [
        ("PeterNeumann", 4, 64),
        ("EnochRoot", 4, 64),
    ]
    assert sigs[0][1] == bytes.fromhex("c74f20a3")


def test_same_name_other_hash_and_other_name_same_hash_are_unknown() -> None:
    """The spec: ignore signatures sharing a name or an ID, but not both, with a known key."""
    v = Verifier.from_string(GO_VKEY)
    _, [(_, khash, sig)] = split_note(GO_NOTE)
    other_hash = bytes([khash[0] ^ 1]) + khash[1:]
    for note in (
        _note_with_sig(GO_TEXT, "PeterNeumann", other_hash + sig),
        _note_with_sig(GO_TEXT, "Impostor", khash + sig),
    ):
        with pytest.raises(VerificationError, match=r"no signature by PeterNeumann\+c74f20a3"):
            open_note(note, v)


# --------------------------------------------------------------------------------------------
# 2. Round trips


def test_generate_and_key_strings_round_trip() -> None:
    signer = Signer.generate("example.com/log42")
    skey = signer.to_string()
    assert skey.startswith("PRIVATE+KEY+example.com/log42+")
    again = Signer.from_string(skey)
    assert again == signer
    assert again.to_string() == skey
    verifier = signer.verifier()
    assert verifier.key_hash == key_hash(verifier.name, verifier.public_key)
    assert len(verifier.public_key) == 32
    vkey = verifier.to_string()
    assert vkey.startswith(f"example.com/log42+{signer.key_hash.hex()}+")
    assert Verifier.from_string(vkey) == verifier
    assert Verifier.from_public_key(verifier.name, verifier.public_key) == verifier
    seed = base64.b64decode(skey.split("+", 4)[4])[1:]
    assert Signer.from_seed(signer.name, seed) == signer


def test_signer_repr_hides_seed() -> None:
    signer = Signer.generate("example.com/log42")
    seed_b64 = signer.to_string().split("+", 4)[4]
    assert seed_b64 not in repr(signer)
    assert "_seed" not in repr(signer)


def test_raw_sign_verify() -> None:
    sig = SIGNER.sign(b"hello")
    assert len(sig) == 64
    assert VERIFIER.verify(b"hello", sig)
    assert not VERIFIER.verify(b"hellO", sig)
    assert not VERIFIER.verify(b"hello", sig[:63])
    assert not VERIFIER.verify(b"hello", sig + b"\x00")
    assert not Signer.generate("example.com/ledger").verifier().verify(b"hello", sig)


def test_checkpoint_sign_open_round_trip() -> None:
    cp = Checkpoint("example.com/ledger", 20852163, ROOT)
    note = sign_checkpoint(cp, SIGNER)
    assert note.startswith(f"example.com/ledger\n20852163\n{_b64(ROOT)}\n\n— example.com/ledger ")
    assert open_checkpoint(note, VERIFIER) == cp
    assert open_checkpoint(note, VERIFIER, origin="example.com/ledger") == cp
    # A witness cosignature appended later does not disturb verification.
    witness = Signer.generate("witness.example/w1")
    cosigned = note + sign_note(cp.body(), witness).split("\n\n")[-1]
    assert open_checkpoint(cosigned, VERIFIER) == cp
    assert open_checkpoint(cosigned, witness.verifier()) == cp


def test_checkpoint_with_extensions_round_trip() -> None:
    cp = Checkpoint("example.com/ledger", 0, ROOT, ("batch 17", "— not a signature"))
    body = cp.body()
    assert body == f"example.com/ledger\n0\n{_b64(ROOT)}\nbatch 17\n— not a signature\n"
    assert Checkpoint.parse(body) == cp
    assert open_checkpoint(sign_checkpoint(cp, SIGNER), VERIFIER) == cp


def test_checkpoint_spec_example_body_parses() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    cp = Checkpoint.parse(body)
    assert (cp.origin, cp.size, len(cp.root), cp.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        32,
        (),
    )
    assert cp.body() == body


def test_text_with_blank_lines_round_trips() -> None:
    text = (
        "Ognuno sta solo sul cuor della terra\n"
        "trafitto da un raggio di sole:\n"
        "\n"
        "ed è subito sera.\n"
    )
    note = sign_note(text, SIGNER)
    assert open_note(note, VERIFIER) == text
    # Trailing blank lines belong to the text: the separator is the *last* blank line.
    assert open_note(sign_note("a\n\n", SIGNER), VERIFIER) == "a\n\n"


def test_duplicate_known_signature_must_all_verify() -> None:
    note = sign_note("hello\n", SIGNER)
    sig_line = note.split("\n\n")[-1]
    assert open_note(note + sig_line, VERIFIER) == "hello\n"
    _, [(name, khash, sig)] = split_note(note)
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(VerificationError, match=r"invalid signature by example\.com/ledger\+"):
        open_note(note + f"— {name} {_b64(khash + bad)}\n", VERIFIER)


# --------------------------------------------------------------------------------------------
# 3. Errors: keys


def _vkey_with(data: bytes, name: str = "PeterNeumann", hash16: str | None = None) -> str:
    if hash16 is None:
        hash16 = key_hash(name, data[1:]).hex()
    return f"{name}+{hash16}+{_b64(data)}"


GO_PUB = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!", "not valid"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not valid"),
        ("PeterNeumann+c74f20a3+", "key data is empty"),
        (_vkey_with(b"\x02" + GO_PUB), "unknown algorithm 0x02"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hexadecimal"),
        ("PeterNeumann+c74f20ag+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 hexadecimal"),
        (_vkey_with(b"\x01" + GO_PUB, name="Peter+Neumann"), "not 8 hexadecimal digits"),
        (_vkey_with(b"\x01" + GO_PUB, name="Peter Neumann"), "contains whitespace"),
        (_vkey_with(b"\x01" + GO_PUB, name="Peter\u00a0Neumann"), "contains whitespace"),
        (_vkey_with(b"\x01" + GO_PUB, name=""), "key name is empty"),
        (_vkey_with(b"\x01" + GO_PUB[:31]), "public key is 31 bytes, expected 32"),
        (_vkey_with(b"\x01" + GO_PUB + b"\x00"), "public key is 33 bytes, expected 32"),
        ("PeterNeumann", "expected <name>"),
        ("PeterNeumann+c74f20a3", "expected <name>"),
    ],
)
def test_malformed_verifier_keys(vkey: str, message: str) -> None:
    with pytest.raises(VerificationError, match=r"^malformed verifier key: .*" + message):
        Verifier.from_string(vkey)


def test_uppercase_hash_is_accepted_like_go() -> None:
    assert Verifier.from_string(GO_VKEY.replace("c74f20a3", "C74F20A3")).to_string() == GO_VKEY


@pytest.mark.parametrize(
    ("skey", "message"),
    [
        (GO_SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEYS+"), "does not start with PRIVATE\\+KEY\\+"),
        (GO_SKEY[len("PRIVATE+KEY+") :], "does not start with PRIVATE\\+KEY\\+"),
        (GO_SKEY.replace("c74f20a3", "c74f20a4"), "key hash c74f20a4 does not match the key"),
        (GO_SKEY[:-1] + "!", "not valid standard base64"),
        (GO_SKEY.replace("+AYEK", "+AoEK"), "unknown algorithm 0x02"),
        (GO_SKEY.replace("PeterNeumann", "Peter Neumann"), "contains whitespace"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3+" + _b64(b"\x01" + bytes(31)), "seed is 31 bytes"),
        ("PRIVATE+KEY+PeterNeumann+c74f20a3", "expected <name>"),
    ],
)
def test_malformed_signer_keys(skey: str, message: str) -> None:
    with pytest.raises(VerificationError, match=r"^malformed signer key: .*" + message):
        Signer.from_string(skey)


def test_signer_key_errors_do_not_leak_key_data() -> None:
    bad = GO_SKEY.replace("c74f20a3", "c74f20a4")
    with pytest.raises(VerificationError, match="does not match") as info:
        Signer.from_string(bad)
    assert "AYEKFALVFGyNhPJEMzD1QIDr" not in str(info.value)


def test_from_public_key_rejects_bad_input() -> None:
    with pytest.raises(VerificationError, match=r"public key is 31 bytes, expected 32"):
        Verifier.from_public_key("x", bytes(31))
    with pytest.raises(VerificationError, match=r"key name 'a\+b' contains '\+'"):
        Verifier.from_public_key("a+b", bytes(32))


def test_constructors_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="key name is empty"):
        Signer.generate("")
    with pytest.raises(ValueError, match="contains whitespace"):
        Signer.generate("a\tb")
    with pytest.raises(ValueError, match="seed is 16 bytes"):
        Signer.from_seed("a", bytes(16))
    with pytest.raises(ValueError, match="does not match the key"):
        Verifier(VERIFIER.name, b"\x00\x00\x00\x00", VERIFIER.public_key)


# --------------------------------------------------------------------------------------------
# 3. Errors: notes


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GO_TEXT + GO_SIG, "no blank line separating"),
        (GO_TEXT + "\n", "no signature lines"),
        (GO_NOTE[:-1], "does not end with a newline"),
        (GO_TEXT + "\n" + GO_SIG.replace("—", "-"), "does not start with an em dash"),
        (GO_TEXT + "\n" + GO_SIG.replace("— ", "—"), "does not start with an em dash"),
        (GO_TEXT + "\n— PeterNeumann\n", "no space between key name and signature"),
        (GO_TEXT + "\n— PeterNeumann \n", "signature by PeterNeumann is empty"),
        (GO_TEXT + "\n—  x08go/ZJ=\n", "key name is empty"),
        (GO_TEXT + "\n— Peter+Neumann x08go/ZJ\n", "contains '\\+'"),
        (GO_NOTE.replace("x08go/", "x08go!"), "is not valid standard base64"),
        (GO_NOTE.replace("nAM=", "nAM"), "is not valid standard base64"),
        (GO_NOTE.replace("nAM=", "nAN="), "is not canonical base64"),
        (GO_NOTE.replace("x08go/", "x08go /"), "is not valid standard base64"),
        (GO_TEXT + "\n— PeterNeumann AAAAAA==\n", "is 4 bytes, too short"),
        ("bell\x07\n\n" + GO_SIG, "control character U\\+0007"),
        ("cr\r\n\n" + GO_SIG, "control character U\\+000D"),
        ("surrogate \ud800\n\n" + GO_SIG, "not valid UTF-8"),
        (GO_TEXT + "\n" + GO_SIG * (MAX_SIGNATURES + 1), "101 signature lines, more than"),
    ],
)
def test_malformed_notes(note: str, message: str) -> None:
    with pytest.raises(VerificationError, match=r"^malformed note: .*" + message):
        split_note(note)
    with pytest.raises(VerificationError, match=r"^malformed note: .*" + message):
        open_note(note, VERIFIER)


def test_blank_line_between_signatures_moves_the_split() -> None:
    """The text is split off at the *last* blank line, so a blank line between signature
    lines makes the first signature part of the text, which then fails to verify."""
    v = Verifier.from_string(GO_VKEY)
    note = GO_TEXT + "\n" + GO_SIG + "\n" + ENOCH_SIG
    assert split_note(note)[0] == GO_TEXT + "\n" + GO_SIG
    with pytest.raises(VerificationError, match=r"no signature by PeterNeumann\+c74f20a3"):
        open_note(note, v)


def test_signature_limit_is_inclusive() -> None:
    note = GO_TEXT + "\n" + GO_SIG * MAX_SIGNATURES
    assert open_note(note, Verifier.from_string(GO_VKEY)) == GO_TEXT


def test_signature_of_wrong_length() -> None:
    _, [(name, khash, sig)] = split_note(GO_NOTE)
    v = Verifier.from_string(GO_VKEY)
    for raw in (sig[:63], sig + b"\x00"):
        with pytest.raises(
            VerificationError,
            match=rf"signature by PeterNeumann\+c74f20a3 is {len(raw)} bytes, expected 64",
        ):
            open_note(_note_with_sig(GO_TEXT, name, khash + raw), v)
    # An unknown key's signature may have any length (e.g. a 72-byte witness cosignature).
    cosig = _note_with_sig(GO_TEXT, "witness", bytes(4 + 72))
    assert open_note(cosig + GO_SIG, v) == GO_TEXT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no newline", "does not end with a newline"),
        ("", "does not end with a newline"),
        ("tab\there\n", "control character U\\+0009"),
        ("nul\x00\n", "control character U\\+0000"),
        ("\udc80\n", "not valid UTF-8"),
    ],
)
def test_sign_note_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^note text .*" + message):
        sign_note(text, SIGNER)


# --------------------------------------------------------------------------------------------
# 3. Errors: checkpoints

B64_ROOT = _b64(ROOT)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"log\n01\n{B64_ROOT}\n", r"tree size '01' is not a decimal number"),
        (f"log\n00\n{B64_ROOT}\n", r"tree size '00' is not a decimal number"),
        (f"log\n-1\n{B64_ROOT}\n", r"tree size '-1' is not a decimal number"),
        (f"log\n+1\n{B64_ROOT}\n", r"tree size '\+1' is not a decimal number"),
        (f"log\n0x10\n{B64_ROOT}\n", r"tree size '0x10' is not a decimal number"),
        (f"log\n1_000\n{B64_ROOT}\n", r"tree size '1_000' is not a decimal number"),
        (f"log\n١٢\n{B64_ROOT}\n", r"tree size '١٢' is not a decimal number"),
        (f"log\n 1\n{B64_ROOT}\n", r"tree size ' 1' is not a decimal number"),
        (f"log\n\n{B64_ROOT}\n", r"tree size '' is not a decimal number"),
        (f"log\n{2**64}\n{B64_ROOT}\n", r"tree size 18446744073709551616 is larger than 2\^64-1"),
        (f"log\n{'9' * 5000}\n{B64_ROOT}\n", r"is larger than 2\^64-1"),
        (f"log\n1\n{_b64(ROOT[:31])}\n", r"^checkpoint root is 31 bytes, expected 32$"),
        (f"log\n1\n{_b64(ROOT + b'x')}\n", r"^checkpoint root is 33 bytes, expected 32$"),
        ("log\n1\nnot base64!\n", r"root hash is not valid standard base64"),
        ("log\n1\n\n", r"root hash is empty"),
        ("log\n1\n", r"has 2 line\(s\), expected at least 3"),
        ("log\n", r"has 1 line\(s\), expected at least 3"),
        (f"\n1\n{B64_ROOT}\n", r"origin line is empty"),
        (f"log\n1\n{B64_ROOT}", r"does not end with a newline"),
        (f"log\n1\n{B64_ROOT}\next\n\n", r"extension line 2 is empty"),
        (f"log\n1\n{B64_ROOT}\nbad\x01ext\n", r"extension line 1 contains control character"),
    ],
)
def test_malformed_checkpoints(body: str, message: str) -> None:
    with pytest.raises(VerificationError, match=message):
        Checkpoint.parse(body)


def test_checkpoint_largest_size_parses() -> None:
    assert Checkpoint.parse(f"log\n{2**64 - 1}\n{B64_ROOT}\n").size == 2**64 - 1


def test_open_checkpoint_origin_mismatch() -> None:
    note = sign_checkpoint(Checkpoint("example.com/ledger", 5, ROOT), SIGNER)
    with pytest.raises(
        VerificationError,
        match=r"checkpoint origin 'example\.com/ledger' does not match expected origin "
        r"'example\.com/other'",
    ):
        open_checkpoint(note, VERIFIER, origin="example.com/other")


def test_open_checkpoint_checks_signature_first() -> None:
    note = sign_note("not a checkpoint\n", SIGNER)
    with pytest.raises(VerificationError, match=r"checkpoint has 1 line"):
        open_checkpoint(note, VERIFIER)
    other = Signer.generate("example.com/ledger").verifier()
    with pytest.raises(VerificationError, match=r"no signature by example\.com/ledger\+"):
        open_checkpoint(note, other)


def test_open_checkpoint_rejects_tampered_size() -> None:
    note = sign_checkpoint(Checkpoint("example.com/ledger", 5, ROOT), SIGNER)
    with pytest.raises(VerificationError, match=r"invalid signature by example\.com/ledger\+"):
        open_checkpoint(note.replace("\n5\n", "\n6\n", 1), VERIFIER)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": ""}, "checkpoint origin is empty"),
        ({"origin": "a\nb"}, "checkpoint origin contains a newline"),
        ({"origin": "a\tb"}, "checkpoint origin contains control character"),
        ({"size": -1}, r"checkpoint tree size -1 is outside 0\.\.2\^64-1"),
        ({"size": 2**64}, r"is outside 0\.\.2\^64-1"),
        ({"size": True}, "must be an int"),
        ({"root": bytes(31)}, "checkpoint root is 31 bytes, expected 32"),
        ({"extensions": ("",)}, "checkpoint extension line 1 is empty"),
        ({"extensions": ("ok", "a\nb")}, "checkpoint extension line 2 contains a newline"),
    ],
)
def test_checkpoint_constructor_rejects_bad_fields(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"origin": "log", "size": 1, "root": ROOT} | kwargs
    with pytest.raises(ValueError, match=message):
        Checkpoint(**fields)


# --------------------------------------------------------------------------------------------
# 4. Wycheproof Ed25519


def test_wycheproof_ed25519() -> None:
    if not WYCHEPROOF.exists():
        pytest.skip(f"Wycheproof Ed25519 vectors not found at {WYCHEPROOF}")
    data = json.loads(WYCHEPROOF.read_text(encoding="utf-8"))
    checked = 0
    disagreements: list[str] = []
    for group in data["testGroups"]:
        verifier = Verifier.from_public_key("wycheproof", bytes.fromhex(group["publicKey"]["pk"]))
        for test in group["tests"]:
            ok = verifier.verify(bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"]))
            checked += 1
            if test["result"] == "acceptable":
                continue
            if ok != (test["result"] == "valid"):
                disagreements.append(
                    f"tcId {test['tcId']} ({test['result']}, {test['comment']!r}): got {ok}"
                )
    assert checked == data["numberOfTests"]
    assert disagreements == []


# --------------------------------------------------------------------------------------------
# 5. Property test

_note_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")) | st.just("\n"), max_size=300
).map(lambda s: s + "\n")


@given(text=_note_text)
def test_sign_then_open_returns_text(text: str) -> None:
    note = sign_note(text, SIGNER)
    assert open_note(note, VERIFIER) == text
    parsed_text, sigs = split_note(note)
    assert parsed_text == text
    assert [(name, khash) for name, khash, _ in sigs] == [(SIGNER.name, SIGNER.key_hash)]


@given(
    origin=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
    ),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1),
        max_size=3,
    ),
)
def test_checkpoint_round_trip_property(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(cp.body()) == cp
    assert open_checkpoint(sign_checkpoint(cp, SIGNER), VERIFIER, origin=origin) == cp
