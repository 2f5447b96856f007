"""Search latency over a large board of listings: filters, full text, cursors.

    python bench/search.py [--db sqlite|postgres|both] [--listings 100000]
                           [--members 5000] [--samples 300] [--seed 1] [--window N]

Fills a fresh database with `--listings` offers and requests (bulk inserts of realistic
rows: titles and descriptions drawn with a Zipf-like skew from an Italian and English
vocabulary, random areas, zones, modes, tags and weekly slots; about 10% paused, expired
or closed; owners among `--members` active members, a few suspended), then times
`timebank.search.search` as the API calls it (one pooled read transaction per query,
page size 20) for a mix of queries, each kind `--samples` times with random parameters:

- filters: none (newest first); kind + area; zone + kind + weekday; tag; one member's;
  a second page through a cursor;
- text: a common word, a rare word, two words, a phrase, `a or b`, a word with an
  exclusion, a word with filters, hostile text, and a second page of a text search.

It prints the median and p99 per kind and over each group. The target (issue 3): under
50 ms median for 100,000 listings on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text

from common import backends, fresh_database, ms, print_facts, quantiles
from scambio.ledger.entry import format_time
from scambio.store.db import make_engine
from scambio.store.listings_tables import listings
from scambio.store.people_tables import members
from scambio.timebank import search as search_module
from scambio.timebank.areas import AREA_IDS
from scambio.timebank.db import reading
from scambio.timebank.listings import DAYS
from scambio.timebank.search import Filters, search
from scambio.timebank.zones import MILAN_MUNICIPI

CHUNK = 5000
AREAS = sorted(AREA_IDS)
ZONES = [zone.id for zone in MILAN_MUNICIPI]
WORDS = """
aiuto compiti matematica italiano inglese scuola bambini bambino figlia figlio famiglia
spesa anziani compagnia passeggiata giardino cucina ricette pane torta pulizie casa
trasloco mobili montaggio bicicletta riparazione computer telefono internet email
curriculum lavoro colloquio formazione corso lezione musica chitarra pianoforte canto
yoga ginnastica salute benessere medico farmacia accompagnamento ospedale visita
babysitting asilo nido genitori allattamento gravidanza parto sonno gioco lettura
storie biblioteca libri fotografia video sartoria cucito maglia orto piante fiori
animali cane gatto veterinario condominio bollette documenti burocrazia permesso
traduzione arabo spagnolo francese cinese rumeno ucraino tigrino amarico portoghese
help homework maths school children child family shopping elderly company walk garden
cooking recipes bread cake cleaning home moving furniture assembly bike repair phone
laptop resume job interview training course lesson music guitar piano singing fitness
health wellbeing doctor pharmacy hospital babysitter parents pregnancy sleep play
reading stories library books photography sewing knitting plants flowers pets dog cat
paperwork translation english spanish french chinese mentoring coaching tutoring excel
""".split()  # noqa: SIM905 - a word list reads best as text
RARE = ["violoncello", "origami", "calligrafia", "apicoltura", "kintsugi", "esperanto"]


def zipf_word(rng: random.Random) -> str:
    """Common words often, rare words seldom (rank ~ 1/n)."""
    index = min(int(len(WORDS) * rng.random() ** 2.5), len(WORDS) - 1)
    return WORDS[index]


def sentence(rng: random.Random, low: int, high: int) -> str:
    words = [zipf_word(rng) for _ in range(rng.randint(low, high))]
    if rng.random() < 0.01:
        words.append(rng.choice(RARE))
    return " ".join(words)


def slots(rng: random.Random) -> tuple[str, int]:
    chosen = rng.sample(DAYS, rng.choice([0, 0, 1, 1, 2, 3]))
    parts, mask = [], 0
    for day in sorted(chosen, key=DAYS.index):
        start = rng.randint(8, 19)
        parts.append(f'{{"day":"{day}","end":"{start + 2:02}:00","start":"{start:02}:00"}}')
        mask |= 1 << DAYS.index(day)
    return "[" + ",".join(parts) + "]", mask


async def fill(url: str, n_listings: int, n_members: int, seed: int) -> list[str]:
    """Insert members and listings in bulk; return the member ids."""
    rng = random.Random(seed)
    now = time.time()
    engine = make_engine(url, null_pool=True)
    member_ids = [f"{i:016x}" for i in range(1, n_members + 1)]
    at = format_time_s(now - 400 * 86400)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(members),
                [
                    {
                        "id": member_id,
                        "name": f"Member {i}",
                        "status": "suspended" if i % 200 == 0 else "active",
                        "role": "member",
                        "zone": rng.choice(ZONES),
                        "created_at": at,
                        "updated_at": at,
                    }
                    for i, member_id in enumerate(member_ids, 1)
                ],
            )
        started = time.perf_counter()
        for base in range(0, n_listings, CHUNK):
            rows = []
            for i in range(base, min(base + CHUNK, n_listings)):
                created = now - 300 * 86400 * (1 - i / n_listings)
                roll = rng.random()
                status = "active"
                expires = created + 60 * 86400
                if roll < 0.03:
                    status = "paused"
                elif roll < 0.06:
                    status = "closed"
                elif roll < 0.10:
                    status = "expired"
                else:
                    expires = now + rng.randint(1, 60) * 86400
                slot_json, mask = slots(rng)
                tags = sorted({zipf_word(rng) for _ in range(rng.randint(0, 3))})
                rows.append(
                    {
                        "id": f"{rng.getrandbits(64):016x}",
                        "kind": "offer" if rng.random() < 0.6 else "request",
                        "resource": "service",
                        "owner_member_id": rng.choice(member_ids),
                        "title": sentence(rng, 2, 6).capitalize(),
                        "description": sentence(rng, 10, 40),
                        "area": rng.choice(AREAS),
                        "tags": "[" + ",".join(f'"{t}"' for t in tags) + "]",
                        "zone": rng.choice(ZONES),
                        "mode": rng.choice(["in_person", "in_person", "remote", "either"]),
                        "availability_slots": slot_json,
                        "slot_days": mask,
                        "status": status,
                        "created_at": format_time_s(created),
                        "updated_at": format_time_s(created),
                        "expires_at": format_time_s(expires),
                    }
                )
            async with engine.begin() as conn:
                await conn.execute(insert(listings), rows)
        elapsed = time.perf_counter() - started
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text("ANALYZE"))
            else:
                await conn.execute(
                    text("INSERT INTO listings_fts(listings_fts) VALUES ('optimize')")
                )
                await conn.execute(text("ANALYZE"))
        print(f"  filled {n_listings:,} listings in {elapsed:.1f} s", flush=True)
    finally:
        await engine.dispose()
    return member_ids


def format_time_s(seconds: float) -> str:
    return format_time(datetime.fromtimestamp(seconds, UTC))


Query = Callable[[random.Random], tuple[Filters, bool]]


def queries(member_ids: list[str]) -> dict[str, tuple[str, Query]]:
    """name -> (group, make): make returns the filters and whether to fetch page two."""

    def word(rng: random.Random) -> str:
        return zipf_word(rng)

    return {
        "newest": ("filters", lambda rng: (Filters(), False)),
        "kind+area": (
            "filters",
            lambda rng: (
                Filters(kind=rng.choice(["offer", "request"]), area=rng.choice(AREAS)),
                False,
            ),
        ),
        "zone+kind+day": (
            "filters",
            lambda rng: (
                Filters(zone=rng.choice(ZONES), kind="offer", days=(rng.choice(DAYS),)),
                False,
            ),
        ),
        "tag": ("filters", lambda rng: (Filters(tag=word(rng)), False)),
        "member": ("filters", lambda rng: (Filters(member=rng.choice(member_ids)), False)),
        "page 2": (
            "filters",
            lambda rng: (Filters(area=rng.choice(AREAS), mode="remote"), True),
        ),
        "common word": ("text", lambda rng: (Filters(text=rng.choice(WORDS[:20])), False)),
        "rare word": ("text", lambda rng: (Filters(text=rng.choice(RARE)), False)),
        "two words": ("text", lambda rng: (Filters(text=f"{word(rng)} {word(rng)}"), False)),
        "phrase": ("text", lambda rng: (Filters(text=f'"{word(rng)} {word(rng)}"'), False)),
        "a or b": ("text", lambda rng: (Filters(text=f"{word(rng)} or {word(rng)}"), False)),
        "word -word": ("text", lambda rng: (Filters(text=f"{word(rng)} -{word(rng)}"), False)),
        "word+filters": (
            "text",
            lambda rng: (
                Filters(text=word(rng), zone=rng.choice(ZONES), kind="offer"),
                False,
            ),
        ),
        "hostile": (
            "text",
            lambda rng: (Filters(text=rng.choice(['"', "NEAR(", "AND OR", "*", "- -"])), False),
        ),
        "text page 2": ("text", lambda rng: (Filters(text=word(rng)), True)),
    }


async def measure(url: str, member_ids: list[str], samples: int, seed: int) -> None:
    engine = make_engine(url)
    rng = random.Random(seed)
    now = format_time_s(time.time())
    groups: dict[str, list[float]] = {}
    try:
        # Warm the pool and the caches once.
        async with reading(engine) as conn:
            await search(conn, Filters(), now=now)
        print(f"  {'query':<16}{'median':>12}{'p99':>12}{'rows/page':>11}")
        for name, (group, make) in queries(member_ids).items():
            times: list[float] = []
            sizes = 0
            for _ in range(samples):
                filters, second = make(rng)
                cursor = None
                if second:
                    async with reading(engine) as conn:
                        first = await search(conn, filters, now=now, limit=20)
                    cursor = first.next_cursor
                started = time.perf_counter()
                async with reading(engine) as conn:
                    page = await search(conn, filters, now=now, limit=20, cursor=cursor)
                times.append(time.perf_counter() - started)
                sizes += len(page.items)
            median, p99 = quantiles(times)
            groups.setdefault(group, []).extend(times)
            print(f"  {name:<16}{ms(median):>12}{ms(p99):>12}{sizes / samples:>11.1f}", flush=True)
        for group, times in groups.items():
            median, p99 = quantiles(times)
            print(f"  all {group:<12}{ms(median):>12}{ms(p99):>12}")
    finally:
        await engine.dispose()


async def run(args: Any) -> None:
    for kind in backends(args.db):
        print(f"\n## {kind}: {args.listings:,} listings, {args.samples} samples per query")
        async with fresh_database(kind) as url:
            member_ids = await fill(url, args.listings, args.members, args.seed)
            await measure(url, member_ids, args.samples, args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--window", type=int, default=None, help="override search.RANK_WINDOW (to compare)"
    )
    args = parser.parse_args()
    if args.window is not None:
        search_module.RANK_WINDOW = args.window
    print_facts()
    print(f"# rank window: {search_module.RANK_WINDOW}")
    asyncio.run(run(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
