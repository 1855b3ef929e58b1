"""What every panel page shares: who is looking (`Viewer`, from the session cookie), the
Jinja2 environment, `render`, and the CSRF check every form POST passes.

Pages are server-rendered and work without JavaScript; `static/panel.js` only adds live
updates. Every value is escaped (autoescape), no template has inline script or style
(the Content-Security-Policy forbids both), and every page is `Cache-Control: no-store`
because it shows personal data.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine

from ...fetchxml import Caller
from ...store import fetch, sessions

COOKIE = "ms_session"
LOGIN_COOKIE = "ms_login"  # the sign-in form's CSRF token, before there is a session
HERE = Path(__file__).parent
ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


class SignInRequired(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Forbidden(Exception):
    """A form without its CSRF token, or an admin page for a rep: 403, never a change."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user as pages see them."""

    user_id: uuid.UUID
    name: str
    address: str
    role: str
    time_zone: str
    csrf: str
    caller: Caller  # what the store's and FetchXML's row rule reads (fetchxml/access.py)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (ValueError, KeyError):
            return ZoneInfo("UTC")


def engine(request: Request) -> Engine:
    found: Engine = request.app.state.engine
    return found


def limits(request: Request) -> tuple[timedelta, timedelta]:
    """(idle, lifetime) of a session, from the settings."""
    settings = request.app.state.settings
    return (
        timedelta(minutes=settings.session_idle_minutes),
        timedelta(hours=settings.session_lifetime_hours),
    )


def viewer(request: Request) -> Viewer:
    """The signed-in user (a FastAPI dependency; sync, so it runs in a worker thread).

    Raises:
        SignInRequired: no cookie, or its session has ended.
    """
    token = request.cookies.get(COOKIE)
    found, caller = None, None
    if token and len(token) < 200:
        idle, lifetime = limits(request)
        with engine(request).begin() as conn:
            found = sessions.resolve(conn, token, idle=idle, lifetime=lifetime)
            caller = fetch.load_caller(conn, found.user["systemuserid"]) if found else None
    if found is None or caller is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    user = found.user
    return Viewer(
        user_id=user["systemuserid"],
        name=user["fullname"],
        address=user["internalemailaddress"],
        role=user["accessrole"],
        time_zone=user["timezonename"],
        csrf=found.csrf,
        caller=caller,
    )


def admin(request: Request) -> Viewer:
    """The signed-in user, who must be an admin.

    Raises:
        SignInRequired, Forbidden.
    """
    who = viewer(request)
    if not who.is_admin:
        raise Forbidden("this page is for admins")
    return who


def check_csrf(expected: str, form: Any) -> None:
    """The form's `csrf` field equals the session's token (constant-time).

    Raises:
        Forbidden: missing or different.
    """
    given = form.get("csrf") if form is not None else None
    if not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise Forbidden("the form has expired or did not come from this site; reload it")


def sign_in_url(next_path: str) -> str:
    return "/login?next=" + quote(next_path, safe="/")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def local_time(value: datetime | None, zone: ZoneInfo) -> str:
    """`value` in the viewer's zone, as people read it: "2 Dec 2026, 14:05"."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).strftime("%-d %b %Y, %H:%M")


def since(value: datetime | None, start: datetime | None) -> str:
    """The time from `start` to `value`, short: "4 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    if value is None or start is None:
        return ""
    seconds = int((value - start).total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes} min"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{secs} s"


ENV.filters["since"] = since


def render(
    request: Request, template: str, who: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """`template` rendered for `who`, with the times in their zone."""
    zone = who.zone if who else ZoneInfo("UTC")
    html = ENV.get_template(template).render(
        request=request,
        viewer=who,
        path=request.url.path,
        when=lambda value: local_time(value, zone),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})
