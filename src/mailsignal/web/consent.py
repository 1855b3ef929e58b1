"""The recipient's consent page, `/k/<token>` (issue 13): public, no session.

Under the `consent` tracking basis a copy left untracked for want of consent may end
with a line linking its own page (a CONSENT token naming the delivery, urls.py; setting
`consent_request_line`). The page says what would be measured, in the words and the
template of the stop-tracking page (consenttext.py, stop.html), and offers "Allow".

As on the stop-tracking page (web/stop.py, whose helpers this reuses): GET and HEAD
change nothing, since scanners follow every link; only the button's POST records, with
a signed single-use form token (tokens.Signer.sign_form, nonces in store/donottrack).
A consent form is signed for `delivery | CONSENT_FORM`, so a stop-tracking form cannot
be sent here, nor this one there. The POST records a consent (source `link`, the exact
text shown and its language; pipeline/consent.record, with the audit row) and answers
303 to the page, which then reads "tracking is allowed". The next copy is tracked.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import TokenError
from ..model import TokenKind
from ..pipeline import consent as consents
from ..store import consent, donottrack
from ..store.db import writing
from ..tokens import Signer
from .consenttext import PAGE, TEXT_ID, agreed_text
from .stop import FORM_MAX_AGE, NO_STORE, language, refuse, render_page

CONSENT_FORM = 1 << 62  # marks a form token as the consent page's (module docstring)
router = APIRouter(include_in_schema=False)


_page = partial(render_page, texts=PAGE)  # stop.py's page, with the consent wording
_refused = partial(refuse, texts=PAGE)


def _delivery(signer: Signer, token: str) -> int | None:
    try:
        return signer.verify(token, TokenKind.CONSENT).delivery_id
    except TokenError:
        return None


@router.api_route("/k/{token}", methods=["GET", "HEAD"])
def show(request: Request, token: str, l: str | None = None) -> Response:  # noqa: E741
    """The page: what would be measured, and the button. Reads only; changes nothing."""
    lang = language(request, l)
    signer: Signer = request.app.state.signer
    delivery_id = _delivery(signer, token)
    if delivery_id is None:
        return _refused(request, lang, "invalid", 404)
    with request.app.state.engine.connect() as conn:
        address = donottrack.delivery_address(conn, delivery_id)
        given = address is not None and bool(
            consent.consented(conn, [signer.address_hash(address)])
        )
    if address is None:  # the delivery was erased
        return _refused(request, lang, "invalid", 404)
    if given:
        return _page(request, lang, "done")
    form = signer.sign_form(delivery_id | CONSENT_FORM, int(time.time()))
    return _page(request, lang, "ask", action=f"/k/{token}", form_token=form)


@router.post("/k/{token}")
async def allow(request: Request, token: str) -> Response:
    """The button: records the consent once, then shows the page again (303)."""
    try:
        form = await request.form()
    except Exception:  # a body that is no form at all
        form = None
    given = form.get("l") if form is not None else None
    lang = language(request, given if isinstance(given, str) else None)
    signer: Signer = request.app.state.signer
    delivery_id = _delivery(signer, token)
    form_token = form.get("form") if form is not None else None
    if delivery_id is None or not isinstance(form_token, str):
        return _refused(request, lang, "invalid", 400)
    try:
        signed_for, nonce, _issued = signer.verify_form(form_token, int(time.time()), FORM_MAX_AGE)
    except TokenError:
        return _refused(request, lang, "invalid", 400)
    if signed_for != delivery_id | CONSENT_FORM:
        return _refused(request, lang, "invalid", 400)
    refused = await run_in_threadpool(_record, request, delivery_id, nonce.hex(), lang)
    if refused is not None:
        return _refused(request, lang, *refused)
    return RedirectResponse(f"/k/{token}?l={lang}", status_code=303, headers=NO_STORE)


def _record(request: Request, delivery_id: int, nonce: str, lang: str) -> tuple[str, int] | None:
    """Spend the nonce and record the consent; (what, status) if refused."""
    now = datetime.now(UTC)
    signer: Signer = request.app.state.signer
    with writing(request.app.state.engine) as conn:
        address = donottrack.delivery_address(conn, delivery_id)
        if address is None:
            return "invalid", 404
        if not donottrack.use_nonce(conn, nonce, now, timedelta(seconds=FORM_MAX_AGE)):
            return "used", 409
        if consent.consented(conn, [signer.address_hash(address)]):
            return None  # given already (another copy's page): nothing to add
        given = consents.Consent(address, now, "link", agreed_text(lang), TEXT_ID, lang)
        consents.record(conn, signer, given, actor="recipient", now=now)
    return None
