"""How long the store may wait on the database: a bound per query, and a watchdog per
connection of the web server (issue #10).

A FetchXML query is the one thing a user can make arbitrarily expensive (two outer
self-joins over ten thousand events ran for minutes at 100% CPU). `QueryBound` gives it
a deadline and a way to be stopped from another thread (the client left, the server is
stopping); `run` executes one statement under it:

- SQLite: a progress handler on the sqlite3 connection aborts the statement (`interrupted`)
  once the deadline passes or the bound is cancelled; it is removed afterwards.
- PostgreSQL: `SET LOCAL statement_timeout` to the time left, so the server stops the
  statement itself (its CPU is released even if this process dies), and `cancel()` sends
  a cancel request (psycopg's `cancel_safe`) for the statement running now.

A stopped statement becomes `QueryTimeout` or `QueryCancelled` (both `StoreError`s).

`Watchdog` is the backstop for a server that does not answer at all (stopped, or its
host frozen): `statement_timeout` runs on the server, so it cannot fire there. A web
connection is armed when the pool hands it out and disarmed when it comes back; one that
is still out past its bound has its socket shut down, which wakes the thread waiting on
it with an OperationalError (503) instead of leaving it blocked for good.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, Row
from sqlalchemy.exc import DBAPIError

from ..errors import StoreError

log = logging.getLogger(__name__)

# SQLite VM instructions between two looks at the clock: well under a millisecond of
# work, for about 1% more time on a three-way join (measured against no handler).
_SQLITE_STEPS = 10_000
_PG_QUERY_CANCELED = "57014"  # SQLSTATE of statement_timeout and of a cancel request


class QueryTimeout(StoreError):
    """A query ran past its bound (`query_timeout_seconds`) and was stopped."""

    code = "query_timeout"
    http_status = 503


class QueryCancelled(StoreError):
    """A query was stopped before its bound because nobody waits for it any more."""

    code = "query_cancelled"
    http_status = 499  # nginx's "client closed request": the answer has no reader


class QueryBound:
    """One query's deadline, and a thread-safe way to stop it early (`cancel`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._cancelled = threading.Event()
        # Held while a PostgreSQL statement runs under this bound, and while a cancel
        # request is sent for it: a cancel can never reach the connection's next user.
        self._lock = threading.Lock()
        self._running: Any = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def cancel(self) -> None:
        """Stop the query as soon as possible; returns at once, from any thread."""
        self._cancelled.set()
        with self._lock:
            if self._running is None:
                return  # SQLite's progress handler, or the next `run`, sees the flag
        threading.Thread(target=self._send_cancel, name="mailsignal-cancel", daemon=True).start()

    def _send_cancel(self) -> None:
        with self._lock:
            if self._running is not None:
                try:
                    self._running.cancel_safe(timeout=5)
                except Exception as exc:  # an unreachable server: the watchdog is the backstop
                    log.warning("could not cancel a query: %s", exc)

    def stopped(self) -> StoreError:
        """The error for a statement this bound stopped."""
        if self.cancelled:
            return QueryCancelled("the query was cancelled: the client went away")
        return QueryTimeout(
            f"the query ran longer than {self.seconds:g} s and was stopped "
            "(setting query_timeout_seconds); narrow it with filters or fewer link-entities"
        )

    def _check(self) -> None:
        if self.cancelled or self.expired():
            raise self.stopped()

    def _sqlite_progress(self) -> int:
        return 1 if self._cancelled.is_set() or time.monotonic() >= self.deadline else 0

    @contextlib.contextmanager
    def _registered(self, driver_connection: Any) -> Iterator[None]:
        with self._lock:
            self._running = driver_connection
        try:
            self._check()  # a cancel that came before `_running` was set found nothing to send
            yield
        finally:
            with self._lock:
                self._running = None


def run(conn: Connection, statement: Executable, bound: QueryBound | None) -> Sequence[Row[Any]]:
    """Every row of `statement` on `conn`, stopped when `bound` expires or is cancelled.

    Raises:
        QueryTimeout, QueryCancelled: the bound stopped the statement.
    """
    if bound is None:
        return conn.execute(statement).all()
    bound._check()
    driver: Any = conn.connection.driver_connection
    try:
        if conn.dialect.name == "sqlite":
            driver.set_progress_handler(bound._sqlite_progress, _SQLITE_STEPS)
            try:
                return conn.execute(statement).all()
            finally:
                driver.set_progress_handler(None, 0)
        left = max(1, int((bound.deadline - time.monotonic()) * 1000))
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {left}")
        with bound._registered(driver):
            rows = conn.execute(statement).all()
        # Back to the session's own bound (the web engine's, see db.make_engine) for
        # whatever else the transaction does.
        conn.exec_driver_sql("SET LOCAL statement_timeout TO DEFAULT")
        return rows
    except DBAPIError as exc:
        if _was_stopped(exc, bound):
            raise bound.stopped() from exc
        raise


def _was_stopped(exc: DBAPIError, bound: QueryBound) -> bool:
    if bound.cancelled or bound.expired():
        return True  # interrupted, cancelled, timed out, or cut by the watchdog
    return getattr(exc.orig, "sqlstate", None) == _PG_QUERY_CANCELED


class Watchdog:
    """Shuts down the socket of a PostgreSQL connection that is out past its deadline.

    One daemon thread per engine sleeps until the earliest deadline. `arm` and `disarm`
    are called from the pool's checkout and checkin events, so a connection is watched
    exactly while a request holds it.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Any]] = []
        self._armed: dict[int, int] = {}  # id(driver connection) -> ticket
        self._tickets = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, driver_connection: Any) -> None:
        with self._cond:
            ticket = next(self._tickets)
            self._armed[id(driver_connection)] = ticket
            deadline = time.monotonic() + self.seconds
            heapq.heappush(self._heap, (deadline, ticket, driver_connection))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="mailsignal-db-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def disarm(self, driver_connection: Any) -> None:
        with self._cond:
            self._armed.pop(id(driver_connection), None)

    def _watch(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, ticket, conn = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if self._armed.get(id(conn)) != ticket:
                    continue  # returned to the pool in time (or re-armed since)
                del self._armed[id(conn)]
                _shut_down(conn)


def _shut_down(driver_connection: Any) -> None:
    """Cut a psycopg connection's socket: a thread blocked reading it wakes up with
    "server closed the connection", and SQLAlchemy discards the connection."""
    try:
        fd = driver_connection.pgconn.socket
        with socket.socket(fileno=socket.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception as exc:  # already closed: nothing is waiting on it
        log.debug("watchdog: connection already gone: %s", exc)
        return
    log.error("the database did not answer within the bound; connection dropped")
