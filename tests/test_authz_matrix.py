"""The authorisation matrix: every route, every kind of caller, including other people's
and other organisations' objects.

Callers: nobody (no token); Marco, a member, whose objects the requests name; Giulia,
another member; Paolo, admin of Acme, the organisation the requests name; Bea, admin of
another organisation; and operator tokens for a manager, an auditor and an admin. Each
request gets fresh objects where it changes something, so rows do not depend on each
other. A refused request (4xx) must change nothing: neither the ledger nor the audit log.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scambio.jobs.periods import Every, last_complete
from scambio.jobs.registry import ALL_JOBS
from scambio.jobs.runner import JobRunner
from scambio.store.db import make_engine
from scambio.store.people_tables import audit_log

from .api_helpers import PASSWORD, Api, Person, exchange_in, new_uuid, running_api
from .federation_rows import federation_rows

MEMBER, OTHER, ORG, OTHER_ORG = "marco", "giulia", "paolo", "bea"
MANAGER, AUDITOR, ADMIN = "manager", "auditor", "admin"
CALLERS: list[str | None] = [None, MEMBER, OTHER, ORG, OTHER_ORG, MANAGER, AUDITOR, ADMIN]
MEMBERS = (MEMBER, OTHER, ORG, OTHER_ORG)
STAFF = (MANAGER, AUDITOR, ADMIN)


@dataclass
class World:
    api: Api
    people: dict[str, Person]
    acme: dict[str, Any]
    counter: list[int] = field(default_factory=lambda: [0])

    @property
    def marco(self) -> Person:
        return self.people[MEMBER]

    @property
    def giulia(self) -> Person:
        return self.people[OTHER]

    def unique(self) -> str:
        self.counter[0] += 1
        return f"x{self.counter[0]}"

    async def fresh_member(self) -> Person:
        return await self.api.add_member(self.unique())

    async def pending(self) -> str:
        email = f"{self.unique()}@example.org"
        body = {"email": email, "password": PASSWORD, "name": "Pending Person"}
        assert (await self.api.post("/api/v1/members/register", body, role=None)).status_code == 202
        page = (await self.api.get("/api/v1/members", status="pending", limit=200)).json()
        return next(str(m["id"]) for m in page["items"] if m["email"] == email)

    async def hold(self) -> str:
        hold = {
            "id": new_uuid(),
            "payer": self.marco.account,
            "payee": self.giulia.account,
            "minutes": 5,
            "hold": True,
        }
        assert (await self.api.post("/api/v1/transfers", hold)).status_code == 201
        return str(hold["id"])

    async def proposed_link(self) -> str:
        """A new proposal from Acme to Marco (withdrawing any open one first)."""
        page = (await self.api.get(f"/api/v1/members/{self.marco.id}/links")).json()
        for link in page["items"]:
            if link["status"] in ("proposed", "active"):
                await self.api.post(f"/api/v1/employee-links/{link['id']}/end")
        response = await self.api.post(
            f"/api/v1/organisations/{self.acme['id']}/employees", {"member_id": self.marco.id}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def active_link(self) -> str:
        link_id = await self.proposed_link()
        accepted = await self.api.post(f"/api/v1/employee-links/{link_id}/accept", role=MEMBER)
        assert accepted.status_code == 200, accepted.text
        return link_id


Request = tuple[str, str, Any]
Make = Callable[[World], Awaitable[Request]]


def fixed(method: str, path: str, body: Any = None) -> Make:
    async def make(_w: World) -> Request:
        return method, path, body

    return make


def expect(
    default: int | None, *, anon: int = 401, **by_caller: int
) -> dict[str | None, int | None]:
    """Expected status per caller: `default` for every token holder unless overridden."""
    table: dict[str | None, int | None] = {None: anon}
    for caller in CALLERS[1:]:
        table[caller] = by_caller.get(str(caller), default)
    return table


PUBLIC_OK = expect(200, anon=200)
READ_ALL = expect(200)
STAFF_ONLY_WRITE = expect(403, manager=201, admin=201)
STAFF_ONLY_200 = expect(403, manager=200, admin=200)
ORG_MANAGE = expect(403, paolo=200, manager=200, admin=200)
MEMBER_ONLY = expect(200, manager=403, auditor=403, admin=403)
#: Exchanges: seen by their parties (Marco, Giulia) and staff; others are told nothing.
PARTIES_AND_STAFF = expect(404, marco=200, giulia=200, manager=200, auditor=200, admin=200)
RECEIVER_OR_MANAGER = expect(404, marco=200, giulia=403, manager=200, auditor=403, admin=200)
STAFF_READ_200 = expect(403, manager=200, auditor=200, admin=200)


def rows(w: World) -> list[tuple[str, Make, dict[str | None, int | None]]]:
    marco, giulia, acme = w.marco, w.giulia, w.acme

    async def approve(w: World) -> Request:
        return "POST", f"/api/v1/members/{await w.pending()}/approve", None

    async def reject(w: World) -> Request:
        return "POST", f"/api/v1/members/{await w.pending()}/reject", {"reason": "no"}

    async def suspend(w: World) -> Request:
        member = await w.fresh_member()
        return "POST", f"/api/v1/members/{member.id}/suspend", {"reason": "check"}

    async def reactivate(w: World) -> Request:
        member = await w.fresh_member()
        await w.api.post(f"/api/v1/members/{member.id}/suspend", {"reason": "check"})
        return "POST", f"/api/v1/members/{member.id}/reactivate", None

    async def set_role(w: World) -> Request:
        member = await w.fresh_member()
        return "POST", f"/api/v1/members/{member.id}/role", {"role": "auditor", "reason": "r"}

    async def view_pending(w: World) -> Request:
        return "GET", f"/api/v1/members/{await w.pending()}", None

    async def add_admin(w: World) -> Request:
        member = await w.fresh_member()
        return "PUT", f"/api/v1/organisations/{acme['id']}/admins/{member.id}", None

    async def remove_admin(w: World) -> Request:
        member = await w.fresh_member()
        await w.api.request("PUT", f"/api/v1/organisations/{acme['id']}/admins/{member.id}")
        return "DELETE", f"/api/v1/organisations/{acme['id']}/admins/{member.id}", None

    async def propose(w: World) -> Request:
        member = await w.fresh_member()
        return "POST", f"/api/v1/organisations/{acme['id']}/employees", {"member_id": member.id}

    async def see_link(w: World) -> Request:
        return "GET", f"/api/v1/employee-links/{await w.proposed_link()}", None

    async def accept(w: World) -> Request:
        return "POST", f"/api/v1/employee-links/{await w.proposed_link()}/accept", None

    async def decline(w: World) -> Request:
        return "POST", f"/api/v1/employee-links/{await w.proposed_link()}/decline", None

    async def end(w: World) -> Request:
        return "POST", f"/api/v1/employee-links/{await w.active_link()}/end", None

    async def revoke_marcos_token(w: World) -> Request:
        created = await w.api.post(
            "/api/v1/auth/tokens", {"name": "spare", "scopes": ["read"]}, role=MEMBER
        )
        return "DELETE", f"/api/v1/auth/tokens/{created.json()['id']}", None

    def transfer(payer: str) -> Make:
        async def make(_w: World) -> Request:
            body = {"id": new_uuid(), "payer": payer, "payee": giulia.account, "minutes": 1}
            return "POST", "/api/v1/transfers", body

        return make

    async def batch(_w: World) -> Request:
        item = {"id": new_uuid(), "payer": marco.account, "payee": giulia.account, "minutes": 1}
        return "POST", "/api/v1/transfers/batch", {"transfers": [item]}

    async def post_hold(w: World) -> Request:
        return "POST", f"/api/v1/transfers/{await w.hold()}/post", None

    async def void_hold(w: World) -> Request:
        return "POST", f"/api/v1/transfers/{await w.hold()}/void", None

    async def reverse(w: World) -> Request:
        paid = await w.api.transfer(marco.account, giulia.account, 1)
        return "POST", f"/api/v1/entries/{paid.json()['index']}/reverse", {"id": new_uuid()}

    async def open_account(w: World) -> Request:
        return "POST", "/api/v1/accounts", {"id": f"acct-{w.unique()}", "kind": "pool"}

    async def set_limits(_w: World) -> Request:
        body = {"id": new_uuid(), "min_balance": -700, "max_balance": None, "reason": "carer"}
        return "POST", f"/api/v1/accounts/{marco.account}/limits", body

    async def register(w: World) -> Request:
        body = {"email": f"{w.unique()}@example.org", "password": PASSWORD, "name": "New"}
        return "POST", "/api/v1/members/register", body

    async def create_member(w: World) -> Request:
        return "POST", "/api/v1/members", {"name": f"Offline {w.unique()}"}

    async def create_org(w: World) -> Request:
        return "POST", "/api/v1/organisations", {"name": f"Org {w.unique()}", "kind": "company"}

    # -- listings and matching (fresh listings for the requests that change one) --------
    listing_body = {"kind": "offer", "title": "Help", "area": "housing", "zone": "municipio-6"}

    async def fresh_listing(w: World, role: str = MEMBER, **extra: Any) -> str:
        created = await w.api.post("/api/v1/listings", {**listing_body, **extra}, role=role)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def on_listing(method: str, suffix: str = "", body: Any = None, **extra: Any) -> Make:
        async def make(w: World) -> Request:
            return method, f"/api/v1/listings/{await fresh_listing(w, **extra)}{suffix}", body

        return make

    async def introduce(w: World) -> Request:
        request_id = await fresh_listing(w, kind="request")
        return "POST", "/api/v1/introductions", {"request_id": request_id, "member_id": giulia.id}

    async def suggestions(w: World) -> Request:
        request_id = await fresh_listing(w, kind="request")
        return "GET", f"/api/v1/requests/{request_id}/suggestions", None

    # -- exchanges (Giulia provides, Marco receives; fresh exchanges in each state) -------
    def on_exchange(state: str, action: str = "", body: Any = None) -> Make:
        async def make(w: World) -> Request:
            exchange_id = await exchange_in(w.api, giulia, marco, state, minutes=2)
            return "GET" if not action else "POST", f"/api/v1/exchanges/{exchange_id}{action}", body

        return make

    def exchange_body(path: str, **extra: Any) -> Make:
        async def make(_w: World) -> Request:
            body = {"id": new_uuid(), "provider": giulia.account, "receiver": marco.account}
            return "POST", path, {**body, "minutes": 2, "title": "Homework", **extra}

        return make

    group_body = {"title": "Lab", "minutes": 2, "facilitators": [giulia.account]}

    async def create_group(_w: World) -> Request:
        body = {"id": new_uuid(), **group_body, "participants": [{"account": marco.account}]}
        return "POST", "/api/v1/exchanges/group", body

    def on_group(suffix: str = "") -> Make:
        async def make(w: World) -> Request:
            _m, path, body = await create_group(w)
            created = await w.api.post(path, body, role=MANAGER)
            assert created.status_code == 201, created.text
            method = "POST" if suffix else "GET"
            return method, f"/api/v1/exchanges/group/{created.json()['id']}{suffix}", None

        return make

    # -- notifications, email changes, organisation status ------------------------------
    async def marcos_notification(w: World) -> Request:
        await exchange_in(w.api, giulia, marco, "proposed", minutes=2)
        page = (await w.api.get("/api/v1/notifications", role=MEMBER, limit=1)).json()
        return "POST", f"/api/v1/notifications/{page['items'][0]['id']}/read", None

    async def email_change(w: World) -> Request:
        body = {"email": f"{w.unique()}@example.org", "password": PASSWORD}
        return "POST", "/api/v1/auth/email-change", body

    async def set_offline_email(w: World) -> Request:
        created = await w.api.post("/api/v1/members", {"name": f"Offline {w.unique()}"})
        body = {"email": f"{w.unique()}@example.org", "reason": "her daughter's"}
        return "POST", f"/api/v1/members/{created.json()['id']}/email", body

    async def fresh_org(w: World) -> str:
        body = {"name": f"Org {w.unique()}", "kind": "nonprofit"}
        created = await w.api.post("/api/v1/organisations", body, role=MANAGER)
        return str(created.json()["id"])

    async def suspend_org(w: World) -> Request:
        return "POST", f"/api/v1/organisations/{await fresh_org(w)}/suspend", {"reason": "r"}

    async def reactivate_org(w: World) -> Request:
        org_id = await fresh_org(w)
        await w.api.post(f"/api/v1/organisations/{org_id}/suspend", {"reason": "r"})
        return "POST", f"/api/v1/organisations/{org_id}/reactivate", {"reason": "r"}

    settings_path = "/api/v1/members/me/notification-settings"

    # -- sponsorship policies (Acme's grant, enrolling by its admin; the community pool) --
    async def policies(w: World) -> tuple[str, str]:
        """Apply the two policies once per world; (grant id, pool id)."""
        if not getattr(w, "policies_applied", False):
            await apply_matrix_policies(w)
            w.policies_applied = True  # type: ignore[attr-defined]
        return GRANT_POLICY, POOL_POLICY

    def on_policy(suffix: str = "", method: str = "GET") -> Make:
        async def make(w: World) -> Request:
            grant, _pool = await policies(w)
            return method, f"/api/v1/policies/{grant}{suffix}", None

        return make

    async def policy_version(w: World) -> Request:
        await policies(w)
        versions = (await w.api.get(f"/api/v1/policies/{GRANT_POLICY}/versions")).json()
        return "GET", f"/api/v1/policy-versions/{versions['items'][0]['version']}", None

    async def employee(w: World) -> Person:
        member = await w.fresh_member()
        link = await w.api.post(
            f"/api/v1/organisations/{acme['id']}/employees", {"member_id": member.id}
        )
        accepted = await w.api.post(
            f"/api/v1/employee-links/{link.json()['id']}/accept", role=member.key
        )
        assert accepted.status_code == 200, accepted.text
        return member

    async def enrol(w: World) -> Request:
        grant, _pool = await policies(w)
        member = await employee(w)
        return "PUT", f"/api/v1/policies/{grant}/enrolments/{member.id}", None

    async def unenrol(w: World) -> Request:
        method, path, _body = await enrol(w)
        assert (await w.api.request(method, path)).status_code == 201
        return "DELETE", path, None

    async def pool_grant(w: World) -> Request:
        _grant, pool = await policies(w)
        body = {"id": new_uuid(), "member_id": giulia.id, "minutes": 1, "reason": "hardship"}
        return "POST", f"/api/v1/policies/{pool}/pool-grants", body

    sponsor_reader = expect(403, paolo=200, manager=200, auditor=200, admin=200)

    # -- jobs and reports (the monthly report: made once by the job, for last month) -----
    def monthly(suffix: str = "") -> Make:
        async def make(w: World) -> Request:
            month = w.api.client.blocking_portal.call(_monthly_report)
            return "GET", f"/api/v1/reports/coproduction/{month}{suffix}", None

        async def _monthly_report() -> str:
            runner = JobRunner(w.api.app.state.timebank, ALL_JOBS)
            period = last_complete(Every.MONTH, runner.now())
            outcome = await runner.run_period(runner.job("co-production-report"), period)
            assert outcome.status in ("succeeded", "already-done"), outcome
            return period.key

        return make

    marco_account = f"/api/v1/accounts/{marco.account}"
    acme_account = f"/api/v1/accounts/{acme['account_id']}"
    return [
        # -- public --------------------------------------------------------------------
        ("zones", fixed("GET", "/api/v1/zones"), PUBLIC_OK),
        ("areas", fixed("GET", "/api/v1/areas"), PUBLIC_OK),
        ("checkpoint", fixed("GET", "/api/v1/ledger/checkpoint"), PUBLIC_OK),
        ("key", fixed("GET", "/api/v1/ledger/key"), PUBLIC_OK),
        ("inclusion", fixed("GET", "/api/v1/ledger/proof/inclusion?index=0"), PUBLIC_OK),
        ("consistency", fixed("GET", "/api/v1/ledger/proof/consistency?from=1"), PUBLIC_OK),
        ("register", register, expect(202, anon=202)),
        (
            "login",
            fixed("POST", "/api/v1/auth/login", {"email": marco.email, "password": PASSWORD}),
            PUBLIC_OK,
        ),
        (
            "reset request",
            fixed("POST", "/api/v1/auth/password-reset", {"email": marco.email}),
            expect(202, anon=202),
        ),
        (
            "reset confirm",
            fixed(
                "POST",
                "/api/v1/auth/password-reset/confirm",
                {"token": "rst_" + "A" * 43, "password": PASSWORD},
            ),
            expect(422, anon=422),
        ),
        # -- members -------------------------------------------------------------------
        ("list members", fixed("GET", "/api/v1/members"), READ_ALL),
        ("me", fixed("GET", "/api/v1/members/me"), MEMBER_ONLY),
        ("view member", fixed("GET", f"/api/v1/members/{marco.id}"), READ_ALL),
        ("view pending member", view_pending, expect(404, manager=200, auditor=200, admin=200)),
        (
            "member links",
            fixed("GET", f"/api/v1/members/{marco.id}/links"),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        (
            "edit profile",
            fixed("PATCH", f"/api/v1/members/{marco.id}", {"about": "hello"}),
            expect(403, marco=200, manager=200, admin=200),
        ),
        ("create member", create_member, STAFF_ONLY_WRITE),
        ("approve", approve, STAFF_ONLY_200),
        ("reject", reject, STAFF_ONLY_200),
        ("suspend", suspend, STAFF_ONLY_200),
        ("reactivate", reactivate, STAFF_ONLY_200),
        ("set role", set_role, expect(403, admin=200)),
        (
            "audit log",
            fixed("GET", "/api/v1/audit"),
            expect(403, manager=200, auditor=200, admin=200),
        ),
        # -- organisations ---------------------------------------------------------------
        ("create org", create_org, STAFF_ONLY_WRITE),
        ("list orgs", fixed("GET", "/api/v1/organisations"), READ_ALL),
        ("view org", fixed("GET", f"/api/v1/organisations/{acme['id']}"), READ_ALL),
        (
            "edit org",
            fixed("PATCH", f"/api/v1/organisations/{acme['id']}", {"description": "d"}),
            ORG_MANAGE,
        ),
        ("add org admin", add_admin, expect(403, paolo=201, manager=201, admin=201)),
        ("remove org admin", remove_admin, ORG_MANAGE),
        ("propose employee", propose, expect(403, paolo=201, manager=201, admin=201)),
        (
            "list employees",
            fixed("GET", f"/api/v1/organisations/{acme['id']}/employees"),
            expect(403, paolo=200, manager=200, auditor=200, admin=200),
        ),
        (
            "view link",
            see_link,
            expect(404, marco=200, paolo=200, manager=200, auditor=200, admin=200),
        ),
        (
            "accept link",
            accept,
            expect(404, marco=200, paolo=403, manager=403, auditor=403, admin=403),
        ),
        (
            "decline link",
            decline,
            expect(404, marco=200, paolo=403, manager=403, auditor=403, admin=403),
        ),
        ("end link", end, expect(404, marco=200, paolo=200, manager=200, auditor=403, admin=200)),
        # -- the ledger ----------------------------------------------------------------------
        (
            "entries",
            fixed("GET", "/api/v1/ledger/entries"),
            expect(403, manager=200, auditor=200, admin=200),
        ),
        (
            "read account",
            fixed("GET", marco_account),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        (
            "read statement",
            fixed("GET", f"{marco_account}/statement"),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        (
            "read org account",
            fixed("GET", acme_account),
            expect(403, paolo=200, manager=200, auditor=200, admin=200),
        ),
        ("open account", open_account, STAFF_ONLY_WRITE),
        ("set limits", set_limits, STAFF_ONLY_WRITE),
        ("transfer", transfer(marco.account), expect(403, marco=201, manager=201, admin=201)),
        (
            "org transfer",
            transfer(acme["account_id"]),
            expect(403, paolo=201, manager=201, admin=201),
        ),
        ("batch", batch, expect(403, marco=200, manager=200, admin=200)),
        ("post hold", post_hold, expect(403, marco=201, manager=201, admin=201)),
        ("void hold", void_hold, expect(403, marco=201, giulia=201, manager=201, admin=201)),
        ("reverse", reverse, STAFF_ONLY_WRITE),
        # -- listings and matching -----------------------------------------------------------
        (
            "create listing",
            fixed("POST", "/api/v1/listings", listing_body),
            expect(201, manager=403, auditor=403, admin=403),
        ),
        (
            "create org listing",
            fixed("POST", "/api/v1/listings", {**listing_body, "organisation_id": acme["id"]}),
            expect(403, paolo=201, manager=201, admin=201),
        ),
        ("search listings", fixed("GET", "/api/v1/listings?q=help&zone=municipio-6"), READ_ALL),
        ("view listing", on_listing("GET"), READ_ALL),
        (
            "edit listing",
            on_listing("PATCH", body={"title": "Changed"}),
            expect(403, marco=200, manager=200, admin=200),
        ),
        (
            "renew listing",
            on_listing("POST", "/renew"),
            expect(403, marco=200, manager=200, admin=200),
        ),
        (
            "close listing",
            on_listing("POST", "/close"),
            expect(403, marco=200, manager=200, admin=200),
        ),
        (
            "edit org listing",
            on_listing("PATCH", body={"title": "Ours"}, role=ORG, organisation_id=acme["id"]),
            expect(403, paolo=200, manager=200, admin=200),
        ),
        (
            "suggestions",
            suggestions,
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        (
            "manager queue",
            fixed("GET", "/api/v1/manager/queue"),
            expect(403, manager=200, auditor=200, admin=200),
        ),
        ("introduce", introduce, STAFF_ONLY_WRITE),
        (
            "list introductions",
            fixed("GET", "/api/v1/introductions"),
            expect(403, manager=200, auditor=200, admin=200),
        ),
        # -- exchanges ---------------------------------------------------------------------
        (
            "propose exchange",
            exchange_body("/api/v1/exchanges"),
            expect(403, marco=201, giulia=201, manager=201, admin=201),
        ),
        ("list exchanges", fixed("GET", "/api/v1/exchanges"), READ_ALL),
        ("view exchange", on_exchange("proposed"), PARTIES_AND_STAFF),
        ("accept exchange", on_exchange("proposed", "/accept"), RECEIVER_OR_MANAGER),
        ("decline exchange", on_exchange("proposed", "/decline"), RECEIVER_OR_MANAGER),
        (
            "cancel exchange",
            on_exchange("accepted", "/cancel"),
            expect(404, marco=200, giulia=200, manager=200, auditor=403, admin=200),
        ),
        (
            "mark exchange done",
            on_exchange("accepted", "/done"),
            expect(404, marco=403, giulia=200, manager=200, auditor=403, admin=200),
        ),
        ("confirm exchange", on_exchange("done", "/confirm"), RECEIVER_OR_MANAGER),
        (
            "dispute exchange",
            on_exchange("done", "/dispute", {"reason": "it did not happen"}),
            expect(404, marco=200, giulia=200, manager=403, auditor=403, admin=403),
        ),
        (
            "resolve exchange",
            on_exchange("disputed", "/resolve", {"minutes": 1, "reason": "half"}),
            expect(403, manager=200, admin=200),
        ),
        (
            "thank for exchange",
            on_exchange("confirmed", "/thank", {"message": "Grazie"}),
            expect(404, marco=201, giulia=201, manager=403, auditor=403, admin=403),
        ),
        ("record exchange", exchange_body("/api/v1/exchanges/record"), STAFF_ONLY_WRITE),
        ("create group exchange", create_group, STAFF_ONLY_WRITE),
        ("view group exchange", on_group(), PARTIES_AND_STAFF),
        ("settle group exchange", on_group("/settle"), STAFF_ONLY_200),
        ("member thanks", fixed("GET", f"/api/v1/members/{giulia.id}/thanks"), READ_ALL),
        (
            "member statement",
            fixed("GET", f"/api/v1/members/{marco.id}/statement"),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        (
            "member statement csv",
            fixed("GET", f"/api/v1/members/{marco.id}/statement.csv"),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        # -- notifications, email changes, organisation status ----------------------------
        ("notifications", fixed("GET", "/api/v1/notifications?unread=true"), MEMBER_ONLY),
        (
            "read notification",
            marcos_notification,
            expect(404, marco=200, manager=403, auditor=403, admin=403),
        ),
        ("read all notifications", fixed("POST", "/api/v1/notifications/read-all"), MEMBER_ONLY),
        ("notification settings", fixed("GET", settings_path), MEMBER_ONLY),
        (
            "change notification settings",
            fixed("PUT", settings_path, {"email": {"exchange.done": False}, "digest": False}),
            MEMBER_ONLY,
        ),
        ("email change", email_change, expect(202, manager=403, auditor=403, admin=403)),
        (
            "email change confirm",
            fixed("POST", "/api/v1/auth/email-change/confirm", {"token": "eml_" + "A" * 43}),
            expect(422, anon=422),
        ),
        ("set offline member's email", set_offline_email, STAFF_ONLY_200),
        ("suspend org", suspend_org, STAFF_ONLY_200),
        ("reactivate org", reactivate_org, STAFF_ONLY_200),
        # -- sponsorship policies --------------------------------------------------------
        ("list policies", on_policy_list(policies), READ_ALL),
        ("view policy", on_policy(), READ_ALL),
        ("policy versions", on_policy("/versions"), READ_ALL),
        ("policy version text", policy_version, READ_ALL),
        ("simulate policy", on_policy("/simulate?period=2026-11"), sponsor_reader),
        ("policy enrolments", on_policy("/enrolments"), sponsor_reader),
        ("enrol in policy", enrol, expect(403, paolo=201, manager=201, admin=201)),
        ("unenrol from policy", unenrol, expect(403, paolo=204, manager=204, admin=204)),
        ("grant from pool", pool_grant, STAFF_ONLY_WRITE),
        (
            "sponsorship figures",
            fixed("GET", f"/api/v1/organisations/{acme['id']}/sponsorship"),
            sponsor_reader,
        ),
        (
            "sponsored credit",
            fixed("GET", f"/api/v1/members/{marco.id}/sponsored-credit"),
            expect(403, marco=200, manager=200, auditor=200, admin=200),
        ),
        # -- jobs and reports (staff only) ----------------------------------------------
        ("job runs", fixed("GET", "/api/v1/jobs/runs"), STAFF_READ_200),
        ("ledger verification", fixed("GET", "/api/v1/ledger/verification"), STAFF_READ_200),
        (
            "co-production report",
            fixed("GET", "/api/v1/reports/coproduction?from=2026-01-01&to=2026-02-01"),
            STAFF_READ_200,
        ),
        ("monthly co-production report", monthly(), STAFF_READ_200),
        ("monthly report directory", monthly("/directory"), STAFF_READ_200),
        # -- federation (peers: admins; node-to-node: signatures, never tokens) -----------
        *federation_rows(expect),
        # -- sessions (last: they change tokens and passwords) ---------------------------
        ("list tokens", fixed("GET", "/api/v1/auth/tokens"), MEMBER_ONLY),
        (
            "create token",
            fixed("POST", "/api/v1/auth/tokens", {"name": "app", "scopes": ["read"]}),
            expect(201, manager=403, auditor=403, admin=403),
        ),
        (
            "revoke marco's token",
            revoke_marcos_token,
            expect(404, marco=204, manager=403, auditor=403, admin=204),
        ),
        (
            "change password",
            fixed(
                "POST",
                "/api/v1/auth/password",
                {"current_password": PASSWORD, "new_password": "a new long password"},
            ),
            expect(204, manager=403, auditor=403, admin=403),
        ),
        ("logout", fixed("POST", "/api/v1/auth/logout"), expect(204)),
    ]


#: Policy ids with four dashes, so that the route check below sees them as parameters.
GRANT_POLICY = "acme-care-grant-matrix-x"
POOL_POLICY = "community-pool-matrix-test-x"


def on_policy_list(policies: Callable[[World], Awaitable[tuple[str, str]]]) -> Make:
    async def make(w: World) -> Request:
        await policies(w)
        return "GET", "/api/v1/policies", None

    return make


async def apply_matrix_policies(w: World) -> None:
    """Acme's grant (its admin enrols employees) and a funded community pool."""
    from scambio.ledger.entry import now_time
    from scambio.policy.loader import apply_directory

    from .policy_helpers import policy_text

    folder = Path(tempfile.mkdtemp(prefix="matrix-policies-"))
    (folder / "grant.toml").write_text(
        policy_text(
            GRANT_POLICY,
            "grant",
            w.acme["id"],
            {"minutes": 60, "areas": ["childcare"], "enrolment": "by-admin"},
        )
    )
    (folder / "pool.toml").write_text(
        policy_text(POOL_POLICY, "pool", None, {"member_cap_minutes": 60000})
    )
    engine = make_engine(str(w.api.ledger.engine.url), null_pool=True)
    try:
        assert (await apply_directory(engine, folder, now_time())).ok
    finally:
        await engine.dispose()
        shutil.rmtree(folder)
    await w.api.open("pool:community", "pool")
    await w.api.open("fund-matrix", "sponsor")
    funded = await w.api.transfer("fund-matrix", "pool:community", 100_000)
    assert funded.status_code == 201, funded.text


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with running_api(db_url, tmp_path) as api:
        people = {key: await api.add_member(key) for key in MEMBERS}
        acme = await api.add_org("Acme", admin=people[ORG])
        await api.add_org("Beta", admin=people[OTHER_ORG])
        yield World(api, people, acme)


