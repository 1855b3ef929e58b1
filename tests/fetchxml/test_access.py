"""Row-level access (issue 5): the compiler limits every table a query touches.

A rep reads their own emails, the interactions of those emails and their own
systemuser/usersettings rows; contacts, leads, accounts and the organization are
shared. An admin reads everything. Checked for every entity x caller, then through
every kind of link-entity, where a forgotten rule would leak another rep's data.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from fetchxml.world import NOW, caller, uid  # type: ignore[import-not-found]
from mailsignal.fetchxml.access import Caller
from mailsignal.store.catalog import CATALOG
from mailsignal.store.fetch import execute

ENTITIES = CATALOG.entities
EVERYONE = ("admin", "rep_la", "rep_akl")
EMAILS = {"admin": range(1, 11), "rep_la": range(1, 7), "rep_akl": range(7, 10)}
INTERACTIONS = {"admin": range(1, 9), "rep_la": (1, 2, 3, 4), "rep_akl": (5, 6, 7)}
USERS = {"admin": (1, 2, 3), "rep_la": (2,), "rep_akl": (3,)}


def visible(entity: str, who: str) -> set[Any]:
    if entity == "email":
        return {uid("e", n) for n in EMAILS[who]}
    if entity == "interactionforemail":
        return {uid("f", n) for n in INTERACTIONS[who]}
    if entity in ("systemuser", "usersettings"):
        return {uid("5e", n) for n in USERS[who]}
    shared = {
        "contact": ("c", 3),
        "lead": ("1ead", 2),
        "account": ("a", 2),
        "organization": ("0", 1),
    }
    prefix, count = shared[entity]
    return {uid(prefix, n) for n in range(1, count + 1)}


def run(engine: Engine, xml: str, who: str | Caller) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return execute(conn, xml, caller(who) if isinstance(who, str) else who, now=NOW).rows


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_matrix(world: Engine, entity: str, who: str) -> None:
    key = ENTITIES[entity].primary_key
    rows = run(world, f'<fetch><entity name="{entity}"><all-attributes/></entity></fetch>', who)
    assert {r[key] for r in rows} == visible(entity, who)


def test_matrix_covers_every_entity() -> None:
    assert set(ENTITIES) == {
        "email",
        "interactionforemail",
        "contact",
        "lead",
        "account",
        "systemuser",
        "usersettings",
        "organization",
    }


@pytest.mark.parametrize("who", EVERYONE)
@pytest.mark.parametrize("entity", sorted(ENTITIES))
def test_matrix_as_a_linked_entity(world: Engine, entity: str, who: str) -> None:
    """The same rule when the entity is reached through an outer link-entity."""
    key = ENTITIES[entity].primary_key
    xml = (
        f'<fetch><entity name="organization"><link-entity name="{entity}" from="{key}" '
        f'to="organizationid" link-type="outer" alias="x"/></entity></fetch>'
    )
    # organizationid never equals another key: the join matches nothing but must compile.
    assert len(run(world, xml, who)) == 1
    xml = (
        f'<fetch><entity name="{entity}"><attribute name="{key}"/>'
        f'<link-entity name="{entity}" from="{key}" to="{key}" alias="x" link-type="outer">'
        f'<attribute name="{key}"/></link-entity></entity></fetch>'
    )
    rows = run(world, xml, who)
    assert {r[key] for r in rows} == visible(entity, who)
    assert {r[f"x.{key}"] for r in rows} == visible(entity, who)


def test_rep_linking_contacts_to_emails_sees_only_own_emails(world: Engine) -> None:
    xml = """<fetch><entity name="contact"><attribute name="fullname"/>
      <link-entity name="email" from="regardingobjectid" to="contactid" alias="e">
        <attribute name="subject"/></link-entity></entity></fetch>"""
    assert [(r["fullname"], r["e.subject"]) for r in run(world, xml, "rep_akl")] == [
        ("Grace Hopper", "Kia ora from Auckland")
    ]
    assert sorted(r["e.subject"] for r in run(world, xml, "rep_la")) == [
        "Inbound question",
        "Pricing follow-up",
        "Quarterly review",
    ]


def test_outer_link_to_forbidden_rows_comes_back_empty(world: Engine) -> None:
    xml = """<fetch><entity name="contact"><attribute name="fullname"/>
      <link-entity name="email" from="regardingobjectid" to="contactid" alias="e" link-type="outer">
        <attribute name="subject"/></link-entity></entity></fetch>"""
    rows = run(world, xml, "rep_akl")
    assert [(r["fullname"], r["e.subject"]) for r in rows] == [
        ("Ada Lovelace", None),
        ("Grace Hopper", "Kia ora from Auckland"),
        ("Alan Turing", None),
    ]


@pytest.mark.parametrize(
    ("link_type", "expected"),
    [("exists", ["Grace Hopper"]), ("in", ["Grace Hopper"])],
)
def test_semi_joins_see_only_own_emails(world: Engine, link_type: str, expected: list[str]) -> None:
    xml = f"""<fetch><entity name="contact"><attribute name="fullname"/>
      <link-entity name="email" from="regardingobjectid" to="contactid" link-type="{link_type}"/>
      </entity></fetch>"""
    assert [r["fullname"] for r in run(world, xml, "rep_akl")] == expected


@pytest.mark.parametrize(
    ("link_type", "expected"),
    [
        ("any", ["Grace Hopper"]),
        ("not any", ["Ada Lovelace", "Alan Turing"]),
        ("all", []),
        ("not all", ["Grace Hopper"]),
    ],
)
def test_filter_links_see_only_own_emails(
    world: Engine, link_type: str, expected: list[str]
) -> None:
    """Ada's emails belong to the LA rep: to the Auckland rep she has none."""
    xml = f"""<fetch><entity name="contact"><attribute name="fullname"/><filter>
      <link-entity name="email" from="regardingobjectid" to="contactid" link-type="{link_type}">
        <filter><condition attribute="opencount" operator="ge" value="0"/></filter>
      </link-entity></filter></entity></fetch>"""
    assert [r["fullname"] for r in run(world, xml, "rep_akl")] == expected


