"""The web app over plain HTTP: the main story, a manager's introduction, CSRF refusals,
who may see which page, and bad form input (a 4xx page, nothing written).

The browser tests (test_web_browser.py) drive the same pages in Chromium; these run in
process, on SQLite and PostgreSQL, and cover every route.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from scambio.store.people_tables import audit_log
from scambio.store.tables import entries

from .api_helpers import PASSWORD, Api, Person, exchange_in, post_listing, running_api
from .web_helpers import Browser, browser, form_value

ID16 = r"[0-9a-f]{16}"


async def counts(api: Api) -> tuple[int, int]:
    """(ledger entries, audit rows): what a refused request must leave unchanged."""
    async with api.ledger.engine.connect() as conn:
        ledger = (await conn.execute(select(func.count()).select_from(entries))).scalar_one()
        audited = (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one()
    return int(ledger), int(audited)


async def balance(api: Api, account: str) -> int:
    response = await api.get(f"/api/v1/accounts/{account}")
    assert response.status_code == 200, response.text
    return int(response.json()["posted"])


def location(response: Any) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:1500])
    return str(response.headers["location"])


# -- the main story --------------------------------------------------------------------------


async def test_giulia_signs_up_is_approved_offers_help_and_is_paid(
    db_url: str, tmp_path: Path
) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", name="Sara Bianchi", role="manager")
        marco = await api.add_member("marco", name="Marco Rossi", zone="municipio-6")

        giulia = browser(api)
        page = await giulia.get("/signup")
        assert page.status_code == 200 and 'name="password"' in page.text
        done = await giulia.post(
            "/signup",
            {
                "name": "Giulia Verdi",
                "email": "giulia@example.org",
                "password": PASSWORD,
                "zone": "municipio-6",
                "areas": ["training_empowerment", "childcare"],
            },
        )
        assert location(done) == "/login?done=registered"
        # Pending: the password is right, but a manager has not approved her yet.
        await giulia.get("/login")
        refused = await giulia.post("/login", {"email": "giulia@example.org", "password": PASSWORD})
        assert refused.status_code == 403
        assert "approvazione di un community manager" in refused.text

        sara = browser(api)
        await sara.login("sara@example.org")
        queue = await sara.get("/manage/approvals")
        assert "Giulia Verdi" in queue.text
        giulia_id = re.findall(rf"/manage/members/({ID16})/approve", queue.text)[0]
        assert location(await sara.post(f"/manage/members/{giulia_id}/approve")).startswith(
            "/manage/approvals"
        )

        home = await giulia.login("giulia@example.org")
        assert "Giulia Verdi" in home.text and "Le tue ore" in home.text
        posted = await giulia.post(
            "/listings",
            {
                "kind": "offer",
                "title": "Aiuto compiti di matematica",
                "area": "training_empowerment",
                "zone": "municipio-6",
                "mode": "in_person",
                "description": "Pomeriggi, scuola media",
                "tags": "matematica, compiti",
            },
        )
        listing_id = re.fullmatch(rf"/listings/({ID16})\?done=listing-created", location(posted))
        assert listing_id is not None
        listing = listing_id.group(1)

        marco_b = browser(api)
        await marco_b.login(marco.email)
        found = await marco_b.get("/listings?q=matematica&zone=municipio-6")
        assert f"/listings/{listing}" in found.text
        offer = await marco_b.get(f"/listings/{listing}")
        exchange_id = form_value(offer.text, "id")
        proposed = await marco_b.post(
            f"/listings/{listing}/propose",
            {"id": exchange_id, "minutes": "90", "title": "Compiti di matematica"},
        )
        assert location(proposed) == f"/exchanges/{exchange_id}?done=proposed"
        # The same form sent twice proposes once (the id is the idempotency key).
        again = await marco_b.post(
            f"/listings/{listing}/propose",
            {"id": exchange_id, "minutes": "90", "title": "Compiti di matematica"},
        )
        assert location(again) == f"/exchanges/{exchange_id}?done=proposed"

        todo = await giulia.get("/home")
        assert f"/exchanges/{exchange_id}" in todo.text
        for who, move, data in (
            (giulia, "accept", {}),
            (giulia, "done", {"minutes": "90"}),
            (marco_b, "confirm", {}),
        ):
            moved = await who.post(f"/exchanges/{exchange_id}/{move}", data)
            assert location(moved) == f"/exchanges/{exchange_id}?done=exchange-updated"
        shown = await marco_b.follow(moved)
        assert "confermato" in shown.text

        giulia_account = f"m-{giulia_id}"
        assert await balance(api, giulia_account) == 90
        assert await balance(api, marco.account) == -90
        assert 'id="balance-posted">1 h 30 min<' in (await giulia.get("/home")).text

        statement = await marco_b.get("/statement?lang=en")
        assert "Compiti di matematica" in statement.text and "-1 h 30 min" in statement.text
        index = re.findall(r'href="/verify/(\d+)"', statement.text)[-1]
        verified = await marco_b.get(f"/verify/{index}?lang=en")
        assert verified.status_code == 200
        assert "Verified." in verified.text and 'id="leaf-hash"' in verified.text
        csv = await marco_b.get("/statement.csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert "Compiti di matematica" in csv.text and ",-90," in csv.text

        thanked = await marco_b.post(f"/exchanges/{exchange_id}/thank", {"message": "Grazie!"})
        assert location(thanked) == f"/exchanges/{exchange_id}?done=thanked"


async def test_a_manager_follows_a_suggested_match(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", name="Sara Bianchi", role="manager")
        giulia = await api.add_member("giulia", name="Giulia Verdi", zone="municipio-6")
        marco = await api.add_member("marco", name="Marco Rossi", zone="municipio-6")
        offer = await post_listing(api, "giulia", title="Homework help")
        request = await post_listing(api, "marco", kind="request", title="Maths homework")

        sara = browser(api)
        await sara.login("sara@example.org")
        queue = await sara.get("/manage/queue")
        assert "Maths homework" in queue.text and "Giulia Verdi" in queue.text
        before = (await api.get("/api/v1/notifications", role="marco")).json()["unread_count"]
        introduced = await sara.post(
            "/manage/introductions",
            {
                "request_id": request["id"],
                "helper_type": "member",
                "helper_id": giulia.id,
                "offer_id": offer["id"],
            },
            headers={"HX-Request": "true"},
        )
        assert introduced.status_code == 200
        assert f'id="suggestion-{request["id"]}-{giulia.id}"' in introduced.text
        assert "Presentati" in introduced.text
        # The request leaves the queue; both sides are told.
        assert "Maths homework" not in (await sara.get("/manage/queue")).text
        after = (await api.get("/api/v1/notifications", role="marco")).json()["unread_count"]
        assert after == before + 1
        assert (await api.get("/api/v1/notifications", role="giulia")).json()["unread_count"]
        _ = marco


# -- CSRF ------------------------------------------------------------------------------------


def page_post_routes(api: Api) -> list[str]:
    paths = []
    for route in api.app.routes:
        if route.path.startswith(("/api/", "/schema", "/static")):
            continue
        if "POST" in getattr(route, "methods", ()):
            paths.append(route.path)
    return sorted(paths)


def concrete(path: str) -> str:
    return re.sub(r"\{([a-z_]+):(str|int)\}", lambda m: "1" if m.group(2) == "int" else "x", path)


async def test_every_form_is_refused_without_its_csrf_token(tmp_path: Path, db_url: str) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", name="Sara Bianchi", role="manager")
        sara = browser(api)
        await sara.login("sara@example.org")
        other = browser(api)
        await other.get("/login")
        routes = page_post_routes(api)
        assert {"/signup", "/login", "/logout", "/listings", "/manage/reversals"} <= set(routes)
        before = await counts(api)
        for path in routes:
            target = concrete(path)
            for data, headers in (
                ({}, {}),  # no token
                ({"csrf": "x" * 43}, {}),  # a made-up token
                ({"csrf": other.csrf}, {}),  # another browser's token
                ({"csrf": sara.csrf}, {"Origin": "http://evil.example"}),  # another site
                ({"csrf": sara.csrf}, {"Sec-Fetch-Site": "cross-site"}),
            ):
                response = await sara.post(target, data, csrf=False, headers=headers)
                assert response.status_code == 403, (path, data, headers, response.text[:500])
                assert "nulla" in response.text or "nothing" in response.text, path
            htmx = await sara.request(
                "POST", target, headers={"HX-Request": "true", "X-CSRF-Token": "nope"}
            )
            assert htmx.status_code == 403 and htmx.headers["HX-Retarget"] == "#messages"
        assert await counts(api) == before
        # The right token (in the form or the HTMX header) works.
        out = await sara.request("POST", "/logout", headers={"X-CSRF-Token": sara.csrf or ""})
        assert location(out) == "/login?done=logged-out"


# -- who may see what ------------------------------------------------------------------------


async def _world(api: Api) -> dict[str, Any]:
    people = {
        "sara": await api.add_member("sara", name="Sara", role="manager"),
        "anna": await api.add_member("anna", name="Anna", role="auditor"),
        "marco": await api.add_member("marco", name="Marco", zone="municipio-6"),
        "giulia": await api.add_member("giulia", name="Giulia", zone="municipio-6"),
        "paolo": await api.add_member("paolo", name="Paolo", zone="municipio-4"),
    }
    acme = await api.add_org("Acme", admin=people["paolo"])
    ex = await exchange_in(api, people["giulia"], people["marco"], "confirmed")
    browsers: dict[str, Browser] = {}
    for key, person in people.items():
        browsers[key] = browser(api)
        await browsers[key].login(person.email)
    return {"people": people, "acme": acme, "exchange": ex, "b": browsers}


async def test_pages_follow_the_api_authorisation(tmp_path: Path, db_url: str) -> None:
    async with running_api(db_url, tmp_path) as api:
        w = await _world(api)
        people: dict[str, Person] = w["people"]
        b: dict[str, Browser] = w["b"]
        acme_id = w["acme"]["id"]
        giulia_statement = f"/members/{people['giulia'].id}/statement"
        marco_entry = re.findall(r'href="/verify/(\d+)"', (await b["marco"].get("/statement")).text)
        assert marco_entry

        anonymous = browser(api)
        for path in ("/home", "/listings", "/statement", "/manage", f"/exchanges/{w['exchange']}"):
            assert location(await anonymous.get(path)).startswith("/login?next=")
        for path in ("/", "/login", "/signup", "/ledger", "/password-reset"):
            assert (await anonymous.get(path)).status_code == 200, path
        # A form from a visitor without a session: refused as unauthenticated.
        await anonymous.get("/login")
        assert (await anonymous.post("/listings", {"kind": "offer"})).status_code == 401

        expectations: list[tuple[str, str, int]] = [
            # (who, path, status)
            ("marco", "/statement", 200),
            ("marco", giulia_statement, 403),
            ("marco", giulia_statement + ".csv", 403),
            ("giulia", giulia_statement, 200),
            ("sara", giulia_statement, 200),
            ("anna", giulia_statement + ".csv", 200),
            ("paolo", f"/exchanges/{w['exchange']}", 404),
            ("marco", f"/exchanges/{w['exchange']}", 200),
            ("anna", f"/exchanges/{w['exchange']}", 200),
            ("paolo", f"/verify/{marco_entry[-1]}", 404),
            ("marco", f"/verify/{marco_entry[-1]}", 200),
            ("marco", "/manage", 403),
            ("marco", "/manage/approvals", 403),
            ("marco", "/manage/audit", 403),
            ("anna", "/manage", 200),
            ("anna", "/manage/approvals", 200),
            ("anna", "/manage/audit", 200),
            ("anna", "/manage/record", 403),
            ("anna", "/manage/reversals", 403),
            ("sara", "/manage/record", 200),
            ("sara", "/manage/reversals", 200),
            ("paolo", f"/organisations/{acme_id}", 200),
            ("marco", f"/organisations/{acme_id}", 403),
            ("sara", f"/organisations/{acme_id}", 200),
            ("marco", "/organisations/0123456789abcdef", 404),
            ("marco", "/exchanges/not-a-uuid", 404),
        ]
        for who, path, status in expectations:
            response = await b[who].get(path)
            assert response.status_code == status, (who, path, response.status_code)
            assert response.headers["content-type"].startswith(("text/html", "text/csv"))

        before = await counts(api)
        pending = await api.post(
            "/api/v1/members/register",
            {"email": "new@example.org", "password": PASSWORD, "name": "New"},
            role=None,
        )
        assert pending.status_code == 202
        before = await counts(api)
        refused = [
            ("anna", "/manage/members/0123456789abcdef/approve", {}, 403),
            ("marco", "/manage/introductions", {"request_id": "x"}, 403),
            ("anna", "/exchanges/" + w["exchange"] + "/thank", {"message": "hi"}, 403),
            ("marco", "/manage/reversals", {"id": "x", "index": "1", "reason": "x"}, 403),
            ("paolo", f"/exchanges/{w['exchange']}/confirm", {}, 404),
            (
                "marco",
                f"/organisations/{acme_id}/employees",
                {"member_id": people["marco"].id},
                403,
            ),
        ]
        for who, path, data, status in refused:
            response = await b[who].post(path, data)
            assert response.status_code == status, (who, path, response.status_code)
        assert await counts(api) == before


# -- bad input -------------------------------------------------------------------------------


async def test_bad_form_input_is_a_clear_4xx_page_and_writes_nothing(
    tmp_path: Path, db_url: str
) -> None:
    async with running_api(db_url, tmp_path) as api:
        giulia = await api.add_member("giulia", name="Giulia", zone="municipio-6")
        await api.add_member("marco", name="Marco", zone="municipio-6")
        offer = await post_listing(api, "giulia")
        marco = browser(api)
        await marco.login(["marco@example.org", "lang=en"][0])
        page = await marco.get(f"/listings/{offer['id']}?lang=en")
        exchange_id = form_value(page.text, "id")
        before = await counts(api)
        cases: list[tuple[str, dict[str, Any], int, str]] = [
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "90.0", "title": "x"},
                400,
                "minutes",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "ninety", "title": "x"},
                400,
                "minutes",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "-5", "title": "x"},
                422,
                "minutes",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "999999", "title": "x"},
                422,
                "minutes",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "60", "title": "x", "admin": "1"},
                400,
                "admin",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": "not-a-uuid", "minutes": "60", "title": "x"},
                400,
                "id",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "60", "title": ""},
                422,
                "",
            ),
            (
                f"/listings/{offer['id']}/propose",
                {"id": exchange_id, "minutes": "60", "title": "x" * 5000},
                400,
                "title",
            ),
            ("/listings", {"kind": "offer", "title": "<b>x</b>", "area": "cooking"}, 422, ""),
            ("/listings", {"kind": "gift", "title": "x", "area": "housing"}, 422, ""),
            (
                "/listings",
                {"kind": "offer", "title": "x", "area": "housing", "zone": "mars"},
                422,
                "",
            ),
            (
                "/listings",
                {"kind": "offer", "title": "x", "area": "housing", "owner": "0123456789abcdef"},
                400,
                "owner",
            ),
            ("/exchanges/" + exchange_id + "/dispute", {"reason": ""}, 422, "reason"),
            ("/notifications/read-all", {"up_to": "0"}, 400, "up_to"),
        ]
        for path, data, status, field in cases:
            response = await marco.post(path + "?lang=en", data)
            assert response.status_code == status, (
                path,
                data,
                response.status_code,
                response.text[:800],
            )
            assert response.headers["content-type"].startswith("text/html")
            assert 'class="error"' in response.text, (path, data)
            if field:
                assert field in response.text, (path, data)
        assert await counts(api) == before
        assert (await api.get("/api/v1/exchanges", role="marco")).json()["items"] == []
        _ = giulia


# -- cookies and headers ---------------------------------------------------------------------


async def test_session_cookies_and_page_headers(tmp_path: Path, db_url: str) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("marco", name="Marco")
        b = browser(api)
        login = await b.get("/login")
        csp = login.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert login.headers["cache-control"] == "no-store"
        assert login.headers["x-frame-options"] == "DENY"
        assert "<script>" not in login.text and "style=" not in login.text
        response = await b.post("/login", {"email": "marco@example.org", "password": PASSWORD})
        cookie = next(
            h for h in response.headers.get_list("set-cookie") if h.startswith("scambio_session=")
        )
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
        # Over HTTPS the cookie is Secure. (The CSRF token changed with the session.)
        await b.get("/home")
        secure = await b.request(
            "POST",
            "https://testserver.local/login",
            data={"email": "marco@example.org", "password": PASSWORD, "csrf": b.csrf},
        )
        assert secure.status_code == 303, secure.text[:500]
        cookies = " ".join(secure.headers.get_list("set-cookie"))
        assert "Secure" in cookies
        # Logging out revokes the session's token: the old cookie no longer works.
        token = b.cookies["scambio_session"]
        await b.get("/home")
        assert location(await b.post("/logout")) == "/login?done=logged-out"
        assert (
            await api.client.get("/api/v1/members/me", headers={"Authorization": f"Bearer {token}"})
        ).status_code == 401
        assert location(await b.get("/home")).startswith("/login")


@pytest.mark.parametrize("lang", ["it", "en"])
async def test_pages_render_in_italian_and_english(
    tmp_path: Path, sqlite_template: Path, lang: str
) -> None:
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "l.db")
    async with running_api(f"sqlite+aiosqlite:///{tmp_path / 'l.db'}", tmp_path) as api:
        await api.add_member("sara", name="Sara", role="manager")
        b = browser(api)
        words = {
            "it": ("Accedi", "Iscriviti", "Offerte e richieste", "Gestisci la comunità"),
            "en": ("Log in", "Sign up", "Offers and requests", "Manage the community"),
        }[lang]
        first = await b.get(f"/login?lang={lang}")
        assert f'<html lang="{lang}">' in first.text and words[0] in first.text
        # The choice sticks (cookie) on the next pages.
        assert words[1] in (await b.get("/signup")).text
        await b.login("sara@example.org")
        assert words[2] in (await b.get("/listings")).text
        assert words[3] in (await b.get("/manage")).text


async def test_every_page_needs_the_access_it_declares(tmp_path: Path, db_url: str) -> None:
    """Every page route, generically: visitors are sent to log in unless the page is
    public; a member gets 403 on staff pages; an auditor gets 403 on managers' pages."""
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("anna", name="Anna", role="auditor")
        await api.add_member("marco", name="Marco")
        visitor, marco, anna = browser(api), browser(api), browser(api)
        await marco.login("marco@example.org")
        await anna.login("anna@example.org")
        checked = 0
        for route in api.app.routes:
            if route.path.startswith(("/api/", "/schema", "/static")) or route.path == "/health":
                continue
            for handler in getattr(route, "route_handlers", []):
                if "GET" not in handler.http_methods:
                    continue
                access = handler.opt.get("access", "public" if route.path == "/" else "write")
                path = concrete(route.path)
                response = await visitor.get(path)
                if access == "public":
                    assert response.status_code in (200, 303, 404), (path, response.status_code)
                    if response.status_code == 303:
                        assert not response.headers["location"].startswith("/login"), path
                else:
                    assert location(response).startswith("/login?next="), path
                if access in ("staff-read", "write"):
                    assert (await marco.get(path)).status_code == 403, path
                if access == "write":
                    assert (await anna.get(path)).status_code == 403, path
                checked += 1
        assert checked >= 25


