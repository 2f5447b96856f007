"""Signed report documents: the report and an Ed25519 signature over its canonical JSON.

A document is ``{"report": <report>, "signature": {"alg": "ed25519", "vkey": <verifier
key>, "value": <base64 signature>}}``. The signature covers exactly the RFC 8785 bytes of
`report` (`ledger.canonical.canonical_json`) and is made with the node's key, the one that
signs the ledger's checkpoints: check it with the ledger's verifier key (`scambio key`,
`GET /api/v1/ledger/key`), pinned as for any verification. The report's `format` field
names what was signed, so the signature cannot be taken for a checkpoint's.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import msgspec

from scambio.ledger.canonical import canonical_json
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Signer, Verifier

ALG: Final = "ed25519"


def sign_document(report: dict[str, Any], signer: Signer) -> dict[str, Any]:
    signature = signer.sign(canonical_json(report))
    return {
        "report": report,
        "signature": {
            "alg": ALG,
            "vkey": signer.verifier().to_string(),
            "value": base64.b64encode(signature).decode(),
        },
    }


def encode_document(document: dict[str, Any]) -> bytes:
    """The stored and served form (canonical JSON of the whole document)."""
    return canonical_json(document)


def open_document(data: bytes | str, verifier: Verifier) -> dict[str, Any]:
    """Check a document's signature with `verifier`; return the report it signs."""
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise VerificationError(f"not a JSON document: {exc}") from None
    if not isinstance(document, dict) or set(document) != {"report", "signature"}:
        raise VerificationError("a signed report has exactly the fields report and signature")
    report, signature = document["report"], document["signature"]
    if not isinstance(report, dict) or not isinstance(signature, dict):
        raise VerificationError("report and signature must be objects")
    if signature.get("alg") != ALG:
        raise VerificationError(f"signature algorithm must be {ALG}")
    if signature.get("vkey") != verifier.to_string():
        raise VerificationError(
            f"signed by key {signature.get('vkey')!r}, not the trusted key {verifier.to_string()}"
        )
    value = signature.get("value")
    try:
        raw = base64.b64decode(value if isinstance(value, str) else "", validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("the signature is not base64") from None
    try:
        message = canonical_json(report)
    except ValueError as exc:
        raise VerificationError(f"the report is not canonical JSON data: {exc}") from None
    if not verifier.verify(message, raw):
        raise VerificationError("the signature does not verify: the report was altered")
    return report
