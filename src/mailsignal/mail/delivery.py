"""The outbound worker: delivers spool entries to the smarthost, retries, bounces.

Zulip's email mirror shape: the SMTP handler only queues (mail/relay.py), this worker
does the slow part. The relay kicks it right after each accept, so the normal case is
delivered within milliseconds; a periodic scan picks up retries, entries left by a
crashed process, and entries another process queued.

Retries back off exponentially (1, 2, 4 ... minutes, at most an hour). A 5xx reply
bounces at once; a recipient still failing temporarily at the deadline
(`outbound_bounce_after_hours`) bounces as expired (status 4.4.7). Bounces go through
the same queue with the null sender; a bounce that cannot be delivered is set aside in
`failed/` for an operator rather than deleted. Delivery is at-least-once: a crash after
the smarthost accepted but before the entry was removed sends that entry again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping

from .bounce import Failure, build_bounce
from .outbound import QueuedMessage, Rcpt, Spool
from .smarthost import Transport

log = logging.getLogger(__name__)

# A staged entry normally lives a few milliseconds; one this old belongs to a relay
# that died between writing it and committing (or promoting) it.
PENDING_GRACE_SECONDS = 120.0


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    return float(min(60 * 2 ** max(attempts - 1, 0), 3600))


class OutboundWorker:
    """Delivers the spool. `committed(activity_id)` and `mark_failed(delivery_ids)` are
    blocking callables into the store (run in a thread); either may be None in tests."""

    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        bounce_after_seconds: float,
        committed: Callable[[str], bool] | None = None,
        mark_failed: Callable[[list[int]], None] | None = None,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
        concurrency: int = 8,
        poll_seconds: float = 5.0,
    ) -> None:
        self.spool = spool
        self.transport = transport
        self.bounce_after = bounce_after_seconds
        self.committed = committed
        self.mark_failed = mark_failed
        self.clock = clock
        self.hostname = hostname or socket.gethostname()
        self.poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def kick(self, ids: list[str], data: Mapping[str, bytes] | None = None) -> None:
        """Deliver these entries now (called on the worker's event loop). `data` may hold
        the bytes of entries just written, which are then not read back from the spool
        (an entry's `.eml` is never rewritten, so they are the same bytes)."""
        for entry_id in ids:
            self._start(entry_id, data.get(entry_id) if data else None)

    def _start(self, entry_id: str, data: bytes | None = None) -> None:
        if entry_id in self._busy:
            return
        self._busy.add(entry_id)
        task = asyncio.create_task(self._guarded(entry_id, data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, stop: asyncio.Event) -> None:
        """Scan and deliver until `stop` is set; then wait for deliveries in flight."""
        while not stop.is_set():
            try:
                await self.scan()
            except Exception:  # the loop must outlive any one bad entry or disk hiccup
                log.exception("outbound scan failed")
            waiter = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.poll_seconds)
            finally:
                waiter.cancel()
        await self.drain()

    async def scan(self) -> None:
        """Start every due entry and settle stale `.pending` ones."""
        await self._settle_pending()
        now = self.clock()
        for entry_id in await asyncio.to_thread(self.spool.ready):
            if entry_id in self._busy:
                continue
            try:
                queued = await asyncio.to_thread(self.spool.load, entry_id)
            except (ValueError, KeyError, TypeError):
                self._start(entry_id)  # _deliver sets an unreadable entry aside
                continue
            if queued is not None and queued.next_attempt <= now:
                self._start(entry_id)

    async def drain(self) -> None:
        """Wait for every delivery in flight."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run_once(self) -> None:
        """One scan plus its deliveries (CLI `outbound retry --deliver`, tests)."""
        await self.scan()
        await self.drain()

    async def _settle_pending(self) -> None:
        if self.committed is None:
            return
        stale = await asyncio.to_thread(self.spool.pending, time.time() - PENDING_GRACE_SECONDS)
        for entry_id, activity_id in stale:
            keep = activity_id is not None and await asyncio.to_thread(self.committed, activity_id)
            if keep:
                await asyncio.to_thread(self.spool.commit, [entry_id])
                log.warning("outbound %s: recovered an entry committed before a crash", entry_id)
            else:
                await asyncio.to_thread(self.spool.discard, [entry_id])
                log.warning("outbound %s: dropped an entry whose email never committed", entry_id)

    async def _guarded(self, entry_id: str, data: bytes | None = None) -> None:
        try:
            async with self._slots:
                await self._deliver(entry_id, data)
        except Exception:
            log.exception("outbound %s: delivery failed unexpectedly; will retry", entry_id)
        finally:
            self._busy.discard(entry_id)

    async def _deliver(self, entry_id: str, data: bytes | None = None) -> None:
        with self.spool.claim(entry_id) as mine:
            if not mine:
                return
            # The envelope is read even when the relay just wrote it: another process
            # sharing the spool may have tried the entry since and changed it (fewer
            # recipients, a later attempt), or finished it.
            try:
                # An entry this process just wrote is in the page cache: reading its small
                # envelope inline costs less than a hop to a thread (and back for the GIL).
                queued = (
                    self.spool.load(entry_id)
                    if data is not None
                    else await asyncio.to_thread(self.spool.load, entry_id)
                )
            except (ValueError, KeyError, TypeError):
                log.error("outbound %s: unreadable envelope; set aside", entry_id)
                await asyncio.to_thread(self.spool.set_aside, entry_id)
                return
            if queued is None or queued.next_attempt > self.clock():
                return
            if data is None:
                data = await asyncio.to_thread(self.spool.data, entry_id)
            result = await self.transport.send(
                queued.mail_from, [r.address for r in queued.rcpts], data, queued.options
            )
            await self._settle(queued, data, result.temporary, result.permanent)

    async def _settle(
        self,
        queued: QueuedMessage,
        data: bytes,
        temporary: dict[str, str],
        permanent: dict[str, str],
    ) -> None:
        now = self.clock()
        failures = [
            Failure(r.address, permanent[r.address]) for r in queued.rcpts if r.address in permanent
        ]
        retry = [r for r in queued.rcpts if r.address in temporary]
        if retry and now >= queued.deadline:
            failures += [Failure(r.address, temporary[r.address], expired=True) for r in retry]
            retry = []
        if failures:
            if queued.bounce:
                log.error(
                    "outbound %s: bounce undeliverable (%s); set aside",
                    queued.id,
                    failures[0].reply,
                )
                await asyncio.to_thread(self.spool.set_aside, queued.id)
                return
            # The bounce is queued before this entry changes: a crash in between can
            # send a bounce twice, never lose it.
            await self._bounce(queued, data, failures)
            failed = {f.recipient for f in failures}
            ids = [r.delivery_id for r in queued.rcpts if r.address in failed and r.delivery_id]
            await self._run_store(self.mark_failed, ids)
        if retry:
            queued.rcpts = retry
            queued.attempts += 1
            queued.next_attempt = now + backoff(queued.attempts)
            queued.last_error = temporary[retry[0].address]
            log.info(
                "outbound %s: %s; retry in %.0fs",
                queued.id,
                queued.last_error,
                backoff(queued.attempts),
            )
            await asyncio.to_thread(self.spool.save, queued)
        else:
            self.spool.done(queued.id)  # two unlinks, no fsync: inline, like `claim`

    async def _bounce(self, queued: QueuedMessage, data: bytes, failures: list[Failure]) -> None:
        now = self.clock()
        report = build_bounce(
            original=data,
            sender=queued.mail_from,
            failures=failures,
            reporting_mta=self.hostname,
            arrival=queued.created,
            now=now,
        )

        def stage() -> str:
            entry_id = self.spool.stage(
                report,
                mail_from="",
                rcpts=[Rcpt(queued.mail_from)],
                now=now,
                deadline=now + self.bounce_after,
                bounce=True,
            )
            self.spool.commit([entry_id])
            return entry_id

        entry_id = await asyncio.to_thread(stage)
        log.warning("outbound %s: bounced to %s as %s", queued.id, queued.mail_from, entry_id)
        self._start(entry_id)

    async def _run_store(self, fn: Callable[[list[int]], None] | None, ids: list[int]) -> None:
        if fn is None or not ids:
            return
        try:
            await asyncio.to_thread(fn, ids)
        except Exception:  # the bounce went out; the status column is secondary
            log.exception("could not mark deliveries %s failed", ids)
