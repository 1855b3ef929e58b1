"""The ASGI application factory: tracking hot path in front, FastAPI behind it.

`create_app()` is what `mailsignal serve` hands to granian (one call per worker
process), so each process gets its own engine, signer and journal writer thread.
Errors become JSON in one place (`_error_response`), Datasette-style. Every response
the API sends carries the security headers of web/headers.py.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import MailSignalError, StoreError
from ..keyring import load_keyring
from ..outgoing import Outgoing
from ..settings import Settings, load_settings
from ..store.db import make_engine, ping
from ..store.journal import JournalWriter
from ..tokens import Signer
from . import panel
from .admin import router as admin_router
from .api import router
from .consent import router as consent_router
from .headers import SecurityHeaders
from .limits import BodyLimit
from .privacy import router as privacy_router
from .privacy_consent import router as privacy_consent_router
from .privacy_rights import router as privacy_rights_router
from .queries import RETRY_AFTER_SECONDS, TooManyQueries
from .records import router as records_router
from .stop import router as stop_router
from .track import ClientAddress, Tracker
from .webapi import PREFIX as WEBAPI_PREFIX
from .webapi import router as webapi_router
from .webapi.errors import http_refusal, refusal

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(MailSignalError)
    async def _ms(request: Request, exc: MailSignalError) -> JSONResponse:
        if request.url.path.startswith(WEBAPI_PREFIX):
            answer = refusal(exc)
            if answer is not None:
                return answer
        answer = _error(exc.http_status, exc.code, exc.message, **exc.detail)
        if isinstance(exc, TooManyQueries):  # when to try again, as the Web API says
            answer.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return answer

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(400, "invalid_input", summary or "invalid request", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.url.path.startswith(WEBAPI_PREFIX):  # Dataverse clients branch on codes
            return http_refusal(exc.status_code, str(exc.detail), request.method, request.url.path)
        return _error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)  # every pooled connection busy past the bound
    async def _db_down(_request: Request, exc: OperationalError | PoolTimeout) -> JSONResponse:
        log.error("database unavailable: %s", getattr(exc, "orig", exc))
        return _error(503, "store_unavailable", "the database is unavailable; retry later")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.engine.dispose()
    journal = getattr(app.state, "journal", None)
    if journal is not None:
        journal.close()


def create_api(settings: Settings) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="MailSignal",
        version=__version__,
        description="Email engagement tracking that labels every event human, machine or "
        "forward, with reasons.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by the panel from vendored assets (panel/docs.py)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.db_url, serve_seconds=settings.query_timeout_seconds)
    keys, current = load_keyring(settings.secret_file)
    app.state.signer = Signer(keys, current)
    # Built from settings like the relay's, the CLI's and imports' own: REST tracks mail
    # the same way, honeypot and attachments_mode included.
    app.state.outgoing = Outgoing.from_settings(settings, app.state.signer)
    _install_errors(app)
    app.include_router(router)
    app.include_router(admin_router)
    app.include_router(webapi_router)
    app.include_router(records_router)
    app.include_router(stop_router)  # /p/<token>: the recipient's stop-tracking page
    app.include_router(privacy_router)
    app.include_router(privacy_rights_router)  # export and erasure (issue 13)
    app.include_router(privacy_consent_router)  # consent to tracking (issue 13)
    app.include_router(consent_router)  # /k/<token>: the recipient's consent page
    panel.install(app)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers. Does not touch the database."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "Not ready; says why"}})
    def readyz() -> JSONResponse:
        """Readiness: 200 when hits are journaled and the database answers, else 503 naming
        each problem. Stays 503 until the journal is writable and nothing waits."""
        return _readiness(app)

    return app


def _readiness(app: FastAPI) -> JSONResponse:
    """The journal as this process's writer sees it (and the shared spool), the store."""
    problems: list[dict[str, str]] = []
    body: dict[str, Any] = {}
    lost = 0
    journal: JournalWriter | None = getattr(app.state, "journal", None)
    if journal is not None:
        health = journal.health()
        body["journal"] = dataclasses.asdict(health)
        lost = health.lost
        if not health.writable:
            problems.append(
                {"code": "journal_unwritable", "message": "the hit journal cannot be written"}
            )
        if health.spool_files:
            message = f"{health.spool_files} spool files wait for the journal"
            problems.append({"code": "spool_in_use", "message": message})
        if health.buffered:
            message = f"{health.buffered} hits wait in memory only"
            problems.append({"code": "hits_in_memory", "message": message})
    try:
        ping(app.state.engine)
        app.state.store_down = False
    except StoreError as exc:
        if not getattr(app.state, "store_down", False):  # one line per outage, not per probe
            log.error("readiness: %s", exc.message)
        app.state.store_down = True
        problems.append({"code": "store_unavailable", "message": "the database is unreachable"})
    if lost:
        # Reported for as long as the process lives, but not red on its own once the
        # journal is back: an instance that works again should take traffic again.
        note = {"code": "hits_lost", "message": f"{lost} hits were lost since this process started"}
        if problems:
            problems.append(note)
        else:
            body["warnings"] = [note]
    if problems:
        message = "; ".join(p["message"] for p in problems)
        error = {"code": "not_ready", "message": message, "problems": problems}
        return JSONResponse({"error": error, **body}, status_code=503)
    return JSONResponse({"status": "ready", **body})


def create_app(settings: Settings | None = None) -> Tracker:
    """Build the whole application for one worker process."""
    settings = settings or load_settings()
    api = create_api(settings)
    journal = JournalWriter(
        settings.journal_file,
        settings.journal_batch_max,
        settings.journal_spool_dir,
        settings.journal_buffer_max,
    )
    api.state.journal = journal
    fallback = SecurityHeaders(BodyLimit(api, settings.max_body_bytes))
    api.state.client_address = ClientAddress(settings.trusted_proxies)
    tracker = Tracker(
        api.state.signer,
        journal,
        api.state.client_address,
        fallback,
        settings.attachment_dir,
    )
    # Everything loaded so far (FastAPI, pydantic, SQLAlchemy: hundreds of thousands of
    # objects) lives as long as the process. Freezing it keeps the cyclic collector from
    # re-scanning it on every full collection, which cost ~30 ms p99 stalls on the pixel.
    gc.collect()
    gc.freeze()
    return tracker