def test_self_join_on_a_shared_column_does_not_reach_other_reps(world: Engine) -> None:
    """Email 2 (LA) and 7 (Auckland) share Grace as regarding; LA must not see 7."""
    xml = """<fetch><entity name="email"><attribute name="subject"/>
      <filter><condition attribute="subject" operator="eq" value="Quarterly review"/></filter>
      <link-entity name="email" from="regardingobjectid" to="regardingobjectid" alias="o"
        link-type="outer"><attribute name="subject"/></link-entity></entity></fetch>"""
    assert [r["o.subject"] for r in run(world, xml, "rep_la")] == ["Quarterly review"]
    assert sorted(r["o.subject"] for r in run(world, xml, "admin")) == [
        "Kia ora from Auckland",
        "Quarterly review",
    ]


def test_interactions_reached_from_emails_and_back(world: Engine) -> None:
    down = """<fetch><entity name="email"><attribute name="subject"/>
      <link-entity name="interactionforemail" from="emailactivityid" to="activityid" alias="i">
        <attribute name="verdict"/></link-entity></entity></fetch>"""
    assert {r["subject"] for r in run(world, down, "rep_akl")} == {
        "Kia ora from Auckland",
        "[EXT] Renewal",
    }
    up = """<fetch><entity name="interactionforemail"><attribute name="verdict"/>
      <link-entity name="email" from="activityid" to="emailactivityid" alias="e" link-type="outer">
        <attribute name="subject"/></link-entity></entity></fetch>"""
    rows = run(world, up, "rep_la")
    assert len(rows) == 4 and all(r["e.subject"] is not None for r in rows)


def test_nested_links_keep_the_rule(world: Engine) -> None:
    xml = """<fetch><entity name="account"><attribute name="name"/>
      <link-entity name="contact" from="parentcustomerid" to="accountid" alias="c">
        <link-entity name="email" from="regardingobjectid" to="contactid" alias="e">
          <attribute name="subject"/>
          <link-entity name="systemuser" from="systemuserid" to="ownerid" alias="u">
            <attribute name="fullname"/></link-entity>
        </link-entity></link-entity></entity></fetch>"""
    rows = run(world, xml, "rep_akl")
    assert [(r["name"], r["e.subject"], r["u.fullname"]) for r in rows] == [
        ("Contoso [EU] Ltd", "Kia ora from Auckland", "Kiri Auckland")
    ]


def test_other_users_are_invisible_through_links(world: Engine) -> None:
    xml = """<fetch><entity name="email"><attribute name="subject"/>
      <link-entity name="systemuser" from="systemuserid" to="ownerid" alias="u" link-type="outer">
        <attribute name="fullname"/>
        <link-entity name="usersettings" from="systemuserid" to="systemuserid" alias="s"
          link-type="outer"><attribute name="timezonename"/></link-entity>
      </link-entity></entity></fetch>"""
    assert {(r["u.fullname"], r["s.timezonename"]) for r in run(world, xml, "rep_la")} == {
        ("Lee Los Angeles", "America/Los_Angeles")
    }
    users = """<fetch><entity name="contact"><attribute name="fullname"/>
      <link-entity name="systemuser" from="systemuserid" to="parentcustomerid" link-type="outer"
        alias="u"><all-attributes/></link-entity></entity></fetch>"""
    assert all(r["u.systemuserid"] is None for r in run(world, users, "rep_la"))


def test_aggregates_count_only_visible_rows(world: Engine) -> None:
    xml = """<fetch aggregate="true"><entity name="interactionforemail">
      <attribute name="interactionforemailid" alias="n" aggregate="count"/></entity></fetch>"""
    assert [run(world, xml, who)[0]["n"] for who in EVERYONE] == [8, 4, 3]


def test_filters_cannot_widen_the_rule(world: Engine) -> None:
    xml = """<fetch><entity name="email"><filter type="or">
      <condition attribute="ownerid" operator="ne-userid"/>
      <condition attribute="ownerid" operator="null"/>
      <condition attribute="ownerid" operator="not-null"/></filter></entity></fetch>"""
    assert {r["activityid"] for r in run(world, xml, "rep_akl")} == visible("email", "rep_akl")


def test_unknown_time_zone_is_a_dataverse_error(world: Engine) -> None:
    from mailsignal.errors import FetchXmlError

    with pytest.raises(FetchXmlError) as caught:
        run(
            world,
            '<fetch><entity name="email"/></fetch>',
            Caller(uid("5e", 2), False, "Mars/Olympus"),
        )
    assert caught.value.error_code == "0x80040240"
