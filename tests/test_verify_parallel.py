"""The two-process verifier: same reports, same errors, no stray worker process.

Every export here is checked both ways, `verify_export_file(..., parallel=True)` against
`parallel=False` (the single-process verifier, tested in test_verify.py): a valid export
must give the same report without the fast path giving up, and every tampered one the very
same error (reason, index, line number), with the fast path having refused it itself.
Exports are built from the pure core, with small read chunks so that runs of entries,
checkpoint lines and chunk boundaries fall everywhere.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from scambio.ledger import merkle, verify_parallel
from scambio.ledger.entry import AccountSpec, Entry, Posting, encode_entry
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Checkpoint, Signer, sign_checkpoint
from scambio.ledger.rules import LedgerState, apply_entry
from scambio.ledger.verify import CheckpointLine, ExportHeader, VerifyReport, verify_export_file

from .conftest import ORIGIN, SIGNER

VKEY = SIGNER.verifier().to_string()
OTHER = Signer.from_seed(ORIGIN, bytes(range(1, 33)))
T0 = "2026-11-25T09:00:00.000000Z"
T1 = "2026-11-25T10:00:00.000000Z"
_json = msgspec.json.Encoder(order="sorted")


# ---------------------------------------------------------------------------------------
# Building exports


def _entry(
    index: int,
    kind: str,
    legs: Sequence[tuple[str, int]] = (),
    *,
    id: str | None = None,
    refs: dict[str, str | int] | None = None,
    time: str = T0,
    memo: str = "help",
    account: AccountSpec | None = None,
) -> Entry:
    return Entry(
        v=1,
        ledger=ORIGIN,
        index=index,
        id=id or f"e{index}-{random.Random(index).getrandbits(64):016x}",
        kind=kind,
        time=time,
        postings=tuple(Posting(account=a, minutes=m) for a, m in legs),
        memo=memo,
        refs=refs or {},
        account=account,
    )


def _account(index: int, name: str, low: int | None = -600) -> Entry:
    spec = AccountSpec(id=name, kind="member", min_balance=low, max_balance=None)
    return _entry(index, "account", id=f"account:{name}", memo="", account=spec)


def _transfer(index: int, payer: str, payee: str, minutes: int, **kw: Any) -> Entry:
    return _entry(index, "transfer", [(payer, -minutes), (payee, minutes)], **kw)


def ledger_log(count: int, seed: int = 1) -> list[Entry]:
    """A valid log of every kind of entry: accounts opened along the way, transfers,
    holds posted, voided and left open, and reversals of plain transfers and posts."""
    rnd = random.Random(seed)
    state = LedgerState()
    log: list[Entry] = []
    names: list[str] = []
    holds: list[Entry] = []
    movable: list[Entry] = []

    def add(entry: Entry) -> bool:
        try:
            apply_entry(state, entry)
        except RuleViolation:
            return False
        log.append(entry)
        return True

    while len(log) < count:
        i = len(log)
        roll = rnd.random()
        if roll < 0.03 or len(names) < 4:
            name = f"m{len(names)}"
            add(_account(i, name, rnd.choice([-600, 0, None])))
            names.append(name)
        elif roll < 0.06 and holds:
            hold = holds.pop(rnd.randrange(len(holds)))
            if rnd.random() < 0.6:
                legs = [(p.account, p.minutes) for p in hold.postings]
                post = _entry(i, "post", legs, id=f"{hold.id}:post", refs={"hold": hold.index})
                if add(post):
                    movable.append(post)
            else:
                refs: dict[str, str | int] = {"hold": hold.index, "reason": "voided"}
                add(_entry(i, "void", id=f"{hold.id}:void", refs=refs))
        elif roll < 0.09 and movable:
            target = movable.pop(rnd.randrange(len(movable)))
            legs = [(p.account, -p.minutes) for p in target.postings]
            add(_entry(i, "reversal", legs, refs={"reverses": target.index}))
        else:
            payer, payee = rnd.sample(names, 2)
            entry = _transfer(i, payer, payee, rnd.choice([5, 15, 30, 60, 90]), memo="x" * i)
            if roll < 0.12:
                entry = msgspec.structs.replace(entry, kind="hold")
                if add(entry):
                    holds.append(entry)
            elif add(entry):
                movable.append(entry)
    return log


def build_export(
    entries: Sequence[Entry | bytes],
    every: int = 37,
    *,
    signer: Signer = SIGNER,
    header_size: int | None = None,
) -> list[bytes]:
    """Export lines: a signed checkpoint at 0, after every `every` entries and at the end."""
    tree = merkle.CompactRange()
    body: list[bytes] = []

    def checkpoint() -> str:
        note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), signer)
        body.append(_json.encode(CheckpointLine(note)) + b"\n")
        return note

    last = checkpoint()
    for item in entries:
        data = item if isinstance(item, bytes) else encode_entry(item)
        body.append(data + b"\n")
        tree.append(merkle.leaf_hash(data))
        if tree.size % every == 0 or tree.size == len(entries):
            last = checkpoint()
    header = ExportHeader(
        format="scambio-ledger-export",
        version=1,
        origin=ORIGIN,
        vkey=signer.verifier().to_string(),
        size=tree.size if header_size is None else header_size,
        checkpoint=last,
    )
    return [_json.encode(header) + b"\n", *body]


def entry_line(lines: list[bytes], index: int) -> int:
    """Position in `lines` of entry `index`."""
    seen = -1
    for position, line in enumerate(lines[1:], 1):
        if not line.startswith(b'{"checkpoint":'):
            seen += 1
            if seen == index:
                return position
    raise AssertionError(f"no entry {index}")


LOG = ledger_log(700)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read the file in odd small pieces, so that chunk boundaries fall everywhere."""
    monkeypatch.setattr(verify_parallel, "_CHUNK", 4099)


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[verify_parallel.WorkerProcess]]:
    """Every worker process started meanwhile; each must have exited by the end."""
    started: list[verify_parallel.WorkerProcess] = []
    original = verify_parallel.WorkerProcess.__init__

    def init(self: verify_parallel.WorkerProcess) -> None:
        original(self)
        started.append(self)

    monkeypatch.setattr(verify_parallel.WorkerProcess, "__init__", init)
    yield started
    for worker in started:
        assert worker.proc.returncode is not None, "a worker process was left running"
        with pytest.raises(ProcessLookupError):
            os.kill(worker.pid, 0)  # exited and reaped


