"""parse(): the syntax tree, positions in errors, and the safety limits of the reader."""

from __future__ import annotations

import pytest

from mailsignal.errors import FetchXmlError, FetchXmlParseError, InputError
from mailsignal.fetchxml import ast, parse
from mailsignal.fetchxml.codes import MAX_INPUT_CHARS

VIEW = """<fetch version="1.0" output-format="xml-platform" mapping="logical" distinct="false"
       count="50" page="2" returntotalrecordcount="1" no-lock="true">
  <entity name="email">
    <attribute name="subject" />
    <all-attributes />
    <order attribute="lastopenedtime" descending="1" />
    <filter type="or">
      <condition attribute="opencount" operator="in" value="">
        <value>1</value>
        <value uiname="two">2</value>
      </condition>
      <filter>
        <condition attribute="ownerid" operator="eq-userid" uiname="Me" uitype="systemuser" />
      </filter>
      <link-entity name="interactionforemail" from="emailactivityid" to="activityid"
                   link-type="not any" />
    </filter>
    <link-entity name="contact" from="contactid" to="regardingobjectid" alias="c"
                 link-type="outer" visible="false" intersect="0">
      <attribute name="fullname" alias="who" />
    </link-entity>
  </entity>
</fetch>"""


def test_tree_of_a_view() -> None:
    fetch = parse(VIEW)
    assert (fetch.count, fetch.page, fetch.top, fetch.distinct) == (50, 2, None, False)
    assert fetch.return_total_record_count and not fetch.aggregate
    entity = fetch.entity
    assert entity.name == "email"
    assert entity.attributes == (ast.Attribute("subject"), ast.AllAttributes())
    assert entity.orders == (ast.Order(attribute="lastopenedtime", descending=True),)
    assert entity.filter == ast.Filter(
        "or",
        (
            ast.Condition("opencount", "in", value="", values=("1", "2")),
            ast.Filter("and", (ast.Condition("ownerid", "eq-userid"),)),
            ast.LinkEntity(
                "interactionforemail", "emailactivityid", "activityid", link_type="not any"
            ),
        ),
    )
    (link,) = entity.links
    assert (link.alias, link.link_type, link.intersect) == ("c", "outer", False)
    assert link.attributes == (ast.Attribute("fullname", alias="who"),)
    assert fetch.source == VIEW


def test_positions_are_recorded() -> None:
    fetch = parse(VIEW)
    assert fetch.pos == ast.Pos(1, 1)
    assert fetch.entity.pos == ast.Pos(3, 3)
    assert fetch.entity.orders[0].pos == ast.Pos(6, 5)
    assert fetch.entity.links[0].attributes[0].pos == ast.Pos(20, 7)


def test_parse_error_carries_line_element_and_excerpt() -> None:
    xml = '<fetch>\n  <entity name="email">\n    <filter type="nand"/>\n  </entity>\n</fetch>'
    with pytest.raises(FetchXmlParseError) as caught:
        parse(xml)
    error = caught.value
    assert isinstance(error, FetchXmlError) and isinstance(error, InputError)
    assert (error.error_code, error.line, error.column, error.element) == (
        "0x80041122",
        3,
        5,
        "filter",
    )
    assert error.excerpt == '      <filter type="nand"/>\n      ^'
    assert error.detail == {"error_code": "0x80041122", "line": 3, "column": 5, "element": "filter"}
    assert str(error).startswith(
        "Unsupported filter type. Valid values are 'and', or 'or'. "
        "[0x80041122] at line 3, column 5, <filter>\n"
    )
    assert error.http_status == 400


def test_malformed_xml_points_at_the_fault() -> None:
    with pytest.raises(FetchXmlParseError) as caught:
        parse("<fetch>\n<entity name='email'>\n<attribute name='x'>\n</entity></fetch>")
    assert caught.value.error_code == "0x80040201"
    assert caught.value.message.startswith("Invalid XML. Mismatched tag")
    assert (caught.value.line, caught.value.column) == (4, 3)
    assert caught.value.excerpt is not None and caught.value.excerpt.endswith("\n    ^")


def test_semantic_error_is_located_too() -> None:
    from fetchxml.world import NOW, caller  # type: ignore[import-not-found]
    from mailsignal.fetchxml import compile_fetch
    from mailsignal.store.catalog import CATALOG

    xml = '<fetch>\n<entity name="email">\n  <attribute name="nope"/>\n</entity>\n</fetch>'
    with pytest.raises(FetchXmlError) as caught:
        compile_fetch(parse(xml), caller("admin"), CATALOG, now=NOW, dialect_name="sqlite")
    assert (caught.value.line, caught.value.column, caught.value.element) == (3, 3, "attribute")
    assert caught.value.excerpt == '    <attribute name="nope"/>\n    ^'


