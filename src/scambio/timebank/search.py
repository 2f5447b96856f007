"""Finding listings: filters, full-text search on both databases, and opaque cursors.

What people type is never handed to a query language. `parse` reads it the way web
search boxes do (words are all required, ``"quoted phrases"``, ``-word`` excludes,
``or`` between two words accepts either) into a small `TextQuery` of plain words, and
each database gets that tree rendered in its own terms with every word quoted or bound
as a parameter: FTS5 on SQLite (``"word"*``, ``AND``, ``OR``, ``NOT``), tsquery
functions on PostgreSQL. So ``"``, ``*``, ``NEAR(``, ``AND OR`` or a lone ``-`` are
just characters; nothing anyone types can produce a syntax error or a 500. Words are
Unicode letters and digits (NFKC-normalised, case-folded); common Italian and English
words ("di", "the", "per") are dropped outside phrases, so a natural sentence finds what
it means on both databases alike. A query with nothing left to look for is no text
filter at all.

Matching is forgiving of word endings: PostgreSQL stems with both the Italian and the
English configuration, and on both databases a word of three or more letters also
matches as a prefix (without a final vowel or "s" once it has five letters or more), so
"compito" finds "compiti", "bamb" finds "bambini" and "lesson" finds "lessons".

Results are ordered newest first, or by relevance (then newest) when there is text, and
paged with an opaque cursor holding the last row's sort key: the order is total (`seq`,
the order of posting, breaks ties), so pages never repeat or skip a row, even as listings
are added. Text is ranked among its newest matches only (`RANK_WINDOW`), which keeps a
common word as fast as a rare one.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from sqlalchemy import BigInteger, and_, cast, column, func, literal_column, or_, select, table
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from scambio.store.listings_tables import listings
from scambio.timebank.listings import (
    DAYS,
    Listing,
    base_select,
    from_row,
    owner_active_clause,
)

#: Most words a query may use; the rest are ignored.
TERMS_MAX: Final = 16
#: Longest word kept (longer ones are cut): no real word is longer.
WORD_MAX: Final = 64
NEWEST: Final = "new"
#: Text search ranks the newest this many matches (see `search`).
RANK_WINDOW: Final = 1000
RELEVANCE: Final = "rel"
#: Relevance scores are compared as integers (parts per billion), so a cursor holds an
#: exact key and both databases compare it the same way.
_SCALE: Final = 1_000_000_000
#: Marks FTS5's highlights; text never holds control characters (`timebank.text`).
_MARK: Final = "\x01"
_WORD_RE: Final = re.compile(r"[^\W_]+")
_PREFIX_TRIM: Final = frozenset("aeiouàèéìòùs")
_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_ID_RE: Final = re.compile(r"[0-9a-f]{16}")
_LANGUAGES: Final = ("italian", "english")
_encoder: Final = msgspec.json.Encoder()

#: Dropped outside phrases: they carry no meaning in a search box.
STOPWORDS: Final = frozenset(
    """
    a ad al ai agli all alla alle allo anche che chi ci col con come da dal dai dagli dall
    dalla dalle dallo degli dei del dell della delle dello di e ed gli i il in io la le lo
    ma mi mio ne nei nel nell nella nelle nello noi o per piu più po se si su sua sue sui
    sul sull sulla sulle suo tra tu un una uno vi voi
    an and are as at be but by for from has have he her his i if in into is it its me my
    no not of on or our she so than that the their them then there these they this to us
    was we were what when where which who will with you your
    """.split()  # noqa: SIM905 - a word list reads best as text
)


class BadCursor(ValueError):
    """The cursor is not one this search returned (the API answers 400)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One or more words; several words form a phrase (in that order, adjacent)."""

    words: tuple[str, ...]

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1


@dataclass(frozen=True, slots=True)
class TextQuery:
    """Every clause must match (AND); a clause matches if any of its terms does (OR); no
    excluded term may match. Empty `clauses` means there is nothing to look for."""

    clauses: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.clauses


_OR: Final = object()


def _words(chunk: str) -> tuple[str, ...]:
    return tuple(word[:WORD_MAX] for word in _WORD_RE.findall(chunk))


def _items(text: str) -> list[object]:
    """Split into terms (with a negation flag) and OR markers, web-search style."""
    items: list[object] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-"
        if negated:
            i += 1
            if i >= n or text[i].isspace():
                continue
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            words = _words(text[i + 1 : end])
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace() and text[end] != '"':
                end += 1
            chunk = text[i:end]
            i = end
            if not negated and chunk == "or":
                items.append(_OR)
                continue
            words = _words(chunk)
            if len(words) == 1 and words[0] in STOPWORDS:
                words = ()
        items.append((negated, Term(words)))
    return items


def parse(text: str) -> TextQuery:
    """Read a search box's text into a `TextQuery`; never raises."""
    normalised = unicodedata.normalize("NFKC", text).casefold()
    clauses: list[list[Term]] = []
    excluded: list[Term] = []
    pending_or = False
    count = 0
    for item in _items(normalised):
        if item is _OR:
            pending_or = bool(clauses)
            continue
        assert isinstance(item, tuple)
        negated, term = item
        if not term.words or count >= TERMS_MAX:
            pending_or = False
            continue
        count += 1
        if negated:
            excluded.append(term)
        elif pending_or:
            clauses[-1].append(term)
        else:
            clauses.append([term])
        pending_or = False
    return TextQuery(tuple(tuple(clause) for clause in clauses), tuple(excluded))


