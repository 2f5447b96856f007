"""Server-rendered pages: the web app, the public home page and the offline API docs.

The pages call the timebank services directly (never the API over HTTP), with the same
authorisation (`timebank.authz`). Layout:

- `router.py`: the pages' router (guard, per-page context, HTML error pages);
- `context.py`: who is asking (session cookie), in which language, may they (access
  levels as the API's), CSRF; `session.py`: cookies and CSRF tokens;
- `render.py`: Jinja2 environments (one per language) and the pages' headers (strict CSP);
- `forms.py`: form bodies into msgspec Structs, strictly; `errors.py`: error pages;
- `i18n.py`: gettext catalogs (`locale/`), Italian by default;
- `pages/`: the handlers, one module per part; `templates/`: their templates;
- `home.py`: the public home page at `/`; `docs.py`: Swagger UI and Redoc, vendored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: Static assets (CSS, the page scripts, vendored Swagger UI and Redoc).
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
#: URL prefix the static assets are served under.
STATIC_URL: Final = "/static"
