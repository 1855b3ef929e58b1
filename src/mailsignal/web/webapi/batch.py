"""`POST $batch`: several Web API requests in one multipart/mixed body (OData v4 §11.7).

Clients use it for what a URL cannot carry, a FetchXML longer than 32 KB above all, and
to send several GETs and PATCHes at once. Each part is an `application/http` request;
a nested `multipart/mixed` part is a change set. Every request is run through this same
application, under the batch's own `Authorization` (a part cannot name another key) and
only on `/api/data/v9.2/`, so it gets exactly the answer it would get alone: the same
access rules, query bounds, validation and errors. Parts run in order and, as Dataverse
does, the batch stops at the first failure unless `Prefer: odata.continue-on-error`.
A change set stops at its first failure and answers that failure alone; the requests
before it in the change set stay done (MailSignal's PATCHes each run in their own
transaction, unlike Dataverse's all-or-nothing change sets).

The body is read with the standard library's MIME parser; answers are
`multipart/mixed; boundary=batchresponse_<uuid>` with one `application/http` part each.
"""

from __future__ import annotations

import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..api import current_user
from .errors import BAD_PAYLOAD, DataverseError, error_response, handle

router = APIRouter()
PREFIX = "/api/data/v9.2"
MAX_PARTS = 1000  # Dataverse's limit on requests in one batch
# Request headers a part may set; the rest (Authorization above all) come from the batch.
_PART_HEADERS = {"accept", "content-type", "prefer", "if-match", "if-none-match", "odata-version"}


def _refuse(message: str) -> DataverseError:
    return DataverseError(400, BAD_PAYLOAD, message)


def _parts(content_type: str, body: bytes) -> list[EmailMessage]:
    if not content_type.lower().startswith("multipart/mixed") or "boundary=" not in content_type:
        raise _refuse("A $batch body must be multipart/mixed with a boundary.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise _refuse("The $batch body has no parts.")
    return list(message.iter_parts())  # type: ignore[arg-type]


def _request_of(part: EmailMessage) -> tuple[str, str, list[tuple[bytes, bytes]], bytes]:
    """(method, path?query, headers, body) of one `application/http` part."""
    if part.get_content_type() != "application/http":
        raise _refuse("Each $batch part must be application/http.")
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        raise _refuse("A $batch part has no request.")
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8", "replace").strip("\n").split("\n")
    words = lines[0].split(" ")
    if len(words) < 2:
        raise _refuse(f"Not an HTTP request line: {lines[0][:80]!r}.")
    method, target = words[0].upper(), words[1]
    if target.startswith(("http://", "https://")):
        split = urlsplit(target)
        target = split.path + (f"?{split.query}" if split.query else "")
    elif not target.startswith("/"):
        target = f"{PREFIX}/{target}"
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in _PART_HEADERS:
            headers.append((name.strip().lower().encode(), value.strip().encode()))
    return method, target, headers, body.rstrip(b"\n") if body.strip() else b""


async def _call(
    request: Request, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request run through the application, as if it had come on its own."""
    path, _, query = target.partition("?")
    if not path.startswith(f"{PREFIX}/") or path.endswith("/$batch"):
        answer = error_response(404, "0x80060888", f"Resource not found for the segment '{path}'.")
        return answer.status_code, list(answer.raw_headers), bytes(answer.body)
    auth = request.headers.get("authorization")
    scope: dict[str, Any] = {
        **{k: v for k, v in request.scope.items() if k in ("type", "http_version", "scheme")},
        "server": request.scope.get("server"),
        "client": request.scope.get("client"),
        "root_path": "",
        "method": method,
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [*headers, *([(b"authorization", auth.encode())] if auth else [])],
        "extensions": {},
    }
    sent = {"body": False}

    async def receive() -> dict[str, Any]:
        if not sent["body"]:
            sent["body"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return dict(await request.receive())  # the batch's client leaving

    out: dict[str, Any] = {"status": 500, "headers": [], "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"], out["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await request.app(scope, receive, send)
    return out["status"], out["headers"], out["body"]


def _http_part(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, cid: str | None
) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    keep = [
        f"{k.decode()}: {v.decode()}"
        for k, v in headers
        if k.lower() in (b"content-type", b"odata-version", b"etag", b"odata-entityid", b"location")
    ]
    head = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if cid:
        head.append(f"Content-ID: {cid}")
    text = "\r\n".join([*head, "", f"HTTP/1.1 {status} {reason}", *keep, "", ""])
    return text.encode() + body


def _multipart(boundary: str, parts: list[bytes]) -> bytes:
    out = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts)
    return out + f"--{boundary}--\r\n".encode()


@router.post("/$batch")
async def batch(request: Request) -> Any:
    """Run the parts in order; answer each in a part of a multipart/mixed response."""
    body = await request.body()
    refused = await anyio.to_thread.run_sync(handle, lambda: current_user(request))
    if isinstance(refused, Response):
        return refused
    try:
        parts = _parts(request.headers.get("content-type", ""), body)
        if len(parts) > MAX_PARTS:
            raise _refuse(f"The number of requests in a batch is limited to {MAX_PARTS}.")
    except DataverseError as exc:
        return error_response(exc.http_status, exc.error_code, exc.message)
    go_on = "odata.continue-on-error" in request.headers.get("prefer", "").lower()
    answers: list[bytes] = []
    for part in parts:
        failed = False
        if part.is_multipart():  # a change set
            inner, boundary = [], f"changesetresponse_{uuid.uuid4()}"
            for change in part.iter_parts():
                status, text = await _answer(request, change)  # type: ignore[arg-type]
                if status >= 400:
                    inner, failed = [text], True
                    break
                inner.append(text)
            nested = f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n".encode()
            answers.append(nested + _multipart(boundary, inner))
        else:
            status, text = await _answer(request, part)
            answers.append(text)
            failed = status >= 400
        if failed and not go_on:
            break
    boundary = f"batchresponse_{uuid.uuid4()}"
    return Response(
        _multipart(boundary, answers),
        media_type=f"multipart/mixed; boundary={boundary}",
        headers={"OData-Version": "4.0"},
    )


async def _answer(request: Request, part: EmailMessage) -> tuple[int, bytes]:
    try:
        method, target, headers, body = _request_of(part)
    except DataverseError as exc:
        answer = error_response(exc.http_status, exc.error_code, exc.message)
        return answer.status_code, _http_part(
            answer.status_code, list(answer.raw_headers), bytes(answer.body), None
        )
    status, out_headers, out = await _call(request, method, target, headers, body)
    return status, _http_part(status, out_headers, out, part.get("content-id"))
