"""REST API for contacts, leads and accounts (`/api/v1/contacts`, `/leads`, `/accounts`):
list, read, create, change, remove and import CSV (docs/api.md, "Contacts, leads and
accounts"), with the rules the CLI shares (pipeline/parties.py).

Access follows the Web API's: contacts, leads and accounts are shared sales data, so
any user reads, creates and changes them (as a rep may PATCH them there); removing one
takes an admin, since the Web API offers reps no delete. Fields carry Dataverse's
logical names (`emailaddress1`, `fullname`, `parentcustomerid`...). Routes that read a
body are async for it, and write in a worker thread, off the event loop.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
from fastapi import APIRouter, Request
from sqlalchemy import Engine

from ..errors import ForbiddenError, InputError
from ..pipeline import parties, partyimport
from ..settings import Settings
from ..store import parties as store_parties
from ..store.db import writing
from .api import User

router = APIRouter(prefix="/api/v1", tags=["records"])
SETS = {"contacts": "contact", "leads": "lead", "accounts": "account"}


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _object(request: Request) -> dict[str, Any]:
    """The JSON object a request carries, or a 400 that says what it is instead."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise InputError("the body must be a JSON object")
    return body


def _routes(entity_set: str, kind: str) -> None:
    """The six routes of one entity set."""
    key = f"{kind}id"

    @router.get(
        f"/{entity_set}",
        name=f"list_{entity_set}",
        description=f"List {entity_set} by name; `search` keeps names or addresses containing it.",
    )
    def list_(
        request: Request, user: User, search: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        if not 1 <= limit <= 1000:
            raise InputError("limit must be between 1 and 1000")
        if offset < 0:
            raise InputError("offset must be 0 or more")
        with _engine(request).connect() as conn:
            rows = store_parties.listing(conn, kind, contains=search, limit=limit, offset=offset)
        return {"value": rows}

    @router.get(
        f"/{entity_set}/{{record}}",
        name=f"get_{entity_set}",
        description=f"One of the {entity_set}, with its roll-ups and score.",
    )
    def get(record: uuid.UUID, request: Request, user: User) -> dict[str, Any]:
        with _engine(request).connect() as conn:
            return parties.show(conn, kind, record)

    @router.post(
        f"/{entity_set}",
        status_code=201,
        name=f"create_{entity_set}",
        description="Create one; mail already sent to its address is linked to it.",
    )
    async def create(request: Request, user: User) -> dict[str, Any]:
        body = await _object(request)
        party_id = body.pop(key, None)
        if party_id is not None:
            try:
                party_id = uuid.UUID(str(party_id))
            except ValueError as exc:
                raise InputError(f"{key}: not an id") from exc
        settings = _settings(request)

        def run() -> dict[str, Any]:
            with writing(_engine(request)) as conn:
                made = parties.add(conn, kind, body, settings, party_id=party_id)
                return parties.show(conn, kind, made)

        return await anyio.to_thread.run_sync(run)

    @router.patch(
        f"/{entity_set}/{{record}}",
        name=f"update_{entity_set}",
        description="Change fields; with a new address, mail already sent follows.",
    )
    async def update(record: uuid.UUID, request: Request, user: User) -> dict[str, Any]:
        body = await _object(request)
        settings = _settings(request)

        def run() -> dict[str, Any]:
            with writing(_engine(request)) as conn:
                parties.change(conn, kind, record, body, settings)
                return parties.show(conn, kind, record)

        return await anyio.to_thread.run_sync(run)

    @router.delete(
        f"/{entity_set}/{{record}}",
        name=f"delete_{entity_set}",
        description="Remove one (admins); its mail is kept, linked again by address or not.",
    )
    def delete(record: uuid.UUID, request: Request, user: User) -> dict[str, Any]:
        if user["accessrole"] != "admin":
            raise ForbiddenError(f"only an admin may remove a {kind}")
        with writing(_engine(request)) as conn:
            held = parties.remove(conn, kind, record, _settings(request))
        return {key: record, "deliveries_kept": held}

    @router.post(
        f"/{entity_set}/import",
        name=f"import_{entity_set}",
        description="Import a Dynamics-style CSV export (text/csv body) by id or address.",
    )
    async def import_csv(request: Request, user: User) -> dict[str, Any]:
        raw = await request.body()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError("the CSV must be UTF-8") from exc
        settings = _settings(request)

        def run() -> dict[str, Any]:
            with writing(_engine(request)) as conn:
                lines = text.splitlines(keepends=True)
                return vars(partyimport.import_rows(conn, kind, lines, settings))

        return await anyio.to_thread.run_sync(run)


for _set, _kind in SETS.items():
    _routes(_set, _kind)
