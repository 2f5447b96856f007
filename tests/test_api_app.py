"""The application as a whole: startup checks, OpenAPI, offline docs, home page, headers."""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from scambio.app import create_app
from scambio.store.migrate import SchemaError
from scambio.web import STATIC_DIR

from .api_helpers import Api, assert_problem, running_api
from .conftest import ORIGIN, make_settings

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(db_url, tmp_path) as running:
        yield running


# -- startup and shutdown ----------------------------------------------------------------


async def test_refuses_to_start_on_a_database_without_the_schema(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path))
    refused = pytest.RaisesExc(SchemaError, match="run `scambio db upgrade`")
    with pytest.RaisesGroup(refused, allow_unwrapped=True, flatten_subgroups=True):
        async with AsyncTestClient(app=app):
            pass


async def test_creating_the_app_raises_no_deprecation_warnings(db_url: str, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_app(make_settings(db_url, tmp_path))


async def test_the_node_key_persists_across_restarts(db_url: str, tmp_path: Path) -> None:
    async with running_api(db_url, tmp_path) as api:
        first = (await api.get("/api/v1/ledger/key", role=None)).json()
        await api.open("marco")
    assert (tmp_path / "var" / "node.key").exists()
    async with running_api(db_url, tmp_path) as api:
        assert (await api.get("/api/v1/ledger/key", role=None)).json() == first
        assert await api.tree_size() == 1


# -- errors ------------------------------------------------------------------------------


async def test_unknown_route_and_method_are_problems(api: Api) -> None:
    assert_problem(await api.client.get("/api/v1/nothing-here"), 404, "not-found")
    response = await api.client.delete("/api/v1/ledger/key")
    assert_problem(response, 405, "method-not-allowed")


# -- OpenAPI and the documentation pages -------------------------------------------------


async def test_openapi_document_has_an_operation_id_everywhere(api: Api) -> None:
    response = await api.client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = msgspec.json.decode(response.content)
    assert document["openapi"].startswith("3.")
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    ids = [op.get("operationId") for _, _, op in operations]
    assert all(ids), [(p, m) for p, m, op in operations if not op.get("operationId")]
    assert len(ids) == len(set(ids))
    assert {
        "openAccount",
        "getAccount",
        "getStatement",
        "createTransfer",
        "postHold",
        "voidHold",
        "createTransferBatch",
        "reverseEntry",
        "getCheckpoint",
        "getVerifierKey",
        "listEntries",
        "getInclusionProof",
        "getConsistencyProof",
        "getHealth",
        "getHomePage",
    } <= set(ids)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    transfer = document["paths"]["/api/v1/transfers"]["post"]
    assert transfer["security"] == [{"bearerAuth": []}]
    assert "application/json" in transfer["requestBody"]["content"]
    assert "application/problem+json" in transfer["responses"]["422"]["content"]
    assert "security" not in document["paths"]["/api/v1/ledger/checkpoint"]["get"]
    batch = document["paths"]["/api/v1/transfers/batch"]["post"]
    assert "linked-failed" in batch["description"]


def local_references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.mark.parametrize("page", ["/schema", "/schema/swagger", "/schema/redoc"])
async def test_docs_pages_use_only_local_assets(api: Api, page: str) -> None:
    response = await api.client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "<script>" not in html and "<script type" not in html  # no inline scripts
    assert "cdn" not in html.lower() and "googleapis" not in html
    refs = local_references(html)
    assert refs
    for ref in refs:
        assert ref.startswith("/"), ref
        assert not ref.startswith("//"), ref
        asset = await api.client.get(ref)
        assert asset.status_code == 200, ref
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts and all(s.startswith("/static/") for s in scripts)


async def test_vendored_bundles_are_served_with_their_licences(api: Api) -> None:
    for path in (
        "/static/swagger-ui/swagger-ui-bundle.js",
        "/static/swagger-ui/swagger-ui.css",
        "/static/redoc/redoc.standalone.js",
        "/static/docs/swagger-init.js",
        "/static/docs/redoc-init.js",
        "/static/scambio.css",
    ):
        response = await api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (STATIC_DIR / licence).is_file()
    assert_problem(await api.client.get("/static/nope.js"), 404, "not-found")


# -- the home page -----------------------------------------------------------------------


async def test_home_page_shows_the_ledger_and_how_to_verify_it(api: Api) -> None:
    await api.open("marco")
    response = await api.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    vkey = (await api.get("/api/v1/ledger/key", role=None)).json()["vkey"]
    checkpoint = (await api.get("/api/v1/ledger/checkpoint", role=None)).text
    assert ORIGIN in html
    assert vkey in html
    assert checkpoint.splitlines()[2] in html  # the root hash line
    assert "<dd>1</dd>" in html
    assert "scambio ledger export --out" in html
    assert f"scambio ledger verify FILE --vkey '{vkey}'" in html
    assert 'href="/schema/swagger"' in html and 'href="/schema/redoc"' in html
    assert "<script" not in html and "style=" not in html and "<style" not in html
    refs = local_references(html)
    assert all(ref.startswith(("/", "#")) and not ref.startswith("//") for ref in refs), refs
    assert '<html lang="it">' in html  # Italian by default; ?lang=en switches
    assert '<html lang="en">' in (await api.client.get("/?lang=en")).text


async def test_home_page_escapes_everything(tmp_path: Path, sqlite_template: Path) -> None:
    import shutil

    shutil.copyfile(sqlite_template, tmp_path / "l.db")
    hostile = "evil.example/<script>alert(1)</script>&\"q'"
    url = f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"
    settings = make_settings(url, tmp_path, SCAMBIO_LEDGER_ORIGIN=hostile)
    async with AsyncTestClient(app=create_app(settings)) as client:
        html = (await client.get("/")).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#34;q&#39;" in html


# -- security headers --------------------------------------------------------------------


def header_checks(headers: Any) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self';" in csp
    assert "unsafe-inline'; img" not in csp.split("script-src")[1].split(";")[0]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/health"),
        ("GET", "/api/v1/ledger/checkpoint"),
        ("GET", "/api/v1/accounts/nobody"),
        ("GET", "/nowhere"),
        ("DELETE", "/api/v1/ledger/key"),
        ("POST", "/api/v1/transfers"),
        ("GET", "/schema/swagger"),
        ("GET", "/static/scambio.css"),
    ],
)
async def test_every_response_carries_security_headers(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path)
    header_checks(response.headers)


async def test_home_page_csp_forbids_inline_code(api: Api) -> None:
    csp = (await api.client.get("/")).headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "default-src 'none'" in csp
