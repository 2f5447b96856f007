"""Rate limits on write routes, and whose X-Forwarded-For is believed.

The buckets and the address resolver are plain objects, tested first without a server;
then over HTTP (SQLite and PostgreSQL): a runaway member gets 429 `too-many-requests`
with `Retry-After` and changes nothing, others carry on, reads are never limited, and
behind a trusted proxy both the rate limit and the login throttle count the real client,
while a client that merely claims another address through X-Forwarded-For is counted as
itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import transport

from scambio.api import ratelimit
from scambio.api.ratelimit import Buckets, ClientAddresses, WriteLimiter
from scambio.settings import SettingsError, load_settings

from .api_helpers import PASSWORD, Api, assert_problem, running_api


@dataclass
class Ticker:
    """A monotonic clock the test moves."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the buckets -----------------------------------------------------------------------------


def test_a_token_gets_its_burst_then_its_rate() -> None:
    clock = Ticker()
    limiter = WriteLimiter(2.0, 3, clock=clock)
    assert [limiter.take("tok", "10.0.0.1") for _ in range(3)] == [None, None, None]
    # Empty: half a second until the next token (2 a second), rounded up to whole seconds.
    assert limiter.take("tok", "10.0.0.1") == 1
    clock.now += 0.5
    assert limiter.take("tok", "10.0.0.1") is None
    assert limiter.take("tok", "10.0.0.1") == 1
    # Refilling stops at the burst.
    clock.now += 3600
    assert [limiter.take("tok", "10.0.0.1") for _ in range(4)] == [None, None, None, 1]


def test_a_slow_rate_says_how_long_to_wait() -> None:
    clock = Ticker()
    limiter = WriteLimiter(0.1, 1, clock=clock)
    assert limiter.take("tok", "a") is None
    assert limiter.take("tok", "a") == 10
    clock.now += 9.5
    assert limiter.take("tok", "a") == 1


def test_tokens_and_addresses_have_separate_buckets() -> None:
    clock = Ticker()
    limiter = WriteLimiter(1.0, 2, clock=clock)
    # Two tokens from one address: each has its own burst of 2...
    assert [limiter.take("giulia", "10.0.0.1") for _ in range(3)] == [None, None, 1]
    assert [limiter.take("marco", "10.0.0.1") for _ in range(3)] == [None, None, 1]
    # ... and the address has ten times as much: 20, of which 4 are used (a refusal
    # takes nothing).
    others = [limiter.take(f"t{n}", "10.0.0.1") for n in range(20)]
    assert others.count(None) == 16 and others[16:] == [1, 1, 1, 1]
    # Without a token (a login), only the address counts.
    assert limiter.take(None, "10.0.0.1") == 1
    assert limiter.take(None, "10.0.0.2") is None


def test_rate_zero_switches_the_limit_off() -> None:
    limiter = WriteLimiter(0.0, 1, clock=Ticker())
    assert not limiter.enabled
    assert all(limiter.take("tok", "a") is None for _ in range(1000))


def test_the_buckets_forget_the_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 3)
    buckets = Buckets(1.0, 1)
    for key in ("a", "b", "c", "a", "d"):
        buckets.level(key, 0.0)[0] = 0.0  # each used up
    assert len(buckets) == 3
    assert buckets.level("a", 0.0)[0] == 0.0  # kept (used recently), still empty
    assert buckets.level("b", 0.0)[0] == 1.0  # forgotten: a fresh, full bucket


