"""Short confirmations shown after a form redirects (`?done=<code>`): the code travels in
the URL, the words come from the catalog, so nothing a visitor types is ever shown."""

from __future__ import annotations

from typing import Final

from scambio.web.context import Page
from scambio.web.i18n import N_

NOTICES: Final[dict[str, str]] = {
    "registered": N_(
        "Thank you! A community manager will review your registration; you will receive "
        "an email and can log in once it is approved."
    ),
    "logged-out": N_("You have logged out."),
    "reset-sent": N_(
        "If this address belongs to a member, a reset code is on its way; it works once, "
        "within the hour."
    ),
    "password-set": N_("Your new password is set: log in with it."),
    "listing-created": N_("Your listing is published."),
    "listing-renewed": N_("The listing is renewed."),
    "listing-closed": N_("The listing is closed."),
    "proposed": N_("Your proposal is sent: the other person will accept or decline it."),
    "exchange-updated": N_("The exchange is updated."),
    "thanked": N_("Your thanks are sent."),
    "approved": N_("The member is approved and their time account is open."),
    "rejected": N_("The registration is rejected."),
    "introduced": N_("The introduction is made: both have been told."),
    "recorded": N_("The exchange is recorded and the hours have moved."),
    "reversed": N_("The entry is reversed by a compensating entry."),
    "resolved": N_("The dispute is resolved."),
    "link-proposed": N_("The employee link is proposed: the worker will accept or decline it."),
    "link-updated": N_("The employee link is updated."),
    "all-read": N_("All notifications are marked read."),
}


def notice(page: Page) -> str | None:
    code = page.request.query_params.get("done")
    text = NOTICES.get(code) if code else None
    return page._(text) if text else None
