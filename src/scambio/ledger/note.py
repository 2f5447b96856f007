"""C2SP signed notes (Ed25519) and tlog checkpoints: the ledger's signed tree heads.

The ledger signs one checkpoint per committed batch. We use the C2SP formats
(https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint) rather than an ad-hoc
encoding so that existing transparency-log tooling -- Go's ``golang.org/x/mod/sumdb/note``,
witnesses, monitors -- can check our checkpoints without knowing anything about scambio, and
so that keys can be exchanged in the familiar ``name+hash+base64`` text form.

Everything here is pure: strings and bytes in, strings and bytes out, no I/O.

Error policy: anything that *reads* outside input -- a key string, a raw public key, a
signed note, a checkpoint -- raises `VerificationError` with a message precise enough to act
on, because such input is untrusted and its rejection is a verification outcome. Building
new signed material from local values (`Signer.generate`, `sign_note`, constructing a
`Checkpoint`) raises `ValueError` on bad arguments, since that is a programming error.

Parsing is deliberately strict where the specs leave latitude, because a transparency log
wants one byte string per statement: base64 must be canonical (no stray padding bits), tree
sizes have no leading zeros, and every signature by the expected key must verify -- a second,
bad signature by the same key is not silently skipped (Go's ``note.Open`` skips repeats).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from scambio.ledger.errors import VerificationError

__all__ = [
    "ALG_ED25519",
    "HASH_SIZE",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "Signer",
    "Verifier",
    "key_hash",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "split_note",
]

ALG_ED25519 = 0x01
"""Signature type byte for Ed25519 in the signed-note spec; it prefixes encoded keys."""

KEY_HASH_SIZE = 4
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
HASH_SIZE = 32
"""Size of a checkpoint root: the ledger's Merkle tree is RFC 6962 over SHA-256."""

MAX_SIGNATURES = 100
"""Signature lines accepted per note; bounds parsing work (the spec requires >= 16)."""

MAX_TREE_SIZE = 2**64 - 1
"""RFC 6962 tree sizes are uint64; a larger number cannot describe a real log."""

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
_SIG_SPLIT = "\n\n"

# ASCII control characters other than newline; the signed-note spec forbids them anywhere in
# a note, so that what a human reads is what was signed.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


# --------------------------------------------------------------------------------------------
# Helpers


def _utf8_problem(s: str) -> str | None:
    """Return why `s` cannot be encoded as UTF-8 (a lone surrogate), or None."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"is not valid UTF-8 (lone surrogate at offset {exc.start})"
    return None


def _control_problem(s: str) -> str | None:
    """Return why `s` is not allowed in a note (control character), or None."""
    m = _CONTROL.search(s)
    if m is not None:
        return f"contains control character U+{ord(m.group()):04X} at offset {m.start()}"
    return None


def _name_problem(name: str) -> str | None:
    """Return why `name` is not a valid key name, or None.

    Key names sit between '+' separators in key strings and between spaces in signature
    lines, so the spec bans both; Python's `str.isspace` covers Unicode spaces as Go's
    `unicode.IsSpace` does.
    """
    if not name:
        return "key name is empty"
    if "+" in name:
        return f"key name {name!r} contains '+'"
    if any(ch.isspace() for ch in name):
        return f"key name {name!r} contains whitespace"
    problem = _control_problem(name) or _utf8_problem(name)
    if problem is not None:
        return f"key name {name!r} {problem}"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(s: str, what: str) -> bytes:
    """Decode standard, padded, canonical base64 or raise `VerificationError` naming `what`.

    Non-canonical encodings (non-zero padding bits) are refused so that each signature,
    key and root has exactly one textual form.
    """
    if not s:
        raise VerificationError(f"{what} is empty")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII input
        raise VerificationError(f"{what} is not valid standard base64") from None
    if _b64(raw) != s:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def key_hash(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte key ID: SHA-256(name || "\\n" || 0x01 || public key)[:4].

    The algorithm byte is hashed so the same key material used with another signature type
    gets a different ID; the name is hashed so a key cannot be replayed under another name.
    """
    h = hashlib.sha256()
    h.update(name.encode("utf-8"))
    h.update(b"\n")
    h.update(bytes([ALG_ED25519]))
    h.update(public_key)
    return h.digest()[:KEY_HASH_SIZE]


def _key_id(name: str, khash: bytes) -> str:
    """Format a key as `name+hash`, how both error messages and key strings name it."""
    return f"{name}+{khash.hex()}"


