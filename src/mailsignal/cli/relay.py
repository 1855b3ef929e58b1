"""`relay` (the SMTP relay, with `relay_workers` processes) and `outbound list|retry`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from ..mail.delivery import OutboundWorker
from ..mail.outbound import QueuedMessage, Spool
from ..mail.server import RelayServer, committed, mark_failed
from ..mail.smarthost import SmtpTransport
from ..settings import Settings, load_settings
from ..store.db import migrate
from . import common

out = common.out
outbound_app = typer.Typer(no_args_is_help=True, help="The relay's outbound queue.")


def relay(
    host: Annotated[str | None, typer.Option(help="Bind address (setting: relay_host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting: relay_port).")] = None,
) -> None:
    """Run the SMTP relay: track outgoing mail, queue it, forward it to the smarthost."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper())
    engine = common.engine(settings)
    migrate(engine)
    workers = settings.relay_workers
    server = RelayServer(
        settings, engine, common.signer(settings), host=host, port=port, reuse_port=workers > 1
    )
    try:
        if asyncio.run(_serve(server, workers)):
            raise typer.Exit(1)
    finally:
        engine.dispose()


def _worker(host: str | None, port: int | None) -> None:
    """One more relay process (`relay_workers`), on the same port with SO_REUSEPORT.

    Ctrl-C reaches every process of the terminal's group; SIGTERM comes from the first
    process. Either way it stops as `mailsignal relay` does.
    """
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper())
    engine = common.engine(settings)
    server = RelayServer(
        settings, engine, common.signer(settings), host=host, port=port, reuse_port=True
    )
    try:
        asyncio.run(_serve(server, 1, quiet=True))
    finally:
        engine.dispose()


async def _serve(server: RelayServer, workers: int = 1, quiet: bool = False) -> bool:
    """Serve until SIGINT/SIGTERM, with `workers - 1` more processes; True if one of
    them died (every process is stopped then, for the supervisor to restart)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    # Spawned, not forked: this process already runs threads and an event loop.
    spawn = multiprocessing.get_context("spawn")
    others = [
        spawn.Process(target=_worker, args=(server.host, server.port), name=f"relay-{n}")
        for n in range(1, workers)
    ]
    for proc in others:
        proc.start()
    if not quiet:
        plural = f", {workers} processes" if workers > 1 else ""
        out.print(
            f"MailSignal relay on {server.host}:{server.port} ({server.mode}{plural}), "
            f"forwarding to {server.settings.smarthost}; Ctrl-C stops"
        )
    died = False
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        if any(not proc.is_alive() for proc in others):
            logging.getLogger(__name__).error("a relay process died; stopping them all")
            died = True
            break
    if not quiet:
        out.print("relay: stopping (deliveries in flight finish first)")
    for proc in others:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    await server.stop()
    for proc in others:
        await asyncio.to_thread(proc.join, 60)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return died


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _row(table: Table, q: QueuedMessage) -> None:
    table.add_row(
        q.id,
        q.mail_from or "<> (bounce)",
        ", ".join(r.address for r in q.rcpts),
        str(q.attempts),
        _when(q.next_attempt),
        _when(q.deadline),
        q.last_error[:60],
    )


@outbound_app.command("list")
def outbound_list(
    failed: Annotated[
        bool, typer.Option("--failed", help="List set-aside entries (undeliverable bounces).")
    ] = False,
) -> None:
    """List queued outgoing messages with attempts, next try, deadline and last error."""
    spool = Spool(load_settings().data_dir / "outbound")
    table = Table("id", "from", "to", "tries", "next attempt", "bounce after", "last error")
    queued = spool.failed() if failed else [q for i in spool.ready() if (q := spool.load(i))]
    for q in queued:
        _row(table, q)
    out.print(table)
    out.print(f"{len(queued)} {'set aside' if failed else 'queued'}")


@outbound_app.command("retry")
def outbound_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Entry ids; default all.")] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Requeue set-aside entries with a fresh deadline.")
    ] = False,
    deliver: Annotated[
        bool, typer.Option("--deliver", help="Deliver now from this process, then report.")
    ] = False,
) -> None:
    """Make queued messages due now (the running relay picks them up within seconds)."""
    settings = load_settings()
    spool = Spool(settings.data_dir / "outbound")
    now = time.time()
    deadline = now + settings.outbound_bounce_after_hours * 3600
    count = 0
    if failed:
        for entry_id in ids or [q.id for q in spool.failed()]:
            count += spool.requeue_failed(entry_id, now, deadline)
    else:
        for entry_id in ids or spool.ready():
            with spool.claim(entry_id) as mine:
                queued = spool.load(entry_id) if mine else None
                if queued is not None:
                    queued.next_attempt = now
                    spool.save(queued)
                    count += 1
    out.print(f"{count} entries due now")
    if deliver:
        asyncio.run(_deliver_once(settings, spool))
        out.print(f"{len(spool.ready())} still queued")


async def _deliver_once(settings: Settings, spool: Spool) -> None:
    engine = common.engine(settings)
    transport = SmtpTransport.from_settings(settings)
    worker = OutboundWorker(
        spool,
        transport,
        bounce_after_seconds=settings.outbound_bounce_after_hours * 3600,
        committed=functools.partial(committed, engine),
        mark_failed=functools.partial(mark_failed, engine),
    )
    try:
        await worker.run_once()
    finally:
        with contextlib.suppress(Exception):
            await transport.close()
        engine.dispose()