# -- client addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # No X-Forwarded-For, or a peer we do not trust: the peer.
        ("10.0.0.5", [], "10.0.0.5"),
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        # A trusted proxy: the rightmost address that is not a trusted proxy.
        ("10.0.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.1, 10.0.0.9"], "198.51.100.1"),
        ("10.0.0.5", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
        # Garbage in the header: as good as from the last proxy we trust.
        ("10.0.0.5", ["198.51.100.1, <script>"], "10.0.0.5"),
        ("10.0.0.5", ["unknown, 10.0.0.7"], "10.0.0.7"),
        # Only proxies: the leftmost.
        ("10.0.0.5", ["10.0.0.8, 10.0.0.7"], "10.0.0.8"),
        # Ports, IPv6 and IPv4-mapped peers.
        ("10.0.0.5", ["198.51.100.1:4711"], "198.51.100.1"),
        ("::ffff:10.0.0.5", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("2001:db8:ffff::1", ["2001:db8::2"], "2001:db8::2"),
        # A peer that is not an address at all (a test client, a Unix socket).
        ("testclient", ["198.51.100.1"], "testclient"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    resolver = ClientAddresses(["10.0.0.0/8", "2001:db8:ffff::/48"])
    assert resolver.resolve(peer, forwarded) == client
    assert ClientAddresses([]).resolve(peer, forwarded) == (peer or "unknown")


def test_settings_for_the_limits_and_proxies() -> None:
    base = {"SCAMBIO_DATA_DIR": "/tmp/scambio-settings-test"}
    settings = load_settings(base)
    assert (settings.write_rate, settings.write_burst, settings.trusted_proxies) == (50.0, 500, ())
    settings = load_settings(
        {
            **base,
            "SCAMBIO_WRITE_RATE": "0.5",
            "SCAMBIO_WRITE_BURST": "20",
            "SCAMBIO_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16 2001:db8::/32",
        }
    )
    assert (settings.write_rate, settings.write_burst) == (0.5, 20)
    assert settings.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/16", "2001:db8::/32")
    assert load_settings({**base, "SCAMBIO_WRITE_RATE": "0"}).write_rate == 0
    for name, value in [
        ("SCAMBIO_WRITE_RATE", "-1"),
        ("SCAMBIO_WRITE_RATE", "fast"),
        ("SCAMBIO_WRITE_RATE", "nan"),
        ("SCAMBIO_WRITE_BURST", "0"),
        ("SCAMBIO_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("SCAMBIO_TRUSTED_PROXIES", "proxy.example.org"),
    ]:
        with pytest.raises(SettingsError, match=name):
            load_settings({**base, name: value})


# -- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def peers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Let a test say which peer address a request comes from (header `x-test-peer`): the
    test client otherwise always connects as "testclient"."""
    original = transport.TestClientTransport.parse_request

    def parse_request(self: transport.TestClientTransport[Any], request: Any) -> dict[str, Any]:
        peer = request.headers.pop("x-test-peer", None)
        scope = original(self, request)
        if peer is not None:
            scope["client"] = (peer, 50000)
        return scope

    monkeypatch.setattr(transport.TestClientTransport, "parse_request", parse_request)
    yield


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(
        db_url,
        tmp_path,
        SCAMBIO_TRUSTED_PROXIES="10.0.0.0/8",
        SCAMBIO_LOGIN_MAX_FAILURES="100",
        SCAMBIO_LOGIN_MAX_FAILURES_PER_IP="2",
    ) as running:
        yield running


def tight_limits(api: Api, rate: float, burst: int) -> Ticker:
    """Replace the app's limiter by a tight one on a clock the test moves."""
    clock = Ticker()
    api.app.state.write_limiter = WriteLimiter(rate, burst, clock=clock)
    return clock


async def test_a_runaway_member_is_slowed_down_and_others_carry_on(api: Api) -> None:
    giulia = await api.add_member("giulia")
    await api.add_member("marco")
    clock = tight_limits(api, 1.0, 3)

    # Giulia's app retries in a loop: three writes go through, the fourth is refused.
    path = f"/api/v1/members/{giulia.id}"
    for n in range(3):
        response = await api.request("PATCH", path, role="giulia", json={"about": f"take {n}"})
        assert response.status_code == 200, response.text
    refused = await api.request("PATCH", path, role="giulia", json={"about": "flood"})
    body = assert_problem(refused, 429, "too-many-requests")
    assert refused.headers["retry-after"] == "1" and body["retry_after"] == 1
    # Nothing changed; reading is never limited.
    for _ in range(10):
        me = (await api.get("/api/v1/members/me", role="giulia")).json()
    assert me["about"] == "take 2"
    # Marco's token has its own bucket.
    marco = await api.post("/api/v1/auth/tokens", {"name": "app", "scopes": ["read"]}, role="marco")
    assert marco.status_code == 201, marco.text
    # A second later Giulia may write again.
    clock.now += 1
    again = await api.request("PATCH", path, role="giulia", json={"about": "calm"})
    assert again.status_code == 200, again.text


async def test_the_limit_is_per_token_and_per_address(api: Api, peers: None) -> None:
    await api.add_member("giulia")
    tight_limits(api, 1.0, 1)
    token = {"Authorization": f"Bearer {api.tokens['giulia']}"}
    body = {"name": "app", "scopes": ["read"]}

    async def create(peer: str, *, headers: dict[str, str] | None = None) -> int:
        response = await api.client.post(
            "/api/v1/auth/tokens",
            json=body,
            headers={**token, "x-test-peer": peer, **(headers or {})},
        )
        return response.status_code

    assert await create("198.51.100.1") == 201
    # The same token from another address: still the token's bucket.
    assert await create("198.51.100.2") == 429


async def test_behind_a_trusted_proxy_the_real_client_is_counted(api: Api, peers: None) -> None:
    """Two people log in through the community's reverse proxy (10.0.0.2): each has their
    own allowance of failed logins. A client outside claiming to be someone else through
    X-Forwarded-For is counted as itself."""
    giulia = await api.add_member("giulia")

    async def login(peer: str, forwarded: str | None, password: str) -> int:
        headers = {"x-test-peer": peer}
        if forwarded is not None:
            headers["x-forwarded-for"] = forwarded
        response = await api.client.post(
            "/api/v1/auth/login",
            json={"email": giulia.email, "password": password},
            headers=headers,
        )
        return response.status_code

    # Through the proxy, 203.0.113.7 fails twice (the per-address limit here is 2) ...
    assert [await login("10.0.0.2", "203.0.113.7", "wrong guess!") for _ in range(2)] == [401, 401]
    assert await login("10.0.0.2", "203.0.113.7", PASSWORD) == 429
    # ... while 203.0.113.8, through the same proxy, logs in.
    assert await login("10.0.0.2", "203.0.113.8", PASSWORD) == 200
    # A client not behind our proxy cannot borrow someone else's address: its claim is
    # ignored and its failures count against its own.
    assert [await login("198.51.100.9", "203.0.113.8", "nope nope!") for _ in range(2)] == [
        401,
        401,
    ]
    assert await login("198.51.100.9", "203.0.113.99", PASSWORD) == 429
    assert await login("10.0.0.2", "203.0.113.8", PASSWORD) == 200


async def test_the_write_limit_counts_the_client_behind_the_proxy(api: Api, peers: None) -> None:
    tight_limits(api, 1.0, 1)  # addresses: 10 a second, burst 10

    async def reset(forwarded: str, n: int) -> int:
        response = await api.client.post(
            "/api/v1/auth/password-reset",
            json={"email": f"someone{n}@example.org"},
            headers={"x-test-peer": "10.0.0.2", "x-forwarded-for": forwarded},
        )
        return response.status_code

    first = [await reset("203.0.113.7", n) for n in range(11)]
    assert first == [202] * 10 + [429]
    # Another client behind the same proxy has its own bucket.
    assert await reset("203.0.113.8", 0) == 202
