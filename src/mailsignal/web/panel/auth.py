"""Signing in and out of the panel.

`GET /login` shows the form with a CSRF token also set in a short-lived cookie (there is
no session yet to hold it); `POST /login` checks both, then the password (argon2id,
passwords.py) in the same time whether or not the address is a user. Failures are
counted per (client address, address typed) and per client address in a file shared by
the server's workers (throttle.FailureLimiter): after `login_failure_limit` the pair
waits a minute, doubling with each further failure. A good sign-in starts a session
(store/sessions.py) in an HttpOnly, SameSite=Lax cookie, Secure when the page was
reached over https. `POST /logout` ends it.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ... import passwords
from ...store import sessions
from ...throttle import FailureLimiter
from ..webapi.common import base
from .base import COOKIE, LOGIN_COOKIE, check_csrf, engine, limits, render, safe_next, viewer

router = APIRouter(include_in_schema=False)
_LIMITERS: dict[Path, FailureLimiter] = {}


def _limiter(request: Request) -> FailureLimiter:
    settings = request.app.state.settings
    path = settings.data_dir / "panel-login-failures.json"
    if path not in _LIMITERS:
        _LIMITERS[path] = FailureLimiter(login_limit=settings.login_failure_limit, path=path)
    return _LIMITERS[path]


def _secure(request: Request) -> bool:
    return base(request).startswith("https://")


def _client(request: Request) -> str:
    address: str = request.app.state.client_address(
        request.scope, request.headers.get("x-forwarded-for")
    )
    return address


def _form(request: Request, message: str | None, address: str, status: int) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    page = render(
        request,
        "login.html",
        None,
        status=status,
        message=message,
        address=address,
        csrf=token,
        next=safe_next(request.query_params.get("next")),
    )
    page.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/login",
    )
    return page


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    """The sign-in form."""
    return _form(request, None, "", 200)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the form's token, the limiter, then the password; start a session."""
    form = await request.form()
    address = str(form.get("address") or "").strip()[:320]
    password = str(form.get("password") or "")
    token, cookie = str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE, "")
    if not token or not hmac.compare_digest(token, cookie):
        return _form(request, "The form had expired. Please sign in again.", address, 403)
    limiter, client = _limiter(request), _client(request)
    if limiter.locked(client, address.lower()):
        message = "Too many failed attempts. Wait a few minutes, then try again."
        return _form(request, message, address, 429)

    def check() -> tuple[object, str | None]:
        with engine(request).connect() as conn:
            user_id, stored = sessions.password_hash(conn, address)
        if not passwords.verify(stored, password) or user_id is None:
            return None, None
        idle, lifetime = limits(request)
        with engine(request).begin() as conn:
            if stored and passwords.needs_rehash(stored):
                sessions.set_password_hash(conn, user_id, passwords.make(password))
            sessions.purge(conn, idle=idle, lifetime=lifetime)  # sessions nobody can use
            session, _csrf = sessions.begin(conn, user_id)
        return user_id, session

    user_id, session = await anyio.to_thread.run_sync(check)
    if user_id is None or session is None:
        limiter.failed(client, address.lower())
        return _form(request, "That address and password do not match.", address, 401)
    limiter.succeeded(client, address.lower())
    target = safe_next(str(form.get("next") or ""))
    done = RedirectResponse(target, status_code=303)
    _idle, lifetime = limits(request)
    done.set_cookie(
        COOKIE,
        session,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    done.delete_cookie(LOGIN_COOKIE, path="/login")
    return done


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its CSRF token required), then show the sign-in form."""
    form = await request.form()
    who = await anyio.to_thread.run_sync(viewer, request)
    check_csrf(who.csrf, form)
    token = request.cookies.get(COOKIE, "")

    def end() -> None:
        with engine(request).begin() as conn:
            sessions.end(conn, token)

    await anyio.to_thread.run_sync(end)
    done = RedirectResponse("/login", status_code=303)
    done.delete_cookie(COOKIE, path="/")
    return done