def write(tmp_path: Path, lines: Sequence[bytes], name: str = "export.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join(lines))
    return path


def both_ways(path: Path, **kw: Any) -> tuple[VerifyReport, list[str]]:
    """Verify in parallel and serially; the reports must be equal. Returns the parallel
    report and the fast path's reasons for giving up (none, for a valid export)."""
    fallbacks: list[str] = []
    report = verify_parallel.verify_file(path, min_entries=0, on_fallback=fallbacks.append, **kw)
    assert report == verify_export_file(path, parallel=False, **kw)
    return report, fallbacks


def same_error(path: Path, **kw: Any) -> VerificationError:
    """Both verifiers must fail alike, the fast path having refused the export itself."""
    with pytest.raises(VerificationError) as serial:
        verify_export_file(path, parallel=False, **kw)
    fallbacks: list[str] = []
    with pytest.raises(VerificationError) as parallel:
        verify_parallel.verify_file(path, min_entries=0, on_fallback=fallbacks.append, **kw)
    assert (str(parallel.value), parallel.value.index) == (str(serial.value), serial.value.index)
    assert len(fallbacks) == 1
    return parallel.value


# ---------------------------------------------------------------------------------------
# Valid exports


@pytest.mark.usefixtures("small_chunks")
def test_a_valid_export_gives_the_serial_report(
    tmp_path: Path, workers: list[verify_parallel.WorkerProcess]
) -> None:
    path = write(tmp_path, build_export(LOG))
    report, fallbacks = both_ways(path, trusted_vkey=VKEY)
    assert fallbacks == []
    assert report.entries == len(LOG) and report.key_pinned
    assert report.checkpoints == 2 + len(LOG) // 37
    kinds = {e.kind for e in LOG}
    assert kinds == {"account", "transfer", "hold", "post", "void", "reversal"}
    assert report.holds_open > 0
    assert len(workers) == 1


def test_a_valid_export_with_the_default_chunks(tmp_path: Path) -> None:
    path = write(tmp_path, build_export(LOG, every=1000))
    assert both_ways(path)[1] == []


@pytest.mark.usefixtures("small_chunks")
def test_a_last_line_without_newline_is_still_a_line(tmp_path: Path) -> None:
    lines = build_export(LOG[:50])
    lines[-1] = lines[-1].rstrip(b"\n")
    report, fallbacks = both_ways(write(tmp_path, lines))
    assert report.entries == 50 and fallbacks == []


def test_an_empty_ledger(tmp_path: Path) -> None:
    report, fallbacks = both_ways(write(tmp_path, build_export([])))
    assert (report.entries, report.checkpoints, report.root) == (0, 1, merkle.EMPTY_ROOT)
    assert fallbacks == []


def test_reversals_of_compactly_kept_transfers(tmp_path: Path) -> None:
    entries = [
        _account(0, "anna", 0),
        _account(1, "marco"),
        _transfer(2, "marco", "anna", 90),
        _transfer(3, "anna", "marco", 30),
        _entry(4, "reversal", [("anna", 30), ("marco", -30)], refs={"reverses": 3}),
        _entry(5, "reversal", [("marco", 90), ("anna", -90)], refs={"reverses": 2}),
    ]
    report, fallbacks = both_ways(write(tmp_path, build_export(entries, every=2)))
    assert fallbacks == []
    assert report.accounts["anna"].posted == report.accounts["marco"].posted == 0


def test_small_exports_stay_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> None:
        raise AssertionError("no worker for a small export")

    monkeypatch.setattr(verify_parallel.WorkerProcess, "__init__", refuse)
    path = write(tmp_path, build_export(LOG))
    assert verify_export_file(path).entries == len(LOG)
    fallbacks: list[str] = []
    verify_parallel.verify_file(path, on_fallback=fallbacks.append)
    assert fallbacks == ["small export"]


def test_large_exports_use_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: list[verify_parallel.WorkerProcess]
) -> None:
    monkeypatch.setattr(verify_parallel, "PARALLEL_MIN_ENTRIES", len(LOG))
    path = write(tmp_path, build_export(LOG))
    assert verify_export_file(path).entries == len(LOG)
    assert len(workers) == 1
    assert verify_export_file(path, parallel=False).entries == len(LOG)
    assert len(workers) == 1


