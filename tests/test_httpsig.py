"""HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530): the RFCs' own test
vectors, then Scambio's profile and every way a request is refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scambio.federation import httpsig
from scambio.federation.httpsig import Message, SignatureError

# RFC 9421 appendix B.1.4 (test-key-ed25519) and B.2.6 (signing a request with ed25519).
B14_SEED = base64.urlsafe_b64decode("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU=")
B14_PUBLIC = base64.urlsafe_b64decode("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs=")
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPp"
    "BKRCw==:"
)
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
B2_REQUEST = Message(
    "POST",
    "http://example.com/foo?param=Value&Pet=dog",
    {
        "host": ["example.com"],
        "date": ["Tue, 20 Apr 2021 02:07:55 GMT"],
        "content-type": ["application/json"],
        "content-length": ["18"],
    },
)
B2_BODY = b'{"hello": "world"}'


def _rfc_key() -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.from_private_bytes(B14_SEED)
    assert key.public_key().public_bytes_raw() == B14_PUBLIC
    return key


def _verify_with(public: bytes):  # type: ignore[no-untyped-def]
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(public)

    def verify(msg: bytes, sig: bytes) -> bool:
        try:
            key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    return verify


def test_rfc9421_b26_signature_base_and_signature() -> None:
    parsed = httpsig.parse_signature(B26_INPUT, B26_SIGNATURE, label="sig-b26")
    assert parsed.components == (
        "date",
        "@method",
        "@path",
        "@authority",
        "content-type",
        "content-length",
    )
    base = httpsig.signature_base(B2_REQUEST, parsed.components, parsed.params_value)
    assert base.decode() == B26_BASE
    # Ed25519 is deterministic: signing the base gives the RFC's signature byte for byte.
    assert _rfc_key().sign(base) == parsed.signature
    httpsig.verify_signature(parsed, B2_REQUEST, _verify_with(B14_PUBLIC))
    tampered = Message("PUT", B2_REQUEST.target_uri, B2_REQUEST.headers)
    with pytest.raises(SignatureError) as bad:
        httpsig.verify_signature(parsed, tampered, _verify_with(B14_PUBLIC))
    assert bad.value.code == "bad-signature"


def test_rfc9421_derived_components() -> None:
    """RFC 9421 section 2.2 examples for the same request."""
    value = httpsig.component_value
    assert value(B2_REQUEST, "@method") == "POST"
    assert value(B2_REQUEST, "@authority") == "example.com"
    assert value(B2_REQUEST, "@scheme") == "http"
    assert value(B2_REQUEST, "@path") == "/foo"
    assert value(B2_REQUEST, "@query") == "?param=Value&Pet=dog"
    assert value(B2_REQUEST, "@request-target") == "/foo?param=Value&Pet=dog"
    assert value(B2_REQUEST, "@target-uri") == "http://example.com/foo?param=Value&Pet=dog"
    odd_port = Message("GET", "https://Example.COM:8443/", {})
    assert value(odd_port, "@authority") == "example.com:8443"


def test_rfc9530_content_digest() -> None:
    # RFC 9530 section 2 / RFC 9421 B.2: {"hello": "world"}.
    assert httpsig.content_digest(B2_BODY) == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )
    sha512 = (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwE"
        "mTHWXvJwew==:"
    )
    httpsig.check_content_digest(sha512, B2_BODY)
    with pytest.raises(SignatureError) as bad:
        httpsig.check_content_digest(sha512, B2_BODY + b" ")
    assert bad.value.code == "bad-signature"


# -- Scambio's profile -----------------------------------------------------------------------

NOW = 1_800_000_000
URI = "http://127.0.0.1:8001/api/v1/federation/prepare"
KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw()
KEY_ID = "peer.example/ledger+0a1b2c3d"


def _signed(body: bytes = b'{"a":1}', **kw: object) -> tuple[Message, dict[str, str]]:
    args: dict[str, object] = {"created": NOW, "nonce": "n" * 22, **kw}
    headers = httpsig.sign_request(KEY.sign, KEY_ID, "POST", URI, body, **args)  # type: ignore[arg-type]
    lower = {k.lower(): [v] for k, v in headers.items()}
    return Message("POST", URI, lower), headers


def _check(message: Message, headers: dict[str, str], body: bytes = b'{"a":1}', **kw: object):  # type: ignore[no-untyped-def]
    def lookup(key_id: str):  # type: ignore[no-untyped-def]
        return _verify_with(PUBLIC) if key_id == KEY_ID else None

    return httpsig.verify_request(
        message,
        body,
        headers.get("Signature-Input"),
        headers.get("Signature"),
        lookup,
        now=int(kw.get("now", NOW)),  # type: ignore[call-overload]
    )


def _code(message: Message, headers: dict[str, str], body: bytes = b'{"a":1}', **kw: object) -> str:
    with pytest.raises(SignatureError) as refused:
        _check(message, headers, body, **kw)
    return refused.value.code


def test_a_signed_request_verifies() -> None:
    message, headers = _signed()
    assert headers["Signature-Input"] == (
        'scambio=("@method" "@target-uri" "content-digest");created=1800000000;'
        f'keyid="{KEY_ID}";alg="ed25519";nonce="{"n" * 22}"'
    )
    signed = _check(message, headers)
    assert (signed.key_id, signed.created, signed.nonce) == (KEY_ID, NOW, "n" * 22)


def test_refusals_have_their_own_codes() -> None:
    message, headers = _signed()
    assert _code(message, {}) == "signature-required"
    assert _code(message, {**headers, "Signature-Input": "scambio=(oops"}) == "malformed-signature"
    # An altered body no longer matches the digest the signature covers.
    assert _code(message, headers, body=b'{"a":2}') == "bad-signature"
    # Another method, another target: the signature does not cover them.
    assert _code(Message("PUT", URI, message.headers), headers) == "bad-signature"
    other = Message("POST", URI.replace("prepare", "commit"), message.headers)
    assert _code(other, headers) == "bad-signature"
    # A forged signature: same request, another key.
    forged = httpsig.sign_request(
        Ed25519PrivateKey.generate().sign, KEY_ID, "POST", URI, b'{"a":1}', created=NOW
    )
    assert _code(message, {**headers, "Signature": forged["Signature"]}) == "bad-signature"
    # Unknown key, stale or future time.
    unknown, unknown_headers = _signed()
    unknown_headers["Signature-Input"] = unknown_headers["Signature-Input"].replace(
        KEY_ID, "someone.else+00000000"
    )
    assert _code(unknown, unknown_headers) == "unknown-key"
    assert _code(message, headers, now=NOW + 301) == "stale-request"
    assert _code(message, headers, now=NOW - 301) == "stale-request"
    assert _check(message, headers, now=NOW + 300).nonce == "n" * 22


def test_the_profile_requires_its_components_and_parameters() -> None:
    message, headers = _signed()
    params = headers["Signature-Input"]
    without_digest = params.replace(' "content-digest"', "")
    assert _code(message, {**headers, "Signature-Input": without_digest}) == ("malformed-signature")
    without_nonce = params.split(";nonce=")[0]
    assert _code(message, {**headers, "Signature-Input": without_nonce}) == ("malformed-signature")
    other_alg = params.replace('alg="ed25519"', 'alg="hmac-sha256"')
    assert _code(message, {**headers, "Signature-Input": other_alg}) == "malformed-signature"


@pytest.mark.parametrize(
    "text",
    [
        'a=("x" "x")',  # a repeated component
        'a=("X")',  # components are lower case
        'a=("x";sf)',  # component parameters are not used
        'a=("x");created=1.5',  # no decimals
        'a=("x"),',  # trailing comma
        'a=("x);created=1',  # unterminated string
    ],
)
def test_malformed_signature_input(text: str) -> None:
    with pytest.raises(SignatureError) as bad:
        httpsig.parse_signature(text, "a=:AAAA:", label="a")
    assert bad.value.code == "malformed-signature"