def prefix_of(word: str) -> str | None:
    """The prefix a word also matches as, or None for words under three letters."""
    if len(word) < 3:
        return None
    if len(word) >= 5 and word[-1] in _PREFIX_TRIM:
        return word[:-1]
    return word


# -- SQLite: FTS5 ----------------------------------------------------------------------------


def _fts5_term(term: Term) -> str:
    # Words hold only letters and digits, so quoting them cannot be escaped from.
    if term.is_phrase:
        return '"' + " ".join(term.words) + '"'
    prefix = prefix_of(term.words[0])
    return f'"{term.words[0]}"' if prefix is None else f'"{prefix}"*'


def fts5_query(query: TextQuery) -> str | None:
    """The FTS5 MATCH expression for `query`, or None when it is empty."""
    if query.empty:
        return None
    parts = []
    for clause in query.clauses:
        terms = [_fts5_term(term) for term in clause]
        parts.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    expression = " AND ".join(parts)
    for term in query.excluded:
        expression = f"({expression}) NOT {_fts5_term(term)}"
    return expression


# -- PostgreSQL: tsquery ---------------------------------------------------------------------


def _config(name: str) -> ColumnElement[Any]:
    return cast(literal_column(f"'{name}'"), REGCONFIG)


def _ts_or(left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.tsquery_or(left, right, type_=TSQUERY)


def _pg_term(term: Term) -> ColumnElement[Any]:
    text = " ".join(term.words)
    maker = func.phraseto_tsquery if term.is_phrase else func.plainto_tsquery
    query = _ts_or(
        maker(_config(_LANGUAGES[0]), text, type_=TSQUERY),
        maker(_config(_LANGUAGES[1]), text, type_=TSQUERY),
    )
    prefix = None if term.is_phrase else prefix_of(term.words[0])
    if prefix is not None:
        # Letters and digits only, so the quoted lexeme cannot break out of its quotes.
        query = _ts_or(query, func.to_tsquery(_config("simple"), f"'{prefix}':*", type_=TSQUERY))
    return query


def pg_tsquery(query: TextQuery, *, exclusions: bool = True) -> ColumnElement[Any] | None:
    """A tsquery expression for `query` (words bound as parameters), or None when empty.

    Ranking uses the query without its exclusions: `ts_rank` would otherwise count the
    absence of an excluded word for or against a listing."""
    if query.empty:
        return None
    expression: ColumnElement[Any] | None = None
    for clause in query.clauses:
        part = _pg_term(clause[0])
        for term in clause[1:]:
            part = _ts_or(part, _pg_term(term))
        expression = part if expression is None else func.tsquery_and(expression, part)
    assert expression is not None
    for term in query.excluded if exclusions else ():
        expression = func.tsquery_and(
            expression, func.tsquery_not(_pg_term(term), type_=TSQUERY), type_=TSQUERY
        )
    return expression


# -- cursors ---------------------------------------------------------------------------------


def encode_cursor(order: str, keys: list[Any]) -> str:
    raw = _encoder.encode([order, *keys])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str, *, integers: int = 0) -> list[Any]:
    """The sort key a cursor holds, checked against the order of this search: `integers`
    non-negative integers (listing orders: [seq], or [floor, score, seq] for relevance),
    or else [created_at, id]."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = msgspec.json.decode(raw)
    except (ValueError, msgspec.DecodeError):
        raise BadCursor("the cursor is not one returned as next_cursor") from None
    if not isinstance(value, list) or not value or value[0] != order:
        raise BadCursor("the cursor belongs to a different search (text or no text)")
    keys = value[1:]
    if integers:
        if len(keys) != integers or any(type(k) is not int or not 0 <= k < 2**62 for k in keys):
            raise BadCursor("the cursor is not one returned as next_cursor")
        return keys
    if (
        len(keys) != 2
        or not isinstance(keys[0], str)
        or not isinstance(keys[1], str)
        or not _TIME_RE.fullmatch(keys[0])
        or not _ID_RE.fullmatch(keys[1])
    ):
        raise BadCursor("the cursor is not one returned as next_cursor")
    return keys


def _after(keys: list[ColumnElement[Any]], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the descending order of `keys`."""
    expression: ColumnElement[bool] = keys[-1] < values[-1]
    for key, value in zip(reversed(keys[:-1]), reversed(values[:-1]), strict=True):
        expression = or_(key < value, and_(key == value, expression))
    return expression