@pytest.mark.parametrize("seed", range(6))
def test_random_logs_agree(tmp_path: Path, seed: int) -> None:
    """Random transfers, valid or breaking a rule, among accounts with tight limits."""
    rnd = random.Random(seed)
    log: list[Entry] = [_account(0, "a", -50), _account(1, "b", 0), _account(2, "c", None)]
    while len(log) < 120:
        i = len(log)
        payer, payee = rnd.choice(["a", "b", "c", "zz"]), rnd.choice(["a", "b", "c"])
        minutes = rnd.choice([1, 5, 20, 45])
        if rnd.random() < 0.97:
            log.append(_transfer(i, payer, payee, minutes))
        else:
            log.append(_transfer(i, payer, payee, minutes, id="-bad"))
    path = write(tmp_path, build_export(log, every=rnd.choice([1, 7, 50])))
    try:
        verify_export_file(path, parallel=False)
    except VerificationError:
        same_error(path)
    else:
        assert both_ways(path)[1] == []


# ---------------------------------------------------------------------------------------
# Tampered exports fail exactly as they do in one process

Edit = Callable[[list[bytes]], list[bytes]]


def _at(index: int, change: Callable[[bytes], bytes]) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        at = entry_line(lines, index)
        lines[at] = change(lines[at])
        return lines

    return edit


def _swap(lines: list[bytes]) -> list[bytes]:
    a, b = entry_line(lines, 100), entry_line(lines, 101)
    lines[a], lines[b] = lines[b], lines[a]
    return lines


def _remove(lines: list[bytes]) -> list[bytes]:
    del lines[entry_line(lines, 200)]
    return lines


def _blank(lines: list[bytes]) -> list[bytes]:
    lines.insert(entry_line(lines, 300), b"\n")
    return lines


def _truncate_mid_line(lines: list[bytes]) -> list[bytes]:
    at = entry_line(lines, 650)
    return [*lines[:at], lines[at][:40]]


def _truncate_between_lines(lines: list[bytes]) -> list[bytes]:
    return lines[: entry_line(lines, 650)]


def _forge_checkpoint(lines: list[bytes]) -> list[bytes]:
    at = entry_line(lines, 73) + 1  # the checkpoint at size 74
    note = msgspec.json.decode(lines[at], type=CheckpointLine).checkpoint
    lines[at] = _json.encode(CheckpointLine(note.replace("\n74\n", "\n75\n"))) + b"\n"
    return lines


def _move_checkpoint(lines: list[bytes]) -> list[bytes]:
    at = entry_line(lines, 73) + 1
    checkpoint = lines.pop(at)
    lines.insert(entry_line(lines, 80), checkpoint)
    return lines


