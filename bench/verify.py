"""How fast the offline verifier checks a large export: entries/s, CPU time, peak RSS.

    python bench/verify.py [--entries 1e6] [--runs 3] [--seed 1] [--mode auto|serial|parallel]

It builds a signed export with the pure core alone (no database): 1000 accounts (members
with a floor, organisations, sponsors), then transfers between them of about 250-300
bytes each, with a few holds (posted, voided, left open) and reversals mixed
in, one batch time and one signed checkpoint every 1000 entries, exactly as the service
writes them. The file is cached under the temporary directory
(`scambio-verify-bench-<entries>-<seed>.jsonl`) and reused by later runs with the same
arguments; delete it to rebuild.

Each run verifies the file in a fresh child process (`--run`), so that the generator's
memory does not count in the peak RSS, and prints the wall time, entries per second of
wall time, the CPU time of the verifying process and of its worker (children), and the
peak RSS of each. The summary gives the best and the median run. Other work on the machine
makes single runs noisy: compare medians of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

from scambio.ledger import merkle
from scambio.ledger.entry import AccountSpec, Entry, Posting, encode_entry
from scambio.ledger.note import Checkpoint, Signer, sign_checkpoint
from scambio.ledger.rules import AccountState, LedgerState, apply_entry
from scambio.ledger.verify import CheckpointLine, ExportHeader

ORIGIN = "bench.scambio.local/ledger"
SIGNER = Signer.from_seed(ORIGIN, bytes(range(32)))
VKEY = SIGNER.verifier().to_string()
BATCH = 1000
ACCOUNTS = 1000

MEMOS = [
    "babysitting on Tuesday",
    "Italian conversation, 1h",
    "help moving furniture",
    "homework support",
    "hospital visit",
    "repaired a bicycle",
    "CV review",
    "neighbourhood dinner",
    "allotment garden",
    "",
]
KINDS = ["member"] * 8 + ["organisation", "sponsor"]

_json = msgspec.json.Encoder(order="sorted")


def _time(batch: int) -> str:
    seconds = batch * 7
    day, rest = divmod(seconds, 86_400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    month, day = divmod(day, 28)
    return (
        f"2026-{1 + month:02d}-{1 + day:02d}T{hour:02d}:{minute:02d}:{second:02d}."
        f"{batch % 1_000_000:06d}Z"
    )


class _Builder:
    """Writes entries and checkpoint lines, keeping the tree and the replayed state."""

    def __init__(self, out: list[bytes]) -> None:
        self.out = out
        self.tree = merkle.CompactRange()
        self.state = LedgerState()
        self.note = self.checkpoint()

    def checkpoint(self) -> str:
        note = sign_checkpoint(Checkpoint(ORIGIN, self.tree.size, self.tree.root()), SIGNER)
        self.out.append(_json.encode(CheckpointLine(note)) + b"\n")
        return note

    def add(self, entry: Entry) -> None:
        apply_entry(self.state, entry)  # the generator never writes an invalid entry
        data = encode_entry(entry)
        self.out.append(data + b"\n")
        self.tree.append(merkle.leaf_hash(data))
        if self.tree.size % BATCH == 0:
            self.note = self.checkpoint()


def _fits(account: AccountState, delta: int) -> bool:
    return (
        delta > 0
        or account.min_balance is None
        or (account.available + delta >= account.min_balance)
    )


def generate(path: Path, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    body: list[bytes] = []
    b = _Builder(body)
    names = [f"{KINDS[i % len(KINDS)][:3]}-{i:05d}" for i in range(ACCOUNTS)]
    members = [n for n in names if n.startswith("mem")]

    def entry(kind: str, postings: tuple[Posting, ...], **kw: object) -> Entry:
        index = b.tree.size
        fields: dict[str, object] = {
            "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "memo": rnd.choice(MEMOS),
            "refs": {},
        }
        fields.update(kw)
        return Entry(
            v=1,
            ledger=ORIGIN,
            index=index,
            kind=kind,
            time=_time(index // BATCH),
            postings=postings,
            **fields,  # type: ignore[arg-type]
        )

    for i, name in enumerate(names):
        kind = KINDS[i % len(KINDS)]
        low = -600 if kind == "member" else (None if kind == "sponsor" else 0)
        spec = AccountSpec(id=name, kind=kind, min_balance=low, max_balance=None)
        b.add(entry("account", (), id=f"account:{name}", memo="", account=spec))
    sponsors = [n for n in names if n.startswith("spo")]
    holds: list[tuple[str, str, str, int]] = []
    hold_index: dict[str, int] = {}
    reversible: list[int] = []
    accounts = b.state.accounts
    while b.tree.size < count:
        roll = rnd.random()
        index = b.tree.size
        if roll < 0.004 and holds:
            hold, payer, payee, minutes = holds.pop(rnd.randrange(len(holds)))
            if rnd.random() < 0.7:
                legs = (Posting(payer, -minutes), Posting(payee, minutes))
                b.add(entry("post", legs, id=f"{hold}:post", refs={"hold": hold_index[hold]}))
            else:
                refs = {"hold": hold_index[hold], "reason": "voided"}
                b.add(entry("void", (), id=f"{hold}:void", refs=refs))
            continue
        if roll < 0.006 and reversible:
            target = reversible.pop(rnd.randrange(len(reversible)))
            moved = b.state.moved[target]
            negated = tuple(Posting(p.account, -p.minutes) for p in moved.postings)
            if all(_fits(accounts[p.account], p.minutes) for p in negated):
                refs = {"reverses": target}
                b.add(entry("reversal", negated, memo="entered twice", refs=refs))
            continue
        payer = rnd.choice(sponsors) if roll < 0.05 else rnd.choice(members)
        payee = rnd.choice(members if rnd.random() < 0.9 else names)
        minutes = rnd.choice([15, 30, 45, 60, 90, 120, 180, 240])
        if payer.startswith("spo"):
            minutes *= 10
        if payer == payee or not _fits(accounts[payer], -minutes):
            continue
        legs = (Posting(payer, -minutes), Posting(payee, minutes))
        if roll < 0.015:
            e = entry("hold", legs)
            holds.append((e.id, payer, payee, minutes))
            hold_index[e.id] = index
            b.add(e)
        else:
            b.add(entry("transfer", legs))
            if rnd.random() < 0.01:
                reversible.append(index)
    if b.tree.size % BATCH:
        b.note = b.checkpoint()
    header = ExportHeader(
        format="scambio-ledger-export",
        version=1,
        origin=ORIGIN,
        vkey=VKEY,
        size=b.tree.size,
        checkpoint=b.note,
    )
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as f:
        f.write(_json.encode(header) + b"\n")
        f.writelines(body)
    tmp.replace(path)


def run_once(path: Path, mode: str) -> None:
    """Child: verify `path` once and print one JSON line of figures."""
    from scambio.ledger import verify, verify_parallel

    fallbacks: list[str] = []
    start = time.perf_counter()
    if mode == "serial":
        report = verify.verify_export_file(path, trusted_vkey=VKEY, parallel=False)
    else:
        least = 0 if mode == "parallel" else verify_parallel.PARALLEL_MIN_ENTRIES
        report = verify_parallel.verify_file(
            path, trusted_vkey=VKEY, min_entries=least, on_fallback=fallbacks.append
        )
    wall = time.perf_counter() - start
    if fallbacks:
        print(f"the two-process verifier fell back to one process: {fallbacks}", file=sys.stderr)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "entries": report.entries,
                "wall": wall,
                "rate": report.entries / wall,
                "cpu_main": me.ru_utime + me.ru_stime,
                "cpu_worker": kids.ru_utime + kids.ru_stime,
                "rss_main": me.ru_maxrss * 1024,
                "rss_worker": kids.ru_maxrss * 1024,
                "load": os.getloadavg()[0],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=lambda s: int(float(s)), default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["auto", "serial", "parallel"], default="auto")
    parser.add_argument("--file", type=Path, help="verify this export instead of a generated one")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        run_once(args.run, args.mode)
        return
    path = args.file or Path(tempfile.gettempdir()) / (
        f"scambio-verify-bench-{args.entries}-{args.seed}.jsonl"
    )
    if args.generate:
        generate(path, args.entries, args.seed)
        return
    if not path.exists():
        # In a child process: Linux keeps a process's peak RSS across fork and exec, so
        # the generator's memory would show up in the verifying children's figures.
        started = time.perf_counter()
        generator = [sys.executable, __file__, "--generate", "--file", str(path)]
        generator += ["--entries", str(args.entries), "--seed", str(args.seed)]
        subprocess.run(generator, check=True)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    size = path.stat().st_size
    print(f"{path}: {size / 1e6:.1f} MB", flush=True)
    results = []
    for n in range(args.runs):
        out = subprocess.run(
            [sys.executable, __file__, "--run", str(path), "--mode", args.mode],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(
            f"run {n + 1}: {r['entries']} entries in {r['wall']:.2f} s = {r['rate']:,.0f} "
            f"entries/s; CPU main {r['cpu_main']:.2f} s, worker {r['cpu_worker']:.2f} s; "
            f"peak RSS main {r['rss_main'] / 2**20:.0f} MiB, worker "
            f"{r['rss_worker'] / 2**20:.0f} MiB; load average {r['load']:.1f}",
            flush=True,
        )
    rates = [r["rate"] for r in results]
    cpu_rates = [r["entries"] / max(r["cpu_main"], r["cpu_worker"]) for r in results]
    print(
        f"{args.mode}: best {max(rates):,.0f} entries/s, median "
        f"{statistics.median(rates):,.0f} entries/s over {len(rates)} runs (wall clock); "
        f"per CPU second of the busier process: best {max(cpu_rates):,.0f}, median "
        f"{statistics.median(cpu_rates):,.0f} (the rate with a core to each)"
    )


if __name__ == "__main__":
    main()
