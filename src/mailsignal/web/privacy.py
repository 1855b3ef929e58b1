"""Admin REST for recipients' do-not-track (issue 13), as `mailsignal privacy ...`:

    POST   /api/v1/privacy/do-not-track   {"address": ...}  the address stops being tracked
    DELETE /api/v1/privacy/do-not-track   {"address": ...}  off the list again
    GET    /api/v1/privacy/dropped-hits   hits answered but not stored, per day and reason

An admin's API key only (a rep gets 403). The address travels in the body, never in
the URL, so it stays out of access logs; the answer names it by its keyed hash.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..pipeline.donottrack import opt_in, opt_out
from ..store import audit, donottrack
from ..store.db import writing
from .admin import Admin

router = APIRouter(prefix="/api/v1/privacy", tags=["admin"])


class AddressIn(BaseModel):
    """One recipient's address."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The recipient's email address.")


@router.post("/do-not-track")
def add_do_not_track(request: Request, admin: Admin, body: AddressIn) -> dict[str, Any]:
    """Make an address do-not-track: listed (by keyed hash), `followemail` false on its
    contacts and leads, hits on mail already sent no longer stored; with
    `erase_events_on_optout`, its past events deleted."""
    state = request.app.state
    actor = audit.user_actor(admin["systemuserid"])
    with writing(state.engine) as conn:
        done = opt_out(conn, state.signer, body.address, state.settings, source="api", actor=actor)
    return {
        "addresshash": done.address_hash,
        "new": done.new,
        "parties": done.parties,
        "erased": done.erased,
    }


@router.delete("/do-not-track")
def remove_do_not_track(request: Request, admin: Admin, body: AddressIn) -> dict[str, Any]:
    """Take an address off the list and set `followemail` true on its contacts and leads."""
    state = request.app.state
    actor = audit.user_actor(admin["systemuserid"])
    with writing(state.engine) as conn:
        removed, parties = opt_in(conn, state.signer, body.address, actor=actor)
    return {"removed": removed, "parties": parties}


@router.get("/dropped-hits")
def dropped_hits(
    request: Request, admin: Admin, days: int = Query(30, ge=1, le=3660)
) -> dict[str, Any]:
    """Hits the tracker answered but ingest did not store, per UTC day and reason."""
    since = datetime.now(UTC) - timedelta(days=days - 1)
    with request.app.state.engine.connect() as conn:
        rows = donottrack.dropped(conn, since)
    return {"value": [{"day": d, "reason": r, "hits": n} for d, r, n in rows]}
