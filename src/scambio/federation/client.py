"""Signed requests to a peer node (httpx), and what their answers mean.

Every request carries an RFC 9421 signature by this node's key (see `httpsig`). An answer
is one of three things, and the protocol depends on telling them apart:

- a 2xx: the peer did what was asked (the body says what it now knows);
- a 4xx problem: the peer *refused*, definitively (`PeerRefusal`, with its problem type);
- anything else (no connection, a timeout, a 5xx, a body that does not parse): we do not
  know what the peer did (`PeerUnreachable`); the request must be retried, never assumed.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import httpx
import msgspec

from scambio.federation import httpsig
from scambio.federation.peers import Peer
from scambio.federation.protocol import key_id
from scambio.timebank.context import Timebank

T = TypeVar("T")
PROBLEM_PREFIX: Final = "urn:scambio:problem:"


class PeerUnreachable(Exception):
    """No usable answer: the outcome at the peer is unknown."""


class PeerRefusal(Exception):
    """The peer answered with a 4xx problem: it did not (and will not) do this."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class _Problem(msgspec.Struct):
    type: str = "about:blank"
    detail: str = ""


async def call(
    tb: Timebank,
    peer: Peer,
    method: str,
    path: str,
    payload: Any,
    *,
    answer: type[T],
) -> T:
    """Send a signed request to `peer` and decode its 2xx answer as `answer`."""
    body = b"" if payload is None else msgspec.json.encode(payload)
    url = httpx.URL(peer.url(path))
    signer = tb.ledger.signer
    headers = httpsig.sign_request(
        signer.sign,
        key_id(signer.verifier()),
        method,
        str(url),
        body,
        created=int(tb.clock().timestamp()),
    )
    if payload is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with httpx.AsyncClient(timeout=tb.settings.federation_timeout) as client:
            response = await client.request(method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise PeerUnreachable(f"{peer.name}: {type(exc).__name__}: {exc}"[:500]) from None
    if 400 <= response.status_code < 500:
        try:
            problem = msgspec.json.decode(response.content, type=_Problem)
        except msgspec.DecodeError:
            problem = _Problem(detail=response.text[:300])
        code = problem.type.removeprefix(PROBLEM_PREFIX) if problem.type else "refused"
        raise PeerRefusal(response.status_code, code[:64], problem.detail[:1000])
    if response.status_code >= 300:
        raise PeerUnreachable(f"{peer.name}: HTTP {response.status_code}")
    try:
        return msgspec.json.decode(response.content, type=answer)
    except msgspec.DecodeError as exc:
        raise PeerUnreachable(f"{peer.name}: unreadable answer: {exc}"[:500]) from None
