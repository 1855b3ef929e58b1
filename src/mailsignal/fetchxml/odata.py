"""OData query options on a Web API collection -> a FetchXML syntax tree (`ast.Fetch`).

`GET /api/data/v9.2/emails?$select=subject&$filter=opencount gt 1&$orderby=senton desc`
is translated into the query FetchXML would write for it, so it is compiled, bounded and
row-restricted by the very same path (`compile.py`, `access.py`, `store/fetch.py`)
instead of a second SQL builder. `$filter` is parsed by the kept `odata-query` library;
this module only maps its tree to conditions (reference/dataverse.md §4, "Minimal OData"):

    eq gt ge lt le in            -> the FetchXML operator of the same name
    ne                           -> ne AND not-null (OData's `ne` never matches null,
                                    FetchXML's does)
    eq null / ne null            -> null / not-null
    contains/startswith/endswith -> like with the value's wildcards made literal
    Microsoft.Dynamics.CRM.X(PropertyName=..., PropertyValue=...)
                                 -> the FetchXML operator x (LastXDays -> last-x-days)
    and / or                     -> <filter type="and|or">
    not                          -> the negated operators (De Morgan over filters); a
                                    query function has no negation and is refused

Lookups are named `_x_value`, as the Web API returns them; `$expand` of a single-valued
navigation property (`parentcustomerid_account`) is an outer link-entity. Anything else (unknown
options, properties, functions, column-to-column comparisons) is refused with a 400 in
Dataverse's shape, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from odata_query import ast as od
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from ..errors import FetchXmlQueryError
from . import ast, codes
from .catalog import Catalog, EntityInfo

QUERY_SYNTAX = "0x80060888"  # Dataverse's code for OData it cannot read or resolve
OPTIONS = frozenset(("$select", "$filter", "$top", "$orderby", "$count", "$expand"))
_MAX_DEPTH = codes.MAX_DEPTH
_ORDER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?\s*\Z")
_COMPARE = {od.Eq: "eq", od.NotEq: "ne", od.Gt: "gt", od.GtE: "ge", od.Lt: "lt", od.LtE: "le"}
_SWAPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
# The negation of each operator a translation emits, null rows included exactly: `eq`
# never matches null so `not eq` must (FetchXML `ne` does), and so on.
_NEGATED = {
    "eq": "ne", "ne": "eq", "gt": "le", "ge": "lt", "lt": "ge", "le": "gt",
    "like": "not-like", "not-like": "like", "begins-with": "not-begin-with",
    "not-begin-with": "begins-with", "ends-with": "not-end-with",
    "not-end-with": "ends-with", "in": "not-in", "not-in": "in", "null": "not-null",
    "not-null": "null",
}  # fmt: skip
_MATCHES_NULL = frozenset(("ne", "not-like", "not-begin-with", "not-end-with", "not-in", "null"))
_LIKE = {"contains": "like", "startswith": "begins-with", "endswith": "ends-with"}
_EDM = {
    "string": "Edm.String", "int": "Edm.Int32", "float": "Edm.Double", "bool": "Edm.Boolean",
    "uuid": "Edm.Guid", "datetime": "Edm.DateTimeOffset",
}  # fmt: skip
# Which literal types each kind of column is compared with.
_ACCEPTS: dict[str, tuple[type[od._Literal], ...]] = {
    "string": (od.String,), "int": (od.Integer,), "float": (od.Integer, od.Float),
    "bool": (od.Boolean,), "uuid": (od.GUID,), "datetime": (od.DateTime, od.Date),
}  # fmt: skip
_LITERAL_EDM: dict[type[od._Node], str] = {
    od.String: "Edm.String", od.Integer: "Edm.Int32", od.Float: "Edm.Double",
    od.Boolean: "Edm.Boolean", od.GUID: "Edm.Guid", od.DateTime: "Edm.DateTimeOffset",
    od.Date: "Edm.Date",
}  # fmt: skip


@dataclass(frozen=True)
class Expansion:
    """One `$expand` of a single-valued navigation property: the outer link-entity,
    aliased by the property's name, that reads the columns of the `target` record."""

    navigation: str
    target: EntityInfo
    selected: tuple[str, ...] | None
    link: ast.LinkEntity


@dataclass(frozen=True)
class ODataQuery:
    """The translated query and what the response needs to know about the request.

    `selected` are the `$select` names as asked (lookups as `_x_value`), None when all
    columns are returned; they name the `@odata.context` projection and say whether the
    `modifiedon` added for the ETag is returned too.
    """

    fetch: ast.Fetch
    selected: tuple[str, ...] | None
    expanded: tuple[Expansion, ...] = ()


