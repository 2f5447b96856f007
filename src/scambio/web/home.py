"""The home page: what this ledger is and how anyone can verify it, in plain HTML.

No scripts and no external assets; every value from the database or settings is escaped,
since the origin and checkpoint are operator-controlled text shown to the public.
"""

from __future__ import annotations

from html import escape

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType

from scambio.store import queries
from scambio.store.ledger import LedgerService
from scambio.web import STATIC_URL


def render_home(origin: str, tree_size: int, checkpoint: str, vkey: str) -> str:
    e = escape
    verify = (
        f"scambio ledger export --out ledger.json\n"
        f"scambio ledger verify ledger.json --vkey '{vkey}'"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Scambio timebank ledger - {e(origin)}</title>
<link rel="stylesheet" href="{STATIC_URL}/scambio.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header>
<h1>Scambio timebank ledger</h1>
<p>An append-only, signed, double-entry ledger of help hours that anyone can verify
without trusting the operator.</p>
</header>
<main id="main">
<section aria-labelledby="state">
<h2 id="state">This ledger</h2>
<dl>
<dt>Origin</dt><dd><code>{e(origin)}</code></dd>
<dt>Entries (tree size)</dt><dd>{tree_size}</dd>
<dt>Verifier key</dt><dd><code>{e(vkey)}</code></dd>
</dl>
</section>
<section aria-labelledby="checkpoint">
<h2 id="checkpoint">Latest signed checkpoint</h2>
<p>Origin, tree size and Merkle root, signed by the node key
(also at <a href="/api/v1/ledger/checkpoint">/api/v1/ledger/checkpoint</a>):</p>
<pre>{e(checkpoint)}</pre>
</section>
<section aria-labelledby="verify">
<h2 id="verify">Verify this ledger</h2>
<p>Export the whole log with <code>scambio ledger export --out FILE</code>, then check every
entry, balance, Merkle root and checkpoint signature against this node's verifier key with
<code>scambio ledger verify FILE --vkey '{e(vkey)}'</code>; anyone can also fetch inclusion
and consistency proofs from the public <code>/api/v1/ledger/proof/*</code> endpoints and
check them against signed checkpoints. For example:</p>
<pre>{e(verify)}</pre>
</section>
<section aria-labelledby="api">
<h2 id="api">API</h2>
<ul>
<li><a href="/schema/swagger">Interactive API documentation (Swagger UI)</a></li>
<li><a href="/schema/redoc">API reference (Redoc)</a></li>
<li><a href="/schema/openapi.json">OpenAPI document (JSON)</a></li>
<li><a href="/health">Service health</a></li>
</ul>
</section>
</main>
</body>
</html>
"""


@get(
    "/",
    operation_id="getHomePage",
    summary="Home page: the ledger's origin, size, checkpoint and how to verify it",
    media_type=MediaType.HTML,
    tags=["service"],
    cache_control=None,
)
async def home(ledger: NamedDependency[LedgerService]) -> Response[str]:
    async with ledger.read() as conn:
        head = await queries.head(conn)
    page = render_home(
        head.origin, head.size, head.checkpoint, ledger.signer.verifier().to_string()
    )
    return Response(page, media_type=MediaType.HTML)
