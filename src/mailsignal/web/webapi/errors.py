"""Refusals in Dataverse's shape: `{"error": {"code": "0x...", "message": "..."}}`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from ...errors import AuthError, DataverseError, FetchXmlError, MailSignalError
from ...fetchxml import EntityInfo

__all__ = ["DataverseError", "does_not_exist", "error_response", "handle"]


def does_not_exist(info: EntityInfo, record: uuid.UUID) -> DataverseError:
    """Dataverse's 404 for a record that is not there (or not the caller's to see)."""
    return DataverseError(404, "0x80040217", f"{info.name} With Id = {record} Does Not Exist")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


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
    except MailSignalError as exc:
        return error_response(exc.http_status, "0x80040203", exc.message)
