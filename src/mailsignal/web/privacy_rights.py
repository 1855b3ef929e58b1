"""Admin REST for a recipient's rights of access and erasure (issue 13), as `mailsignal
privacy export|erase`:

    GET  /api/v1/privacy/export?address=...   every stored row about the address (JSON)
    POST /api/v1/privacy/export {"address": ...}  the same, the address kept out of URLs
    POST /api/v1/privacy/erase  {"address": ...}  delete or anonymise every row and file

An admin's API key only (a rep gets 403); an address that is not one gets 400. The
export is built in a spooled temporary file (memory up to 8 MiB, then an unlinked
0600 file) and streamed, so a large one does not sit in memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..pipeline.rights import erase, export
from ..store import audit
from .admin import Admin

router = APIRouter(prefix="/api/v1/privacy", tags=["admin"])
SPOOL_BYTES = 8 << 20
CHUNK = 64 << 10


class AddressIn(BaseModel):
    """One recipient's address."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The recipient's email address.")


class EraseIn(BaseModel):
    """The recipient to erase."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, description="The recipient's email address.")
    vacuum: bool = Field(
        default=True, description="SQLite: rebuild the database file afterwards (see the CLI)."
    )


def _stream(doc: IO[str]) -> Iterator[bytes]:
    try:
        doc.seek(0)
        while chunk := doc.read(CHUNK):
            yield chunk.encode("utf-8")
    finally:
        doc.close()


def _export(request: Request, admin: dict[str, Any], address: str) -> StreamingResponse:
    state = request.app.state
    doc = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+", encoding="utf-8")  # noqa: SIM115 (closed by _stream)
    try:
        export(
            state.engine,
            state.signer,
            address,
            doc,
            state.settings,
            actor=audit.user_actor(admin["systemuserid"]),
        )
    except BaseException:
        doc.close()
        raise
    return StreamingResponse(
        _stream(doc),
        media_type="application/json",
        headers={"cache-control": "no-store", "content-disposition": "attachment"},
    )


@router.get("/export")
def export_address(
    request: Request,
    admin: Admin,
    address: str = Query(max_length=320, description="The recipient's email address."),
) -> StreamingResponse:
    """Every stored row about an address, as `mailsignal privacy export` writes it. The
    address is in the URL, so in access logs: POST keeps it in the body."""
    return _export(request, admin, address)


@router.post("/export")
def export_address_body(request: Request, admin: Admin, body: AddressIn) -> StreamingResponse:
    """The same export, the address in the JSON body (kept out of access logs)."""
    return _export(request, admin, body.address)


@router.post("/erase")
def erase_address(request: Request, admin: Admin, body: EraseIn) -> dict[str, Any]:
    """Delete or anonymise every row and file about an address (`mailsignal privacy
    erase`); the counts of what went, and the audit subject (its keyed hash)."""
    state = request.app.state
    done = erase(
        state.engine,
        state.signer,
        body.address,
        state.settings,
        actor=audit.user_actor(admin["systemuserid"]),
        source="api",
        vacuum=body.vacuum,
    )
    return {"addresshash": done.address_hash, "counts": done.counts}
