"""Reading what people type into the search box: pure, no database.

Whatever the text, `parse` returns plain words and the FTS5 expression quotes each of
them, so no input can reach FTS5's (or tsquery's) syntax. Hypothesis throws arbitrary
Unicode at it, including the characters those syntaxes use.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scambio.timebank.search import (
    RELEVANCE,
    BadCursor,
    Term,
    TextQuery,
    decode_cursor,
    encode_cursor,
    fts5_query,
    parse,
    prefix_of,
)

_WORD = re.compile(r"[^\W_]+")


def words(query: TextQuery) -> list[list[list[str]]]:
    return [[list(term.words) for term in clause] for clause in query.clauses]


@pytest.mark.parametrize(
    ("text", "clauses", "excluded"),
    [
        ("homework help", [[["homework"]], [["help"]]], []),
        ("  Homework   HELP ", [[["homework"]], [["help"]]], []),
        ('"homework help" maths', [[["homework", "help"]], [["maths"]]], []),
        ("maths -english", [[["maths"]]], [["english"]]),
        ('maths -"primary school"', [[["maths"]]], [["primary", "school"]]),
        ("maths or physics", [[["maths"], ["physics"]]], []),
        ("maths OR physics or chemistry", [[["maths"], ["physics"], ["chemistry"]]], []),
        ("or maths", [[["maths"]]], []),
        ("maths or", [[["maths"]]], []),
        ("maths or -physics", [[["maths"]]], [["physics"]]),
        # Stopwords go (outside phrases): a sentence finds what it means.
        ("aiuto per i compiti di matematica", [[["aiuto"]], [["compiti"]], [["matematica"]]], []),
        ("help with the homework", [[["help"]], [["homework"]]], []),
        ('"the cat"', [[["the", "cat"]]], []),
        # Syntax of FTS5 and tsquery is just characters.
        ('"', [], []),
        ('""', [], []),
        ("*", [], []),
        ("AND OR NOT", [], []),
        ("NEAR(a b)", [[["near", "a"]], [["b"]]], []),
        ("e-mail", [[["e", "mail"]]], []),
        ("-", [], []),
        ("- -", [], []),
        ("'; DROP TABLE listings; --", [[["drop"]], [["table"]], [["listings"]]], []),
        ("città perché", [[["città"]], [["perché"]]], []),
        ("ＦＵＬＬ width", [[["full"]], [["width"]]], []),
        ("a_b", [[["a", "b"]]], []),
        ("", [], []),
        ("\u0000\u0007", [], []),
    ],
)
def test_parse(text: str, clauses: list[list[list[str]]], excluded: list[list[str]]) -> None:
    query = parse(text)
    assert words(query) == clauses
    assert [list(term.words) for term in query.excluded] == excluded


def test_fts5_expressions() -> None:
    assert fts5_query(parse("")) is None
    assert fts5_query(parse("the")) is None
    assert fts5_query(parse("compito")) == '"compit"*'
    assert fts5_query(parse("tv")) == '"tv"'
    assert fts5_query(parse("help")) == '"help"*'
    assert fts5_query(parse('"homework help" maths')) == '"homework help" AND "math"*'
    assert fts5_query(parse("maths or physics")) == '("math"* OR "physic"*)'
    assert fts5_query(parse("maths -english")) == '("math"*) NOT "english"*'
    assert fts5_query(parse("-english")) is None


def test_prefixes() -> None:
    assert prefix_of("di") is None
    assert prefix_of("art") == "art"
    assert prefix_of("help") == "help"
    assert prefix_of("compito") == "compit"
    assert prefix_of("lessons") == "lesson"
    assert prefix_of("città") == "citt"


def test_many_terms_are_capped() -> None:
    query = parse(" ".join(f"word{n}" for n in range(100)))
    assert len(query.clauses) == 16
    long = parse("x" * 500)
    assert query.clauses and len(long.clauses[0][0].words[0]) == 64


_HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("\"*()^:+-{}[]\\'NEARANDORNOT ,.;\u0000\t\n")),
        st.characters(codec="utf-8"),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_HOSTILE)
def test_any_text_is_a_valid_fts5_query(text: str) -> None:
    """Every expression parses in FTS5 and every term is a quoted run of word characters."""
    expression = fts5_query(parse(text))
    if expression is None:
        return
    for quoted in re.findall(r'"([^"]*)"', expression):
        assert all(_WORD.fullmatch(word) for word in quoted.split(" ")), expression
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(a, tokenize='unicode61')")
        conn.execute("INSERT INTO t VALUES ('homework help')")
        conn.execute("SELECT * FROM t WHERE t MATCH ?", (expression,)).fetchall()
    finally:
        conn.close()


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    ranked = [1000, 123_456, 77]
    assert decode_cursor(encode_cursor(RELEVANCE, ranked), RELEVANCE, integers=3) == ranked
    assert decode_cursor(encode_cursor("new", [42]), "new", integers=1) == [42]
    when = "2026-11-25T09:00:00.000000Z"
    newest = encode_cursor("new", [when, "0123456789abcdef"])
    assert decode_cursor(newest, "new") == [when, "0123456789abcdef"]
    with pytest.raises(BadCursor, match="different search"):
        decode_cursor(newest, RELEVANCE, integers=3)
    with pytest.raises(BadCursor, match="not one returned"):
        decode_cursor(newest, "new", integers=1)
    for forged, order in [
        ("", "new"),
        ("%%%", "new"),
        ("bm90IGpzb24", "new"),
        (encode_cursor("new", ["x", "0123456789abcdef"]), "new"),
        (encode_cursor("new", [when, "' OR 1=1"]), "new"),
        (encode_cursor("new", [when]), "new"),
        (encode_cursor(RELEVANCE, [0, 1.5, 3]), RELEVANCE),
        (encode_cursor(RELEVANCE, [0, True, 3]), RELEVANCE),
        (encode_cursor(RELEVANCE, [0, 2**70, 3]), RELEVANCE),
        (encode_cursor(RELEVANCE, [-1, 5, 3]), RELEVANCE),
        (encode_cursor(RELEVANCE, [0, 5, "3"]), RELEVANCE),
        (encode_cursor(RELEVANCE, [0, 5]), RELEVANCE),
    ]:
        with pytest.raises(BadCursor, match="cursor"):
            decode_cursor(forged, order, integers=3 if order == RELEVANCE else 0)


def test_terms() -> None:
    assert Term(("a", "b")).is_phrase and not Term(("a",)).is_phrase
    assert TextQuery().empty
