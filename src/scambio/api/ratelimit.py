"""Rate limits on write routes, and which client address a request comes from.

Every POST, PUT, PATCH and DELETE under /api/v1 takes one token from two buckets: the
bearer token's (keyed by a hash of the token as sent, so nothing is looked up) and the
client address's. Each bucket refills at `SCAMBIO_WRITE_RATE` per second up to
`SCAMBIO_WRITE_BURST`; the address's at ten times both, because a household, an office
or a community centre shares one address. An empty bucket answers 429
`too-many-requests` with `Retry-After` (whole seconds until a token is back), and
consumes nothing. Login and registration, which carry no token, meet the address's
bucket here and the failure throttle (`timebank.throttle`) behind it.

The buckets live in memory, per process: this is a brake against a runaway client or a
flood, not an accounting. It costs a dictionary lookup and no database access, so the
transfer path stays fast; the number of buckets is capped (the least recently used go
first). A rate of 0 switches it off.

Client addresses: the peer of the connection, unless that peer is a trusted proxy
(`SCAMBIO_TRUSTED_PROXIES`, addresses or networks), in which case X-Forwarded-For is
read from the right, skipping trusted proxies, and the first address that is not one is
the client. Anybody can send X-Forwarded-For; only a proxy we trust has its word taken.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from scambio.api.problems import PROBLEM_JSON, problem_body
from scambio.settings import Settings

WRITE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The client address's bucket is this many times the token's (rate and burst).
ADDRESS_FACTOR: Final = 10
#: Most buckets kept per kind; beyond, the least recently used are forgotten.
MAX_BUCKETS: Final = 50_000

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> Address | None:
    """An address from a header or the peer: bare, "[v6]:port" or "v4:port"."""
    value = text.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


class ClientAddresses:
    """Resolves the client's address from the peer and X-Forwarded-For."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in trusted
        )

    def trusted(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, peer: str | None, forwarded: Sequence[str] = ()) -> str:
        if peer is None:
            return "unknown"
        if not self.networks or not forwarded:
            return peer
        client = _address(peer)
        if client is None or not self.trusted(client):
            return peer
        hops = [hop for header in forwarded for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                # Garbage where an address should be: the last proxy we trust passed it on,
                # so the request is as good as from that proxy.
                break
            client = address
            if not self.trusted(address):
                break
        return str(client)


class Buckets:
    """Token buckets by key: `rate` tokens a second, at most `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[Any, list[float]] = OrderedDict()

    def level(self, key: Any, now: float) -> list[float]:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [self.burst, now]
            self._buckets[key] = bucket
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        return bucket

    def wait(self, bucket: list[float]) -> float:
        """Seconds until the bucket holds a whole token (0: it does now)."""
        return 0.0 if bucket[0] >= 1 else (1 - bucket[0]) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


class WriteLimiter:
    """The per-token and per-address buckets of one process."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = rate > 0
        self.clock = clock
        self.tokens = Buckets(rate, burst)
        self.addresses = Buckets(rate * ADDRESS_FACTOR, burst * ADDRESS_FACTOR)

    def take(self, token: str | None, address: str) -> int | None:
        """Take one write from both buckets; or, if either is empty, the whole seconds to
        wait (and take nothing)."""
        if not self.enabled:
            return None
        now = self.clock()
        buckets = [(self.addresses, self.addresses.level(address, now))]
        if token is not None:
            key = hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=16)
            buckets.append((self.tokens, self.tokens.level(key.digest(), now)))
        wait = max(kind.wait(bucket) for kind, bucket in buckets)
        if wait > 0:
            return max(1, math.ceil(wait))
        for _kind, bucket in buckets:
            bucket[0] -= 1
        return None


def _state(scope: Scope) -> Any:
    return scope["app"].state


def client_addresses(state: Any) -> ClientAddresses:
    """The app's resolver, built once from its settings."""
    resolver = state.get("client_addresses")
    if resolver is None:
        settings: Settings = state.settings
        resolver = ClientAddresses(settings.trusted_proxies)
        state.client_addresses = resolver
    return resolver  # type: ignore[no-any-return]


def write_limiter(state: Any) -> WriteLimiter:
    limiter = state.get("write_limiter")
    if limiter is None:
        settings: Settings = state.settings
        limiter = WriteLimiter(settings.write_rate, settings.write_burst)
        state.write_limiter = limiter
    return limiter  # type: ignore[no-any-return]


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name]


def scope_client(scope: Scope) -> str:
    """The client address of a request (see the module's docstring)."""
    client = scope.get("client")
    peer = client[0] if client else None
    resolver = client_addresses(_state(scope))
    if not resolver.networks:  # the usual case: no header to read
        return peer or "unknown"
    return resolver.resolve(peer, _headers(scope, b"x-forwarded-for"))


def _bearer(scope: Scope) -> str | None:
    for value in _headers(scope, b"authorization"):
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


class WriteRateLimit(ASGIMiddleware):
    """Refuses write requests beyond the limits with a 429 problem, before anything else
    (authentication included) runs."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if scope.get("method") in WRITE_METHODS:
            limiter = write_limiter(_state(scope))
            if limiter.enabled:
                wait = limiter.take(_bearer(scope), scope_client(scope))
                if wait is not None:
                    await _refuse(send, wait)
                    return
        await next_app(scope, receive, send)


async def _refuse(send: Send, wait: int) -> None:
    body = msgspec.json.encode(
        problem_body(
            "too-many-requests",
            429,
            "Too many requests",
            f"too many write requests; try again in {wait} seconds",
            retry_after=wait,
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(wait).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
