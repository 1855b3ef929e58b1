"""OData query options -> FetchXML (issue 11, A.1): the tree they translate to, and the
rows that tree returns from the fixed world on SQLite and PostgreSQL, row access
included, compared with what the equivalent FetchXML returns."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from fetchxml.world import NOW, caller, uid  # type: ignore[import-not-found]
from mailsignal.errors import FetchXmlQueryError
from mailsignal.fetchxml import ast
from mailsignal.fetchxml.odata import QUERY_SYNTAX, translate
from mailsignal.store.catalog import CATALOG
from mailsignal.store.fetch import execute

EMAIL = CATALOG.entities["email"]
NO_PROPERTY = "Could not find a property named"
CRM = "Microsoft.Dynamics.CRM"
TODAY = "Microsoft.Dynamics.CRM.Today(PropertyName='senton')"
CONTACT = CATALOG.entities["contact"]


def rows(engine: Engine, who: str, entity: str = "email", **params: str) -> list[dict[str, Any]]:
    query = translate(CATALOG.entities[entity], {f"${k}": v for k, v in params.items()})
    with engine.connect() as conn:
        return execute(conn, query.fetch, caller(who), now=NOW).rows


def numbers(engine: Engine, filter_: str, who: str = "admin") -> set[int]:
    """The emails (by their world number) `filter_` finds for `who`."""
    found = rows(engine, who, filter=filter_, select="subject")
    return {int(str(r["activityid"])[-12:]) for r in found}


def fetchxml_numbers(engine: Engine, conditions: str, who: str = "admin") -> set[int]:
    xml = f'<fetch><entity name="email"><attribute name="activityid"/>{conditions}</entity></fetch>'
    with engine.connect() as conn:
        found = execute(conn, xml, caller(who), now=NOW).rows
    return {int(str(r["activityid"])[-12:]) for r in found}


def test_filter_tree() -> None:
    query = translate(
        EMAIL,
        {
            "$filter": "opencount gt 1 and (contains(subject,'re') or subject eq null)",
            "$select": "subject,_regardingobjectid_value",
            "$orderby": "senton desc,subject",
            "$top": "3",
        },
    )
    entity = query.fetch.entity
    assert query.fetch.top == 3 and not query.fetch.return_total_record_count
    assert query.selected == ("subject", "_regardingobjectid_value")
    assert [a.name for a in entity.attributes if isinstance(a, ast.Attribute)] == [
        "activityid",
        "subject",
        "regardingobjectid",
        "modifiedon",
    ]
    assert entity.orders == (
        ast.Order(attribute="senton", descending=True),
        ast.Order(attribute="subject"),
    )
    assert entity.filter == ast.Filter(
        "and",
        (
            ast.Condition("opencount", "gt", value="1"),
            ast.Filter(
                "or",
                (
                    ast.Condition("subject", "like", value="%re%"),
                    ast.Condition("subject", "null"),
                ),
            ),
        ),
    )


def test_not_is_de_morgan_with_odata_null_semantics() -> None:
    [query] = [translate(EMAIL, {"$filter": "not (opencount gt 1 or subject ne 'x')"})]
    assert query.fetch.entity.filter == ast.Filter(
        "and",
        (
            ast.Filter(
                "or",
                (ast.Condition("opencount", "le", value="1"), ast.Condition("opencount", "null")),
            ),
            ast.Filter(
                "or", (ast.Condition("subject", "eq", value="x"), ast.Condition("subject", "null"))
            ),
        ),
    )


def test_count_with_top_uses_the_page_size() -> None:
    fetch = translate(EMAIL, {"$count": "true", "$top": "2"}).fetch
    assert (fetch.top, fetch.count, fetch.return_total_record_count) == (None, 2, True)
    assert fetch.entity.attributes == (ast.AllAttributes(),)


def cond(attribute: str, operator: str, value: str | None = None) -> str:
    """One FetchXML `<condition>`; `a,b` as a value means `<value>a</value><value>b</value>`."""
    if value is not None and "," in value:
        inner = "".join(f"<value>{v}</value>" for v in value.split(","))
        return f'<condition attribute="{attribute}" operator="{operator}">{inner}</condition>'
    text = "" if value is None else f' value="{value}"'
    return f'<condition attribute="{attribute}" operator="{operator}"{text}/>'


C1 = uid("c", 1)
LAST_DAY = "Microsoft.Dynamics.CRM.LastXDays(PropertyName='lastopenedtime',PropertyValue=1)"


@pytest.mark.parametrize(
    ("filter_", "conditions", "expected"),
    [
        ("opencount eq 5", cond("opencount", "eq", "5"), {1}),
        ("opencount gt 5", cond("opencount", "gt", "5"), {3, 8, 10}),
        ("opencount ge 12", cond("opencount", "ge", "12"), {3, 8}),
        ("opencount lt 2", cond("opencount", "lt", "2"), {2, 5}),
        ("2 ge opencount", cond("opencount", "le", "2"), {2, 5, 6, 9}),
        ("directioncode eq false", cond("directioncode", "eq", "0"), {5}),
        ("contains(subject,'100%')", cond("subject", "like", "%100[%]%"), {3}),
        ("startswith(subject,'[EXT]')", cond("subject", "begins-with", "[[]EXT]"), {8}),
        ("endswith(subject,'REVIEW')", cond("subject", "ends-with", "review"), {2}),
        ("contains(subject,'_v2')", cond("subject", "like", "%[_]v2%"), {4}),
        ("lastopenedtime eq null", cond("lastopenedtime", "null"), {5}),
        ("_regardingobjectid_value ne null", cond("regardingobjectid", "not-null"),
         {1, 2, 3, 4, 5, 7, 8, 9}),
        (f"_regardingobjectid_value eq {C1}", cond("regardingobjectid", "eq", str(C1)), {1, 5}),
        ("senton ge 2026-03-08T00:00:00Z", cond("senton", "ge", "2026-03-08T00:00:00Z"),
         {2, 4, 7, 10}),
        ("senton lt 2026-01-01", cond("senton", "lt", "2026-01-01"), {9}),
        ("opencount in (1, 2)", cond("opencount", "in", "1,2"), {2, 6, 9}),
        (LAST_DAY, cond("lastopenedtime", "last-x-days", "1"), {1, 2, 3, 4}),
    ],
)  # fmt: skip
def test_operator_matches_fetchxml(
    world: Engine, filter_: str, conditions: str, expected: set[int]
) -> None:
    assert numbers(world, filter_) == expected
    assert fetchxml_numbers(world, f"<filter>{conditions}</filter>") == expected


def test_ne_never_matches_null_and_not_eq_does(world: Engine) -> None:
    # FetchXML's `ne` matches null (email 5 has no lastopenedtime); OData's does not.
    stamp = "2026-03-10T18:00:00Z"
    assert numbers(world, f"lastopenedtime ne {stamp}") == {2, 3, 4, 6, 7, 8, 9, 10}
    assert numbers(world, f"not (lastopenedtime eq {stamp})") == {2, 3, 4, 5, 6, 7, 8, 9, 10}
    assert numbers(world, f"not (lastopenedtime ne {stamp})") == {1, 5}
    assert numbers(world, "not contains(subject,'e')") == {1, 7, 10}


def test_and_or_not_combined(world: Engine) -> None:
    filter_ = (
        "(opencount gt 4 or linksclickedcount ge 3) and not startswith(subject,'Re:') "
        "and directioncode eq true"
    )
    assert numbers(world, filter_) == {1, 8, 10}


def test_rep_cannot_reach_other_reps_emails_through_filter(world: Engine) -> None:
    everything = "opencount ge 0 or opencount eq null"
    assert numbers(world, everything, "rep_la") == {1, 2, 3, 4, 5, 6}
    assert numbers(world, "subject eq 'Kia ora from Auckland'", "rep_la") == set()
    assert numbers(world, "subject eq 'Kia ora from Auckland'", "rep_akl") == {7}


def test_orderby_and_top(world: Engine) -> None:
    found = rows(
        world, "admin", select="opencount", orderby="directioncode asc,opencount desc", top="4"
    )
    assert [r["opencount"] for r in found] == [0, 25, 12, 7]
    found = rows(world, "admin", "contact", orderby="fullname", select="fullname")
    assert [r["fullname"] for r in found] == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]


def test_lookup_filter_on_contacts(world: Engine) -> None:
    found = rows(world, "rep_la", "contact", filter=f"_parentcustomerid_value eq {uid('a', 2)}")
    assert [r["fullname"] for r in found] == ["Grace Hopper"]


def test_count(world: Engine) -> None:
    query = translate(EMAIL, {"$count": "true", "$top": "2", "$filter": "opencount gt 2"})
    with world.connect() as conn:
        result = execute(conn, query.fetch, caller("admin"), now=NOW)
    assert len(result.rows) == 2 and result.total_record_count == 6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$filter": "nosuch eq 1"}, f"{NO_PROPERTY} 'nosuch' on type '{CRM}.email'."),
        ({"$select": "subject,nosuch"}, f"{NO_PROPERTY} 'nosuch' on type '{CRM}.email'."),
        ({"$select": "regardingobjectid"}, f"{NO_PROPERTY} 'regardingobjectid' on type"),
        ({"$orderby": "nosuch desc"}, "Could not find a property named 'nosuch'"),
        ({"$orderby": "subject sideways"}, "Syntax error in $orderby"),
        ({"$filter": "opencount eq 'five'"}, "incompatible types"),
        ({"$filter": "subject eq 5"}, "incompatible types"),
        ({"$filter": "opencount eq"}, "Syntax error in $filter"),
        ({"$filter": "opencount gt null"}, "null can only be compared with eq or ne"),
        ({"$filter": "opencount eq linksclickedcount"}, "Comparing two properties"),
        ({"$filter": "length(subject) eq 3"}, "Each comparison in $filter needs one property"),
        ({"$filter": "tolower(subject) eq 'x'"}, "Each comparison in $filter needs one property"),
        ({"$filter": "indexof(subject,'x')"}, "An unknown function with name 'indexof'"),
        ({"$filter": f"not {TODAY}"}, "not cannot be applied"),
        ({"$filter": "contains(opencount,'1')"}, "needs a string property"),
        ({"$top": "0"}, "Invalid value '0' for $top"),
        ({"$top": "5001"}, "Invalid value '5001' for $top"),
        ({"$count": "maybe"}, "not a valid count option"),
        ({"$skip": "1"}, "The query parameter $skip is not supported"),
        ({"$apply": "groupby((subject))"}, "The query parameter $apply is not supported"),
        ({"$search": "x"}, "The query parameter $search is not supported"),
        ({"$expand": "regardingobjectid_contact"}, f"{NO_PROPERTY} 'regardingobjectid_contact'"),
        ({"$expand": "regardingobjectid_contact_email($top=1)"}, "Unsupported $expand"),
        ({"$expand": "regardingobjectid_lead_email($select=nosuch)"}, f"{NO_PROPERTY} 'nosuch'"),
    ],
)  # fmt: skip
def test_refusals(params: dict[str, str], message: str) -> None:
    with pytest.raises(FetchXmlQueryError) as raised:
        translate(EMAIL, params, CATALOG)
    assert raised.value.error_code == QUERY_SYNTAX
    assert message in raised.value.message


def test_deep_and_long_filters_are_bounded() -> None:
    deep = "not (" * 50 + "opencount eq 1" + ")" * 50
    with pytest.raises(FetchXmlQueryError, match="nests deeper"):
        translate(EMAIL, {"$filter": deep})
    long = " or ".join(f"opencount eq {n}" for n in range(499))
    assert len(translate(EMAIL, {"$filter": long}).fetch.entity.filter.items) == 499  # type: ignore[union-attr]
    with pytest.raises(FetchXmlQueryError) as raised:
        translate(EMAIL, {"$filter": long + " or opencount eq 1 or opencount eq 2"})
    assert raised.value.error_code == "0x8004430C"


def test_unknown_query_function_is_the_compilers_refusal(world: Engine) -> None:
    with pytest.raises(FetchXmlQueryError, match="Unknown Condition Operator: no-such-thing"):
        rows(world, "admin", filter="Microsoft.Dynamics.CRM.NoSuchThing(PropertyName='senton')")
    assert CONTACT.primary_key == "contactid"


def test_expand_is_an_outer_link(world: Engine) -> None:
    params = {"$select": "subject", "$expand": "regardingobjectid_contact_email($select=fullname)"}
    query = translate(EMAIL, params, CATALOG)
    [link] = query.fetch.entity.links
    assert (link.name, link.from_attr, link.to_attr, link.link_type) == (
        "contact",
        "contactid",
        "regardingobjectid",
        "outer",
    )
    with world.connect() as conn:
        found = execute(conn, query.fetch, caller("rep_la"), now=NOW).rows
    names = {r["subject"]: r["regardingobjectid_contact_email.fullname"] for r in found}
    assert names["Pricing follow-up"] == "Ada Lovelace"
    assert names["Re: 100% discount?"] is None  # regarding a lead
    assert len(found) == 6
