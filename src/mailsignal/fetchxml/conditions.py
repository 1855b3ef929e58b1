"""`<condition>` -> a SQL boolean, with Dataverse's operator semantics.

reference/dataverse.md §2 is the spec: string comparisons ignore case; `eq`, `gt` and
their kin never match a null column, while `ne`/`neq`, `not-in`, `not-like`,
`not-begin-with`, `not-end-with`, `not-between` and `ne-userid` DO match null; `in`
ignores a stray `value=""`; `between` takes exactly two values, both inclusive;
`valueof` compares two columns (eq ne gt ge lt le only); date operators are computed
in the caller's time zone (`dates.py`). Values are converted to the column's type
first (`values.py`) and always bound.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from ..errors import FetchXmlError
from . import ast, codes, dates
from .catalog import AttributeInfo
from .patterns import translate
from .scope import Bound, Context
from .values import Value, convert, to_date, to_int


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


COMPARE = ("eq", "ne", "neq", "gt", "ge", "lt", "le")
LIKE = ("like", "not-like", "begins-with", "not-begin-with", "ends-with", "not-end-with")
SUPPORTED = frozenset(
    (*COMPARE, *LIKE, "in", "not-in", "between", "not-between", "null", "not-null",
     "eq-userid", "ne-userid", *dates.NO_VALUE, *dates.X_VALUE, *dates.ON_DATE)
)  # fmt: skip
# Real Dataverse operators MailSignal has no data for (teams, business units, hierarchy,
# languages, multi-select choices, fiscal calendars): refused by name, not as unknown.
UNSUPPORTED = _words(
    "eq-businessid ne-businessid eq-userteams eq-useroruserteams eq-useroruserhierarchy "
    "eq-useroruserhierarchyandteams eq-userlanguage contain-values not-contain-values above "
    "under eq-or-above eq-or-under not-under this-fiscal-year this-fiscal-period "
    "next-fiscal-year next-fiscal-period last-fiscal-year last-fiscal-period "
    "last-x-fiscal-years last-x-fiscal-periods next-x-fiscal-years next-x-fiscal-periods "
    "in-fiscal-year in-fiscal-period in-fiscal-period-and-year "
    "in-or-before-fiscal-period-and-year in-or-after-fiscal-period-and-year"
)
_SDK_NAMES = {
    "eq": "Equal", "ne": "NotEqual", "neq": "NotEqual", "gt": "GreaterThan",
    "ge": "GreaterEqual", "lt": "LessThan", "le": "LessEqual",
    "not-begin-with": "DoesNotBeginWith", "not-end-with": "DoesNotEndWith",
    "eq-userid": "EqualUserId", "ne-userid": "NotEqualUserId",
}  # fmt: skip
_ELEMENT = "condition"


def sdk_name(op: str) -> str:
    """The SDK's ConditionOperator name Dataverse uses in messages: ne -> NotEqual."""
    if op in _SDK_NAMES:
        return _SDK_NAMES[op]
    return "".join(p.capitalize() for p in op.replace("olderthan", "older-than").split("-"))


def condition(cond: ast.Condition, owner: Bound, ctx: Context) -> ColumnElement[bool]:
    """Compile one condition on `owner` (or on the link named by `entityname`)."""
    op, pos = cond.operator, cond.pos
    if op in UNSUPPORTED:
        ctx.fail(
            f"Condition operator '{op}' is not supported by MailSignal.",
            codes.INVALID_CONDITION_OPERATOR,
            pos,
            _ELEMENT,
        )
    if op not in SUPPORTED:
        ctx.fail(
            f"Unknown Condition Operator: {op}", codes.INVALID_CONDITION_OPERATOR, pos, _ELEMENT
        )
    bound = owner
    if cond.entityname is not None:
        bound = ctx.resolve(cond.entityname, pos, _ELEMENT, codes.ALIAS_DOES_NOT_EXIST)
    col, info = ctx.column(bound, cond.attribute, pos, _ELEMENT)
    try:
        return _compile(cond, col, info, bound, ctx)
    except FetchXmlError as exc:
        ctx.locate(exc, pos, _ELEMENT)
    except (ValueError, OverflowError):
        ctx.fail(
            f"The value '{cond.value}' is out of range for operator {sdk_name(op)}.",
            codes.INVALID_ARGUMENT,
            pos,
            _ELEMENT,
        )


