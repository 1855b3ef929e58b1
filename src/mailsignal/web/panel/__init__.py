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

from . import auth
from .base import HERE, Forbidden, SignInRequired, render, sign_in_url

router = APIRouter(include_in_schema=False)
router.include_router(auth.router)


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
