"""The recipient's stop-tracking page, `/p/<token>` (issue 13): public, no session.

Each tracked copy links its own page (a STOP token naming the delivery, urls.py). The
page says what is measured and what is not, in the copy's language (`?l=`, written by
the instrumenter), else the browser's (Accept-Language), else English.

GET and HEAD change nothing, whoever sends them: mail security scanners follow every
link in a message, so only the button's POST records the choice. The form carries a
signed token (tokens.Signer.sign_form: the delivery, a random nonce and when it was
issued), so the POST is safe without a session or cookie: a forged token fails its
HMAC, one older than FORM_MAX_AGE is refused, and each nonce is spent once
(store/donottrack.use_nonce), so a reused form answers 409 and changes nothing.
The POST then does pipeline/donottrack.opt_out and redirects (303) to the page, which
now reads "tracking is stopped".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import TokenError
from ..instrument.notice import pick_language
from ..model import TokenKind
from ..pipeline.donottrack import opt_out
from ..store import donottrack
from ..store.db import writing
from ..tokens import Signer
from .panel.base import ENV
from .stoptext import PAGE

FORM_MAX_AGE = 24 * 3600  # seconds a page's form may be sent after it was shown
router = APIRouter(include_in_schema=False)
NO_STORE = {"cache-control": "no-store", "x-robots-tag": "noindex, nofollow"}


def language(request: Request, given: str | None) -> str:
    """`?l=` if MailSignal has it, else the best of Accept-Language, else English."""
    if given and given.lower() in PAGE:
        return given.lower()
    ranked: list[tuple[float, str]] = []
    for n, item in enumerate(request.headers.get("accept-language", "")[:400].split(",")):
        tag, _, q = item.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        ranked.append((-weight + n * 1e-6, tag))
    return pick_language(*(tag for _w, tag in sorted(ranked)))


def render_page(
    request: Request,
    lang: str,
    state: str,
    status: int = 200,
    *,
    texts: dict[str, dict[str, str]] = PAGE,
    **extra: Any,
) -> HTMLResponse:
    """A recipient's page (stop.html) in `lang`: `state` ask, done or a refusal, with
    `texts` (this page's wording; the consent page passes its own)."""
    t = texts[lang]
    url = request.app.state.settings.privacy_notice_url
    heading = {"ask": t["title"], "done": t["done_title"]}.get(state, extra.pop("heading", ""))
    html = ENV.get_template("stop.html").render(
        lang=lang,
        t=t,
        state=state,
        heading=heading,
        privacy_url=url if url and url.lower().startswith(("https://", "http://")) else None,
        **extra,
    )
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def refuse(
    request: Request,
    lang: str,
    what: str,
    status: int,
    *,
    texts: dict[str, dict[str, str]] = PAGE,
) -> HTMLResponse:
    """The page saying why a link or form was refused (`what`: invalid, used, ...)."""
    t = texts[lang]
    return render_page(
        request, lang, what, status, texts=texts, heading=t[f"{what}_title"], message=t[what]
    )


def _delivery(signer: Signer, token: str) -> int | None:
    try:
        return signer.verify(token, TokenKind.STOP).delivery_id
    except TokenError:
        return None


@router.api_route("/p/{token}", methods=["GET", "HEAD"])
def show(request: Request, token: str, l: str | None = None) -> Response:  # noqa: E741
    """The page: what is measured, and the button. Reads only; changes nothing."""
    lang = language(request, l)
    signer: Signer = request.app.state.signer
    delivery_id = _delivery(signer, token)
    if delivery_id is None:
        return refuse(request, lang, "invalid", 404)
    with request.app.state.engine.connect() as conn:
        address = donottrack.delivery_address(conn, delivery_id)
        stopped = address is not None and bool(
            donottrack.listed(conn, [signer.address_hash(address)])
        )
    if address is None:  # the delivery was erased
        return refuse(request, lang, "invalid", 404)
    if stopped:
        return render_page(request, lang, "done")
    form = signer.sign_form(delivery_id, int(time.time()))
    return render_page(request, lang, "ask", action=f"/p/{token}", form_token=form)


@router.post("/p/{token}")
async def stop(request: Request, token: str) -> Response:
    """The button: records the choice once, then shows the page again (303)."""
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
        return refuse(request, lang, "invalid", 400)
    try:
        signed_for, nonce, _issued = signer.verify_form(form_token, int(time.time()), FORM_MAX_AGE)
    except TokenError:
        return refuse(request, lang, "invalid", 400)
    if signed_for != delivery_id:
        return refuse(request, lang, "invalid", 400)
    refused = await run_in_threadpool(_record, request, delivery_id, nonce.hex())
    if refused is not None:
        return refuse(request, lang, *refused)
    return RedirectResponse(f"/p/{token}?l={lang}", status_code=303, headers=NO_STORE)


def _record(request: Request, delivery_id: int, nonce: str) -> tuple[str, int] | None:
    """Spend the nonce and opt the delivery's address out; (what, status) if refused."""
    now = datetime.now(UTC)
    state = request.app.state
    with writing(state.engine) as conn:
        address = donottrack.delivery_address(conn, delivery_id)
        if address is None:
            return "invalid", 404
        if not donottrack.use_nonce(conn, nonce, now, timedelta(seconds=FORM_MAX_AGE)):
            return "used", 409
        opt_out(
            conn, state.signer, address, state.settings, source="link", actor="recipient", now=now
        )
    return None