# --------------------------------------------------------------------------------------------
# Keys


def _parse_key(encoded: str, kind: str, material: str) -> tuple[str, bytes, bytes]:
    """Split ``<name>+<hash>+<base64(0x01 || 32 bytes)>`` into name, hash and key bytes.

    Shared by verifier and signer keys, which differ only in the ``PRIVATE+KEY+`` prefix and
    in whether the 32 bytes are a public key or a seed. The key data itself never appears in
    messages, so a signer key cannot leak through an error log.
    """
    where = f"malformed {kind}"
    parts = encoded.split("+", 2)  # base64 may itself contain '+', so split at most twice
    if len(parts) != 3:
        raise VerificationError(f"{where}: expected <name>+<hash>+<key data>")
    name, hash16, key64 = parts
    problem = _name_problem(name)
    if problem is not None:
        raise VerificationError(f"{where}: {problem}")
    if not _HEX8.fullmatch(hash16):
        raise VerificationError(f"{where}: key hash {hash16!r} is not 8 hexadecimal digits")
    key = _b64decode(key64, f"{where}: key data")
    if key[0] != ALG_ED25519:
        raise VerificationError(
            f"{where}: unknown algorithm 0x{key[0]:02x} "
            f"(only Ed25519, 0x{ALG_ED25519:02x}, is supported)"
        )
    if len(key) != 1 + PUBLIC_KEY_SIZE:
        raise VerificationError(
            f"{where}: Ed25519 {material} is {len(key) - 1} bytes, expected {PUBLIC_KEY_SIZE}"
        )
    return name, bytes.fromhex(hash16), key[1:]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 public key with the name it signs under: one trusted note signer.

    Construct it with `from_string` (the ``name+hash+base64`` form operators exchange) or
    `from_public_key`; the constructor checks that `key_hash` matches `name` and
    `public_key`, so a Verifier can never claim an ID that is not its own.
    """

    name: str
    key_hash: bytes
    public_key: bytes
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise ValueError(problem)
        if len(self.public_key) != PUBLIC_KEY_SIZE:
            raise ValueError(
                f"Ed25519 public key is {len(self.public_key)} bytes, expected {PUBLIC_KEY_SIZE}"
            )
        expected = key_hash(self.name, self.public_key)
        if self.key_hash != expected:
            raise ValueError(
                f"key hash {self.key_hash.hex()} does not match the key (expected {expected.hex()})"
            )
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> Verifier:
        """Build a verifier from a raw 32-byte Ed25519 public key, computing its key hash."""
        problem = _name_problem(name)
        if problem is None:
            try:
                return cls(name, key_hash(name, public_key), bytes(public_key))
            except ValueError as exc:
                problem = str(exc)
        raise VerificationError(f"malformed verifier key: {problem}")

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<8 hex key hash>+<base64(0x01 || public key)>``.

        The hash is checked against the name and key, as Go's ``note.NewVerifier`` does, so a
        mistyped or tampered key string is caught at configuration time, not at first use.
        """
        name, khash, key = _parse_key(vkey, "verifier key", "public key")
        try:
            return cls(name, khash, key)
        except ValueError as exc:
            raise VerificationError(f"malformed verifier key: {exc}") from None

    def to_string(self) -> str:
        """Encode as ``<name>+<hash>+<base64(0x01 || public key)>`` (Go-compatible)."""
        return f"{_key_id(self.name, self.key_hash)}+{_b64(bytes([ALG_ED25519]) + self.public_key)}"

    def verify(self, msg: bytes, sig: bytes) -> bool:
        """Report whether `sig` is a valid Ed25519 signature of `msg` by this key.

        Returns False (never raises) for signatures of the wrong length, so callers can pass
        untrusted bytes straight through.
        """
        if len(sig) != SIGNATURE_SIZE:
            return False
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with its key name: the ledger's checkpoint-signing identity.

    The 32-byte seed is kept out of `repr` so a Signer can be logged without leaking it.
    Use `generate`, `from_string` or `from_seed` rather than the raw constructor; the
    constructor still checks that `key_hash` matches the derived public key.
    """

    name: str
    key_hash: bytes
    _seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)
    _public_key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _name_problem(self.name)
        if problem is not None:
            raise ValueError(problem)
        if len(self._seed) != SEED_SIZE:
            raise ValueError(f"Ed25519 seed is {len(self._seed)} bytes, expected {SEED_SIZE}")
        key = Ed25519PrivateKey.from_private_bytes(self._seed)
        public = key.public_key().public_bytes_raw()
        expected = key_hash(self.name, public)
        if self.key_hash != expected:
            raise ValueError(
                f"key hash {self.key_hash.hex()} does not match the key (expected {expected.hex()})"
            )
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_public_key", public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """Create a fresh random key for `name` (ValueError if the name is invalid)."""
        return cls.from_seed(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """Build a signer from a raw 32-byte Ed25519 seed (RFC 8032 private key)."""
        problem = _name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        if len(seed) != SEED_SIZE:
            raise ValueError(f"Ed25519 seed is {len(seed)} bytes, expected {SEED_SIZE}")
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return cls(name, key_hash(name, public), bytes(seed))

    @classmethod
    def from_string(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`` (Go's format).

        The hash is checked against the derived public key. Error messages never include the
        key data.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            raise VerificationError("malformed signer key: does not start with PRIVATE+KEY+")
        name, khash, seed = _parse_key(skey[len(_PRIVATE_PREFIX) :], "signer key", "seed")
        try:
            return cls(name, khash, seed)
        except ValueError as exc:
            raise VerificationError(f"malformed signer key: {exc}") from None

    def to_string(self) -> str:
        """Encode as ``PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>``; keep it secret."""
        key64 = _b64(bytes([ALG_ED25519]) + self._seed)
        return f"{_PRIVATE_PREFIX}{_key_id(self.name, self.key_hash)}+{key64}"

    def verifier(self) -> Verifier:
        """Return the public half, to hand to anyone who must check this signer's notes."""
        return Verifier(self.name, self.key_hash, self._public_key)

    def sign(self, msg: bytes) -> bytes:
        """Return the raw 64-byte Ed25519 signature of `msg` (deterministic, RFC 8032)."""
        return self._key.sign(msg)