async def test_manager_records_for_an_offline_member_and_reverses_with_a_reason(
    tmp_path: Path, db_url: str
) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", name="Sara", role="manager")
        ada = await api.add_member("ada", name="Ada Colombo")
        bruno = await api.add_member("bruno", name="Bruno Marino")
        sara = browser(api)
        await sara.login("sara@example.org")
        form = await sara.get("/manage/record")
        assert "Ada Colombo" in form.text and "Bruno Marino" in form.text
        recorded = await sara.post(
            "/manage/record",
            {
                "id": form_value(form.text, "id"),
                "provider": ada.account,
                "receiver": bruno.account,
                "minutes": "120",
                "title": "Spesa a domicilio",
                "area": "health_wellbeing",
                "reason": "modulo cartaceo firmato",
            },
        )
        exchange_url = location(recorded)
        assert exchange_url.endswith("?done=recorded")
        assert await balance(api, ada.account) == 120
        shown = await sara.follow(recorded)
        assert "modulo cartaceo firmato" in shown.text
        index = re.findall(r'href="/verify/(\d+)"', shown.text)[-1]

        preview = await sara.get(f"/manage/reversals?index={index}")
        assert ada.account in preview.text
        request_id = form_value(preview.text, "id")
        no_reason = await sara.post(
            "/manage/reversals", {"id": request_id, "index": index, "reason": ""}
        )
        assert no_reason.status_code == 422
        assert await balance(api, ada.account) == 120
        reversed_ = await sara.post(
            "/manage/reversals",
            {"id": request_id, "index": index, "reason": "registrato due volte"},
        )
        assert location(reversed_).endswith("?done=reversed")
        assert await balance(api, ada.account) == 0 and await balance(api, bruno.account) == 0
        audit = await sara.get("/manage/audit?action=entry.reversed")
        assert "registrato due volte" in audit.text
        # Reversing it again is refused: the entry is already reversed.
        again = await sara.post(
            "/manage/reversals",
            {"id": str(__import__("uuid").uuid4()), "index": index, "reason": "di nuovo"},
        )
        assert again.status_code == 409
        assert await balance(api, ada.account) == 0


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    """A running app started before the test body (so that `caplog` sees its logs)."""
    async with running_api(db_url, tmp_path) as running:
        yield running