# -- the search ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """What to look for. `None` means any; `statuses` are the statuses as seen now (a
    lapsed listing counts as expired)."""

    text: str = ""
    kind: str | None = None
    area: str | None = None
    zone: str | None = None
    #: in_person or remote: listings that can happen that way ("either" matches both).
    mode: str | None = None
    #: Weekdays (mon..sun): listings with a weekly slot on any of them.
    days: tuple[str, ...] = ()
    resource: str | None = None
    tag: str | None = None
    member: str | None = None
    organisation: str | None = None
    statuses: tuple[str, ...] = ("active",)
    #: Include listings whose owner is suspended (staff looking at one owner).
    include_suspended: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Listing]
    next_cursor: str | None
    scores: list[int] = field(default_factory=list)


def status_clause(statuses: tuple[str, ...], now: str) -> ColumnElement[bool]:
    """Listings whose status, as seen at `now`, is one of `statuses`."""
    live = listings.c.expires_at > now
    parts: list[ColumnElement[bool]] = []
    for status in ("active", "paused"):
        if status in statuses:
            parts.append(and_(listings.c.status == status, live))
    if "expired" in statuses:
        parts.append(
            or_(
                listings.c.status == "expired",
                and_(listings.c.status.in_(("active", "paused")), ~live),
            )
        )
    if "closed" in statuses:
        parts.append(listings.c.status == "closed")
    return or_(*parts) if len(parts) != 1 else parts[0]


def filter_clauses(filters: Filters, now: str, *, owners: bool = True) -> list[ColumnElement[bool]]:
    """The WHERE clauses of `filters`; without `owners`, no test of the owner's status
    (which needs the owner joins)."""
    clauses = [status_clause(filters.statuses, now)]
    for name in ("kind", "area", "zone", "resource"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(listings.c[name] == value)
    if filters.mode is not None:
        clauses.append(listings.c.mode.in_((filters.mode, "either")))
    if filters.days:
        mask = 0
        for day in filters.days:
            mask |= 1 << DAYS.index(day)
        clauses.append(listings.c.slot_days.op("&")(mask) != 0)
    if filters.tag is not None:
        clauses.append(
            listings.c.tags.contains(msgspec.json.encode(filters.tag).decode(), autoescape=True)
        )
    if filters.member is not None:
        clauses.append(listings.c.owner_member_id == filters.member)
    if filters.organisation is not None:
        clauses.append(listings.c.owner_org_id == filters.organisation)
    if owners and not filters.include_suspended:
        clauses.append(owner_active_clause())
    return clauses


def _hits(column_index: int) -> ColumnElement[Any]:
    """How many of the query's matches FTS5 highlights in one column (at most 9)."""
    marked = func.highlight(literal_column("listings_fts"), column_index, _MARK, "")
    return func.min(func.length(marked) - func.length(func.replace(marked, _MARK, "")), 9)


async def _window_floor(
    conn: AsyncConnection, fts: Any, match: ColumnElement[bool], filters: Filters, now: str
) -> int:
    """The `seq` of the oldest listing in the ranking window (the RANK_WINDOW newest
    matches), or 0 when fewer listings match: then every match is ranked."""
    query = (
        select(fts.c.rowid)
        .select_from(listings.join(fts, fts.c.rowid == listings.c.seq))
        .where(*filter_clauses(filters, now, owners=False), match)
        .order_by(fts.c.rowid.desc())
        .offset(RANK_WINDOW - 1)
        .limit(1)
    )
    floor = (await conn.execute(query)).scalar_one_or_none()
    return 0 if floor is None else int(floor)


