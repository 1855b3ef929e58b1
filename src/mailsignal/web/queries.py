"""Running a user's FetchXML query for a web request, within bounds (issue #10).

Both query endpoints (the Web API's RetrieveMultiple / Retrieve and REST's
`/views/{key}/rows`) go through here:

- `bounded` runs the endpoint's body in a worker thread under a fresh `QueryBound`
  (`query_timeout_seconds`) and, meanwhile, listens for the client going away: a
  disconnect cancels the query, so nobody's CPU is spent on an answer nobody reads.
- `query_slot` holds one of the user's `max_queries_per_user` slots while the query
  runs, or refuses with `TooManyQueries` (HTTP 429). Slots are `flock`s on small files
  under `<data_dir>/query-slots/`, so the limit holds across every server process on
  the host, and a killed process releases its slots with its file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import Request

from ..errors import MailSignalError
from ..settings import Settings
from ..store.bounds import QueryBound, QueryTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_AFTER_SECONDS = 1


class TooManyQueries(MailSignalError):
    """The user already runs `max_queries_per_user` queries."""

    code = "too_many_queries"
    http_status = 429

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"Number of concurrent requests exceeded the limit of {limit}: wait for one of "
            "your queries to finish (setting max_queries_per_user)",
            detail={"limit": limit},
        )
        self.limit = limit


def slot_dir(settings: Settings) -> Path:
    return settings.data_dir / "query-slots"


@contextlib.contextmanager
def query_slot(settings: Settings, user_id: uuid.UUID) -> Iterator[None]:
    """Hold one of the user's query slots for the duration of the block.

    Raises:
        TooManyQueries: every slot is held (by this process or another).
    """
    folder = slot_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    limit = settings.max_queries_per_user
    for slot in range(limit):
        # Each open() is its own open file description, so flock also excludes threads
        # of this process from each other's slots; closing the descriptor releases it.
        fd = os.open(folder / f"{user_id}.{slot}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield
        finally:
            os.close(fd)
        return
    raise TooManyQueries(limit)


async def bounded(request: Request, body: Callable[[QueryBound], T]) -> T:
    """`body(bound)` in a worker thread; the bound is cancelled if the client disconnects.

    Whatever `body` raises is raised here, unchanged (a timeout is logged first; the Web
    API answers its own inside `body`, see webapi/errors.py).
    """
    settings: Settings = request.app.state.settings
    bound = QueryBound(settings.query_timeout_seconds)
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = body(bound)
        except BaseException as exc:  # handed to the awaiting task as it is
            outcome["error"] = exc

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_cancel_on_disconnect, request, bound)
        await anyio.to_thread.run_sync(call)
        tasks.cancel_scope.cancel()
    if "error" in outcome:
        if isinstance(outcome["error"], QueryTimeout):  # worth an operator's look
            log.warning("a REST query ran past its %g s bound and was stopped", bound.seconds)
        raise outcome["error"]
    value: T = outcome["value"]
    return value


async def _cancel_on_disconnect(request: Request, bound: QueryBound) -> None:
    """Wait for `http.disconnect` (a GET has no body left to read) and cancel the query."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            bound.cancel()
            return