async def test_password_reset_through_the_pages(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="scambio.timebank.outbox")
    await api.add_member("giulia", name="Giulia")
    b = browser(api)
    await b.get("/password-reset")
    asked = await b.post("/password-reset", {"email": "GIULIA@example.org"})
    assert location(asked) == "/password-reset/confirm?done=reset-sent"
    # An unknown address gets the same answer.
    other = await b.post("/password-reset", {"email": "nobody@example.org"})
    assert location(other) == location(asked)
    await api.mail_sent()
    codes = re.findall(r"rst_[A-Za-z0-9_-]{43}", caplog.text)
    assert len(codes) == 1, caplog.text[-3000:]
    await b.get("/password-reset/confirm")
    wrong = await b.post(
        "/password-reset/confirm", {"code": "rst_" + "A" * 43, "password": "x" * 12}
    )
    assert wrong.status_code == 422 and 'class="error"' in wrong.text
    done = await b.post(
        "/password-reset/confirm", {"code": codes[0], "password": "a fresh long password"}
    )
    assert location(done) == "/login?done=password-set"
    home = await b.login("giulia@example.org", "a fresh long password")
    assert home.status_code == 200


async def test_a_manager_resolves_a_dispute(tmp_path: Path, db_url: str) -> None:
    async with running_api(db_url, tmp_path) as api:
        await api.add_member("sara", name="Sara", role="manager")
        await api.add_member("anna", name="Anna", role="auditor")
        giulia = await api.add_member("giulia", name="Giulia")
        marco = await api.add_member("marco", name="Marco")
        ex = await exchange_in(api, giulia, marco, "disputed", minutes=60)
        anna, sara = browser(api), browser(api)
        await anna.login("anna@example.org")
        await sara.login("sara@example.org")
        listed = await anna.get("/manage/disputes")
        assert f"/exchanges/{ex}" in listed.text
        page = await anna.get(f"/exchanges/{ex}")
        assert "/resolve" not in page.text  # an auditor reads, never acts
        refused = await anna.post(f"/exchanges/{ex}/resolve", {"minutes": "30", "reason": "x"})
        assert refused.status_code == 403
        assert 'action="/exchanges/' + ex + '/resolve"' in (await sara.get(f"/exchanges/{ex}")).text
        done = await sara.post(
            f"/exchanges/{ex}/resolve", {"minutes": "30", "reason": "met halfway"}
        )
        assert location(done) == f"/exchanges/{ex}?done=resolved"
        assert await balance(api, giulia.account) == 30
        assert await balance(api, marco.account) == -30
        assert f"/exchanges/{ex}" not in (await sara.get("/manage/disputes")).text
