"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530).

Pure functions, no I/O: the client signs with `sign_request`, the server checks with
`verify_request`, and the caller supplies the key (a `Signer.sign` / `Verifier.verify`).

What Scambio nodes send, and require of each other:

    Content-Digest: sha-256=:<base64 SHA-256 of the body>:
    Signature-Input: scambio=("@method" "@target-uri" "content-digest");created=<unix s>;
                     keyid="<origin>+<key hash hex>";alg="ed25519";nonce="<random>"
    Signature: scambio=:<base64 Ed25519 signature of the signature base>:

The signature base is built exactly as RFC 9421 section 2.5 says, for the derived
components `@method`, `@target-uri`, `@authority`, `@scheme`, `@path`, `@query` and
`@request-target` and for header fields (values trimmed, repeated fields joined with
", "), so the implementation can be checked against the RFC's own test vector (B.2.6).
Structured fields (RFC 8941) are parsed strictly for the subset that signatures use:
a dictionary whose members are inner lists of strings or byte sequences, with
parameters that are integers, strings, tokens or booleans.

Everything that can go wrong has its own `code` (also the problem type's slug): a
missing or malformed signature, a bad signature or digest, an unknown key (decided by the
caller's key lookup), a stale request. Replay (a nonce seen before) is the caller's
check, since it needs storage.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

#: The signature label Scambio nodes use.
LABEL: Final = "scambio"
#: What every node-to-node request must cover.
REQUIRED_COMPONENTS: Final = ("@method", "@target-uri", "content-digest")
ALG: Final = "ed25519"
#: How far `created` may be from the verifier's clock, in seconds.
MAX_SKEW: Final = 300
NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")

_KEY_RE: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN_RE: Final = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_DERIVED: Final = frozenset(
    {"@method", "@target-uri", "@authority", "@scheme", "@path", "@query", "@request-target"}
)

ParamValue = int | str | bool | bytes


class SignatureError(Exception):
    """A request's signature cannot be accepted; `code` is a stable slug."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# -- Content-Digest (RFC 9530) ------------------------------------------------------------


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def check_content_digest(header: str | None, body: bytes) -> None:
    """The body must match the header's sha-256 (or sha-512) digest; other algorithms
    are ignored, but at least one known one must be present."""
    if header is None:
        raise SignatureError("malformed-signature", "the request has no Content-Digest header")
    members = parse_dictionary(header)
    known = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
    checked = False
    for name, (value, _params) in members.items():
        if name not in known:
            continue
        if not isinstance(value, bytes):
            raise SignatureError("malformed-signature", f"Content-Digest {name} is not bytes")
        if known[name](body).digest() != value:
            raise SignatureError(
                "bad-signature", f"the body does not match its Content-Digest ({name})"
            )
        checked = True
    if not checked:
        raise SignatureError(
            "malformed-signature", "Content-Digest has neither sha-256 nor sha-512"
        )


# -- structured fields (RFC 8941), the subset signatures use ------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(
            "malformed-signature", f"malformed structured field at character {self.i}: {what}"
        )

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def key(self) -> str:
        m = _KEY_RE.match(self.s, self.i)
        if not m:
            raise self.fail("expected a key")
        self.i = m.end()
        return m.group()

    def bare_item(self) -> ParamValue:
        c = self.peek()
        if c == '"':
            return self.string()
        if c == ":":
            return self.byte_sequence()
        if c == "?":
            self.i += 1
            flag = self.peek()
            if flag not in ("0", "1"):
                raise self.fail("expected a boolean")
            self.i += 1
            return flag == "1"
        if c == "-" or c.isdigit():
            return self.integer()
        m = _TOKEN_RE.match(self.s, self.i)
        if m:
            self.i = m.end()
            return m.group()
        raise self.fail("expected an item")

    def integer(self) -> int:
        m = re.compile(r"-?[0-9]{1,15}").match(self.s, self.i)
        if not m:
            raise self.fail("expected an integer")
        self.i = m.end()
        if self.peek() == ".":
            raise self.fail("decimals are not used in signatures")
        return int(m.group())

    def string(self) -> str:
        self.i += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if c == "":
                raise self.fail("unterminated string")
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\"):
                    raise self.fail("bad escape in string")
                out.append(nxt)
                self.i += 1
            elif not (" " <= c <= "~"):
                raise self.fail("non-ASCII or control character in string")
            else:
                out.append(c)

    def byte_sequence(self) -> bytes:
        end = self.s.find(":", self.i + 1)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        raw = self.s[self.i + 1 : end]
        self.i = end + 1
        if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", raw) or len(raw) % 4:
            raise self.fail("byte sequence is not base64")
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise self.fail("byte sequence is not base64") from None

    def params(self) -> list[tuple[str, ParamValue]]:
        params: list[tuple[str, ParamValue]] = []
        seen: set[str] = set()
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            name = self.key()
            value: ParamValue = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare_item()
            if name in seen:
                raise self.fail(f"parameter {name!r} twice")
            seen.add(name)
            params.append((name, value))
        return params

    def inner_list(self) -> list[tuple[ParamValue, list[tuple[str, ParamValue]]]]:
        self.i += 1
        items: list[tuple[ParamValue, list[tuple[str, ParamValue]]]] = []
        while True:
            self.skip_sp()
            if self.peek() == ")":
                self.i += 1
                return items
            item = self.bare_item()
            items.append((item, self.params()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected a space or ')' in an inner list")


Member = tuple[object, list[tuple[str, ParamValue]]]


def parse_dictionary(text: str) -> dict[str, Member]:
    """An RFC 8941 dictionary: member value is an item or a list of (item, params)."""
    p = _Parser(text)
    members: dict[str, Member] = {}
    p.skip_sp()
    while True:
        name = p.key()
        value: object
        if p.peek() == "=":
            p.i += 1
            value = p.inner_list() if p.peek() == "(" else p.bare_item()
        else:
            value = True
        members[name] = (value, p.params())
        p.skip_ows()
        if p.peek() == "":
            return members
        if p.peek() != ",":
            raise p.fail("expected ',' between dictionary members")
        p.i += 1
        p.skip_ows()
        if p.peek() == "":
            raise p.fail("trailing comma")


def _serialize_item(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode() + ":"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(components: Sequence[str], params: Sequence[tuple[str, ParamValue]]) -> str:
    """The `@signature-params` value: the inner list of components with its parameters."""
    inner = "(" + " ".join(_serialize_item(c) for c in components) + ")"
    return inner + "".join(
        f";{name}" if value is True else f";{name}={_serialize_item(value)}"
        for name, value in params
    )


# -- the signature base (RFC 9421 section 2.5) --------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A request as the signer sent it or the verifier received it."""

    method: str
    target_uri: str
    #: Lower-case field name -> the field's values in order.
    headers: Mapping[str, Sequence[str]]


def component_value(message: Message, name: str) -> str:
    if name in _DERIVED:
        parts = urlsplit(message.target_uri)
        if name == "@method":
            return message.method
        if name == "@target-uri":
            return message.target_uri
        if name == "@scheme":
            return parts.scheme.lower()
        if name == "@authority":
            host = (parts.hostname or "").lower()
            port = parts.port
            default = {"http": 80, "https": 443}.get(parts.scheme.lower())
            return host if port is None or port == default else f"{host}:{port}"
        path = parts.path or "/"
        if name == "@path":
            return path
        if name == "@query":
            return "?" + parts.query
        return path + ("?" + parts.query if parts.query else "")
    values = message.headers.get(name)
    if not values:
        raise SignatureError(
            "malformed-signature", f"the signature covers {name!r}, which the request lacks"
        )
    return ", ".join(v.strip() for v in values)


def signature_base(message: Message, components: Sequence[str], params_value: str) -> bytes:
    lines = []
    for name in components:
        value = component_value(message, name)
        if "\n" in value or "\r" in value:
            raise SignatureError("malformed-signature", f"{name!r} contains a line break")
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {params_value}')
    return "\n".join(lines).encode()


# -- signing and verifying ----------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def sign_request(
    sign: Callable[[bytes], bytes],
    key_id: str,
    method: str,
    target_uri: str,
    body: bytes,
    *,
    created: int,
    nonce: str | None = None,
    label: str = LABEL,
) -> dict[str, str]:
    """The headers to add to a request: Content-Digest, Signature-Input, Signature."""
    digest = content_digest(body)
    params: list[tuple[str, ParamValue]] = [
        ("created", created),
        ("keyid", key_id),
        ("alg", ALG),
        ("nonce", nonce or new_nonce()),
    ]
    params_value = serialize_params(REQUIRED_COMPONENTS, params)
    message = Message(method.upper(), target_uri, {"content-digest": [digest]})
    signature = sign(signature_base(message, REQUIRED_COMPONENTS, params_value))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{label}={params_value}",
        "Signature": f"{label}={_serialize_item(signature)}",
    }


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a verified signature establishes about the request."""

    key_id: str
    created: int
    nonce: str
    label: str


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    label: str
    components: tuple[str, ...]
    params: tuple[tuple[str, ParamValue], ...]
    signature: bytes

    def param(self, name: str) -> ParamValue | None:
        return next((v for n, v in self.params if n == name), None)

    @property
    def params_value(self) -> str:
        return serialize_params(self.components, self.params)


def parse_signature(
    signature_input: str | None, signature: str | None, *, label: str | None = LABEL
) -> ParsedSignature:
    """The signature to check: the one labelled `label`, or the only one there is."""
    if not signature_input or not signature:
        raise SignatureError(
            "signature-required",
            "this request must be signed (HTTP Message Signatures: Signature-Input and "
            "Signature headers)",
        )
    inputs = parse_dictionary(signature_input)
    sigs = parse_dictionary(signature)
    if label is not None and label in inputs:
        chosen = label
    elif len(inputs) == 1:
        chosen = next(iter(inputs))
    else:
        raise SignatureError(
            "malformed-signature", f"no signature labelled {label!r} in Signature-Input"
        )
    if chosen not in sigs:
        raise SignatureError("malformed-signature", f"Signature has no member {chosen!r}")
    covered, params = inputs[chosen]
    if not isinstance(covered, list):
        raise SignatureError("malformed-signature", "Signature-Input member is not a list")
    components: list[str] = []
    for item, item_params in covered:
        if not isinstance(item, str) or item_params:
            raise SignatureError(
                "malformed-signature",
                "covered components must be plain strings (no component parameters)",
            )
        if item != item.lower() or item in components:
            raise SignatureError("malformed-signature", f"bad or repeated component {item!r}")
        components.append(item)
    sig_value, _ = sigs[chosen]
    if not isinstance(sig_value, bytes):
        raise SignatureError("malformed-signature", "Signature member is not a byte sequence")
    return ParsedSignature(chosen, tuple(components), tuple(params), sig_value)


def verify_signature(
    parsed: ParsedSignature, message: Message, verify: Callable[[bytes, bytes], bool]
) -> None:
    """Check the signature itself against `verify` (a public key); nothing else."""
    base = signature_base(message, parsed.components, parsed.params_value)
    if not verify(base, parsed.signature):
        raise SignatureError(
            "bad-signature", "the request's signature does not verify with the sender's key"
        )


def verify_request(
    message: Message,
    body: bytes,
    signature_input: str | None,
    signature: str | None,
    lookup: Callable[[str], Callable[[bytes, bytes], bool] | None],
    *,
    now: int,
    max_skew: int = MAX_SKEW,
) -> SignedRequest:
    """Check a node-to-node request: Scambio's profile on top of RFC 9421.

    `lookup(keyid)` returns the sender's verify function, or None for an unknown key.
    Raises SignatureError; the caller then checks the nonce against its replay table.
    """
    parsed = parse_signature(signature_input, signature)
    missing = [c for c in REQUIRED_COMPONENTS if c not in parsed.components]
    if missing:
        raise SignatureError(
            "malformed-signature", f"the signature must cover {', '.join(missing)}"
        )
    alg = parsed.param("alg")
    if alg is not None and alg != ALG:
        raise SignatureError("malformed-signature", f"alg must be {ALG!r}, not {alg!r}")
    key_id = parsed.param("keyid")
    created = parsed.param("created")
    nonce = parsed.param("nonce")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError("malformed-signature", "the signature needs a keyid parameter")
    if isinstance(created, bool) or not isinstance(created, int):
        raise SignatureError("malformed-signature", "the signature needs a created time")
    if not isinstance(nonce, str) or not NONCE_RE.fullmatch(nonce):
        raise SignatureError(
            "malformed-signature", "the signature needs a nonce of 16-64 URL-safe characters"
        )
    verifier = lookup(key_id)
    if verifier is None:
        raise SignatureError("unknown-key", f"key {key_id!r} belongs to no known peer")
    verify_signature(parsed, message, verifier)
    check_content_digest(_one(message.headers.get("content-digest")), body)
    if abs(now - created) > max_skew:
        raise SignatureError(
            "stale-request",
            f"the request was signed at {created}, {abs(now - created)} s from this node's "
            f"clock; at most {max_skew} s are accepted",
        )
    expires = parsed.param("expires")
    if isinstance(expires, int) and not isinstance(expires, bool) and now > expires:
        raise SignatureError("stale-request", "the request's signature has expired")
    return SignedRequest(key_id=key_id, created=created, nonce=nonce, label=parsed.label)


def _one(values: Sequence[str] | None) -> str | None:
    return ", ".join(values) if values else None
