"""The co-production report: its pure pieces, its signature, and live versus offline
computation (SQLite and PostgreSQL), including a signed report whose figures lie."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from scambio.ledger.canonical import canonical_json
from scambio.ledger.entry import Entry, Posting
from scambio.ledger.errors import VerificationError
from scambio.ledger.note import Signer
from scambio.reports.coproduction import (
    Directory,
    DirectoryAccount,
    classify,
    decode_directory,
    partition_point,
    partition_point_async,
    reversal_of,
)
from scambio.reports.csvout import COLUMNS, to_csv
from scambio.reports.dates import DateRangeError, check_range
from scambio.reports.live import compute_report
from scambio.reports.offline import check_report
from scambio.reports.pairs import ingest_pairs
from scambio.reports.signing import encode_document, open_document, sign_document
from scambio.store.commands import Appended, Transfer
from scambio.store.export import export_ledger
from scambio.store.ledger import LedgerService, require
from scambio.timebank import people
from scambio.timebank.audit import CLI
from scambio.timebank.context import Timebank

from .conftest import ORIGIN, SIGNER, Clock, new_id
from .test_verify import OTHER

T = "2026-11-25T09:00:00.000000Z"


def entry(index: int, kind: str, legs: list[tuple[str, int]], **refs: Any) -> Entry:
    return Entry(
        v=1,
        ledger=ORIGIN,
        index=index,
        id=f"e{index}",
        kind=kind,
        time=T,
        postings=tuple(Posting(account=a, minutes=m) for a, m in legs),
        memo="",
        refs=refs,
    )


# -- pure pieces -----------------------------------------------------------------------------


def test_partition_points_agree_sync_and_async_even_on_clock_skew() -> None:
    import asyncio

    rng = random.Random(7)
    for _ in range(200):
        size = rng.randint(0, 40)
        times = sorted(f"2026-11-{rng.randint(1, 30):02d}" for _ in range(size))
        # Skew: a few neighbours swapped, as processes with disagreeing clocks would write.
        for _ in range(rng.randint(0, 3)):
            if size > 1:
                i = rng.randrange(size - 1)
                times[i], times[i + 1] = times[i + 1], times[i]
        boundary = f"2026-11-{rng.randint(1, 31):02d}"

        async def at(i: int, times: list[str] = times) -> str:
            return times[i]

        sync = partition_point(size, boundary, times.__getitem__)
        assert asyncio.run(partition_point_async(size, boundary, at)) == sync
        if times == sorted(times):
            assert sync == sum(1 for t in times if t < boundary)


def test_what_counts_as_an_exchange_a_policy_entry_or_neither() -> None:
    settle = entry(5, "transfer", [("m-a", -30), ("m-b", 30)], exchange="x1", area="housing")
    event = classify(settle)
    assert event is not None
    assert (event.kind, event.key, event.payer, event.payee, event.minutes, event.area) == (
        "exchange",
        "exchange:x1",
        "m-a",
        "m-b",
        30,
        "housing",
    )
    hold = entry(3, "hold", [("m-a", -20), ("m-b", 20)], group="g1", zone="municipio-4")
    post = entry(4, "post", [("m-a", -15), ("m-b", 15)], hold=3)
    posted = classify(post, hold)
    assert posted is not None and (posted.key, posted.minutes, posted.zone) == (
        "group:g1",
        15,
        "municipio-4",
    )
    assert classify(post) is None  # a post without its hold says nothing
    grant = entry(6, "transfer", [("sponsor", -60), ("m-a", 60)], rule="grant", policy="p")
    granted = classify(grant)
    assert granted is not None and (granted.kind, granted.key) == ("policy", "grant")
    assert classify(entry(7, "transfer", [("m-a", -1), ("m-b", 1)], rule="other")) is None
    assert classify(entry(8, "transfer", [("m-a", -1), ("m-b", 1)])) is None
    assert classify(hold) is None
    undo = entry(9, "reversal", [("m-b", -30), ("m-a", 30)], reverses=5)
    reversed_ = reversal_of(undo, event)
    assert reversed_ is not None
    assert (reversed_.minutes, reversed_.reversal, reversed_.area) == (-30, True, "housing")
    assert reversal_of(undo, None) is None


def test_date_ranges() -> None:
    assert [d.isoformat() for d in check_range("2026-11-01", "2026-12-01")] == [
        "2026-11-01",
        "2026-12-01",
    ]
    cases = [
        ("2026-11", "2026-12-01", "from must be a date YYYY-MM-DD, got '2026-11'", "from"),
        ("2026-11-01", "2026-02-30", "to '2026-02-30' is not a valid date", "to"),
        ("2026-11-01", "2026-11-01", "to (2026-11-01) must be after from (2026-11-01)", None),
        ("1999-12-31", "2026-01-01", "from must be between 2000-01-01 and 2199-12-31", "from"),
        ("2000-01-01", "2026-01-01", "a report covers at most 3660 days", None),
    ]
    for date_from, date_to, message, field in cases:
        with pytest.raises(DateRangeError) as caught:
            check_range(date_from, date_to)
        assert str(caught.value).startswith(message) and caught.value.field == field


def test_signed_documents_verify_and_any_change_is_caught() -> None:
    report = {"format": "scambio-coproduction-report", "rows": [{"key": "", "n": 3}]}
    document = encode_document(sign_document(report, SIGNER))
    assert open_document(document, SIGNER.verifier()) == report
    altered = msgspec.json.decode(document)
    altered["report"]["rows"][0]["n"] = 4
    with pytest.raises(VerificationError, match="the signature does not verify"):
        open_document(canonical_json(altered), SIGNER.verifier())
    with pytest.raises(VerificationError, match="not the trusted key"):
        open_document(document, OTHER.verifier())
    stranger = Signer.from_seed(ORIGIN, bytes(range(2, 34)))
    forged = sign_document(report, stranger)
    forged["signature"]["vkey"] = SIGNER.verifier().to_string()
    with pytest.raises(VerificationError, match="the signature does not verify"):
        open_document(canonical_json(forged), SIGNER.verifier())
    with pytest.raises(VerificationError, match="exactly the fields report and signature"):
        open_document(b'{"report": {}}', SIGNER.verifier())
    with pytest.raises(VerificationError, match="not a JSON document"):
        open_document(b"{", SIGNER.verifier())
    broken = msgspec.json.decode(document)
    broken["signature"]["value"] = "***"
    with pytest.raises(VerificationError, match="the signature is not base64"):
        open_document(canonical_json(broken), SIGNER.verifier())


def test_the_directory_round_trips_and_its_digest_is_stable() -> None:
    directory = Directory.build(
        [
            DirectoryAccount(account="m-b", zone=None, organisations=[]),
            DirectoryAccount(account="m-a", zone="municipio-6", organisations=["acme"]),
        ],
        [],
    )
    assert [a.account for a in directory.accounts] == ["m-a", "m-b"]
    again = decode_directory(directory.canonical())
    assert again == directory and again.digest() == directory.digest()
    assert directory.canonical() == canonical_json(msgspec.to_builtins(directory))
    with pytest.raises(ValueError, match="not a scambio-directory version 1 document"):
        decode_directory(b'{"format": "x", "version": 1, "accounts": [], "organisations": []}')


# -- live and offline ----------------------------------------------------------------------------


@pytest.fixture
async def tb(ledger: LedgerService) -> AsyncIterator[Timebank]:
    timebank = Timebank.create(ledger, ledger.settings)
    try:
        yield timebank
    finally:
        await timebank.mailer.aclose()


async def small_ledger(tb: Timebank, clock: Clock) -> dict[str, str]:
    """Three members in two zones; exchanges over two days; a grant; a reversal."""
    accounts: dict[str, str] = {}
    for name, zone in (("ada", "municipio-4"), ("bea", "municipio-4"), ("cai", "municipio-6")):
        member = await people.create(
            tb,
            CLI,
            name=name,
            email=None,
            password=None,
            profile=people.clean_profile(tb.zones, {"zone": zone}),
        )
        assert member.account_id is not None
        accounts[name] = member.account_id
    ledger = tb.ledger
    require(await ledger.open_account("sponsor.x", "sponsor"))
    ada, bea, cai = accounts["ada"], accounts["bea"], accounts["cai"]

    def xch(payer: str, payee: str, minutes: int, area: str) -> Transfer:
        refs = {"exchange": new_id(), "area": area}
        return Transfer(f"xch-{new_id()}", payer, payee, minutes, refs=refs)

    require(await ledger.transfer(xch(ada, bea, 40, "housing")))
    clock.advance(days=1)
    require(await ledger.transfer(xch(bea, ada, 20, "housing")))
    mistake = require(await ledger.transfer(xch(cai, ada, 25, "childcare")))
    grant = {"policy": "p1", "policy_version": "v1", "period": "2026-11", "rule": "grant"}
    require(await ledger.transfer(Transfer("pol.1", "sponsor.x", cai, 90, refs=grant)))
    clock.advance(days=1)
    held = {"exchange": "h1", "area": "parenting"}
    require(await ledger.transfer(Transfer("xch-h1", cai, bea, 30, hold=True, refs=held)))
    require(await ledger.post("xch-h1", 10))
    assert isinstance(mistake, Appended)
    require(await ledger.reverse(new_id(), mistake.index, "wrong"))
    return accounts


async def test_live_and_offline_reports_agree_and_a_lying_report_is_caught(
    tb: Timebank, clock: Clock, tmp_path: Path
) -> None:
    await small_ledger(tb, clock)
    ledger = tb.ledger
    # The projection is empty: the slow path reads the history itself.
    slow = await compute_report(ledger.engine, ORIGIN, "2026-11-26", "2026-11-28", generated_at=T)
    await ingest_pairs(ledger.engine, chunk=3)
    fast = await compute_report(ledger.engine, ORIGIN, "2026-11-26", "2026-11-28", generated_at=T)
    assert canonical_json(slow.report) == canonical_json(fast.report)
    total = fast.report["rows"][0]
    # 20 (bea->ada) + 25 (cai->ada) + 10 (posted of 30 held), reversal -25.
    assert (total["minutes_exchanged"], total["exchanges"], total["reversed_minutes"]) == (
        30,
        3,
        25,
    )
    # ada-bea met on the 25th: not new; ada-cai and bea-cai are.
    assert (total["distinct_pairs"], total["new_connections"]) == (3, 2)
    assert total["sponsored_granted_minutes"] == 90
    assert fast.scope.first == 5 and fast.scope.end == fast.scope.size

    export = tmp_path / "ledger.jsonl"
    with export.open("wb") as out:
        await export_ledger(ledger.engine, out, SIGNER.verifier())
    document = encode_document(fast.signed(SIGNER))
    check = check_report(
        document, export, fast.directory, trusted_vkey=SIGNER.verifier().to_string()
    )
    assert check.ok, check.problems
    assert check.describe().startswith("OK: the report for 2026-11-26 to 2026-11-28 is signed")

    # An operator who signs inflated figures is caught by anyone who recomputes.
    inflated = msgspec.json.decode(canonical_json(fast.report))
    inflated["rows"][0]["minutes_exchanged"] = 300
    lying = encode_document(sign_document(inflated, SIGNER))
    check = check_report(lying, export, fast.directory)
    assert check.problems == ["row total: minutes_exchanged is 300, recomputed 30"]
    assert check.describe() == "MISMATCH: row total: minutes_exchanged is 300, recomputed 30"

    # So is a report computed with another directory than the one published.
    other = Directory.build([], [])
    check = check_report(document, export, other)
    assert any(p.startswith("directory: report says") for p in check.problems)

    # A report for another ledger, or signed by another key, is refused outright.
    with pytest.raises(VerificationError, match="not the trusted key"):
        check_report(encode_document(fast.signed(OTHER)), export, fast.directory)


async def test_the_csv_view_has_a_line_per_row(tb: Timebank, clock: Clock) -> None:
    await small_ledger(tb, clock)
    computed = await compute_report(
        tb.ledger.engine, ORIGIN, "2026-11-01", "2026-12-01", generated_at=T
    )
    lines = to_csv(computed.report).splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert len(lines) == 1 + len(computed.report["rows"])
    root = computed.scope.root.hex()
    assert lines[1].startswith(
        f"{ORIGIN},2026-11-01,2026-12-01,{computed.scope.size},{root},total,,,"
    )
    housing = next(line for line in lines if ",area,housing," in line)
    assert housing.split(",")[8] == "60"  # minutes_exchanged: 40 + 20
    # The reversal cancels the childcare exchange: its net figure is zero.
    childcare = next(line for line in lines if ",area,childcare," in line)
    assert childcare.split(",")[8] == "0"
    assert base64.b64decode(computed.signed(SIGNER)["signature"]["value"])
