"""The engagement panel (issue 12): server-rendered pages where a rep sees who really
engaged, and why; a manager sees their teams; an admin runs the place.

    base.py        Viewer (from the session cookie), render, CSRF, time formatting
    auth.py        /login, /logout: passwords, sessions, the failure limiter
    templates/     Jinja2 pages (no inline script or style: the CSP forbids both)
    static/        panel.css, panel.js (live refresh; every page works without it)

Row access is the FetchXML compiler's and the store's, as for the API: a rep's page
never lists another rep's mail, and a URL to it answers 404.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from . import admin as admin_pages
from . import auth, docs, feed, overview
from . import email as email_page
from . import emails as email_list
from . import parties as party_pages
from . import views as view_pages
from .base import HERE, Forbidden, SignInRequired, render, sign_in_url

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)
router.include_router(docs.router)
router.include_router(feed.router)
router.include_router(email_list.router)
router.include_router(overview.router)
router.include_router(view_pages.router)
router.include_router(admin_pages.router)
router.include_router(email_page.router)  # after any fixed /emails/... path
router.include_router(party_pages.router)


def install(app: FastAPI) -> None:
    """The panel's routes, static files and the answers to a missing session or a
    refused form."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> RedirectResponse:
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return render(request, "error.html", None, 403, heading="Not allowed", message=str(exc))