def _drop_checkpoint_lines_then_alter(lines: list[bytes]) -> list[bytes]:
    head, *body = lines
    lines = [head, *(line for line in body if not line.startswith(b'{"checkpoint":'))]
    return _at(500, lambda line: line.replace(b'"memo":"', b'"memo":"X', 1))(lines)


def _bad_checkpoint_json(lines: list[bytes]) -> list[bytes]:
    lines[entry_line(lines, 73) + 1] = b'{"checkpoint": 7}\n'
    return lines


def _swap_amount(line: bytes) -> bytes:
    entry = msgspec.json.decode(line, type=Entry)
    legs = tuple(Posting(p.account, p.minutes * 2) for p in entry.postings)
    return encode_entry(msgspec.structs.replace(entry, postings=legs)) + b"\n"


TRANSFER = next(e.index for e in LOG[400:] if e.kind == "transfer")
ACCOUNT = next(e.index for e in LOG[300:] if e.kind == "account")

TAMPERS: dict[str, Edit] = {
    "non-canonical": _at(123, lambda line: line.replace(b'{"id":', b'{ "id":')),
    "altered amounts": _at(TRANSFER, _swap_amount),
    "broken json": _at(222, lambda line: line.replace(b'"memo"', b'"memo', 1)),
    "unknown field": _at(222, lambda line: line.replace(b'"memo"', b'"meno"', 1)),
    "crlf": _at(222, lambda line: line.rstrip(b"\n") + b"\r\n"),
    "swapped lines": _swap,
    "removed line": _remove,
    "blank line": _blank,
    "two entries on a line": _at(5, lambda line: line.rstrip(b"\n") + b" " + line),
    "truncated mid-line": _truncate_mid_line,
    "truncated between lines": _truncate_between_lines,
    "forged checkpoint": _forge_checkpoint,
    "moved checkpoint": _move_checkpoint,
    "bad checkpoint json": _bad_checkpoint_json,
    "altered under the header only": _drop_checkpoint_lines_then_alter,
    "altered account line": _at(ACCOUNT, lambda line: line.replace(b'"member"', b'"pool"')),
}


@pytest.mark.usefixtures("small_chunks")
@pytest.mark.parametrize("name", TAMPERS)
def test_a_tampered_export_fails_as_in_one_process(
    tmp_path: Path, name: str, workers: list[verify_parallel.WorkerProcess]
) -> None:
    lines = TAMPERS[name](build_export(LOG))
    same_error(write(tmp_path, lines))


def _signed(tmp_path: Path, entries: Sequence[Entry | bytes], **kw: Any) -> VerificationError:
    return same_error(write(tmp_path, build_export(entries, **kw)))


def _replaced(index: int, entry: Entry | bytes) -> list[Entry | bytes]:
    entries: list[Entry | bytes] = [*LOG]
    entries[index] = entry
    return entries


