"""FetchXML text -> `ast.Fetch`, checking the grammar of reference/dataverse.md §1.

This stage knows elements and attributes, not the catalog: unknown entities and
columns are the compiler's errors. It enforces what the text alone decides: which
elements nest where, which attributes exist (the ones real saved views carry are
accepted and ignored), boolean spelling, `mapping`, filter and link types, alias
syntax, and the 500 conditions+links / 15 links limits.
"""

from __future__ import annotations

import re
from typing import NoReturn

from ..errors import FetchXmlParseError
from . import ast, codes
from .grammar import (
    ALIAS,
    ATTRS,
    BOOL_CODES,
    BOOLEANS,
    CHILDREN,
    FILTER_JOIN_TYPES,
    JOIN_TYPES,
)
from .xmlread import Node, excerpt, read


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.conditions = 0
        self.links = 0

    def fail(self, node: Node, message: str, code: str = codes.INVALID_XML) -> NoReturn:
        raise FetchXmlParseError(
            message,
            error_code=code,
            line=node.line,
            column=node.column,
            element=node.tag,
            excerpt=excerpt(self.source, node.line, node.column),
        )

    def check(self, node: Node, parent: str | None) -> None:
        """Element and attribute names, then booleans; recurses over the whole tree."""
        if node.tag not in ATTRS:
            self.fail(node, f"'{node.tag}' is not a FetchXML element.", codes.INVALID_NODE)
        if parent is not None and node.tag not in CHILDREN.get(parent, frozenset()):
            self.fail(node, f"<{node.tag}> is not allowed inside <{parent}>.", codes.INVALID_NODE)
        for name in node.attrs:
            if name not in ATTRS[node.tag]:
                self.fail(node, f"Invalid XML. The '{name}' attribute is not declared.")
        for name in BOOLEANS.get(node.tag, ()):
            raw = node.attrs.get(name)
            if raw is not None and raw.strip() not in ("true", "false", "1", "0"):
                self.fail(
                    node,
                    f"Invalid value '{raw}' for '{name}': use true, false, 1 or 0.",
                    BOOL_CODES.get(name, codes.INVALID_ARGUMENT),
                )
        if node.tag != "value" and node.text.strip():
            self.fail(node, f"Invalid XML. <{node.tag}> cannot hold text.")
        for child in node.children:
            self.check(child, node.tag)

    def pos(self, node: Node) -> ast.Pos:
        return ast.Pos(node.line, node.column)

    def flag(self, node: Node, name: str, default: bool = False) -> bool:
        raw = node.attrs.get(name)
        return default if raw is None else raw.strip() in ("true", "1")

    def integer(self, node: Node, name: str) -> int | None:
        raw = node.attrs.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"\s*[+-]?\d{1,9}\s*", raw):
            self.fail(node, f"Invalid XML. '{name}' must be an integer, not '{raw}'.")
        return int(raw)

    def required(self, node: Node, name: str) -> str:
        value = node.attrs.get(name, "").strip()
        if not value:
            self.fail(node, f"Invalid XML. <{node.tag}> requires the '{name}' attribute.")
        return value

    def alias(self, node: Node, name: str = "alias") -> str | None:
        value = node.attrs.get(name)
        if value is None:
            return None
        if not ALIAS.match(value):
            self.fail(
                node,
                f"Invalid alias '{value}': start with a letter or _, then letters, digits or _.",
                codes.INVALID_ALIAS,
            )
        return value

    def fetch(self, node: Node) -> ast.Fetch:
        if node.tag != "fetch":
            self.fail(node, "Invalid XML. The root element must be <fetch>.")
        self.check(node, None)
        entities = [c for c in node.children if c.tag == "entity"]
        if len(entities) != 1:
            self.fail(node, "Invalid XML. <fetch> must hold exactly one <entity>.")
        mapping = node.attrs.get("mapping", "logical")
        if mapping not in ("logical", "internal"):
            self.fail(
                node,
                f"Invalid mapping '{mapping}': use logical or internal.",
                codes.INVALID_MAPPING,
            )
        entity = self.entity(entities[0])
        if self.conditions + self.links > codes.MAX_CONDITIONS_AND_LINKS:
            self.fail(
                node,
                "Number of conditions in query exceeded maximum limit.",
                codes.TOO_MANY_CONDITIONS,
            )
        return ast.Fetch(
            entity=entity,
            top=self.integer(node, "top"),
            count=self.integer(node, "count"),
            page=self.integer(node, "page"),
            paging_cookie=node.attrs.get("paging-cookie") or None,
            distinct=self.flag(node, "distinct"),
            aggregate=self.flag(node, "aggregate"),
            return_total_record_count=self.flag(node, "returntotalrecordcount"),
            source=self.source,
            pos=self.pos(node),
        )

    def entity(self, node: Node) -> ast.Entity:
        return ast.Entity(
            name=self.required(node, "name"),
            attributes=self.selects(node),
            orders=tuple(self.order(c) for c in node.children if c.tag == "order"),
            filter=self.filters(node),
            links=tuple(self.link(c, False) for c in node.children if c.tag == "link-entity"),
            pos=self.pos(node),
        )

    def selects(self, node: Node) -> tuple[ast.Select, ...]:
        out: list[ast.Select] = []
        for child in node.children:
            if child.tag == "all-attributes":
                out.append(ast.AllAttributes(self.pos(child)))
            elif child.tag == "attribute":
                out.append(
                    ast.Attribute(
                        name=self.required(child, "name"),
                        alias=self.alias(child),
                        aggregate=child.attrs.get("aggregate") or None,
                        groupby=self.flag(child, "groupby"),
                        dategrouping=child.attrs.get("dategrouping") or None,
                        distinct=self.flag(child, "distinct"),
                        usertimezone=self.flag(child, "usertimezone", True),
                        pos=self.pos(child),
                    )
                )
        return tuple(out)

    def order(self, node: Node) -> ast.Order:
        attribute = node.attrs.get("attribute") or None
        alias = node.attrs.get("alias") or None
        if attribute is None and alias is None:
            self.fail(node, "Invalid XML. <order> requires 'attribute' or 'alias'.")
        return ast.Order(
            attribute=attribute,
            alias=alias,
            descending=self.flag(node, "descending"),
            entityname=node.attrs.get("entityname") or None,
            pos=self.pos(node),
        )

    def filters(self, node: Node) -> ast.Filter | None:
        found = [self.filter(c) for c in node.children if c.tag == "filter"]
        if not found:
            return None
        # Several sibling filters are ANDed, as Dataverse does.
        return found[0] if len(found) == 1 else ast.Filter("and", tuple(found), found[0].pos)

    def filter(self, node: Node) -> ast.Filter:
        kind = node.attrs.get("type", "and")
        if kind not in ("and", "or"):
            self.fail(
                node,
                "Unsupported filter type. Valid values are 'and', or 'or'.",
                codes.INVALID_FILTER_TYPE,
            )
        items: list[ast.FilterItem] = []
        for child in node.children:
            if child.tag == "condition":
                items.append(self.condition(child))
            elif child.tag == "filter":
                items.append(self.filter(child))
            else:
                items.append(self.link(child, True))
        return ast.Filter(kind, tuple(items), self.pos(node))

    def condition(self, node: Node) -> ast.Condition:
        self.conditions += 1
        attribute = node.attrs.get("attribute", "")
        if not attribute.strip():
            self.fail(node, "Invalid XML. <condition> requires the 'attribute' attribute.")
        return ast.Condition(
            attribute=attribute.strip(),
            operator=self.required(node, "operator"),
            value=node.attrs.get("value"),
            values=tuple(c.text for c in node.children),
            valueof=node.attrs.get("valueof") or None,
            entityname=node.attrs.get("entityname") or None,
            pos=self.pos(node),
        )

    def link(self, node: Node, in_filter: bool) -> ast.LinkEntity:
        self.links += 1
        if self.links > codes.MAX_LINKS:
            self.fail(
                node,
                "Number of link entities in query exceeded maximum limit.",
                codes.TOO_MANY_LINKS,
            )
        link_type = node.attrs.get("link-type", "inner")
        allowed = FILTER_JOIN_TYPES if in_filter else JOIN_TYPES
        if link_type not in allowed:
            where = "inside a filter" if in_filter else "outside a filter"
            valid = ", ".join(f"'{t}'" for t in allowed)
            self.fail(
                node,
                f"Invalid link-type '{link_type}' {where}. Valid values are {valid}.",
                codes.INVALID_LINK_TYPE,
            )
        return ast.LinkEntity(
            name=self.required(node, "name"),
            from_attr=self.required(node, "from"),
            to_attr=self.required(node, "to"),
            alias=self.alias(node),
            link_type=link_type,
            intersect=self.flag(node, "intersect"),
            attributes=self.selects(node),
            orders=tuple(self.order(c) for c in node.children if c.tag == "order"),
            filter=self.filters(node),
            links=tuple(self.link(c, False) for c in node.children if c.tag == "link-entity"),
            pos=self.pos(node),
        )


def parse(xml: str) -> ast.Fetch:
    """Parse FetchXML text into an `ast.Fetch`.

    Args:
        xml: the query, as sent in `?fetchXml=` or saved in a view.

    Returns:
        The syntax tree; names and values are still unchecked strings.

    Raises:
        FetchXmlParseError: malformed XML (0x80040201), a DTD, an unknown element or
            attribute, a bad boolean, filter type, link type or alias, or over a limit.
    """
    return _Parser(xml).fetch(read(xml))
