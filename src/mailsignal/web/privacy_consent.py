"""Admin REST for recipients' consent to tracking (issue 13), as `mailsignal privacy
consent` and `consent-history`:

    POST /api/v1/privacy/consent            {"address", "text", ...}  record a consent
    GET  /api/v1/privacy/consent?address=   every consent row of the address, oldest first

An admin's API key only (a rep gets 403); bad input gets 400 with a JSON error. Consents
are stored under the keyed hash of the address; withdrawal is the stop-tracking link's
(or POST /api/v1/privacy/do-not-track).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..pipeline import consent
from ..store import audit
from ..store.db import writing
from .admin import Admin

router = APIRouter(prefix="/api/v1/privacy", tags=["admin"])


class ConsentIn(BaseModel):
    """One recipient's consent and its proof."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The recipient's email address.")
    text: str = Field(max_length=4000, description="The text agreed to, word for word.")
    source: str = Field(default="api", description="api, cli, import or link.")
    given_at: datetime | None = Field(
        default=None, description="When it was given (ISO 8601 with offset); default now."
    )
    text_id: str | None = Field(default=None, max_length=80, description="Your text version id.")
    language: str | None = Field(default=None, max_length=16, description="The text's language.")


@router.post("/consent")
def add_consent(request: Request, admin: Admin, body: ConsentIn) -> dict[str, Any]:
    """Record that an address consented to tracking: copies to it are tracked under the
    consent basis. Appended to its history; the proof is the time, source and text."""
    given = consent.check(
        body.address, body.given_at, body.source, body.text, body.text_id, body.language
    )
    state = request.app.state
    actor = audit.user_actor(admin["systemuserid"])
    with writing(state.engine) as conn:
        return consent.record(conn, state.signer, given, actor=actor)


@router.get("/consent")
def consent_history(
    request: Request,
    admin: Admin,
    address: str = Query(max_length=320, description="The recipient's email address."),
) -> dict[str, Any]:
    """Every consent recorded for an address, oldest first, withdrawn ones included."""
    state = request.app.state
    with state.engine.connect() as conn:
        return {"value": consent.history(conn, state.signer, address)}
