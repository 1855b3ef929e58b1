"""Set up and run: `init`, `serve`, `ingest`, `demo`, `version`."""

from __future__ import annotations

import logging
import multiprocessing
import ssl
import threading
from pathlib import Path
from typing import Annotated

import typer

from .. import __version__
from ..errors import ConfigError
from ..keyring import create_secret
from ..settings import Settings, load_settings
from ..store import users
from ..store.db import make_engine, migrate
from . import common
from .common import err, out

# How long a stopping server waits for its workers' requests before killing the workers:
# a request still running then (a query stuck in a thread) must not hold up the stop.
# Killed workers' hits are safe (journaled before they were answered), and PostgreSQL
# drops their queries (store/db.py: client_connection_check_interval, statement_timeout).
STOP_GRACE_SECONDS = 2


def version() -> None:
    """Print the MailSignal version."""
    out.print(__version__)


def init() -> None:
    """Create the data directory (0700), signing key (0600), schema and organization."""
    settings = common.settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = settings.data_dir.stat().st_mode & 0o777
    if mode & 0o077:
        err.print(
            f"warning: {settings.data_dir} is open to other users (mode {mode:o}); "
            f"`chmod 700 {settings.data_dir}` keeps the database and journal private"
        )
    created = create_secret(settings.secret_file)
    engine = make_engine(settings.db_url)
    migrate(engine)
    with engine.begin() as conn:
        org = users.get_org(conn)
    out.print(f"data directory  {settings.data_dir}")
    out.print(f"signing key     {settings.secret_file} ({'created' if created else 'kept'})")
    out.print(f"database        {engine.url.render_as_string(hide_password=True)} (migrated)")
    out.print(
        f"organization    {org['name']} (tracking "
        f"{'on' if org['isemailmonitoringallowed'] else 'off'})"
    )


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (setting: host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting: port).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    ingest: Annotated[bool, typer.Option(help="Also run the ingest worker.")] = True,
) -> None:
    """Serve the tracker, REST API and UI (granian), and ingest hits in the background."""
    from granian import Granian

    settings = common.settings()
    engine = common.engine(settings)
    migrate(engine)
    common.signer(settings)  # fail now, not in every worker, if the key is missing or unsafe
    tls = _tls(settings)
    worker: multiprocessing.process.BaseProcess | None = None
    if ingest:
        worker = multiprocessing.get_context("spawn").Process(
            target=_ingest_forever, name="mailsignal-ingest", daemon=True
        )
        worker.start()
    out.print(
        f"MailSignal {__version__} on {'https' if tls else 'http'}://"
        f"{host or settings.host}:{port or settings.port}"
        f" (tracking base URL {settings.base_url})"
    )
    try:
        Granian(
            "mailsignal.web.app:create_app",
            factory=True,
            interface="asgi",  # type: ignore[arg-type]
            address=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            loop="uvloop",  # type: ignore[arg-type]
            log_level=settings.log_level,  # type: ignore[arg-type]
            workers_kill_timeout=STOP_GRACE_SECONDS,
            ssl_cert=tls[0] if tls else None,
            ssl_key=tls[1] if tls else None,
        ).serve()
    finally:
        if worker is not None:
            worker.terminate()
            worker.join(5)


def _tls(settings: Settings) -> tuple[Path, Path] | None:
    """(certificate, key) from `tls_cert` / `tls_key`, checked; None: plain http.

    Raises:
        ConfigError: only one of them is set, a file is missing, or others can read the key.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("serving https needs both tls_cert and tls_key")
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist")
    mode = settings.tls_key.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{settings.tls_key} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key
        )
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"tls_cert and tls_key are not a certificate and its key: {exc}") from exc
    return settings.tls_cert, settings.tls_key


def _ingest_forever() -> None:
    from ..pipeline.worker import Ingestor

    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper())
    ingestor = Ingestor(make_engine(settings.db_url), settings)
    ingestor.run_forever(threading.Event())


def ingest(
    follow: Annotated[bool, typer.Option(help="Keep polling the journal.")] = False,
) -> None:
    """Move journaled hits into the store (once, or continuously with --follow)."""
    from ..pipeline.worker import Ingestor

    settings = common.settings()
    ingestor = Ingestor(common.engine(settings), settings)
    if follow:
        ingestor.run_forever(threading.Event())
        return
    out.print(f"ingested {ingestor.drain()} hits")


def demo(
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when emails already exist.")
    ] = False,
    small: Annotated[
        bool,
        typer.Option("--small", help="Only five short scenarios (for tests and examples)."),
    ] = False,
) -> None:
    """Load demo data: reps, a manager, contacts, tracked emails and real-world hits,
    labelled by the normal ingest, and panel sign-ins with random passwords."""
    from .. import demo as demo_data

    settings = common.settings()
    engine = common.engine(settings)
    if if_empty and demo_data.has_data(engine):
        out.print("demo: emails already exist; nothing loaded")
    else:
        count = demo_data.load(engine, settings, common.signer(settings), small=small)
        out.print(f"demo: {count} emails with their opens, clicks and labels loaded")
    sign_ins = demo_data.sign_ins_file(settings)
    if sign_ins.is_file():
        out.print(f"panel: http://{settings.host}:{settings.port}/  sign in as ({sign_ins}):")
        for line in sign_ins.read_text().splitlines()[1:]:
            out.print(f"  {line}", markup=False, highlight=False)
