"""Pausing the cyclic garbage collector around CPU-heavy job work.

Verification and reports allocate many long-lived objects without cycles (decoded entries,
replayed balances, report rows); the collector would rescan them again and again. The
offline verifier pauses it for the same reason. Jobs pause it only around those calls,
which take seconds, and turn it back on (if it was on) when they end, however they end;
other tasks of the process run meanwhile and their cyclic garbage waits until then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
