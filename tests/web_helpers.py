"""Helpers for the page tests: browsers (each with its own cookies) on one running app.

A `Browser` drives the pages as a person's browser would: it keeps its cookies, reads the
CSRF token from the forms it was shown, and posts forms with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from .api_helpers import PASSWORD, Api

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Browser:
    client: AsyncTestClient[Litestar]
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: str | None = None

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.client.cookies.clear()
        for name, value in self.cookies.items():
            self.client.cookies.set(name, value)
        kwargs.setdefault("follow_redirects", False)
        response = await self.client.request(method, path, **kwargs)
        for header in response.headers.get_list("set-cookie"):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        self.client.cookies.clear()
        found = (
            CSRF_RE.search(response.text)
            if response.headers.get("content-type", "").startswith("text/html")
            else None
        )
        if found:
            self.csrf = found.group(1)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any
    ) -> httpx.Response:
        if csrf and self.csrf is None:
            await self.get("/login")
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf", self.csrf)
        return await self.request("POST", path, data=body, **kwargs)

    async def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code == 303, (response.status_code, response.text[:2000])
        return await self.get(response.headers["location"])

    async def login(self, email: str, password: str = PASSWORD) -> httpx.Response:
        await self.get("/login")
        response = await self.post("/login", {"email": email, "password": password})
        assert response.status_code == 303, response.text[:2000]
        return await self.follow(response)


def browser(api: Api) -> Browser:
    return Browser(api.client)


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return found.group(1)
