"""The FetchXML grammar as data: elements, their attributes, children and booleans.

From Dataverse's fetch schema (reference/dataverse.md §1). Attributes are of two kinds:
those the engine reads, and those real saved views carry that it accepts and ignores
(`version`, `output-format`, `no-lock`, `uiname`/`uitype`/`uihidden`, `visible`,
`latematerialize`, `options`, `datasource`, `utc-offset`, ...). Anything else is
refused, as Dataverse's schema validation does; so are the features MailSignal does
not implement, rather than silently ignored: `rowaggregate`, and `aggregate`/`alias` on
a condition (filtering on aggregate values).
"""

from __future__ import annotations

import re

from . import codes


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Per element: attributes we read, plus those accepted and ignored (views carry them).
ATTRS: dict[str, frozenset[str]] = {
    "fetch": _words(
        "version count page paging-cookie utc-offset aggregate distinct top mapping "
        "min-active-row-version output-format returntotalrecordcount no-lock latematerialize "
        "useraworderby aggregatelimit options datasource"
    ),
    "entity": _words("name enableprefiltering prefilterparametername"),
    "attribute": _words(
        "name build addedby alias aggregate groupby dategrouping usertimezone distinct"
    ),
    "all-attributes": frozenset(),
    "order": _words("attribute alias descending entityname"),
    "filter": _words(
        "type isquickfindfields overridequickfindrecordlimitenabled "
        "overridequickfindrecordlimitdisabled hint bypassquickfind"
    ),
    "condition": _words("attribute entityname operator value valueof uiname uitype uihidden"),
    "link-entity": _words(
        "name to from alias link-type visible intersect enableprefiltering prefilterparametername"
    ),
    "value": _words("uiname uitype"),
}
# Per element: children allowed.
CHILDREN: dict[str, frozenset[str]] = {
    "fetch": frozenset({"entity"}),
    "entity": frozenset({"attribute", "all-attributes", "order", "filter", "link-entity"}),
    "link-entity": frozenset({"attribute", "all-attributes", "order", "filter", "link-entity"}),
    "filter": frozenset({"condition", "filter", "link-entity"}),
    "condition": frozenset({"value"}),
}
# Booleans and the code Dataverse answers when one is misspelt (others: InvalidArgument).
BOOL_CODES = {
    "distinct": codes.INVALID_DISTINCT,
    "no-lock": codes.INVALID_NO_LOCK,
    "descending": codes.INVALID_DESCENDING,
    "aggregate": codes.INVALID_AGGREGATE,
}
BOOLEANS = {
    "fetch": (
        "distinct",
        "no-lock",
        "aggregate",
        "returntotalrecordcount",
        "latematerialize",
        "useraworderby",
    ),
    "attribute": ("groupby", "distinct", "usertimezone"),
    "order": ("descending",),
    "link-entity": ("intersect", "visible"),
}
JOIN_TYPES = ("inner", "outer", "exists", "in", "matchfirstrowusingcrossapply")
FILTER_JOIN_TYPES = ("any", "not any", "all", "not all")
ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