@pytest.mark.parametrize(
    "xml",
    [
        # billion laughs
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        '<fetch><entity name="email"><attribute name="&lol2;"/></entity></fetch>',
        # external entity (XXE)
        '<!DOCTYPE fetch [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        '<fetch><entity name="&xxe;"/></fetch>',
        # external DTD
        '<!DOCTYPE fetch SYSTEM "http://example.invalid/fetch.dtd">'
        '<fetch><entity name="email"/></fetch>',
        # parameter entities
        '<!DOCTYPE fetch [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]>'
        '<fetch><entity name="email"/></fetch>',
    ],
)
def test_dtds_and_entities_are_refused(xml: str) -> None:
    with pytest.raises(FetchXmlParseError) as caught:
        parse(xml)
    assert caught.value.error_code == "0x80040201"
    assert "DOCTYPE" in caught.value.message


def test_undefined_entity_is_not_well_formed() -> None:
    with pytest.raises(FetchXmlParseError, match="Invalid XML"):
        parse('<fetch><entity name="&x;"/></fetch>')


def test_predefined_entities_and_character_references_still_work() -> None:
    fetch = parse(
        '<fetch><entity name="email"><filter><condition attribute="subject" '
        'operator="eq" value="a &amp; b &lt;&#169;&gt;"/></filter></entity></fetch>'
    )
    assert fetch.entity.filter is not None
    condition = fetch.entity.filter.items[0]
    assert isinstance(condition, ast.Condition) and condition.value == "a & b <©>"


def test_input_size_limit() -> None:
    padding = " " * MAX_INPUT_CHARS
    with pytest.raises(FetchXmlParseError, match="longer than"):
        parse(f'<fetch><entity name="email"/>{padding}</fetch>')


def test_empty_input() -> None:
    with pytest.raises(FetchXmlParseError, match="empty"):
        parse("  \n")


def test_depth_limit() -> None:
    deep = "<filter>" * 60 + "</filter>" * 60
    with pytest.raises(FetchXmlParseError, match="nest deeper"):
        parse(f'<fetch><entity name="email">{deep}</entity></fetch>')
    ok = "<filter>" * 30 + '<condition attribute="subject" operator="null"/>' + "</filter>" * 30
    assert parse(f'<fetch><entity name="email">{ok}</entity></fetch>').entity.filter is not None


def _conditions(n: int) -> str:
    return "".join(
        f'<condition attribute="opencount" operator="ne" value="{i}"/>' for i in range(n)
    )


def test_500_conditions_and_links_are_allowed_501_are_not() -> None:
    links = (
        '<link-entity name="contact" from="contactid" to="regardingobjectid" link-type="outer"/>'
    )
    ok = f'<fetch><entity name="email">{links}<filter>{_conditions(499)}</filter></entity></fetch>'
    assert parse(ok).entity.filter is not None
    too_many = ok.replace(_conditions(499), _conditions(500))
    with pytest.raises(FetchXmlParseError) as caught:
        parse(too_many)
    assert caught.value.error_code == "0x8004430C"
    assert caught.value.message == "Number of conditions in query exceeded maximum limit."


def test_15_links_are_allowed_16_are_not() -> None:
    def nest(n: int) -> str:
        inner = ""
        for i in range(n):
            inner = (
                f'<link-entity name="contact" from="contactid" to="regardingobjectid" '
                f'alias="l{i}" link-type="outer">{inner}</link-entity>'
            )
        return f'<fetch><entity name="email">{inner}</entity></fetch>'

    assert len(parse(nest(15)).entity.links) == 1
    with pytest.raises(FetchXmlParseError) as caught:
        parse(nest(16))
    assert caught.value.error_code == "0x8004430D"


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("1", True), (" 0 ", False), ("false", False)]
)
def test_booleans(raw: str, expected: bool) -> None:
    assert parse(f'<fetch distinct="{raw}"><entity name="email"/></fetch>').distinct is expected


def test_root_must_be_fetch() -> None:
    with pytest.raises(FetchXmlParseError) as caught:
        parse('<entity name="email"/>')
    assert caught.value.error_code == "0x80040201"
    assert caught.value.message == "Invalid XML. The root element must be <fetch>."


def test_condition_values_keep_whitespace_and_markup_is_text() -> None:
    fetch = parse(
        '<fetch><entity name="email"><filter><condition attribute="subject" '
        'operator="in"><value> a </value><value><![CDATA[<b>]]></value></condition>'
        "</filter></entity></fetch>"
    )
    assert fetch.entity.filter is not None
    condition = fetch.entity.filter.items[0]
    assert isinstance(condition, ast.Condition) and condition.values == (" a ", "<b>")
