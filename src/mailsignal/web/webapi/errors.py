"""Refusals in Dataverse's shape: `{"error": {"code": "0x...", "message": "..."}}`.

Every refusal on `/api/data/v9.2` carries a real Dataverse hex code, never an empty,
`0x0` or MailSignal code: clients written for Dynamics 365 branch on it. Where
Dataverse's own code for a case is not known for sure the constant below says so.
A malformed FetchXML answers Dataverse's bare `Invalid XML.`; what exactly is wrong is
in `innererror.message` (the OData error's place for details).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
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

__all__ = [
    "DataverseError",
    "does_not_exist",
    "error_response",
    "handle",
    "http_refusal",
    "no_options",
    "record_id",
    "refusal",
]

log = logging.getLogger(__name__)
# Dataverse's service protection limit on concurrent requests (429, with Retry-After).
CONCURRENT_REQUESTS = "0x80072326"
# Dataverse's answer to a key that is not a GUID (`accounts(abc)`), an unknown segment,
# property or query option, and a method a resource does not support: OData's URI and
# routing errors all come back as 0x80060888.
QUERY_SYNTAX = "0x80060888"
NOT_FOUND = "0x80040217"  # ObjectDoesNotExist
MISSING_PRIVILEGE = "0x80040220"  # SecLib::CheckPrivilege failed
# 401: the caller is not a user of this organization (Dataverse: "The user is not a
# member of the organization."); Dataverse's code for a bad token itself is unknown.
NOT_A_USER = "0x80072560"
BAD_PAYLOAD = "0x80048d19"  # "Error identified in Payload provided by the user for Entity"
GENERIC_SQL = "0x80044150"  # GenericSqlError: the database failed or cannot be reached
INVALID_XML_MESSAGE = "Invalid XML."
_GUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


def does_not_exist(info: EntityInfo, record: uuid.UUID) -> DataverseError:
    """Dataverse's 404 for a record that is not there (or not the caller's to see)."""
    return DataverseError(404, NOT_FOUND, f"{info.name} With Id = {record} Does Not Exist")


def record_id(text: str) -> uuid.UUID:
    """The GUID of a key segment `set(<id>)`, in the one spelling Dataverse takes.

    Raises:
        DataverseError: 400 0x80060888, as Dataverse answers any other key.
    """
    if not _GUID.fullmatch(text):
        raise DataverseError(400, QUERY_SYNTAX, "Bad Request - Error in query syntax.")
    return uuid.UUID(text)


def no_options(params: Iterable[str]) -> None:
    """Refuse query options on a path that takes none (never ignore them)."""
    for name in params:
        raise DataverseError(400, QUERY_SYNTAX, f"The query parameter {name} is not supported")


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    detail: str | None = None,
) -> JSONResponse:
    """The one error body; `detail` goes to `innererror.message`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if detail:
        error["innererror"] = {"message": detail}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def refusal(exc: Exception) -> JSONResponse | None:
    """`exc` answered in Dataverse's shape, or None when it is not a refusal (a bug)."""
    if isinstance(exc, DataverseError):
        return error_response(exc.http_status, exc.error_code, exc.message)
    if isinstance(exc, FetchXmlError):
        if exc.error_code == codes.INVALID_XML:
            return error_response(400, exc.error_code, INVALID_XML_MESSAGE, detail=exc.message)
        return error_response(400, exc.error_code, exc.message)
    if isinstance(exc, AuthError):
        code = MISSING_PRIVILEGE if exc.http_status == 403 else NOT_A_USER
        return error_response(exc.http_status, code, exc.message)
    if isinstance(exc, TooManyQueries):
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(429, CONCURRENT_REQUESTS, exc.message, retry)
    if isinstance(exc, QueryTimeout):
        log.warning("a Web API query ran past its bound and was stopped")
        return error_response(503, codes.SQL_TIMEOUT, f"SQL timeout expired: {exc.message}.")
    if isinstance(exc, QueryCancelled):  # nobody reads it: the client has gone
        return error_response(exc.http_status, codes.SQL_TIMEOUT, exc.message)
    if isinstance(exc, StoreError | OperationalError | PoolTimeout):
        log.error("database unavailable: %s", getattr(exc, "orig", None) or exc)
        return error_response(503, GENERIC_SQL, "The database is unavailable; retry later.")
    if isinstance(exc, NotFoundError):  # a lookup naming a record that is not there
        return error_response(404, NOT_FOUND, exc.message)
    if isinstance(exc, MailSignalError):
        return error_response(exc.http_status, codes.INVALID_ARGUMENT, exc.message)
    return None


def http_refusal(status: int, detail: str, method: str, path: str) -> JSONResponse:
    """Routing's own refusals (no route, wrong method, too large) on the Web API."""
    if status == 404:
        segment = path.rstrip("/").rsplit("/", 1)[-1]
        return error_response(404, QUERY_SYNTAX, f"Resource not found for the segment '{segment}'.")
    if status == 405:
        message = f"The requested resource does not support http method '{method}'."
        return error_response(405, QUERY_SYNTAX, message)
    if status == 413:
        return error_response(413, BAD_PAYLOAD, detail)
    return error_response(status, QUERY_SYNTAX, detail)


def handle(fn: Callable[[], Any]) -> Any:
    """Run a route body, answering every refusal in Dataverse's error shape."""
    try:
        return fn()
    except Exception as exc:
        answer = refusal(exc)
        if answer is None:
            raise
        return answer
