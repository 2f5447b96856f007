"""Verify a large export on two cores: this process replays, a worker process hashes.

`verify.verify_export_file` comes here for a regular file whose header claims at least
`PARALLEL_MIN_ENTRIES` entries. The file is read once, by this process, in chunks of whole
lines, and every chunk also goes down a pipe to a worker (`python -m
scambio.ledger.verify_parallel`, a fresh interpreter, started with no fork of this
process's state). Both split the bytes alike into runs of entry lines and checkpoint lines,
and share the checks of the single-process verifier between them:

- this process decodes each run of entry lines with one `decode_lines` call and requires
  `encode_lines` of the result to give back exactly the run's bytes, which makes every line
  the canonical encoding of one entry; compares indexes, ledger and times over the whole
  run; and replays the rules, a plain two-leg transfer inline (as `LogReplayer.feed_lines`
  does) and anything else through `rules.apply_entry`;
- the worker hashes every entry line into the RFC 9162 tree, verifies every checkpoint
  line (JSON, signature, origin, order, size, root) against it, and checks the syntax and
  uniqueness of every entry id, the format version and the memo length (read from the raw
  bytes, see `_Hasher`); it answers once, with the final size, checkpoint count and root,
  or as soon as something fails.

This process then makes the serial verifier's end checks against the header. Both read the
same bytes, so the file cannot change between a check and a hash.

Errors: the fast path only ever proves an export correct. On anything it does not accept
(a failed check, two different ids with one hash, a worker that died or could not start)
it stops the worker and runs the single-process verifier on the file from the
start, so that the error raised -- reason, index, line number -- is exactly the one that
verifier gives. That rerun reads the file again: should the file change in between, the
outcome is the rerun's, a complete verification of what it read.

Memory, which grows with the log: an id costs about 65 bytes (60 bits of its hash in a set,
in the worker) instead of about 125 (a string in a set); a plain transfer, which a later
reversal may name, costs 16 bytes (its minutes and its accounts' numbers in three arrays)
instead of a `MovedState` holding its decoded postings (about 400 bytes), and becomes a
`MovedState` only when a reversal names it. Holds, posts and the rest keep the rules' own
representation. For 10^6 transfers: peak RSS about 70 MiB here and 105 MiB in the worker
(each about 27 MiB before it starts), against about 590 MiB for the serial path.

Speed: on the 2-vCPU development VM, for 10^6 transfers of ~285 bytes with a checkpoint
every 1000 entries (`bench/verify.py`), each process needs about 2.3-2.6 s of CPU when it
runs alone and 3-3.4 s beside other busy processes, where the serial path needs about
6.3 s: with a core to each, 300,000-430,000 entries/s against 160,000; on a shared
machine, wall-clock figures drop with the share of the CPU the two processes get.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import select
import signal
import subprocess
import sys
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from itertools import repeat
from operator import and_, attrgetter, eq
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

import scambio
from scambio.ledger import merkle
from scambio.ledger import verify as serial
from scambio.ledger.entry import (
    ENTRY_ID_RE,
    FORMAT_VERSION,
    KIND_ACCOUNT,
    KIND_REVERSAL,
    KIND_TRANSFER,
    MAX_MEMO,
    MAX_MINUTES,
    TIME_RE,
    Entry,
    Posting,
)
from scambio.ledger.errors import RuleViolation, VerificationError
from scambio.ledger.note import Verifier, open_checkpoint
from scambio.ledger.rules import AccountState, LedgerState, MovedState, apply_entry

__all__ = ["PARALLEL_MIN_ENTRIES", "WorkerProcess", "extend_frontier", "verify_file"]

#: Below this many entries (as the header claims) a second process costs more than it saves.
PARALLEL_MIN_ENTRIES: Final = 50_000

#: Bytes read from the file at a time, and the worker's pipe size (Linux's default maximum).
_CHUNK: Final = 1 << 20
#: Bytes the worker may lag behind before this process waits for it.
_BACKLOG: Final = 16 << 20

_PREFIX: Final = serial.CHECKPOINT_PREFIX
_NEXT_CHECKPOINT: Final = b"\n" + _PREFIX
#: An entry line's id, read from its canonical bytes (see `_Hasher`): in a line that does
#: not open an account, and in one that does.
_ID_AT_LINE_START: Final = re.compile(
    rb'\n\{"id":"(' + ENTRY_ID_RE.pattern.encode() + rb')","index":'
)
_ID_AFTER_ACCOUNT: Final = re.compile(
    rb'\},"id":"(' + ENTRY_ID_RE.pattern.encode() + rb')","index":'
)

_VERSION_AT_END: Final = b',"v":%d}\n' % FORMAT_VERSION


class _Memo(msgspec.Struct):
    memo: str


_memo_decoder: Final = msgspec.json.Decoder(_Memo)

#: 60 bits of a hash make a 32-byte int where 64 make a 40-byte one.
_HASH_MASK: Final = (1 << 60) - 1

_index = attrgetter("index")
_ledger = attrgetter("ledger")
_time = attrgetter("time")


class _Fallback(Exception):
    """The fast path does not accept the export; the single-process verifier decides."""


def _runs(chunk: bytes) -> Iterator[tuple[int, int, bool]]:
    """Split whole lines into runs of entry lines and single checkpoint lines.

    Yields (start, stop, is_checkpoint); `stop` is just past the run's last newline. Both
    processes split alike, so the worker's n-th checkpoint record is this one's n-th line.
    """
    pos = 0
    end = len(chunk)
    while pos < end:
        if chunk.startswith(_PREFIX, pos):
            stop = chunk.index(b"\n", pos) + 1
            yield pos, stop, True
        else:
            found = chunk.find(_NEXT_CHECKPOINT, pos)
            stop = end if found < 0 else found + 1
            yield pos, stop, False
        pos = stop


# ---------------------------------------------------------------------------------------
# The worker: leaf hashes, the tree, checkpoints, ids


def extend_frontier(frontier: list[bytes], size: int, leaves: list[bytes]) -> None:
    """Append `leaves` to the frontier of a tree of `size` leaves, a level at a time.

    `frontier` holds the hashes of `merkle.range_nodes(0, size)`, as `CompactRange` does,
    and is updated in place. Hashing each level with one comprehension instead of merging
    leaf by leaf (`CompactRange.append`) saves the Python loop around every node.
    """
    sha = hashlib.sha256
    nodes = leaves  # never changed in place: it is the caller's list
    position = size  # index, at the current level, of nodes[0]
    tail: list[bytes] = []  # the new frontier's lower part, lowest level first
    while nodes:
        if position & 1:  # nodes[0] is a right child: its left sibling ends the frontier
            nodes = [frontier.pop(), *nodes]
            position -= 1
        last = len(nodes) - 1
        if not last & 1:  # an odd count: the last node has no sibling yet
            tail.append(nodes[last])
        nodes = [
            sha(b"\x01" + left + right).digest()
            for left, right in zip(nodes[0:last:2], nodes[1::2], strict=True)
        ]
        position >>= 1
    tail.reverse()
    frontier.extend(tail)


class _Hasher:
    """The worker's share of the checks: everything about hashes, signatures and ids.

    Leaf hashes and the tree; every checkpoint line (its JSON, signature, origin, order,
    size and root) against the tree so far; the syntax and uniqueness of every entry id;
    every entry's format version (its line ends in `,"v":1}`) and memo length.

    Ids are read from the raw lines, which is sound because the verifier process checks
    that the same bytes are canonical, and in a canonical line (keys sorted, no spaces, a
    quote inside a string always escaped) the entry id is the only string found right
    after a line-initial `{"id":"` or after `},"id":"` (the end of an account entry's
    `account` object: no other object can precede the `id` key) and followed by
    `","index":`. An id made of ENTRY_ID_RE's characters only is encoded as itself, so
    `_ID_AT_LINE_START` and `_ID_AFTER_ACCOUNT` find exactly one id per line whose id is
    valid, and none in a line whose id is not: fewer ids than lines means an invalid id.
    A line that is not canonical fails in the verifier process; either failure sends the
    export to the single-process verifier. The version and memo checks rely on canonical
    lines likewise: `v` is the last key, and decoding just the memo gives the entry's memo.
    """

    def __init__(self, header_line: bytes) -> None:
        try:
            header = serial._header_decoder.decode(header_line)
            self.verifier = Verifier.from_string(header.vkey)
        except (msgspec.DecodeError, msgspec.ValidationError, VerificationError) as exc:
            raise _Fallback(f"header: {exc}") from None
        self.origin = header.origin
        self.frontier: list[bytes] = []
        self.size = 0
        self.checkpoints = 0
        self.last_checkpoint = -1
        #: Every id so far, as 60 bits of its hash: a duplicate always collides; two
        #: different ids colliding (about 10^-6 in 10^6 ids) only cost the serial rerun.
        self.ids: set[int] = set()

    def chunk(self, chunk: bytes) -> None:
        """Check a chunk of whole lines (the header excluded)."""
        sha = hashlib.sha256
        ids = self.ids
        # Every line, the first too, follows a newline in `after_newline`, at offset + 1.
        after_newline = b"\n" + chunk
        for start, stop, is_checkpoint in _runs(chunk):
            if is_checkpoint:
                self._checkpoint(chunk[start : stop - 1])
                continue
            lines = chunk[start : stop - 1].split(b"\n")
            leaves = [sha(b"\x00" + line).digest() for line in lines]
            extend_frontier(self.frontier, self.size, leaves)
            self.size += len(leaves)
            found = _ID_AT_LINE_START.findall(after_newline, start, stop + 1)
            found += _ID_AFTER_ACCOUNT.findall(after_newline, start + 1, stop + 1)
            before = len(ids)
            ids.update(map(and_, map(hash, found), repeat(_HASH_MASK)))
            if len(found) != len(lines) or len(ids) != before + len(lines):
                raise _Fallback("an entry id is invalid or used twice")
            if chunk.count(_VERSION_AT_END, start, stop) != len(lines):
                raise _Fallback("an entry of another format version")
            # A memo has no more characters than its line has bytes.
            if max(map(len, lines)) > MAX_MEMO:
                self._check_memos(chunk[start:stop])

    @staticmethod
    def _check_memos(run: bytes) -> None:
        try:
            memos = _memo_decoder.decode_lines(run)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Fallback(f"memos: {exc}") from None
        if max((len(m.memo) for m in memos), default=0) > MAX_MEMO:
            raise _Fallback("a memo too long")

    def _checkpoint(self, line: bytes) -> None:
        try:
            note = serial._checkpoint_decoder.decode(line).checkpoint
            cp = open_checkpoint(note, self.verifier, self.origin)
        except (msgspec.DecodeError, msgspec.ValidationError, VerificationError) as exc:
            raise _Fallback(f"checkpoint line: {exc}") from None
        if cp.size <= self.last_checkpoint or cp.size != self.size:
            raise _Fallback(f"checkpoint at size {cp.size} after {self.size} entries")
        if cp.root != merkle.fold(self.frontier):
            raise _Fallback(f"checkpoint at size {cp.size}: the entries give another root")
        self.last_checkpoint = cp.size
        self.checkpoints += 1

    def result(self) -> bytes:
        return (
            b"E"
            + self.size.to_bytes(8, "big")
            + self.checkpoints.to_bytes(8, "big")
            + merkle.fold(self.frontier)
        )


def _work(inp: int) -> bytes:
    hasher: _Hasher | None = None
    rest = b""
    while True:
        block = os.read(inp, _CHUNK)
        if not block:
            break
        if rest:
            block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if not cut:
            continue
        chunk = block[:cut] if rest else block
        if hasher is None:
            first = chunk.index(b"\n") + 1
            hasher = _Hasher(chunk[:first])
            chunk = chunk[first:]
        hasher.chunk(chunk)
    if rest:  # a last line without a newline is still a line, as for the serial verifier
        if hasher is None:
            hasher = _Hasher(rest)
        else:
            hasher.chunk(rest + b"\n")
    if hasher is None:
        raise _Fallback("no header")
    return hasher.result()


def worker_main(inp: int = 0, out: int = 1) -> int:
    """The worker: the export's bytes come in on `inp` until end of file.

    It writes one message and exits: `E`, the tree size, the number of checkpoint lines
    and the root, when everything it checks holds; `X` and the reason as soon as
    something does not.
    """
    try:
        message = _work(inp)
    except _Fallback as why:
        message = b"X" + str(why).encode()
    try:
        _write_all(out, message)
    except BrokenPipeError:  # the verifier went away: nobody needs an answer
        return 1
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class WorkerProcess:
    """The worker as seen from the verifier: feed it the file's bytes, then read its answer.

    The worker runs in its own session, so a Ctrl-C at the terminal reaches only this
    process, whose `close` (always called, from a `finally`) kills and reaps it. Should
    this process die without closing it, the worker reads end of file, or fails to write
    its answer, and exits by itself.
    """

    def __init__(self) -> None:
        env = dict(os.environ)
        # Import this package from where this process did, whatever the current directory
        # (which -P keeps off sys.path).
        root = str(Path(scambio.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "scambio.ledger.verify_parallel"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise _Fallback(f"cannot start the worker: {exc}") from None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        try:
            with contextlib.suppress(AttributeError, OSError):  # Linux only; a speed-up
                import fcntl

                fcntl.fcntl(self._in, fcntl.F_SETPIPE_SZ, _CHUNK)
            os.set_blocking(self._in, False)
            os.set_blocking(self._out, False)
        except BaseException:
            self.close()
            raise
        self._queue: deque[memoryview] = deque()
        self._queued = 0
        self._answer = bytearray()
        self._eof = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, data: bytes) -> None:
        """Queue `data` for the worker; wait only when it lags more than `_BACKLOG` behind.

        Raises _Fallback as soon as the worker has answered early, which it does only to
        reject the export.
        """
        if data:
            self._queue.append(memoryview(data))
            self._queued += len(data)
        self._pump()
        while self._queued > _BACKLOG and not self._answered():
            self._wait()
        if self._answered():
            self.finish()  # raises with the worker's reason
            raise _Fallback("the worker answered before the end of the export")

    def finish(self) -> tuple[int, int, bytes]:
        """Send the rest, close the worker's input, wait for its answer.

        Returns (entries, checkpoint lines, root) when the worker accepted everything;
        raises _Fallback with its reason otherwise.
        """
        while self._queue and not self._answered():
            self._wait()
        self._queue.clear()  # anything left is for a worker that has already answered
        self._queued = 0
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        while not self._eof:
            self._wait()
        status = self.proc.wait()
        answer = bytes(self._answer)
        if answer[:1] == b"X":
            raise _Fallback(f"worker: {answer[1:].decode(errors='replace')}")
        if status != 0 or answer[:1] != b"E" or len(answer) != 17 + merkle.HASH_SIZE:
            raise _Fallback(f"the worker failed (exit status {status})")
        return int.from_bytes(answer[1:9], "big"), int.from_bytes(answer[9:17], "big"), answer[17:]

    def close(self) -> None:
        """Stop the worker if it still runs, reap it and release the pipes. Idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def _pump(self) -> None:
        queue = self._queue
        while queue:
            try:
                written = os.write(self._in, queue[0])
            except BlockingIOError:
                return
            except BrokenPipeError:  # the worker has exited: its answer says why
                queue.clear()
                self._queued = 0
                return
            self._queued -= written
            if written == len(queue[0]):
                queue.popleft()
            else:
                queue[0] = queue[0][written:]

    def _wait(self) -> None:
        """Block until the worker can take more input or has answered; handle either."""
        poller = select.poll()
        poller.register(self._out, select.POLLIN)
        if self._queue:
            poller.register(self._in, select.POLLOUT)
        for fd, _ in poller.poll():
            if fd == self._out:
                self._receive()
            else:
                self._pump()

    def _answered(self) -> bool:
        self._receive()
        return bool(self._answer) or self._eof

    def _receive(self) -> None:
        while not self._eof:
            try:
                data = os.read(self._out, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self._eof = True
                return
            self._answer += data


# ---------------------------------------------------------------------------------------
# This process: decode, check, replay


class _Replay:
    """What the worker does not check, a run of entry lines at a time: each line is one
    canonical entry at its index, of this ledger, with a valid time, and the rules hold."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.state = LedgerState()
        self.size = 0
        #: Checkpoint lines seen (the worker verifies them, and counts them too).
        self.checkpoints = 0
        #: Accounts by id, with their number in the compact arrays below.
        self.known: dict[str, tuple[AccountState, int]] = {}
        self.names: list[str] = []
        #: Plain transfers by index (minutes 0 for any other entry), for reversals.
        self.minutes = array("q")
        self.payer = array("I")
        self.payee = array("I")

    # -- entries -------------------------------------------------------------------------

    def entries(self, run: bytes) -> None:
        """Check and replay a run of whole entry lines (each ending in a newline)."""
        try:
            entries: list[Entry] = serial._decoder.decode_lines(run)
            canonical = serial._encoder.encode_lines(entries) == run
        except (msgspec.DecodeError, msgspec.ValidationError, msgspec.EncodeError) as exc:
            raise _Fallback(f"entries: {exc}") from None
        if not canonical:  # also catches blank lines and values spread over lines
            raise _Fallback("entry lines are not each one canonical entry")
        count = len(entries)
        start = self.size
        if not all(map(eq, map(_index, entries), range(start, start + count))):
            raise _Fallback("an index is out of place")
        if {*map(_ledger, entries)} != {self.origin}:
            raise _Fallback("an entry of another ledger")
        if not all(map(TIME_RE.fullmatch, {*map(_time, entries)})):
            raise _Fallback("an invalid time")
        for column in (self.minutes, self.payer, self.payee):
            column.frombytes(bytes(column.itemsize * count))
        self._replay(entries, start)
        self.size = start + count

    def _replay(self, entries: list[Entry], index: int) -> None:
        """The balances, entry by entry: `LogReplayer.feed_lines`'s inline path for a plain
        two-leg transfer (whose time `entries` checked, and whose id and memo the worker
        does), `rules.apply_entry` for anything else."""
        known = self.known
        get = known.get
        transfer = KIND_TRANSFER
        max_minutes = MAX_MINUTES
        minutes_of, payer_of, payee_of = self.minutes, self.payer, self.payee
        for entry in entries:
            postings = entry.postings
            if (
                entry.kind == transfer
                and len(postings) == 2
                and not entry.refs
                and entry.account is None
            ):
                debit, credit = postings
                minutes = credit.minutes
                source = get(debit.account)
                target = get(credit.account)
                if (
                    source is not None
                    and target is not None
                    and debit.minutes == -minutes
                    and 0 < minutes <= max_minutes
                ):
                    payer, payer_no = source
                    payee, payee_no = target
                    if (
                        payer is not payee
                        and (
                            payer.min_balance is None
                            or payer.posted - payer.debits_pending - minutes >= payer.min_balance
                        )
                        and (
                            payee.max_balance is None
                            or payee.posted + payee.credits_pending + minutes <= payee.max_balance
                        )
                    ):
                        payer.posted -= minutes
                        payee.posted += minutes
                        minutes_of[index] = minutes
                        payer_of[index] = payer_no
                        payee_of[index] = payee_no
                        index += 1
                        continue
            self._apply(entry)
            index += 1

    def _apply(self, entry: Entry) -> None:
        state = self.state
        if entry.kind == KIND_REVERSAL:
            target = entry.refs.get("reverses")
            if (
                isinstance(target, int)
                and 0 <= target < entry.index
                and target not in state.moved
                and self.minutes[target]
            ):
                minutes = self.minutes[target]
                names = self.names
                state.moved[target] = MovedState(
                    target,
                    (
                        Posting(account=names[self.payer[target]], minutes=-minutes),
                        Posting(account=names[self.payee[target]], minutes=minutes),
                    ),
                )
        try:
            apply_entry(state, entry)
        except RuleViolation as violation:
            raise _Fallback(f"entry {entry.index}: {violation.code}") from None
        if entry.kind == KIND_ACCOUNT and entry.account is not None:
            account_id = entry.account.id
            if account_id not in self.known:
                self.known[account_id] = (state.accounts[account_id], len(self.names))
                self.names.append(account_id)

    def holds_open(self) -> int:
        return sum(1 for h in self.state.holds.values() if h.resolved_by is None)


# ---------------------------------------------------------------------------------------
# Driver


def verify_file(
    path: Path,
    *,
    trusted_vkey: str | None = None,
    min_entries: int = PARALLEL_MIN_ENTRIES,
    on_fallback: Callable[[str], object] | None = None,
) -> serial.VerifyReport:
    """`verify.verify_export_file`, on two processes when the export is large enough.

    Exports whose header claims fewer than `min_entries` entries, and every export the
    fast path does not prove correct, are verified by the single-process verifier, so
    results and errors are always exactly its own. `on_fallback`, if given, is told why
    the fast path declined (for tests and benchmarks).
    """
    try:
        with serial._gc_paused():
            return _verify(path, trusted_vkey, min_entries)
    except _Fallback as why:
        if on_fallback is not None:
            on_fallback(str(why))
        return serial.verify_export_file(path, trusted_vkey=trusted_vkey, parallel=False)


def _verify(path: Path, trusted_vkey: str | None, min_entries: int) -> serial.VerifyReport:
    with path.open("rb", buffering=_CHUNK) as f:
        head = f.readline()
        try:
            header, verifier = serial._read_header(head or None, trusted_vkey)
            head_cp = open_checkpoint(header.checkpoint, verifier, header.origin)
        except VerificationError:
            raise _Fallback("header") from None
        if header.size < min_entries:
            raise _Fallback("small export")
        if os.name != "posix":  # non-blocking pipes and poll()
            raise _Fallback("needs POSIX")
        replay = _Replay(header.origin)
        worker = WorkerProcess()
        try:
            worker.send(head)
            _feed(f, worker, replay)
            size, checkpoints, root = worker.finish()
        finally:
            worker.close()
    # The serial verifier's end checks: the header's checkpoint covers exactly the entries
    # read, with their root (the worker matched every checkpoint line's root already).
    if not size == replay.size == head_cp.size == header.size or root != head_cp.root:
        raise _Fallback("the header's checkpoint does not cover the entries")
    if checkpoints != replay.checkpoints:
        raise _Fallback("the worker saw other checkpoint lines")
    return serial.VerifyReport(
        origin=header.origin,
        vkey=verifier.to_string(),
        key_pinned=trusted_vkey is not None,
        size=size,
        root=root,
        entries=size,
        checkpoints=checkpoints,
        accounts=replay.state.accounts,
        holds_open=replay.holds_open(),
    )


def _feed(f: BinaryIO, worker: WorkerProcess, replay: _Replay) -> None:
    """Send every chunk of whole lines to the worker, and replay it here meanwhile."""
    rest = b""
    while True:
        block = f.read(_CHUNK)
        if not block:
            break
        if rest:
            block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
            chunk = block[:cut] if rest else block
            worker.send(chunk)
            _replay_chunk(replay, chunk)
    if rest:  # a last line without a newline is still a line, as for the serial verifier
        chunk = rest + b"\n"
        worker.send(chunk)
        _replay_chunk(replay, chunk)


def _replay_chunk(replay: _Replay, chunk: bytes) -> None:
    for start, stop, is_checkpoint in _runs(chunk):
        if is_checkpoint:
            replay.checkpoints += 1
        else:
            replay.entries(chunk[start:stop])


if __name__ == "__main__":
    # Ctrl-C is for the verifier, which stops this worker (see WorkerProcess); nothing
    # here makes reference cycles, so the cyclic collector would only rescan the ids.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()
    sys.exit(worker_main())