def _plain_transfer(index: int) -> Entry:
    return next(e for e in LOG[index:] if e.kind == "transfer" and not e.refs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "-bad"}, "breaks rule invalid-id"),
        ({"id": "x" * 129}, "breaks rule invalid-id"),
        ({"id": 'quote"d'}, "breaks rule invalid-id"),
        ({"time": "2026-11-25 09:00"}, "breaks rule invalid-entry: time"),
        ({"memo": "m" * 1001}, "breaks rule invalid-memo"),
        ({"ledger": "elsewhere.example/x"}, "ledger field is 'elsewhere.example/x'"),
        ({"v": 2}, "format version 2 is not 1"),
        ({"refs": {"hold": 1}}, "breaks rule invalid-entry: unexpected refs"),
        ({"kind": "gift"}, "breaks rule invalid-entry: unknown entry kind"),
    ],
)
def test_a_signed_entry_that_breaks_a_check_fails_alike(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    original = _plain_transfer(400)
    bad = msgspec.structs.replace(original, **change)
    error = _signed(tmp_path, _replaced(original.index, encode_entry(bad)))
    assert error.index == original.index and message in error.reason


def test_memo_lengths_count_characters_not_bytes(tmp_path: Path) -> None:
    """Lines longer than the memo limit make the worker decode their memos."""
    original = _plain_transfer(400)
    longest = msgspec.structs.replace(original, memo="\u00e8\n" * 500)  # 1000 chars, 1500+ bytes
    report, fallbacks = both_ways(write(tmp_path, build_export(_replaced(original.index, longest))))
    assert fallbacks == [] and report.entries == len(LOG)
    too_long = msgspec.structs.replace(original, memo="\u00e8" * 1001)
    error = _signed(tmp_path, _replaced(original.index, too_long))
    assert error.index == original.index and "breaks rule invalid-memo" in error.reason


def test_a_duplicate_id_fails_alike(tmp_path: Path) -> None:
    original = _plain_transfer(500)
    duplicate = msgspec.structs.replace(original, id=LOG[100].id)
    error = _signed(tmp_path, _replaced(original.index, duplicate))
    assert "is already used by an earlier entry" in error.reason


def test_a_duplicate_account_entry_id_fails_alike(tmp_path: Path) -> None:
    account = LOG[ACCOUNT]
    duplicate = msgspec.structs.replace(account, id=LOG[1].id)
    error = _signed(tmp_path, _replaced(ACCOUNT, duplicate))
    assert error.index == ACCOUNT and "already used" in error.reason


def test_an_id_like_string_elsewhere_does_not_count_as_an_id(tmp_path: Path) -> None:
    """A memo quoting an id key is escaped in canonical JSON, so it is no second id."""
    original = _plain_transfer(450)
    quoting = msgspec.structs.replace(original, memo=f'"id":"{LOG[3].id}","index":')
    report, fallbacks = both_ways(write(tmp_path, build_export(_replaced(original.index, quoting))))
    assert fallbacks == [] and report.entries == len(LOG)


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([("m0", -(10**6)), ("m1", 10**6)], "breaks rule limit-exceeded"),
        ([("m0", -5), ("nobody", 5)], "breaks rule unknown-account"),
        ([("m0", -5), ("m1", 6)], "breaks rule unbalanced"),
        ([("m0", -5), ("m0", 5)], "appears twice"),
        ([("m0", 0), ("m1", 0)], "is zero"),
    ],
)
def test_a_signed_rule_violation_fails_alike(
    tmp_path: Path, legs: list[tuple[str, int]], message: str
) -> None:
    original = _plain_transfer(600)
    bad = _entry(original.index, "transfer", legs, id=original.id)
    assert message in _signed(tmp_path, _replaced(original.index, bad)).reason


def test_a_second_reversal_of_a_compact_transfer_fails_alike(tmp_path: Path) -> None:
    entries: list[Entry | bytes] = [
        _account(0, "anna", 0),
        _account(1, "marco"),
        _transfer(2, "marco", "anna", 90),
        _entry(3, "reversal", [("marco", 90), ("anna", -90)], refs={"reverses": 2}),
        _entry(4, "reversal", [("marco", 90), ("anna", -90)], refs={"reverses": 2}),
    ]
    assert "breaks rule already-reversed" in _signed(tmp_path, entries).reason
    entries[4] = _entry(4, "reversal", [("marco", 9), ("anna", -9)], refs={"reverses": 2})
    entries[3] = _transfer(3, "anna", "marco", 1)
    assert "not the negation of entry 2" in _signed(tmp_path, entries).reason


def test_header_problems_fail_alike(tmp_path: Path) -> None:
    lines = build_export(LOG)
    same_error(write(tmp_path, lines), trusted_vkey=OTHER.verifier().to_string())
    same_error(write(tmp_path, build_export(LOG, header_size=5)))
    stale = build_export(LOG[:74])[0]
    same_error(write(tmp_path, [stale, *lines[1:]]))
    same_error(write(tmp_path, [b"not a header\n", *lines[1:]]))
    same_error(write(tmp_path, build_export(LOG, signer=OTHER)), trusted_vkey=VKEY)


def test_entries_beyond_the_last_checkpoint_fail_alike(tmp_path: Path) -> None:
    lines = build_export(LOG[:74])
    lines.append(encode_entry(LOG[74]) + b"\n")
    same_error(write(tmp_path, lines))


# ---------------------------------------------------------------------------------------
# The worker


def test_extend_frontier_is_compact_range_append() -> None:
    rnd = random.Random(7)
    for trial in range(200):
        tree = merkle.CompactRange()
        frontier: list[bytes] = []
        for step in range(rnd.randint(1, 6)):
            leaves = [
                merkle.leaf_hash(b"%d %d %d" % (trial, step, i)) for i in range(rnd.randint(0, 70))
            ]
            given = list(leaves)
            for leaf in leaves:
                tree.append(leaf)
            verify_parallel.extend_frontier(frontier, tree.size - len(leaves), leaves)
            assert leaves == given  # the caller's list is left alone
            assert frontier == list(tree.hashes)


