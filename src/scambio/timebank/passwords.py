"""Password hashing with Argon2id (argon2-cffi), off the event loop.

Hashing is deliberately slow (tens of milliseconds, 64 MiB with the standard RFC 9106
low-memory profile), so it runs in a worker thread. `verify` against an unknown email
checks a dummy hash of the same cost, so a login takes as long whether or not the address
is registered: timing tells nothing about who has an account. Hashes whose parameters are
older than the current profile are reported by `needs_rehash` and re-hashed at the next
successful login.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: "standard" is for production; "minimal" keeps test suites fast and must not be used
#: anywhere a hash could leak.
COSTS = {
    "standard": profiles.RFC_9106_LOW_MEMORY,
    "minimal": profiles.CHEAPEST,
}


class Passwords:
    def __init__(self, cost: str = "standard") -> None:
        if cost not in COSTS:
            raise ValueError(f"unknown password hash cost {cost!r}")
        self._hasher = PasswordHasher.from_parameters(COSTS[cost])
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` matches `stored`; with no stored hash, as slow and False."""
        return await asyncio.to_thread(self._verify, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        try:
            return self._hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True