def _compile(
    cond: ast.Condition,
    col: ColumnElement[Any],
    info: AttributeInfo,
    bound: Bound,
    ctx: Context,
) -> ColumnElement[bool]:
    op, pos = cond.operator, cond.pos

    def refuse(kinds: str) -> None:
        if info.kind not in kinds.split():
            ctx.fail(
                f"Condition operator {sdk_name(op)} is not valid for attribute "
                f"'{info.entity}.{info.name}' of type {info.dotnet}.",
                codes.INVALID_CONDITION_OPERATOR,
                pos,
                _ELEMENT,
            )

    def value() -> str:
        if cond.value is None or (cond.value == "" and info.kind != "string"):
            ctx.fail(
                "Attribute 'value' or 'valueof' must be specified for condition operator: "
                f"{sdk_name(op)}",
                codes.INVALID_ARGUMENT,
                pos,
                _ELEMENT,
            )
        return cond.value

    if op in ("null", "not-null"):
        return col.is_(None) if op == "null" else col.is_not(None)
    refuse("uuid string int float bool datetime")  # json: null/not-null only
    if cond.valueof is not None:
        if op not in COMPARE:
            ctx.fail(
                f"'valueof' cannot be used with condition operator {sdk_name(op)}.",
                codes.INVALID_CONDITION_OPERATOR,
                pos,
                _ELEMENT,
            )
        return _valueof(cond, col, info, bound, ctx)
    if op in ("eq-userid", "ne-userid"):
        refuse("uuid")
        if op == "eq-userid":
            return col == ctx.caller.user_id
        return or_(col != ctx.caller.user_id, col.is_(None))
    if op in dates.NO_VALUE or op in dates.X_VALUE or op in dates.ON_DATE:
        refuse("datetime")
        if op in dates.ON_DATE:
            span = dates.on(op, to_date(value(), info), ctx.tz)
        else:
            x = None
            if op in dates.X_VALUE:
                x = to_int(value(), info)
                if x < 0:
                    raise ValueError(x)
            span = dates.relative(op, x, ctx.now, ctx.tz)
        parts = [] if span.start is None else [col >= span.start]
        if span.end is not None:
            parts.append(col <= span.end if span.end_inclusive else col < span.end)
        return and_(*parts)
    if op in LIKE:
        refuse("string")
        raw = value()
        pattern = {
            "begins-with": f"{raw}%",
            "not-begin-with": f"{raw}%",
            "ends-with": f"%{raw}",
            "not-end-with": f"%{raw}",
        }.get(op, raw)
        match = _like(col, pattern)
        return (
            match if op in ("like", "begins-with", "ends-with") else or_(not_(match), col.is_(None))
        )
    if op in ("in", "not-in"):
        raws = list(cond.values) or ([cond.value] if cond.value else [])
        if not raws:
            ctx.fail(
                f"Condition operator {sdk_name(op)} requires at least one <value>.",
                codes.INVALID_ARGUMENT,
                pos,
                _ELEMENT,
            )
        found = _in(col, info, [convert(r, info) for r in raws], ctx)
        return found if op == "in" else or_(not_(found), col.is_(None))
    if op in ("between", "not-between"):
        if len(cond.values) != 2:
            ctx.fail(
                f"Condition operator {sdk_name(op)} requires exactly two <value> elements, "
                f"not {len(cond.values)}.",
                codes.INVALID_ARGUMENT,
                pos,
                _ELEMENT,
            )
        low, high = (convert(r, info) for r in cond.values)
        key = ctx.sort_key(col, info.kind)
        inside = key.between(_arg(low, col, info), _arg(high, col, info))
        return inside if op == "between" else or_(not_(inside), col.is_(None))
    return _compare(op, col, info, convert(value(), info), ctx)


def _arg(value: Value, col: ColumnElement[Any], info: AttributeInfo) -> ColumnElement[Any]:
    """`value` bound with the column's type (so booleans compare, datetimes convert)."""
    bound = literal(value, type_=col.type)
    return func.lower(bound) if info.kind == "string" else bound


def _compare(
    op: str, col: ColumnElement[Any], info: AttributeInfo, value: Value, ctx: Context
) -> ColumnElement[bool]:
    if op in ("eq", "ne", "neq"):
        left = ctx.fold(col) if info.kind == "string" else col
        same = left == _arg(value, col, info)
        return same if op == "eq" else or_(left != _arg(value, col, info), col.is_(None))
    key, arg = ctx.sort_key(col, info.kind), _arg(value, col, info)
    return {"gt": key > arg, "ge": key >= arg, "lt": key < arg, "le": key <= arg}[op]


def _in(
    col: ColumnElement[Any], info: AttributeInfo, values: list[Value], ctx: Context
) -> ColumnElement[bool]:
    if info.kind == "string":
        return ctx.fold(col).in_([func.lower(v) for v in values])
    return col.in_(values)


def _like(col: ColumnElement[Any], tsql: str) -> ColumnElement[bool]:
    pattern = translate(tsql.lower())
    if pattern.like is not None:
        return func.lower(col).like(func.lower(pattern.like), escape="\\")
    assert pattern.regex is not None
    return func.lower(col).regexp_match(pattern.regex)


def _valueof(
    cond: ast.Condition,
    col: ColumnElement[Any],
    info: AttributeInfo,
    bound: Bound,
    ctx: Context,
) -> ColumnElement[bool]:
    assert cond.valueof is not None
    alias, _, name = cond.valueof.rpartition(".")
    other_bound = (
        ctx.resolve(alias, cond.pos, _ELEMENT, codes.ALIAS_DOES_NOT_EXIST) if alias else bound
    )
    other, other_info = ctx.column(other_bound, name, cond.pos, _ELEMENT)
    numeric = ("int", "float")
    if info.kind != other_info.kind and not (info.kind in numeric and other_info.kind in numeric):
        ctx.fail(
            f"Cannot compare '{info.entity}.{info.name}' ({info.dotnet}) with "
            f"'{other_info.entity}.{other_info.name}' ({other_info.dotnet}).",
            codes.INVALID_ARGUMENT,
            cond.pos,
            _ELEMENT,
        )
    if other_info.kind == "json":
        ctx.fail("A JSON attribute cannot be compared.", codes.INVALID_ARGUMENT, cond.pos, _ELEMENT)
    op = cond.operator
    if op in ("eq", "ne", "neq"):
        left, right = (ctx.fold(col), ctx.fold(other)) if info.kind == "string" else (col, other)
        # ne also matches when exactly one side is null (IS DISTINCT FROM).
        return left == right if op == "eq" else left.is_distinct_from(right)
    left, right = ctx.sort_key(col, info.kind), ctx.sort_key(other, info.kind)
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]
