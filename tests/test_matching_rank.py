"""The ranking function on its own: every reason, its weight, and a total, stable order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from scambio.ledger.entry import format_time
from scambio.timebank.listings import Owner
from scambio.timebank.matching import (
    WEIGHTS,
    Candidate,
    Need,
    Offer,
    Weights,
    minutes_text,
    rank,
)
from scambio.timebank.people import Slot

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TRAINING = "training_empowerment"
MARCO = Owner("member", "00000000000000ff")
TUE_17_19 = (Slot(day="tue", start="17:00", end="19:00"),)


def ago(**delta: float) -> str:
    return format_time(NOW - timedelta(**delta))


def need(**fields: object) -> Need:
    base: dict[str, object] = {
        "listing_id": "00000000000000f0",
        "owner": MARCO,
        "area": TRAINING,
        "tags": frozenset({"homework"}),
        "zone": "municipio-6",
        "mode": "in_person",
        "slots": TUE_17_19,
    }
    return Need(**{**base, **fields})  # type: ignore[arg-type]


def offer(listing_id: str = "00000000000000e1", **fields: object) -> Offer:
    base: dict[str, object] = {
        "listing_id": listing_id,
        "title": "Homework help",
        "area": TRAINING,
        "tags": frozenset(),
        "zone": "municipio-6",
        "mode": "in_person",
        "slots": (),
        "created_at": ago(days=3),
    }
    return Offer(**{**base, **fields})  # type: ignore[arg-type]


def member(n: int, **fields: object) -> Candidate:
    base: dict[str, object] = {"owner": Owner("member", f"{n:016x}"), "name": f"M{n}"}
    return Candidate(**{**base, **fields})  # type: ignore[arg-type]


def codes(candidate: Candidate, **need_fields: object) -> dict[str, int]:
    (suggestion,) = rank(need(**need_fields), [candidate], now=NOW)
    return {reason.code: reason.weight for reason in suggestion.reasons}


def test_giulia_in_the_worked_example() -> None:
    giulia = member(
        1,
        name="Giulia",
        zone="municipio-6",
        offers=(
            offer(
                tags=frozenset({"homework", "primary school"}),
                slots=(Slot(day="tue", start="16:00", end="18:00"),),
            ),
        ),
        balance=-120,
        spent=120,
        last_active=ago(days=2),
    )
    (suggestion,) = rank(need(), [giulia], now=NOW, zone_names={"municipio-6": "Municipio 6"})
    assert suggestion.offer_id == "00000000000000e1"
    assert [(r.code, r.weight, r.detail) for r in suggestion.reasons] == [
        ("same-area", 40, "offers help in training and empowerment"),
        ("shared-tags", 5, "shares tags: homework"),
        ("same-zone", 20, "also in Municipio 6"),
        ("slot-overlap", 15, "both available Tuesdays 17:00-18:00"),
        ("recent-activity", 10, "active in the last 30 days"),
        ("received-not-given", 15, "has received 2 h of help and not yet given"),
    ]
    assert suggestion.score == 105


def test_only_relevant_candidates_are_suggested() -> None:
    neighbour = member(1, zone="municipio-6", slots=TUE_17_19, last_active=ago(days=1))
    other_area = member(2, offers=(offer(area="housing"),))
    tagged = member(3, offers=(offer(area="housing", tags=frozenset({"homework"})),))
    found = rank(need(), [neighbour, other_area, tagged], now=NOW)
    assert [s.owner.id for s in found] == [tagged.owner.id]
    assert [r.code for r in found[0].reasons] == ["shared-tags", "same-zone"]
    # The requester is never suggested to themselves.
    assert rank(need(), [member(10, owner=MARCO, offers=(offer(),))], now=NOW) == []


def test_place() -> None:
    here = member(1, offers=(offer(),))
    there = member(2, offers=(offer(zone="municipio-4"),))
    there_remote = member(3, offers=(offer(zone="municipio-4", mode="either"),))
    assert codes(here)["same-zone"] == 20
    assert codes(there)["other-zone"] == -10
    assert "other-zone" not in codes(there_remote)
    assert codes(there_remote, mode="either")["remote"] == WEIGHTS.remote_possible
    assert codes(there_remote, mode="remote")["remote"] == WEIGHTS.remote_match
    assert codes(here, mode="remote")["in-person-only"] == -10
    # A profile without an offer says nothing about remote work.
    profile = member(4, areas=frozenset({TRAINING}), zone="municipio-4")
    assert codes(profile, mode="remote") == {"profile-area": 20}
    assert codes(profile) == {"profile-area": 20}


def test_availability() -> None:
    def with_slots(*slots: Slot) -> Candidate:
        return member(1, offers=(offer(slots=slots),))

    long = codes(with_slots(Slot(day="tue", start="15:00", end="18:00")))
    assert long["slot-overlap"] == 15
    short = codes(with_slots(Slot(day="tue", start="18:30", end="20:00")))
    assert short["slot-overlap"] == 10
    same_day = codes(with_slots(Slot(day="tue", start="09:00", end="12:00")))
    assert same_day["same-day"] == 5
    other_day = codes(with_slots(Slot(day="wed", start="17:00", end="19:00")))
    assert "same-day" not in other_day and "slot-overlap" not in other_day
    # An offer without slots falls back on the member's profile slots.
    profile_slots = member(2, slots=TUE_17_19, offers=(offer(),))
    assert codes(profile_slots)["slot-overlap"] == 15
    assert "slot-overlap" not in codes(profile_slots, slots=())


def test_activity_and_reciprocity() -> None:
    base = {"offers": (offer(),)}
    assert codes(member(1, last_active=ago(days=30), **base))["recent-activity"] == 10
    assert codes(member(1, last_active=ago(days=60), **base))["recent-activity"] == 5
    assert "recent-activity" not in codes(member(1, last_active=ago(days=200), **base))
    assert codes(member(1, spent=60, earned=0, balance=-60, **base))["received-not-given"] == 15
    negative = codes(member(1, spent=120, earned=30, balance=-90, **base))
    assert negative.get("negative-balance") == 10 and "received-not-given" not in negative
    assert "negative-balance" not in codes(member(1, balance=200, earned=200, **base))
    full = codes(member(1, headroom=30, **base))
    assert full["at-maximum"] == -30
    assert "at-maximum" not in codes(member(1, headroom=600, **base))
    assert codes(member(1, introduced=True, **base))["already-introduced"] == -20


def test_best_way_to_help_wins_and_offers_beat_profiles_on_ties() -> None:
    two = member(
        1,
        areas=frozenset({TRAINING}),
        offers=(
            offer("00000000000000e1", zone="municipio-4"),
            offer("00000000000000e2", tags=frozenset({"homework"})),
        ),
    )
    (suggestion,) = rank(need(), [two], now=NOW)
    assert suggestion.offer_id == "00000000000000e2"
    tie = Weights(profile_area=40)
    both = member(2, areas=frozenset({TRAINING}), offers=(offer(),))
    (suggestion,) = rank(need(tags=frozenset()), [both], now=NOW, weights=tie)
    assert suggestion.offer_id == "00000000000000e1"


def test_the_order_is_total_and_deterministic() -> None:
    candidates = [member(n, offers=(offer(f"{n:016x}"),)) for n in range(1, 30)]
    candidates += [
        member(n, areas=frozenset({TRAINING}), zone="municipio-6") for n in range(30, 40)
    ]
    candidates.append(
        Candidate(owner=Owner("organisation", "00000000000000aa"), name="Acme", offers=(offer(),))
    )
    expected = rank(need(), candidates, now=NOW, limit=100)
    for seed in range(5):
        shuffled = candidates[:]
        random.Random(seed).shuffle(shuffled)
        assert rank(need(), shuffled, now=NOW, limit=100) == expected
    # Equal scores: offers first, then members before organisations, then by id.
    assert expected[0].owner == Owner("member", f"{1:016x}")
    offers_first = [s for s in expected if s.score == expected[0].score]
    assert offers_first[-1].owner.type == "organisation"
    assert [s.offer_id is None for s in expected].index(True) == 30
    assert len(rank(need(), candidates, now=NOW, limit=3)) == 3


def test_minutes_text() -> None:
    assert minutes_text(45) == "45 min"
    assert minutes_text(60) == "1 h"
    assert minutes_text(90) == "1 h 30 min"
    assert minutes_text(-120) == "-2 h"
    assert minutes_text(0) == "0 min"
