"""The public home page: what this ledger is and how anyone can verify it.

Visitors see the ledger's origin, size, latest signed checkpoint and verifier key, with
how to check them, in Italian or English, and no script at all; a logged-in member is
sent on to their own home. Every value from the database or settings is escaped by the
template (the origin and checkpoint are operator-controlled text shown to the public).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.enums import MediaType

from scambio.store import queries
from scambio.web.context import page_for
from scambio.web.render import redirect, render


@get(
    "/",
    operation_id="getHomePage",
    summary="Home page: the ledger's origin, size, checkpoint and how to verify it",
    media_type=MediaType.HTML,
    tags=["service"],
    cache_control=None,
)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    page = await page_for(request)
    if page.principal is not None:
        return redirect(page, "/home")
    ledger = page.timebank.ledger
    async with ledger.read() as conn:
        head = await queries.head(conn)
    return render(
        page,
        "public.html",
        origin=head.origin,
        size=head.size,
        checkpoint=head.checkpoint,
        vkey=ledger.signer.verifier().to_string(),
    )
