"""Saved views: named FetchXML queries, shipped and user-defined (issue #5).

Shipped views live in the package (`data/views/*.xml`); a user's own views are files in
`<data_dir>/views/` added with `mailsignal views add`. Each file is one `<fetch>` with a
leading comment holding `name:`, `description:` and `source:`. A view's id is a UUID
derived from its slug, stable across installs, so `GET emails?savedQuery=<id>` links keep
working. Running a view goes through the FetchXML engine, so row-level access applies.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection

from .errors import InputError, NotFoundError
from .fetchxml import Caller, parse
from .store import fetch
from .store.bounds import QueryBound
from .store.fetch import FetchResult

SHIPPED = Path(__file__).parent / "data" / "views"
_NAMESPACE = uuid.UUID("6f1f3f62-3c55-4e55-9a8e-5d6c0b7c1a11")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_META = re.compile(r"^\s*(?:<!--\s*)?(name|description|source):\s*(.+?)\s*$", re.M)


@dataclass(frozen=True, slots=True)
class View:
    slug: str
    name: str
    description: str
    source: str
    fetchxml: str
    entity: str
    shipped: bool

    @property
    def id(self) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, self.slug)


def _load(slug: str, text: str, shipped: bool) -> View:
    meta = dict(_META.findall(text.split("-->", 1)[0])) if "<!--" in text else {}
    body = text.split("-->", 1)[1] if "<!--" in text else text
    fetch = parse(body.strip())
    return View(
        slug,
        meta.get("name", slug),
        meta.get("description", ""),
        meta.get("source", "user"),
        body.strip(),
        fetch.entity.name,
        shipped,
    )


def user_dir(data_dir: Path) -> Path:
    return data_dir / "views"


def all_views(data_dir: Path) -> list[View]:
    views: dict[str, View] = {}
    for item in sorted(SHIPPED.glob("*.xml")):
        views[item.stem] = _load(item.stem, item.read_text("utf-8"), True)
    folder = user_dir(data_dir)
    if folder.is_dir():
        for path in sorted(folder.glob("*.xml")):
            if path.stem not in views:
                views[path.stem] = _load(path.stem, path.read_text("utf-8"), False)
    return list(views.values())


def find(data_dir: Path, key: str) -> View:
    """A view by slug, display name (any case) or id."""
    for view in all_views(data_dir):
        if key in (view.slug, str(view.id)) or key.lower() == view.name.lower():
            return view
    raise NotFoundError(f"no view {key!r}; `mailsignal views list` shows them")


def add(
    data_dir: Path,
    slug: str,
    fetchxml: str,
    *,
    name: str = "",
    description: str = "",
    replace: bool = False,
) -> View:
    """Validate a FetchXML view and save it as a user view."""
    if not _SLUG.match(slug):
        raise InputError(f"view slug {slug!r}: use lower-case letters, digits and dashes")
    if "-->" in name + description:
        raise InputError("name and description cannot contain '-->'")
    # Compile, not just parse: unknown attributes and operators are semantic errors.
    fetch.compile_xml(fetchxml, Caller(uuid.UUID(int=0), is_admin=True), dialect_name="sqlite")
    if any(v.slug == slug and v.shipped for v in all_views(data_dir)):
        raise InputError(f"{slug!r} is a shipped view; choose another slug")
    path = user_dir(data_dir) / f"{slug}.xml"
    if path.exists() and not replace:
        raise InputError(f"view {slug!r} exists; pass --replace to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"<!-- name: {name or slug}\n     description: {description}\n     source: user -->\n"
    path.write_text(header + fetchxml.strip() + "\n", "utf-8")
    return find(data_dir, slug)


def remove(data_dir: Path, slug: str) -> None:
    view = find(data_dir, slug)
    if view.shipped:
        raise InputError(f"{slug!r} is a shipped view and cannot be removed")
    (user_dir(data_dir) / f"{view.slug}.xml").unlink()


def run(
    conn: Connection,
    view: View,
    caller: Caller,
    now: datetime | None = None,
    *,
    bound: QueryBound | None = None,
) -> FetchResult:
    """One page of the view's rows, as `caller` may see them, stopped by `bound` (a view
    is a FetchXML query like any other: a user's own can be as costly as they like)."""
    return fetch.execute(conn, view.fetchxml, caller, now=now, bound=bound)
