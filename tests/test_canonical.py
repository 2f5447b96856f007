"""Canonical bytes: `canonical_json` and `encode_entry` against an independent RFC 8785 encoder.

Everything Scambio hashes or signs goes through one of these two functions, so they are
compared byte for byte with the `rfc8785` package on random data: unicode memos with control
characters, U+2028/U+2029 and astral characters, integers up to the I-JSON limit, nested
objects. Floats and integers beyond ±(2**53 - 1) must be refused, never silently encoded.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from scambio.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from scambio.ledger.entry import AccountSpec, Entry, Posting, decode_entry, encode_entry

SAFE_INTS = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
#: Every code point but lone surrogates (which UTF-8 cannot carry), with the awkward ones
#: drawn often: C0 controls, DEL, the JavaScript line separators, BOM, astral characters.
AWKWARD = st.sampled_from(
    ["\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", '"', "\\", "/", "\x7f",
     "\u2028", "\u2029", "\ufeff", "\uffff", "\U0001f600", "\U00010000", "\U0010ffff", "é"]
)  # fmt: skip
TEXT = st.lists(st.one_of(AWKWARD, st.characters(exclude_categories=("Cs",))), max_size=24).map(
    "".join
)
ASCII_KEYS = st.text(st.characters(min_codepoint=0, max_codepoint=127), max_size=8)


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), SAFE_INTS, TEXT)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(ASCII_KEYS, inner, max_size=4),
        ),
        max_leaves=12,
    )


@settings(max_examples=300)
@given(_json_values())
def test_canonical_json_matches_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 0, -1])
def test_canonical_json_accepts_the_safe_integer_bounds(value: int) -> None:
    assert canonical_json({"n": value}) == rfc8785.dumps({"n": value})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, r"\$: floats are not allowed in canonical JSON"),
        ({"minutes": 90.0}, r"\$\.minutes: floats are not allowed"),
        ([1, [2, 0.1]], r"\$\[1\]\[1\]: floats are not allowed"),
        (MAX_SAFE_INTEGER + 1, r"integer 9007199254740992 is outside the I-JSON safe range"),
        ({"a": [-MAX_SAFE_INTEGER - 1]}, r"\$\.a\[0\]: integer -9007199254740992 is outside"),
        ({"é": 1}, r"object keys must be ASCII strings"),
        ({1: 1}, r"object keys must be ASCII strings"),
        (b"bytes", r"bytes is not a JSON value"),
        ({"s": {1, 2}}, r"\$\.s: set is not a JSON value"),
    ],
)
def test_canonical_json_refuses_what_is_not_canonical(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        canonical_json(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_canonical_json_refuses_every_float(value: float) -> None:
    with pytest.raises(ValueError, match="floats are not allowed"):
        canonical_json({"minutes": value})


@given(st.one_of(st.integers(min_value=MAX_SAFE_INTEGER + 1), st.integers(max_value=-(2**53))))
def test_canonical_json_refuses_every_unsafe_integer(value: int) -> None:
    with pytest.raises(ValueError, match="outside the I-JSON safe range"):
        canonical_json([value])


# ---------------------------------------------------------------------------------------
# Entries: built from random parts, encoded twice -- by `encode_entry` and by rfc8785 from a
# plain dict assembled here, field by field, independently of msgspec.

postings_st = st.lists(st.tuples(TEXT, SAFE_INTS), max_size=4)
refs_st = st.dictionaries(
    st.from_regex(r"[a-z][a-z_]{0,7}", fullmatch=True),
    st.one_of(TEXT, SAFE_INTS),
    max_size=4,
)
spec_st = st.none() | st.tuples(TEXT, TEXT, st.none() | SAFE_INTS, st.none() | SAFE_INTS)


@st.composite
def entries(draw: st.DrawFn) -> tuple[Entry, dict[str, Any]]:
    ledger, entry_id, kind, time, memo = (draw(TEXT) for _ in range(5))
    index = draw(SAFE_INTS)
    legs = draw(postings_st)
    refs = draw(refs_st)
    spec = draw(spec_st)
    entry = Entry(
        v=1,
        ledger=ledger,
        index=index,
        id=entry_id,
        kind=kind,
        time=time,
        postings=tuple(Posting(account=a, minutes=m) for a, m in legs),
        memo=memo,
        refs=refs,
        account=None if spec is None else AccountSpec(*spec),
    )
    plain: dict[str, Any] = {
        "v": 1,
        "ledger": ledger,
        "index": index,
        "id": entry_id,
        "kind": kind,
        "time": time,
        "postings": [{"account": a, "minutes": m} for a, m in legs],
        "memo": memo,
        "refs": refs,
    }
    if spec is not None:
        plain["account"] = dict(
            zip(("id", "kind", "min_balance", "max_balance"), spec, strict=True)
        )
    return entry, plain


@settings(max_examples=300)
@given(entries())
def test_encode_entry_matches_rfc8785(case: tuple[Entry, dict[str, Any]]) -> None:
    entry, plain = case
    data = encode_entry(entry)
    assert data == rfc8785.dumps(plain)
    assert data == canonical_json(plain)
    assert decode_entry(data) == entry


def test_an_entry_without_account_omits_the_field_and_keeps_null_limits_in_specs() -> None:
    base = dict(v=1, ledger="l", index=0, id="account:a", kind="account", time="t", memo="")
    bare = Entry(**base, postings=(), refs={})  # type: ignore[arg-type]
    assert b'"account":' not in encode_entry(bare)
    spec = AccountSpec(id="a", kind="member", min_balance=None, max_balance=None)
    opened = Entry(**base, postings=(), refs={}, account=spec)  # type: ignore[arg-type]
    assert b'"account":{"id":"a","kind":"member","max_balance":null,"min_balance":null}' in (
        encode_entry(opened)
    )


def test_decode_entry_refuses_unsafe_integers_and_unknown_fields() -> None:
    good = encode_entry(
        Entry(v=1, ledger="l", index=0, id="x", kind="transfer", time="t", postings=(),
              memo="", refs={})
    )  # fmt: skip
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int` >= -9007199254740991"):
        decode_entry(good.replace(b'"index":0', b'"index":-9007199254740992'))
    with pytest.raises(msgspec.ValidationError, match="Object contains unknown field `extra`"):
        decode_entry(good.replace(b'"v":1', b'"v":1,"extra":1'))
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int \| str`, got `float`"):
        decode_entry(good.replace(b'"refs":{}', b'"refs":{"hold":1.0}'))


# ---------------------------------------------------------------------------------------
# msgspec checks `Annotated` bounds only when a Struct is decoded, not constructed, and
# sorts object keys by code point where RFC 8785 sorts by UTF-16 code unit: encode_entry
# refuses both rather than hash non-canonical bytes.


@pytest.mark.parametrize(
    "refs, minutes",
    [({}, MAX_SAFE_INTEGER + 1), ({"hold": 1.5}, 1)],
    ids=["unsafe-int", "float"],
)
def test_encode_entry_refuses_floats_and_unsafe_integers(
    refs: dict[str, Any], minutes: int
) -> None:
    entry = Entry(
        v=1, ledger="l", index=1, id="x", kind="transfer", time="t", memo="", refs=refs,
        postings=(Posting(account="a", minutes=-minutes), Posting(account="b", minutes=minutes)),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"floats are not allowed|outside the I-JSON safe range"):
        encode_entry(entry)


def test_encode_entry_refuses_non_ascii_ref_keys() -> None:
    refs: dict[str, str | int] = {"\U00010000": 1, "\uffff": 2}
    entry = Entry(v=1, ledger="l", index=1, id="x", kind="k", time="t", postings=(), memo="",
                  refs=refs)  # fmt: skip
    with pytest.raises(ValueError, match=r"refs key .* must match"):
        encode_entry(entry)