# --------------------------------------------------------------------------------------------
# Notes


def _text_problem(text: str) -> str | None:
    """Return why `text` cannot be the text of a signed note, or None."""
    if not text.endswith("\n"):
        return "note text does not end with a newline"
    problem = _control_problem(text) or _utf8_problem(text)
    if problem is not None:
        return f"note text {problem}"
    return None


def sign_note(text: str, signer: Signer) -> str:
    """Sign `text` and return the full note: text, blank line, one signature line.

    The signature covers the UTF-8 bytes of `text` including its final newline. Because
    signature lines never contain a blank line, the separator we add is always the last blank
    line of the result, so `open_note` recovers exactly `text` even if it has blank lines.
    """
    problem = _text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    sig = signer.sign(text.encode("utf-8"))
    return f"{text}\n{_SIG_PREFIX}{signer.name} {_b64(signer.key_hash + sig)}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Parse a signed note without verifying it: (text, [(name, key hash, signature)]).

    Enforces the whole signed-note syntax -- valid UTF-8, no control characters but newline,
    a blank line before the signature block, well-formed signature lines, at most
    `MAX_SIGNATURES` of them -- so that verification only ever sees well-formed input.
    Signatures are returned in order, duplicates included; their length is not checked here
    because other signature types (e.g. witness cosignatures) have other sizes.
    """
    problem = _control_problem(note) or _utf8_problem(note)
    if problem is not None:
        raise VerificationError(f"malformed note: note {problem}")
    split = note.rfind(_SIG_SPLIT)
    if split < 0:
        raise VerificationError(
            "malformed note: no blank line separating the text from the signatures"
        )
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise VerificationError("malformed note: no signature lines after the blank line")
    if not block.endswith("\n"):
        raise VerificationError("malformed note: last signature line does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise VerificationError(
            f"malformed note: {len(lines)} signature lines, more than the limit of {MAX_SIGNATURES}"
        )
    sigs: list[tuple[str, bytes, bytes]] = []
    for n, line in enumerate(lines, 1):
        where = f"malformed note: signature line {n}"
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError(f"{where} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise VerificationError(f"{where} has no space between key name and signature")
        problem = _name_problem(name)
        if problem is not None:
            raise VerificationError(f"{where}: {problem}")
        raw = _b64decode(b64, f"{where}: signature by {name}")
        if len(raw) <= KEY_HASH_SIZE:
            raise VerificationError(
                f"{where}: signature by {name} is {len(raw)} bytes, too short to hold a "
                f"{KEY_HASH_SIZE}-byte key hash and a signature"
            )
        sigs.append((name, raw[:KEY_HASH_SIZE], raw[KEY_HASH_SIZE:]))
    return text, sigs


def open_note(note: str, verifier: Verifier) -> str:
    """Verify `note` against `verifier` and return its text.

    As the spec requires, signatures by other keys (a different name *or* key hash) are
    ignored, which is what lets witnesses cosign and keys rotate. Every signature by
    `verifier` must be valid and there must be at least one; otherwise `VerificationError`.
    """
    text, sigs = split_note(note)
    msg = text.encode("utf-8")
    vid = _key_id(verifier.name, verifier.key_hash)
    verified = False
    unknown: list[str] = []
    for name, khash, sig in sigs:
        if name != verifier.name or khash != verifier.key_hash:
            unknown.append(_key_id(name, khash))
            continue
        if len(sig) != SIGNATURE_SIZE:
            raise VerificationError(
                f"signature by {vid} is {len(sig)} bytes, expected {SIGNATURE_SIZE}"
            )
        if not verifier.verify(msg, sig):
            raise VerificationError(f"invalid signature by {vid}")
        verified = True
    if not verified:
        detail = ""
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            plural = "s" if len(unknown) > 1 else ""
            detail = f" (ignored {len(unknown)} signature{plural} by unknown key{plural}: {shown})"
        raise VerificationError(f"no signature by {vid}{detail}")
    return text


# --------------------------------------------------------------------------------------------
# Checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: log origin, tree size, RFC 6962 root, optional extensions.

    The constructor validates every field (ValueError) so that `body()` always produces a
    text that `parse` accepts and that can be signed as a note.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        if not self.origin:
            raise ValueError("checkpoint origin is empty")
        if "\n" in self.origin:
            raise ValueError("checkpoint origin contains a newline")
        problem = _control_problem(self.origin) or _utf8_problem(self.origin)
        if problem is not None:
            raise ValueError(f"checkpoint origin {problem}")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise ValueError(f"checkpoint tree size must be an int, not {type(self.size)}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError(f"checkpoint tree size {self.size} is outside 0..2^64-1")
        if len(self.root) != HASH_SIZE:
            raise ValueError(f"checkpoint root is {len(self.root)} bytes, expected {HASH_SIZE}")
        for i, ext in enumerate(self.extensions, 1):
            if not ext:
                raise ValueError(f"checkpoint extension line {i} is empty")
            if "\n" in ext:
                raise ValueError(f"checkpoint extension line {i} contains a newline")
            problem = _control_problem(ext) or _utf8_problem(ext)
            if problem is not None:
                raise ValueError(f"checkpoint extension line {i} {problem}")

    def body(self) -> str:
        """Return the note text: origin, size, base64 root and extensions, one per line."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text (already verified), strictly.

        Strictness (no leading zeros, canonical base64, exactly 32-byte root) means a given
        tree head has exactly one body, so two differing bodies for one size always signal
        a fork rather than a formatting difference.
        """
        if not text.endswith("\n"):
            raise VerificationError("checkpoint text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationError(
                f"checkpoint has {len(lines)} line(s), expected at least 3 "
                "(origin, tree size, root hash)"
            )
        origin, size_s, root_s, *extensions = lines
        if not origin:
            raise VerificationError("checkpoint origin line is empty")
        if not _TREE_SIZE.fullmatch(size_s):
            raise VerificationError(
                f"checkpoint tree size {size_s!r} is not a decimal number without leading zeros"
            )
        if len(size_s) > len(str(MAX_TREE_SIZE)) or int(size_s) > MAX_TREE_SIZE:
            raise VerificationError(f"checkpoint tree size {size_s} is larger than 2^64-1")
        root = _b64decode(root_s, "checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise VerificationError(f"checkpoint root is {len(root)} bytes, expected {HASH_SIZE}")
        try:
            return cls(origin, int(size_s), root, tuple(extensions))
        except ValueError as exc:
            raise VerificationError(str(exc)) from None


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    """Return `cp` as a signed note. The spec recommends the key name equal the origin."""
    return sign_note(cp.body(), signer)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint and parse it; check its origin when `origin` is given.

    The signature is verified before the body is parsed: per the spec, unsigned text must
    not be interpreted at all. Passing `origin` guards against a key that signs for several
    logs being used to pass off one log's checkpoint as another's.
    """
    cp = Checkpoint.parse(open_note(note, verifier))
    if origin is not None and cp.origin != origin:
        raise VerificationError(
            f"checkpoint origin {cp.origin!r} does not match expected origin {origin!r}"
        )
    return cp
