"""REST API (`/api/v1`): track an outgoing email, read it with its counters and events.

Authentication is a Bearer API key (`mailsignal users key EMAIL` prints one). A rep
sees and sends only as themselves; an admin sees every email and may send for anyone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine

from .. import instrument, outgoing
from ..addresses import normalise_address
from ..errors import AuthError, ForbiddenError, InputError
from ..store import aggregate, emails, events, sent, users
from ..store.db import writing

# How long an Idempotency-Key stands for its first request (the IETF draft's example).
IDEMPOTENCY_TTL = timedelta(hours=24)


class EmailIn(BaseModel):
    """An outgoing email to track. Give `mime` (a whole RFC 5322 message) or html/text."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(description="The rep's address; must be a MailSignal user.")
    recipients: list[str] = Field(
        default_factory=list,
        description="Recipient addresses; default: the To and Cc of `mime`.",
        max_length=500,
    )
    subject: str | None = Field(default=None, max_length=800)
    html: str | None = None
    text: str | None = None
    mime: str | None = Field(default=None, description="A complete message, as text.")
    sent_at: datetime | None = Field(
        default=None,
        description="When it was sent (ISO 8601 with offset, 1970-01-01 to 2100-01-01 UTC); "
        "default now.",
    )
    message_id: str | None = Field(default=None, description="Message-ID header; generated.")


class CopyOut(BaseModel):
    recipient: str
    deliveryid: int
    tracked: bool
    untracked_reasons: list[str]
    mime: str | None = Field(
        description="This recipient's message, byte for byte, when it is valid UTF-8 "
        "(instrumented when tracked)."
    )
    mime_base64: str | None = Field(
        default=None,
        description="The message base64-encoded, given instead of `mime` when it holds "
        "8-bit bytes in another charset.",
    )


class EmailCreated(BaseModel):
    activityid: uuid.UUID
    messageid: str
    deliveries: list[CopyOut]
    replayed: bool = Field(
        default=False,
        description="The sender had recorded this Message-ID (or this Idempotency-Key) "
        "before: this is that email, with its copies (status 200, not 201).",
    )


class IdempotencyKeyReused(InputError):
    """An Idempotency-Key sent again with another request body."""

    code = "idempotency_key_reused"
    http_status = 422


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_user(request: Request) -> dict[str, Any]:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError("send an API key as 'Authorization: Bearer <key>'")
    return users.authenticate(_engine(request), key.strip())


User = Annotated[dict[str, Any], Depends(current_user)]
router = APIRouter(prefix="/api/v1", tags=["emails"])


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items()}


def _mime_fields(copy: outgoing.TrackedCopy) -> dict[str, str | None]:
    # Lines end in CRLF, as RFC 5322 has them; as_bytes keeps each part's transfer
    # encoding, where as_string would re-encode 8bit bodies.
    try:
        raw = copy.as_bytes("\r\n")
    except UnicodeEncodeError:  # a non-ASCII header with no encoded form (a Message-ID)
        # as SMTPUTF8 mail carries it
        raw = copy.message.as_bytes(policy=policy.SMTPUTF8.clone(linesep="\r\n"))
    try:
        return {"mime": raw.decode("utf-8"), "mime_base64": None}
    except UnicodeDecodeError:
        return {"mime": None, "mime_base64": base64.b64encode(raw).decode("ascii")}


@router.post("/emails", status_code=201, response_model=EmailCreated)
def create_email(
    body: EmailIn,
    request: Request,
    response: Response,
    user: User,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Makes a retried POST without a message_id the same email: the same "
            "key with the same body within 24 h answers the first response again (200, "
            "`replayed`); with another body, 422.",
        ),
    ] = None,
) -> EmailCreated:
    """Register an outgoing email and return each recipient's instrumented copy.

    Idempotent by Message-ID: the same sender's Message-ID again is the email it made
    (200, `replayed: true`, header `Idempotent-Replayed: true`), never a second one."""
    if (
        user["accessrole"] != "admin"
        and normalise_address(body.sender) != user["internalemailaddress"]
    ):
        raise ForbiddenError("a rep may only track email they send themselves")
    if body.mime is not None and (body.html or body.text):
        raise InputError("give either mime or html/text, not both")
    if body.mime is None and not body.recipients:
        raise InputError("recipients: at least one address is required")
    service: outgoing.Outgoing = request.app.state.outgoing
    # Fields are checked by the service every edge shares (outgoing.build_message, track).
    msg = instrument.parse_message(body.mime) if body.mime is not None else None
    with writing(_engine(request)) as conn:
        message_id, sent_at = body.message_id, body.sent_at
        if idempotency_key is not None:
            message_id, sent_at = _key_use(conn, user, idempotency_key, body, msg)
        elif msg is None and message_id is not None and sent_at is None:
            # A repeat's Date is the first one's, so its copies are the same bytes.
            sent_at = sent.sent_at_of(conn, normalise_address(body.sender), message_id.strip())
        if msg is None:
            recipients = body.recipients
            msg = outgoing.build_message(
                body.sender, recipients, body.subject, body.html, body.text, message_id, sent_at
            )
        else:
            recipients = body.recipients or outgoing.recipients_of(msg)
            if message_id is not None and msg.get("Message-ID") is None:
                msg["Message-ID"] = message_id
        result = service.track(
            conn, msg, sender=body.sender, recipients=recipients, sent_at=sent_at
        )
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return EmailCreated(
        activityid=result.activity_id,
        messageid=result.message_id,
        deliveries=[
            CopyOut(
                recipient=c.recipient,
                deliveryid=c.delivery_id,
                tracked=c.decision.tracked,
                untracked_reasons=list(c.decision.reasons),
                **_mime_fields(c),
            )
            for c in result.copies
        ],
        replayed=result.replayed,
    )


