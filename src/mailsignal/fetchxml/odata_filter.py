"""`$filter` -> FetchXML conditions (`ast.Filter`), from the tree the kept `odata-query`
parser builds; the mapping of operators is described in `odata.py`.

Also the names both need: Dataverse's error code for OData it cannot read, and
`attribute_of`, the attribute a Web API property name reads.
"""

from __future__ import annotations

import re

from odata_query import ast as od
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from ..errors import FetchXmlQueryError
from . import ast, codes
from .catalog import EntityInfo

QUERY_SYNTAX = "0x80060888"  # Dataverse's code for OData it cannot read or resolve
MAX_DEPTH = codes.MAX_DEPTH
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


def syntax(message: str) -> FetchXmlQueryError:
    return FetchXmlQueryError(message, error_code=QUERY_SYNTAX)


def no_property(info: EntityInfo, name: str) -> FetchXmlQueryError:
    return syntax(
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
    # A primary key that is also a lookup (usersettings' `systemuserid`) is the key.
    if (name in info.lookups and name != info.primary_key) or info.attribute(name) is None:
        raise no_property(info, name)
    return name


class Filter:
    """One `$filter` -> `ast.Filter`, counting conditions against FetchXML's limit."""

    def __init__(self, info: EntityInfo) -> None:
        self.info = info
        self.conditions = 0

    def translate(self, text: str) -> ast.Filter:
        try:
            tree = ODataParser().parse(ODataLexer().tokenize(text))
        except ODataException as exc:
            raise syntax(f"Syntax error in $filter: {exc}") from None
        item = self.node(tree, negate=False, depth=0)
        return item if isinstance(item, ast.Filter) else ast.Filter("and", (item,))

    def node(self, node: od._Node, *, negate: bool, depth: int) -> ast.Condition | ast.Filter:
        if depth > MAX_DEPTH:
            raise syntax(f"The $filter nests deeper than {MAX_DEPTH} levels.")
        if isinstance(node, od.UnaryOp) and isinstance(node.op, od.Not):
            return self.node(node.operand, negate=not negate, depth=depth + 1)
        if isinstance(node, od.BoolOp):
            return self.bool_op(node, negate=negate, depth=depth)
        if isinstance(node, od.Compare):
            return self.compare(node, negate)
        if isinstance(node, od.Call):
            return self.call(node, negate)
        raise syntax("A $filter term must be a comparison, a function call, and, or or not.")

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
            raise syntax("Each comparison in $filter needs one property and one value.")
        name = attribute_of(self.info, node.name)
        attr = self.info.attribute(name)
        assert attr is not None  # attribute_of checked it
        return name, attr.kind

    def literal(self, node: od._Node, kind: str, operator: str) -> str:
        """The FetchXML text of a literal compared with a column of `kind`."""
        if isinstance(node, od.Identifier):
            raise syntax("Comparing two properties in $filter is not supported by MailSignal.")
        accepted = _ACCEPTS.get(kind, ())
        if not isinstance(node, accepted):
            found = _LITERAL_EDM.get(type(node), type(node).__name__)
            raise syntax(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM.get(kind, kind)}' and '{found}' for operator kind '{operator}'."
            )
        return str(getattr(node, "val", ""))

    def compare(self, node: od.Compare, negate: bool) -> ast.Condition | ast.Filter:
        left, right = node.left, node.right
        if isinstance(node.comparator, od.In):
            name, kind = self.property(left)
            if not isinstance(right, od.List) or not right.val:
                raise syntax("The right operand of 'in' must be a list of values.")
            values = tuple(self.literal(v, kind, "In") for v in right.val)
            return self.condition(name, "in", negate, values=values)
        operator = _COMPARE[type(node.comparator)]
        if not isinstance(left, od.Identifier):
            left, right, operator = right, left, _SWAPPED[operator]
        name, kind = self.property(left)
        if isinstance(right, od.Null):
            if operator not in ("eq", "ne"):
                raise syntax("null can only be compared with eq or ne in $filter.")
            return self.condition(name, "null" if operator == "eq" else "not-null", negate)
        value = self.literal(right, kind, type(node.comparator).__name__)
        return self.condition(name, operator, negate, value=value)

    def call(self, node: od.Call, negate: bool) -> ast.Condition | ast.Filter:
        func = node.func
        if not func.namespace and func.name in _LIKE:
            if len(node.args) != 2 or isinstance(node.args[1], od.NamedParam):
                raise syntax(f"The function '{func.name}' takes a property and a string.")
            name, kind = self.property(node.args[0])
            if kind != "string":
                raise syntax(f"The function '{func.name}' needs a string property.")
            text = re.sub(r"([%_\[])", r"[\1]", self.literal(node.args[1], kind, func.name))
            operator = _LIKE[func.name]
            pattern = f"%{text}%" if operator == "like" else text
            return self.condition(name, operator, negate, value=pattern)
        if func.namespace == ("Microsoft", "Dynamics", "CRM"):
            return self.query_function(node, negate)
        raise syntax(f"An unknown function with name '{func.name}' was found.")

    def query_function(self, node: od.Call, negate: bool) -> ast.Condition | ast.Filter:
        """Dataverse's query functions, which are FetchXML's operators under CamelCase
        names; the compiler checks the operator and its values."""
        name = node.func.name
        if negate:
            raise syntax(f"not cannot be applied to the query function {name} in $filter.")
        params: dict[str, od._Node] = {}
        for arg in node.args:
            if not isinstance(arg, od.NamedParam):
                raise syntax(f"The query function {name} takes named parameters.")
            params[arg.name.name] = arg.param
        prop = params.pop("PropertyName", None)
        if not isinstance(prop, od.String):
            raise syntax(f"The query function {name} needs PropertyName='<property>'.")
        attribute = attribute_of(self.info, prop.val)
        value = params.pop("PropertyValue", None)
        if params:
            raise syntax(f"The query function {name} has no parameter {next(iter(params))}.")
        if value is not None and (isinstance(value, od.List) or not hasattr(value, "val")):
            raise syntax(f"PropertyValue of {name} must be a single value.")
        operator = re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
        text = None if value is None else str(getattr(value, "val", ""))
        return self.condition(attribute, operator, False, value=text)
