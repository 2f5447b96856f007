"""SIGKILL mid-batch: a restart comes back with nothing half-written and the same key.

A worker process appends transfers in batches and is killed with SIGKILL while it is
busy, twice. After each kill a fresh service starts on the same database and key file;
every acknowledged transfer must be there exactly once, the entries must replay cleanly
and their root must match the signed head checkpoint.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from scambio.ledger import merkle
from scambio.ledger.entry import decode_entry
from scambio.ledger.note import open_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.settings import load_settings
from scambio.store import queries
from scambio.store.audit import verify_database
from scambio.store.db import make_engine
from scambio.store.keyfile import load_key
from scambio.store.ledger import LedgerService

WORKER = Path(__file__).with_name("crash_worker.py")


def _run_and_kill(url: str, data_dir: Path, log: Path, seconds: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(data_dir), str(log)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        # Wait until it has committed something after the ready line, then kill it busy.
        start = log.stat().st_size if log.exists() else 0
        while time.monotonic() < deadline:
            if log.exists() and log.stat().st_size > start + 2000:
                break
            time.sleep(0.05)
        time.sleep(seconds)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


async def _check(url: str, data_dir: Path, log: Path) -> int:
    settings = load_settings({"SCAMBIO_DATABASE_URL": url, "SCAMBIO_DATA_DIR": str(data_dir)})
    signer = load_key(settings.key_file)
    engine = make_engine(url, null_pool=True)
    service = LedgerService(engine, signer, settings)
    await service.start()  # refuses to start if the head is not signed by this key
    try:
        acknowledged = dict(line.split() for line in log.read_text().splitlines())
        async with service.read() as conn:
            head = await queries.head(conn)
            state = LedgerState()
            frontier = merkle.CompactRange()
            seen: dict[str, int] = {}
            async for stored in queries.stream_entries(conn):
                entry = decode_entry(stored.canonical)
                assert entry.index == len(seen)
                apply_entry(state, entry)
                frontier.append(merkle.leaf_hash(stored.canonical))
                seen[entry.id] = entry.index
            cp = open_checkpoint(head.checkpoint, signer.verifier(), settings.ledger_origin)
        assert cp.size == len(seen) == head.size
        assert cp.root == frontier.root()
        for entry_id, index in acknowledged.items():
            assert seen.get(entry_id) == int(index), f"acknowledged {entry_id} is missing"
        assert sum(a.posted for a in state.accounts.values()) == 0
        report = await verify_database(engine, signer.verifier(), settings.ledger_origin)
        assert report.size == len(seen)
        return len(seen)
    finally:
        await service.stop()
        await engine.dispose()


def test_sigkill_mid_batch_loses_nothing_acknowledged(db_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    log = tmp_path / "acks.log"
    sizes = []
    for seconds in (0.3, 0.7):
        _run_and_kill(db_url, data_dir, log, seconds)
        sizes.append(asyncio.run(_check(db_url, data_dir, log)))
    assert sizes[1] > sizes[0] > 3
    assert len(log.read_text().splitlines()) > 100
