"""A process that appends transfers as fast as it can and records each acknowledgement.

Used by test_crash.py, which kills it with SIGKILL mid-batch. Every acknowledged id is
written and flushed to the log before the next is awaited, so the log is a lower bound of
what was committed.

usage: crash_worker.py DATABASE_URL DATA_DIR ACK_LOG
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from scambio.settings import load_settings
from scambio.store.commands import Appended, Transfer
from scambio.store.db import make_engine
from scambio.store.keyfile import load_or_create_key
from scambio.store.ledger import LedgerService

ACCOUNTS = ["ada", "bea", "cai"]


async def main(url: str, data_dir: str, log_path: str) -> None:
    settings = load_settings(
        {"SCAMBIO_DATABASE_URL": url, "SCAMBIO_DATA_DIR": data_dir, "SCAMBIO_BATCH_SIZE": "50"}
    )
    signer = load_or_create_key(settings.key_file, settings.ledger_origin)
    service = LedgerService(make_engine(url, null_pool=True), signer, settings)
    await service.start()
    for name in ACCOUNTS:
        await service.open_account(name, "member", -100_000, None)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    async def producer(n: int) -> None:
        i = 0
        while True:
            i += 1
            payer, payee = ACCOUNTS[(n + i) % 3], ACCOUNTS[(n + i + 1) % 3]
            result = await service.transfer(Transfer(str(uuid.uuid4()), payer, payee, 1 + i % 7))
            if isinstance(result, Appended):
                os.write(fd, f"{result.entry.id} {result.index}\n".encode())

    print("ready", flush=True)
    await asyncio.gather(*(producer(n) for n in range(16)))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
