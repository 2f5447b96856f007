"""A policy kind from outside Scambio, registered in the tests through a real entry point
(see `test_policy_custom_kinds`): every named member gets a bonus from the sponsor."""

from __future__ import annotations

from typing import Annotated

import msgspec

from scambio.policy.kinds import AT_START, NEEDS_MEMBERS, Context, Proposed


class BonusParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    minutes: Annotated[int, msgspec.Meta(ge=1, le=600)]
    members: tuple[str, ...]
    #: For the test of a misbehaving kind: take the bonus from the member instead.
    backwards: bool = False


class BonusKind:
    name = "hours_bonus"
    params_type = BonusParams
    timing = AT_START
    needs_sponsor = True
    needs = frozenset({NEEDS_MEMBERS})

    def check(self, params: BonusParams) -> list[tuple[str, str]]:
        if not params.members:
            return [("members", "expected at least one member")]
        return []

    def propose(self, params: BonusParams, ctx: Context) -> list[Proposed]:
        sponsor = ctx.policy.sponsor_account
        assert sponsor is not None
        return [
            Proposed(
                rule="bonus",
                subject=m.account,
                payer=m.account if params.backwards else sponsor,
                payee=sponsor if params.backwards else m.account,
                minutes=params.minutes,
                why=f"a bonus for {m.member_id}",
            )
            for m in ctx.members
        ]


class NotAKind:
    name = "broken"


class Grant(BonusKind):
    """Tries to take over a built-in kind's name."""

    name = "grant"
