"""Saved views in the panel (issue 12): `/views` lists them, `/views/{slug}` runs one as
a table for the viewer, page by page with the paging cookie, `/views/{slug}.csv` exports
it, and an admin may run FetchXML typed into a box (`POST /views/run`).

Every run is a FetchXML query like the API's: the compiler's row rule (the viewer's own
mail, a manager's team's, an admin's all), one of the viewer's query slots, and the
`query_timeout_seconds` bound that stops a runaway view (web/queries.py).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection

from ... import views
from ...errors import InputError, MailSignalError
from ...fetchxml import Fetch, parse
from ...store import records
from ...store.bounds import QueryBound
from ...store.catalog import CATALOG
from ...store.fetch import FetchResult, execute
from ..queries import bounded, query_slot
from ..webapi.shape import lookup_refs
from . import base

router = APIRouter(include_in_schema=False)
Viewer = Annotated[base.Viewer, Depends(base.viewer)]
Admin = Annotated[base.Viewer, Depends(base.admin)]
PAGE_SIZE = 50  # rows per page on screen; a CSV export takes up to 5,000
CSV_SIZE = 5000
MAX_PAGE = 100_000
MAX_XML = 100_000  # characters of FetchXML the box accepts
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclasses.dataclass(frozen=True)
class Table:
    """A page of a view as people read it: headers, cells as text, paging."""

    columns: tuple[str, ...]
    rows: list[list[str]]
    page: int
    more: bool
    cookie: str | None
    total: int | None


def _paged(xml: str, page: int | None, cookie: str | None, size: int) -> Fetch:
    """The query on `page` (keyset after `cookie` when given; None keeps the query's own
    page and cookie), `size` rows a page unless it fixes its own `count` or `top`."""
    query = parse(xml)
    if query.top is not None or query.aggregate:
        return query
    if page is None:
        page, cookie = query.page or 1, query.paging_cookie
    return dataclasses.replace(query, page=page, paging_cookie=cookie, count=query.count or size)


def _cell(value: Any, names: dict[uuid.UUID, str], when: Callable[[datetime], str]) -> str:
    """A value as text: lookups by name, times by `when`, numbers grouped on screen."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, uuid.UUID):
        return names.get(value, str(value))
    if isinstance(value, int | float) and when is _iso:  # a CSV cell: as a number
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _table(conn: Connection, result: FetchResult, when: Callable[[datetime], str]) -> Table:
    info = CATALOG.entity(result.entity)
    names = records.display_names(conn, lookup_refs(info, result.rows)) if info else {}
    rows = [[_cell(row[c], names, when) for c in result.columns] for row in result.rows]
    return Table(
        result.columns,
        rows,
        result.page,
        result.more_records,
        result.paging_cookie,
        result.total_record_count,
    )


def _run(
    request: Request, who: base.Viewer, query: Fetch, when: Callable[[datetime], str]
) -> Callable[[QueryBound], Table]:
    """The body `bounded` runs: the query in one of the viewer's slots, under the bound."""
    settings = request.app.state.settings

    def body(bound: QueryBound) -> Table:
        with base.engine(request).connect() as conn:
            with query_slot(settings, who.user_id):
                result = execute(conn, query, who.caller, bound=bound)
            return _table(conn, result, when)

    return body


def _failed(request: Request, who: base.Viewer, exc: MailSignalError) -> HTMLResponse:
    heading = "No such view" if exc.http_status == 404 else "The view could not run"
    return base.render(
        request, "error.html", who, exc.http_status, heading=heading, message=exc.message
    )


def _page_args(page: str | None, cookie: str | None) -> tuple[int, str | None]:
    try:
        number = int(page or "1")
    except ValueError:
        raise InputError(f"page must be a whole number, not {page!r}") from None
    if not 1 <= number <= MAX_PAGE:
        raise InputError(f"page must be between 1 and {MAX_PAGE:,}")
    if cookie is not None and len(cookie) > 4000:
        raise InputError("the paging cookie is too long")
    return number, cookie or None


def _zone_when(who: base.Viewer) -> Callable[[datetime], str]:
    return lambda value: base.local_time(value, who.zone)


def _iso(value: datetime) -> str:
    """A time in a CSV cell: ISO 8601 with its offset (UTC), what spreadsheets read."""
    return value.isoformat(timespec="seconds")


@router.get("/views")
def list_views(request: Request, who: Viewer) -> HTMLResponse:
    """The saved views with what each shows; the FetchXML box for an admin."""
    found = views.all_views(request.app.state.settings.data_dir)
    return base.render(request, "views.html", who, views=found, xml="", error=None, table=None)


@router.post("/views/run")
async def run_fetchxml(request: Request, who: Admin) -> HTMLResponse:
    """Run FetchXML typed by an admin; a refused query is a message on the page (400)."""
    form = await request.form()
    base.check_csrf(who.csrf, form)
    xml = str(form.get("fetchxml") or "")
    found = views.all_views(request.app.state.settings.data_dir)
    page: dict[str, Any] = {"views": found, "xml": xml, "error": None, "table": None}
    try:
        if not xml.strip():
            raise InputError("type a FetchXML query first")
        if len(xml) > MAX_XML:
            raise InputError(f"the query is longer than {MAX_XML:,} characters")
        query = _paged(xml, None, None, PAGE_SIZE)
        page["table"] = await bounded(request, _run(request, who, query, _zone_when(who)))
    except MailSignalError as exc:
        page["error"] = exc.message
        return base.render(request, "views.html", who, exc.http_status, **page)
    return base.render(request, "views.html", who, **page)


@router.get("/views/{slug}.csv")
async def export_view(slug: str, request: Request, who: Viewer) -> Response:
    """The view's rows (up to 5,000) as a UTF-8 CSV download, formulas neutralised."""
    settings = request.app.state.settings
    try:
        view = views.find(settings.data_dir, slug)
        query = _paged(view.fetchxml, 1, None, CSV_SIZE)
        table = await bounded(request, _run(request, who, query, _iso))
    except MailSignalError as exc:
        return _failed(request, who, exc)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_safe(c) for c in table.columns])
    writer.writerows([[_safe(c) for c in row] for row in table.rows])
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="{view.slug}.csv"',
            "cache-control": "no-store",
        },
    )


def _safe(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_START) else text


@router.get("/views/{slug}")
async def show_view(slug: str, request: Request, who: Viewer) -> HTMLResponse:
    """One page of a saved view for the viewer, with links to the next and first page."""
    settings = request.app.state.settings
    params = request.query_params
    try:
        view = views.find(settings.data_dir, slug)
        number, cookie = _page_args(params.get("page"), params.get("cookie"))
        query = _paged(view.fetchxml, number, cookie, PAGE_SIZE)
        table = await bounded(request, _run(request, who, query, _zone_when(who)))
    except MailSignalError as exc:
        return _failed(request, who, exc)
    return base.render(request, "view.html", who, view=view, table=table)