async def search(
    conn: AsyncConnection,
    filters: Filters,
    *,
    now: str,
    limit: int = 20,
    cursor: str | None = None,
) -> Page:
    """One page of listings matching `filters`, and the cursor of the next page.

    Without text: newest first, keyed by `seq` (the order listings were posted in).
    With text: by relevance, keyed by (score, seq), among the RANK_WINDOW newest matches
    (more would cost a score for every match of a common word, and a listing years old
    should not outrank this week's anyway). The window's floor travels in the cursor, so
    later pages rank the same set.
    """
    query = base_select().where(*filter_clauses(filters, now))
    text = parse(filters.text)
    if text.empty:
        if cursor:
            (after,) = decode_cursor(cursor, NEWEST, integers=1)
            query = query.where(listings.c.seq < after)
        rows = list(await conn.execute(query.order_by(listings.c.seq.desc()).limit(limit + 1)))
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor(NEWEST, [int(rows[limit - 1].seq)])
        return Page([from_row(row) for row in rows[:limit]], next_cursor)
    if cursor:
        floor, *after = decode_cursor(cursor, RELEVANCE, integers=3)
    else:
        floor, after = 0, []
    ranker = _ranked_postgres if conn.dialect.name == "postgresql" else _ranked_sqlite
    rows, floor = await ranker(conn, text, filters, now=now, limit=limit, floor=floor, after=after)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = encode_cursor(RELEVANCE, [floor, int(last.score), int(last.seq)])
    return Page([from_row(row) for row in page], next_cursor, [int(row.score) for row in page])


async def _ranked_postgres(
    conn: AsyncConnection,
    text: TextQuery,
    filters: Filters,
    *,
    now: str,
    limit: int,
    floor: int,
    after: list[int],
) -> tuple[list[Any], int]:
    """One statement: the window of matches (found once, newest first, through whichever
    index suits), then the owners' joins and `ts_rank` for those rows only."""
    document = literal_column("listings.search", TSVECTOR)
    window = select(listings.c.seq).where(
        *filter_clauses(filters, now, owners=False), document.op("@@")(pg_tsquery(text))
    )
    if floor:
        window = window.where(listings.c.seq >= floor)
    elif not after:
        window = window.order_by(listings.c.seq.desc()).limit(RANK_WINDOW)
    ranked = window.cte("ranked_window").prefix_with("MATERIALIZED")
    score = cast(func.ts_rank(document, pg_tsquery(text, exclusions=False)) * _SCALE, BigInteger)
    query = (
        base_select()
        .join(ranked, ranked.c.seq == listings.c.seq)
        .where(*filter_clauses(filters, now))
        .add_columns(
            score.label("score"),
            select(func.min(ranked.c.seq)).correlate(None).scalar_subquery().label("floor"),
            select(func.count())
            .select_from(ranked)
            .correlate(None)
            .scalar_subquery()
            .label("size"),
        )
    )
    keys = [score, listings.c.seq]
    if after:
        query = query.where(_after(keys, after))
    rows = list(await conn.execute(query.order_by(*(k.desc() for k in keys)).limit(limit + 1)))
    if rows and not floor and not after and int(rows[0].size) >= RANK_WINDOW:
        floor = int(rows[0].floor)
    return rows, floor


async def _ranked_sqlite(
    conn: AsyncConnection,
    text: TextQuery,
    filters: Filters,
    *,
    now: str,
    limit: int,
    floor: int,
    after: list[int],
) -> tuple[list[Any], int]:
    """FTS5 reads matches in rowid (= seq) order, so the window's floor is one cheap
    query; the page is then ranked over the rowid range from the floor.

    Not by `bm25`: its weights come from the whole table (how many listings hold a word),
    so a listing posted between two pages would reorder the rest and a page could repeat
    or skip one. The score counts the query's hits in the title (most), the tags and the
    description, which depends on the listing alone (as `ts_rank` does on PostgreSQL)."""
    fts = table("listings_fts", column("rowid"))
    match = literal_column("listings_fts").op("MATCH")(fts5_query(text))
    if not floor and not after:
        floor = await _window_floor(conn, fts, match, filters, now)
    score = _hits(0) * 100 + _hits(2) * 10 + _hits(1)
    query = (
        base_select()
        .join(fts, fts.c.rowid == listings.c.seq)
        .where(*filter_clauses(filters, now), match)
        .add_columns(score.label("score"))
    )
    if floor:
        query = query.where(fts.c.rowid >= floor)
    keys = [score, listings.c.seq]
    if after:
        query = query.where(_after(keys, after))
    rows = list(await conn.execute(query.order_by(*(k.desc() for k in keys)).limit(limit + 1)))
    return rows, floor
