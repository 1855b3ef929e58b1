"""Refusals in Dataverse's shape: `{"error": {"code": "0x...", "message": "..."}}`."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ...errors import (
    AuthError,
    DataverseError,
    FetchXmlError,
    MailSignalError,
    NotFoundError,
    StoreError,
)
from ...fetchxml import EntityInfo, codes
from ...store.bounds import QueryCancelled, QueryTimeout
from ..queries import RETRY_AFTER_SECONDS, TooManyQueries

__all__ = ["DataverseError", "does_not_exist", "error_response", "handle", "record_id"]

log = logging.getLogger(__name__)
# Dataverse's service protection limit on concurrent requests (429, with Retry-After).
CONCURRENT_REQUESTS = "0x80072326"
# Dataverse's answer to a key that is not a GUID: `accounts(abc)`.
QUERY_SYNTAX = "0x80060888"
_GUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


def does_not_exist(info: EntityInfo, record: uuid.UUID) -> DataverseError:
    """Dataverse's 404 for a record that is not there (or not the caller's to see)."""
    return DataverseError(404, "0x80040217", f"{info.name} With Id = {record} Does Not Exist")


def record_id(text: str) -> uuid.UUID:
    """The GUID of a key segment `set(<id>)`, in the one spelling Dataverse takes.

    Raises:
        DataverseError: 400 0x80060888, as Dataverse answers any other key.
    """
    if not _GUID.fullmatch(text):
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
    return uuid.UUID(text)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def handle(fn: Callable[[], Any]) -> Any:
    """Run a route body, answering every refusal in Dataverse's error shape."""
    try:
        return fn()
    except DataverseError as exc:
        return error_response(exc.http_status, exc.error_code, exc.message)
    except FetchXmlError as exc:
        return error_response(400, exc.error_code, exc.message)
    except AuthError as exc:
        code = "0x80040220" if exc.http_status == 403 else ""
        return error_response(exc.http_status, code, exc.message)
    except TooManyQueries as exc:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(429, CONCURRENT_REQUESTS, exc.message, retry)
    except QueryTimeout as exc:
        log.warning("a Web API query ran past its bound and was stopped")
        return error_response(503, codes.SQL_TIMEOUT, f"SQL timeout expired: {exc.message}.")
    except QueryCancelled as exc:
        return error_response(exc.http_status, "0x0", exc.message)
    except (StoreError, OperationalError, PoolTimeout) as exc:
        log.error("database unavailable: %s", getattr(exc, "orig", None) or exc)
        return error_response(503, "0x0", "The database is unavailable; retry later.")
    except NotFoundError as exc:  # a lookup naming a record that is not there
        return error_response(404, "0x80040217", exc.message)
    except MailSignalError as exc:
        return error_response(exc.http_status, "0x80040203", exc.message)