async def audit_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(audit_log))).scalar_one())


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "anonymous")
async def test_authorisation_matrix(world: World, caller: str | None) -> None:
    api = world.api
    engine = make_engine(str(api.ledger.engine.url), null_pool=True)
    failures: list[str] = []
    try:
        for name, make, expected in rows(world):
            method, path, body = await make(world)
            size, audited = await api.tree_size(), await audit_count(engine)
            response = await api.request(method, path, role=caller, json=body)
            want = expected[caller]
            if response.status_code != want:
                failures.append(
                    f"{name}: {method} {path} -> {response.status_code}, want {want}: "
                    f"{response.text[:160]}"
                )
                continue
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
                if (await api.tree_size(), await audit_count(engine)) != (size, audited):
                    failures.append(f"{name}: refused with {want} but changed something")
    finally:
        await engine.dispose()
    assert not failures, "\n".join(failures)


async def test_every_route_is_in_the_matrix(world: World) -> None:
    """A route added later must be added to the matrix (or to the ledger's own matrix)."""
    schema = (await world.api.client.get("/schema/openapi.json")).json()
    operations = {
        op["operationId"]
        for item in schema["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    matrix_paths = {
        path.split("?")[0] for _n, make, _e in rows(world) for path in [(await make(world))[1]]
    }
    templated = {
        "/api/v1/"
        + "/".join(
            "{}"
            if (len(part) == 16 and all(c in "0123456789abcdef" for c in part))
            or part.isdigit()
            or part.count("-") == 4
            or part.startswith(("m-", "o-"))
            or (len(part) == 64 and all(c in "0123456789abcdef" for c in part))
            or re.fullmatch(r"\d{4}-\d\d", part) is not None
            else part
            for part in path.removeprefix("/api/v1/").split("/")
        )
        for path in matrix_paths
    }
    documented = {
        "/".join("{}" if part.startswith("{") else part for part in path.split("/"))
        for path in schema["paths"]
        if path.startswith("/api/v1/")
    }
    assert documented <= templated, sorted(documented - templated)
    assert len(operations) >= 45