def _key_use(
    conn: Connection,
    user: dict[str, Any],
    key: str,
    body: EmailIn,
    msg: EmailMessage | None,
) -> tuple[str, datetime]:
    """The Message-ID and send time an Idempotency-Key gives this request: those of its
    first use (so the email is found again), or new ones. The same key with another body
    is refused (draft-ietf-httpapi-idempotency-key-header: 422)."""
    now = datetime.now(UTC)
    own_id = msg.get("Message-ID") if msg is not None else body.message_id
    first = sent.KeyUse(
        # json.dumps, not model_dump_json: it writes a lone surrogate as \ud800, not an error.
        hashlib.sha256(json.dumps(body.model_dump(), default=str).encode()).hexdigest(),
        str(own_id)
        if own_id is not None
        else make_msgid(domain=body.sender.rpartition("@")[2] or None),
        body.sent_at or now,
    )
    use = sent.claim_key(conn, user["systemuserid"], key, first, now, now - IDEMPOTENCY_TTL)
    if use.request_hash != first.request_hash:
        raise IdempotencyKeyReused(
            "Idempotency-Key was used with another request body: use a new key for a new email"
        )
    return use.message_id, use.sent_at


@router.get("/emails")
def list_emails(request: Request, user: User, limit: int = 50) -> dict[str, Any]:
    """The caller's most recent emails (an admin's: everyone's)."""
    if not 1 <= limit <= 1000:
        raise InputError("limit must be between 1 and 1000")
    with _engine(request).connect() as conn:
        rows = emails.list_recent(conn, viewer=user, limit=limit)
    return {"value": [_jsonable(r) for r in rows]}


@router.get("/emails/{activityid}")
def get_email(activityid: uuid.UUID, request: Request, user: User) -> dict[str, Any]:
    """One email with its raw and human counters and its deliveries; with
    `aggregateopencount` the aggregate opens of its copies left untracked for want of
    consent (raw, machines included; null when no copy carried that pixel, issue 13)."""
    with _engine(request).connect() as conn:
        row = emails.get(conn, activityid, viewer=user)
        row["aggregateopencount"] = aggregate.open_count(conn, activityid)
        row["deliveries"] = [_jsonable(d) for d in emails.deliveries(conn, activityid)]
    return _jsonable(row)


@router.get("/emails/{activityid}/events")
def list_events(activityid: uuid.UUID, request: Request, user: User) -> dict[str, Any]:
    """Every event of the email (machine ones too), with verdict, confidence and reasons."""
    with _engine(request).connect() as conn:
        emails.get(conn, activityid, viewer=user)
        rows = events.of_email(conn, activityid)
    return {"value": [_jsonable(r) for r in rows]}


@router.get("/views", tags=["views"])
def list_views(request: Request, user: User) -> dict[str, Any]:
    """Shipped and user-defined saved views."""
    from .. import views

    return {
        "value": [
            {
                "savedqueryid": str(v.id),
                "slug": v.slug,
                "name": v.name,
                "description": v.description,
                "returnedtypecode": v.entity,
                "shipped": v.shipped,
            }
            for v in views.all_views(request.app.state.settings.data_dir)
        ]
    }


@router.get("/views/{key}/rows", tags=["views"])
async def run_view(key: str, request: Request, user: User) -> dict[str, Any]:
    """Run a saved view for the caller (their rows, their time zone). Stopped past
    query_timeout_seconds (503 `query_timeout`) or when the client leaves; more than
    max_queries_per_user at once are refused (429 `too_many_queries`)."""
    from .. import views
    from ..store.bounds import QueryBound
    from ..store.fetch import FetchResult, load_caller
    from .queries import bounded, query_slot

    settings = request.app.state.settings

    def run(bound: QueryBound) -> tuple[views.View, FetchResult]:
        view = views.find(settings.data_dir, key)
        with _engine(request).connect() as conn:
            caller = load_caller(conn, user["systemuserid"])
            with query_slot(settings, caller.user_id):
                return view, views.run(conn, view, caller, bound=bound)

    view, result = await bounded(request, run)
    return {
        "view": view.slug,
        "columns": list(result.columns),
        "more_records": result.more_records,
        "value": [_jsonable(r) for r in result.rows],
    }
