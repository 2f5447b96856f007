"""Server-rendered pages: the home page and the offline OpenAPI documentation."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: Static assets (CSS, the page scripts, vendored Swagger UI and Redoc).
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: URL prefix the static assets are served under.
STATIC_URL: Final = "/static"
