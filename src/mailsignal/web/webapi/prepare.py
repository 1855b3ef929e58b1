"""Web API requests turned into the FetchXML that serves them (reference/dataverse.md §4).

Dataverse puts `@odata.etag` on every row that has a version, whatever the query
selects, so `ready` reads `modifiedon` for the ETag (the caller hides it again), and
honours `Prefer: odata.maxpagesize=N` as the page size of a query that sets none;
`following` is the query of the next page, for `@odata.nextLink`. `column` maps a
`$select` name to the column it reads.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from ...fetchxml import EntityInfo
from . import writes


def ready(
    xml: str, info: EntityInfo, page_size: int | None
) -> tuple[str, frozenset[str], int | None]:
    """A FetchXML query made ready to run: `modifiedon` read for every row's ETag (then
    `hidden`), and `Prefer: odata.maxpagesize` as its page size when it sets none
    (the page size applied, or None)."""
    root = ET.fromstring(xml)  # noqa: S314 - the text already passed fetchxml.parse
    entity = root.find("entity")
    hidden: frozenset[str] = frozenset()
    plain = root.get("aggregate", "false") not in ("true", "1") and root.get("distinct") not in (
        "true",
        "1",
    )
    if entity is not None and plain and info.attribute("modifiedon"):
        names = {a.get("name") for a in entity.findall("attribute")}
        if entity.find("all-attributes") is None and names and "modifiedon" not in names:
            ET.SubElement(entity, "attribute", name="modifiedon")
            hidden = frozenset({"modifiedon"})
    if page_size and plain and root.get("count") is None and root.get("top") is None:
        root.set("count", str(page_size))
    else:
        page_size = None
    return ET.tostring(root, encoding="unicode"), hidden, page_size


def following(xml: str, page: int, cookie: str | None) -> str:
    """The FetchXML of the page after `page` (with its cookie, when there is one)."""
    root = ET.fromstring(xml)  # noqa: S314 - our own text
    root.set("page", str(page + 1))
    if cookie:
        root.set("paging-cookie", cookie)
    return ET.tostring(root, encoding="unicode")


def column(info: EntityInfo, name: str) -> str:
    """The column a `$select` name reads: itself, a lookup's `_x_value`, or an alias
    (usersettings' `allowemailcredentials` is MailSignal's `emailengagementoptin`)."""
    lookup = re.fullmatch(r"_([a-z0-9_]+)_value", name)
    if lookup and lookup[1] in info.lookups:
        return lookup[1]
    return writes.aliased(info, name)
