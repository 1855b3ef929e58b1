"""Every exception MailSignal raises on purpose.

    MailSignalError                 base; `code` is a stable machine-readable id
    ├── ConfigError                 a setting or the secret file is missing or invalid
    ├── TokenError                  a tracking token is malformed, truncated or forged
    ├── InputError                  the caller sent something we cannot use (HTTP 4xx, CLI message)
    │   ├── MimeError               a message that is not parseable MIME, or has no body to track
    │   ├── TooLargeError           a body or message over the configured limit (HTTP 413)
    │   ├── NotFoundError           the record named does not exist (HTTP 404)
    │   └── FetchXmlError           a FetchXML query we refuse; carries Dataverse's `error_code`
    │       ├── FetchXmlParseError  not well-formed, a DTD, an unknown element, over a limit
    │       └── FetchXmlQueryError  well-formed but wrong: unknown entity/attribute/operator,
    │                               a value of the wrong type, a combination Dataverse forbids
    ├── AuthError                   missing or wrong API key (HTTP 401)
    │   └── ForbiddenError          the key is valid but may not do this (HTTP 403)
    ├── DataverseError              a Web API refusal in Dataverse's terms: its HTTP
    │                               status, hex `error_code` and message
    ├── TooManyQueries              (web/queries.py) a user's concurrent query limit (HTTP 429)
    └── StoreError                  the database refused or is unreachable (HTTP 503)
        ├── QueryTimeout            (store/bounds.py) a query ran past its bound (HTTP 503)
        └── QueryCancelled          (store/bounds.py) its client went away (HTTP 499)

Edges (web, mail, cli) turn these into an HTTP status with a JSON body, an SMTP status
or a CLI message in one place each; nothing below the edges formats an error for a user.
"""

from __future__ import annotations

from typing import Any


class MailSignalError(Exception):
    """Base class. `code` names the problem; `detail` carries extra JSON-able facts."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class ConfigError(MailSignalError):
    """A setting, the TOML file or the secret key file is missing or invalid."""

    code = "config"
    http_status = 500


class TokenError(MailSignalError):
    """A tracking token failed to decode or verify. Never shown to the public."""

    code = "token"


class InputError(MailSignalError):
    """Input that cannot be used as given; the message names the field or line."""

    code = "invalid_input"
    http_status = 400


class MimeError(InputError):
    """A message that is not parseable MIME, or has no HTML or text part to track."""

    code = "invalid_mime"


class TooLargeError(InputError):
    """A request body or message larger than the configured limit."""

    code = "too_large"
    http_status = 413


class NotFoundError(InputError):
    """The record the caller named does not exist (or is not theirs to see)."""

    code = "not_found"
    http_status = 404


class AuthError(MailSignalError):
    """Missing, malformed or unknown API key."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(AuthError):
    """A valid key whose user may not perform the request."""

    code = "forbidden"
    http_status = 403


class DataverseError(MailSignalError):
    """A refusal of the Dataverse Web API subset, with Dataverse's own HTTP status, hex
    error code (for example "0x80040217") and message, which clients written for Dynamics
    365 match on."""

    code = "dataverse"

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message, detail={"error_code": error_code})
        self.http_status = status
        self.error_code = error_code


class StoreError(MailSignalError):
    """The database refused the operation or cannot be reached."""

    code = "store_unavailable"
    http_status = 503


class FetchXmlError(InputError):
    """A FetchXML query MailSignal refuses, shaped like Dataverse's answer.

    `error_code` is Dataverse's hex code (for example "0x80041103") and `message` its
    text, so the Web API can answer `{"error": {"code": ..., "message": ...}}` unchanged.
    `line`, `column` and `element` locate the offending element in the query and
    `excerpt` shows that line with a caret under it (sqlglot's ParseError habit);
    `str(error)` gives all of it for logs and the CLI.
    """

    code = "fetchxml"

    def __init__(
        self,
        message: str,
        *,
        error_code: str,
        line: int | None = None,
        column: int | None = None,
        element: str | None = None,
        excerpt: str | None = None,
    ) -> None:
        detail: dict[str, Any] = {"error_code": error_code}
        for key, value in (("line", line), ("column", column), ("element", element)):
            if value is not None:
                detail[key] = value
        super().__init__(message, detail=detail)
        self.error_code = error_code
        self.line = line
        self.column = column
        self.element = element
        self.excerpt = excerpt

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
            if self.column is not None:
                where.append(f"column {self.column}")
        if self.element:
            where.append(f"<{self.element}>")
        text = f"{self.message} [{self.error_code}]"
        if where:
            text += f" at {', '.join(where)}"
        return f"{text}\n{self.excerpt}" if self.excerpt else text


class FetchXmlParseError(FetchXmlError):
    """The text is not a FetchXML document we will read: malformed XML, a DTD or entity
    declaration, an unknown element or attribute, a bad boolean, or over a size limit."""

    code = "fetchxml_parse"


class FetchXmlQueryError(FetchXmlError):
    """A well-formed query that cannot run: unknown entity, attribute or operator, a value
    that does not convert to the column's type, or a combination Dataverse rejects."""

    code = "fetchxml_query"