def navigations(info: EntityInfo, catalog: Catalog) -> dict[str, tuple[str, EntityInfo]]:
    """The single-valued navigation properties of `info`, by Dataverse's names, with the
    lookup and target entity of each: `parentcustomerid_account` on contact, and the
    activity form `regardingobjectid_contact_email` on email. `ownerid` is left out (its
    navigation names the owner entity, which MailSignal does not have)."""
    found = {}
    for attr, targets in info.lookups.items():
        if attr in ("ownerid", info.primary_key):
            continue
        for name in targets:
            target = catalog.entity(name)
            suffix = f"_{info.name}" if info.name == "email" else ""
            if target is not None:
                found[f"{attr}_{name}{suffix}"] = (attr, target)
    return found


def _syntax(message: str) -> FetchXmlQueryError:
    return FetchXmlQueryError(message, error_code=QUERY_SYNTAX)


def _no_property(info: EntityInfo, name: str) -> FetchXmlQueryError:
    return _syntax(
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{info.name}'."
    )


def attribute_of(info: EntityInfo, name: str) -> str:
    """The attribute a Web API property names: `_x_value` for lookup `x`, else itself.

    A lookup is only reachable by its `_x_value` name, as in Dataverse, where `x` is a
    navigation property and not a column.

    Raises:
        FetchXmlQueryError: 0x80060888, no such property on the entity.
    """
    match = re.fullmatch(r"_(\w+)_value", name)
    if match and match[1] in info.lookups:
        return match[1]
    if name in info.lookups or info.attribute(name) is None:
        raise _no_property(info, name)
    return name


def unsupported(names: list[str]) -> None:
    """Refuse the first query parameter this endpoint does not implement.

    Raises:
        FetchXmlQueryError: 0x80060888 naming the parameter.
    """
    for name in names:
        raise _syntax(f"The query parameter {name} is not supported")


def translate(
    info: EntityInfo, params: Mapping[str, str], catalog: Catalog | None = None
) -> ODataQuery:
    """`params` (the request's OData system query options) as a Fetch over `info`.

    Args:
        info: the entity of the collection the URL names.
        params: query parameters; every key must be in `OPTIONS`.
        catalog: where `$expand` finds the entities lookups point at (required for it).

    Raises:
        FetchXmlQueryError: an option that is unknown, malformed or names an unknown
            property (0x80060888, Dataverse's messages), or a value of the wrong type.
    """
    unsupported([n for n in params if n not in OPTIONS])
    selected, attributes = _select(info, params.get("$select"), version=True)
    expanded = _expand(info, params["$expand"], catalog) if "$expand" in params else ()
    filter_ = _Filter(info).translate(params["$filter"]) if "$filter" in params else None
    orders = _orders(info, params["$orderby"]) if "$orderby" in params else ()
    top = _top(params["$top"]) if "$top" in params else None
    count = params.get("$count", "false").strip().lower()
    if count not in ("true", "false"):
        raise _syntax(f"'{params['$count']}' is not a valid count option.")
    with_count = count == "true"
    links = tuple(x.link for x in expanded)
    entity = ast.Entity(info.name, attributes, orders, filter_, links)
    # FetchXML's `top` excludes a total count; `count` (the page size) on page 1 is the
    # same rows and allows it.
    fetch = ast.Fetch(
        entity,
        top=None if with_count else top,
        count=top if with_count else None,
        return_total_record_count=with_count,
    )
    return ODataQuery(fetch, selected, expanded)


def _select(
    info: EntityInfo, raw: str | None, *, version: bool
) -> tuple[tuple[str, ...] | None, tuple[ast.Select, ...]]:
    """(the `$select` names as written, the attributes to read); all of them when None.
    `version` adds `modifiedon`, the row's version, for `@odata.etag`."""
    if raw is None:
        return None, (ast.AllAttributes(),)
    selected = tuple(s.strip() for s in raw.split(",") if s.strip())
    if not selected:
        raise _syntax("The $select query option must name at least one property.")
    names = [attribute_of(info, s) for s in selected]
    if version and info.attribute("modifiedon") is not None:
        names.append("modifiedon")
    return selected, tuple(ast.Attribute(n) for n in dict.fromkeys([info.primary_key, *names]))


_EXPAND = re.compile(r"\s*([A-Za-z_]\w*)\s*(?:\(\s*\$select\s*=\s*([\w\s,]*)\))?\s*\Z")