def _run_worker(data: bytes, pieces: Iterator[int]) -> bytes:
    """Run `worker_main` in this process, fed `data` through a pipe in the given pieces."""
    inp_r, inp_w = os.pipe()
    out_r, out_w = os.pipe()

    def feed() -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(inp_w, view[: next(pieces)]) :]
        except BrokenPipeError:
            pass  # the worker stopped reading: it has refused the input
        finally:
            os.close(inp_w)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert verify_parallel.worker_main(inp_r, out_w) == 0
    finally:
        os.close(inp_r)
        os.close(out_w)
        feeder.join(timeout=60)
    with os.fdopen(out_r, "rb") as answer:
        return answer.read()


def test_the_worker_takes_its_input_in_any_pieces() -> None:
    data = b"".join(build_export(LOG, every=11))
    tree = merkle.CompactRange()
    for entry in LOG:
        tree.append(merkle.leaf_hash(encode_entry(entry)))
    checkpoints = 2 + len(LOG) // 11
    expected = b"E" + len(LOG).to_bytes(8, "big") + checkpoints.to_bytes(8, "big") + tree.root()
    rnd = random.Random(3)
    for sizes in ([1 << 20], [1, 2, 3, 500, 7], [rnd.randint(1, 5000) for _ in range(50)]):
        assert _run_worker(data, iter(sizes * 10**6)) == expected
    assert _run_worker(data.rstrip(b"\n"), iter([999] * 10**6)) == expected


def test_the_worker_names_what_it_refuses() -> None:
    lines = build_export(LOG)
    forged = _forge_checkpoint(list(lines))
    answer = _run_worker(b"".join(forged), iter([1 << 16] * 10**6))
    assert answer.startswith(b"Xcheckpoint line: ") and b"invalid signature" in answer
    duplicate = msgspec.structs.replace(LOG[10], id=LOG[9].id)
    lines[entry_line(lines, 10)] = encode_entry(duplicate) + b"\n"
    answer = _run_worker(b"".join(lines), iter([1 << 16] * 10**6))
    assert answer == b"Xan entry id is invalid or used twice"
    assert _run_worker(b"", iter([1])) == b"Xno header"


def test_the_worker_exits_when_its_input_ends(tmp_path: Path) -> None:
    """A verifier that dies leaves the worker at end of file: it exits by itself."""
    worker = verify_parallel.WorkerProcess()
    try:
        worker.send(b"".join(build_export(LOG[:20])))
        assert worker.proc.stdin is not None
        worker.proc.stdin.close()
        assert worker.proc.wait(timeout=60) == 0
    finally:
        worker.close()
    worker.close()  # idempotent


@pytest.mark.usefixtures("small_chunks")
def test_ctrl_c_stops_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: list[verify_parallel.WorkerProcess]
) -> None:
    path = write(tmp_path, build_export(LOG))
    calls = 0
    replay_chunk = verify_parallel._replay_chunk

    def interrupted(replay: Any, chunk: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            assert workers[0].proc.poll() is None  # the worker is running
            raise KeyboardInterrupt
        replay_chunk(replay, chunk)

    monkeypatch.setattr(verify_parallel, "_replay_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        verify_export_file(path, parallel=True)
    assert len(workers) == 1  # and the fixture checks that it has exited


@pytest.mark.usefixtures("small_chunks")
def test_a_worker_that_dies_is_replaced_by_the_serial_verifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: list[verify_parallel.WorkerProcess]
) -> None:
    path = write(tmp_path, build_export(LOG))
    replay_chunk = verify_parallel._replay_chunk

    def kill_worker(replay: Any, chunk: bytes) -> None:
        workers[0].proc.kill()
        replay_chunk(replay, chunk)

    monkeypatch.setattr(verify_parallel, "_replay_chunk", kill_worker)
    report, fallbacks = both_ways(path)
    assert report.entries == len(LOG)
    assert len(fallbacks) == 1 and "worker" in fallbacks[0]


def test_a_worker_that_cannot_start_is_replaced_by_the_serial_verifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify_parallel.sys, "executable", str(tmp_path / "no-python"))
    report, fallbacks = both_ways(write(tmp_path, build_export(LOG[:30])))
    assert report.entries == 30
    assert len(fallbacks) == 1 and fallbacks[0].startswith("cannot start the worker")