def _expand(info: EntityInfo, raw: str, catalog: Catalog | None) -> tuple[Expansion, ...]:
    """`nav` or `nav($select=a,b)`, comma-separated; other nested options are refused."""
    known = navigations(info, catalog) if catalog is not None else {}
    found = []
    for part in re.split(r",(?![^(]*\))", raw):
        match = _EXPAND.match(part)
        if match is None:
            raise _syntax(
                f"Unsupported $expand '{part.strip()}': a single-valued navigation property, "
                "optionally with ($select=...), is supported."
            )
        if match[1] not in known:
            raise _syntax(
                f"Could not find a property named '{match[1]}' on type "
                f"'Microsoft.Dynamics.CRM.{info.name}'."
            )
        lookup, target = known[match[1]]
        nested, attributes = _select(target, match[2], version=False)
        link = ast.LinkEntity(
            target.name, target.primary_key, lookup, match[1], "outer", attributes=attributes
        )
        found.append(Expansion(match[1], target, nested, link))
    if len({x.navigation for x in found}) != len(found):
        raise _syntax("A navigation property is expanded more than once in $expand.")
    return tuple(found)


def _top(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= codes.MAX_PAGE_SIZE:
        raise _syntax(
            f"Invalid value '{raw}' for $top: an integer from 1 to {codes.MAX_PAGE_SIZE}."
        )
    return int(text)


def _orders(info: EntityInfo, raw: str) -> tuple[ast.Order, ...]:
    orders = []
    for part in raw.split(","):
        match = _ORDER.match(part)
        if match is None:
            raise _syntax(f"Syntax error in $orderby: '{part.strip()}'.")
        name = attribute_of(info, match[1])
        orders.append(ast.Order(attribute=name, descending=match[2] == "desc"))
    return tuple(orders)


class _Filter:
    """One `$filter` -> `ast.Filter`, counting conditions against FetchXML's limit."""

    def __init__(self, info: EntityInfo) -> None:
        self.info = info
        self.conditions = 0

    def translate(self, text: str) -> ast.Filter:
        try:
            tree = ODataParser().parse(ODataLexer().tokenize(text))
        except ODataException as exc:
            raise _syntax(f"Syntax error in $filter: {exc}") from None
        item = self.node(tree, negate=False, depth=0)
        return item if isinstance(item, ast.Filter) else ast.Filter("and", (item,))

    def node(self, node: od._Node, *, negate: bool, depth: int) -> ast.Condition | ast.Filter:
        if depth > _MAX_DEPTH:
            raise _syntax(f"The $filter nests deeper than {_MAX_DEPTH} levels.")
        if isinstance(node, od.UnaryOp) and isinstance(node.op, od.Not):
            return self.node(node.operand, negate=not negate, depth=depth + 1)
        if isinstance(node, od.BoolOp):
            return self.bool_op(node, negate=negate, depth=depth)
        if isinstance(node, od.Compare):
            return self.compare(node, negate)
        if isinstance(node, od.Call):
            return self.call(node, negate)
        raise _syntax("A $filter term must be a comparison, a function call, and, or or not.")

    def bool_op(self, node: od.BoolOp, *, negate: bool, depth: int) -> ast.Filter:
        """`a and b and c` as one filter: the parser's left-leaning chain is flattened
        iteratively, so a long chain does not count as nesting."""
        kind = "and" if isinstance(node.op, od.And) else "or"
        terms: list[od._Node] = []
        pending: list[od._Node] = [node]
        while pending:
            current = pending.pop()
            if isinstance(current, od.BoolOp) and type(current.op) is type(node.op):
                pending += [current.right, current.left]
            else:
                terms.append(current)
        if negate:  # De Morgan
            kind = "or" if kind == "and" else "and"
        items = tuple(self.node(t, negate=negate, depth=depth + 1) for t in terms)
        return ast.Filter(kind, items)

    def condition(
        self, name: str, operator: str, negate: bool, *, value: str | None = None,
        values: tuple[str, ...] = ()
    ) -> ast.Condition | ast.Filter:  # fmt: skip
        """One condition with OData's null semantics: a comparison never matches null,
        and its negation always does."""
        self.conditions += 1
        if self.conditions > codes.MAX_CONDITIONS_AND_LINKS:
            raise FetchXmlQueryError(
                "Number of conditions in query exceeded maximum limit.",
                error_code=codes.TOO_MANY_CONDITIONS,
            )
        op = _NEGATED[operator] if negate else operator
        cond = ast.Condition(name, op, value=value, values=values)
        if op in _MATCHES_NULL and operator not in ("null", "not-null"):
            if not negate:  # OData `ne`: FetchXML's matches null, OData's does not
                return ast.Filter("and", (cond, ast.Condition(name, "not-null")))
        elif negate and op not in ("null", "not-null"):  # not (x gt 1) holds for null x
            return ast.Filter("or", (cond, ast.Condition(name, "null")))
        return cond

    def property(self, node: od._Node) -> tuple[str, str]:
        """(attribute, kind) of a property operand."""
        if not isinstance(node, od.Identifier) or node.namespace:
            raise _syntax("Each comparison in $filter needs one property and one value.")
        name = attribute_of(self.info, node.name)
        attr = self.info.attribute(name)
        assert attr is not None  # attribute_of checked it
        return name, attr.kind

    def literal(self, node: od._Node, kind: str, operator: str) -> str:
        """The FetchXML text of a literal compared with a column of `kind`."""
        if isinstance(node, od.Identifier):
            raise _syntax("Comparing two properties in $filter is not supported by MailSignal.")
        accepted = _ACCEPTS.get(kind, ())
        if not isinstance(node, accepted):
            found = _LITERAL_EDM.get(type(node), type(node).__name__)
            raise _syntax(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM.get(kind, kind)}' and '{found}' for operator kind '{operator}'."
            )
        return str(getattr(node, "val", ""))

    def compare(self, node: od.Compare, negate: bool) -> ast.Condition | ast.Filter:
        left, right = node.left, node.right
        if isinstance(node.comparator, od.In):
            name, kind = self.property(left)
            if not isinstance(right, od.List) or not right.val:
                raise _syntax("The right operand of 'in' must be a list of values.")
            values = tuple(self.literal(v, kind, "In") for v in right.val)
            return self.condition(name, "in", negate, values=values)
        operator = _COMPARE[type(node.comparator)]
        if not isinstance(left, od.Identifier):
            left, right, operator = right, left, _SWAPPED[operator]
        name, kind = self.property(left)
        if isinstance(right, od.Null):
            if operator not in ("eq", "ne"):
                raise _syntax("null can only be compared with eq or ne in $filter.")
            return self.condition(name, "null" if operator == "eq" else "not-null", negate)
        value = self.literal(right, kind, type(node.comparator).__name__)
        return self.condition(name, operator, negate, value=value)

    def call(self, node: od.Call, negate: bool) -> ast.Condition | ast.Filter:
        func = node.func
        if not func.namespace and func.name in _LIKE:
            if len(node.args) != 2 or isinstance(node.args[1], od.NamedParam):
                raise _syntax(f"The function '{func.name}' takes a property and a string.")
            name, kind = self.property(node.args[0])
            if kind != "string":
                raise _syntax(f"The function '{func.name}' needs a string property.")
            text = re.sub(r"([%_\[])", r"[\1]", self.literal(node.args[1], kind, func.name))
            operator = _LIKE[func.name]
            pattern = f"%{text}%" if operator == "like" else text
            return self.condition(name, operator, negate, value=pattern)
        if func.namespace == ("Microsoft", "Dynamics", "CRM"):
            return self.query_function(node, negate)
        raise _syntax(f"An unknown function with name '{func.name}' was found.")

    def query_function(self, node: od.Call, negate: bool) -> ast.Condition | ast.Filter:
        """Dataverse's query functions, which are FetchXML's operators under CamelCase
        names; the compiler checks the operator and its values."""
        name = node.func.name
        if negate:
            raise _syntax(f"not cannot be applied to the query function {name} in $filter.")
        params: dict[str, od._Node] = {}
        for arg in node.args:
            if not isinstance(arg, od.NamedParam):
                raise _syntax(f"The query function {name} takes named parameters.")
            params[arg.name.name] = arg.param
        prop = params.pop("PropertyName", None)
        if not isinstance(prop, od.String):
            raise _syntax(f"The query function {name} needs PropertyName='<property>'.")
        attribute = attribute_of(self.info, prop.val)
        value = params.pop("PropertyValue", None)
        if params:
            raise _syntax(f"The query function {name} has no parameter {next(iter(params))}.")
        if value is not None and (isinstance(value, od.List) or not hasattr(value, "val")):
            raise _syntax(f"PropertyValue of {name} must be a single value.")
        operator = re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
        text = None if value is None else str(getattr(value, "val", ""))
        return self.condition(attribute, operator, False, value=text)
