"""The paging cookie in Dataverse's `<cookie pagenumber=... pagingcookie=...>` form,
sent back the way the two stock clients do it (issue 11 A.3)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import Engine

from fetchxml.world import NOW, caller  # type: ignore[import-not-found]
from mailsignal.errors import FetchXmlError
from mailsignal.fetchxml.paging import annotation
from mailsignal.store.fetch import execute

QUERY = (
    '<fetch count="4"><entity name="email"><attribute name="subject"/>'
    '<order attribute="subject"/></entity></fetch>'
)
# dynamics-web-api 2.5, utils/Utility.ts: PAGING_COOKIE_REGEX and its escaping.
JS_COOKIE = re.compile(r'pagingcookie="(<cookie page="(\d+)".+</cookie>)')


def _run(engine: Engine, xml: str) -> Any:
    with engine.connect() as conn:
        return execute(conn, xml, caller("admin"), now=NOW)


def _python_sdk_next(xml: str, raw: str) -> str:
    """What powerplatform-dataverse-client 1.1's FetchXmlQuery does with the annotation."""
    outer = ET.fromstring(raw)  # noqa: S314 - the server's own annotation
    fetch = ET.fromstring(xml)  # noqa: S314 - the test's query
    fetch.set("paging-cookie", unquote(unquote(outer.get("pagingcookie", ""))))
    fetch.set("page", outer.get("pagenumber", ""))
    return ET.tostring(fetch, encoding="unicode")


def _js_next(xml: str, raw: str) -> str:
    """What dynamics-web-api 2.5's fetchAll does with it."""
    found = JS_COOKIE.search(unquote(unquote(raw)))
    assert found is not None
    cookie = re.sub(r"[<>\"']", lambda m: {"<": "&lt;", ">": "&gt;"}.get(m[0], "&quot;"), found[1])
    page = int(found[2]) + 1
    return xml.replace("<fetch ", f'<fetch paging-cookie="{cookie}" page="{page}" ', 1)


def test_annotation_has_dataverse_form(world: Engine) -> None:
    first = _run(world, QUERY)
    raw = annotation(first.paging_cookie)
    assert re.fullmatch(
        r'<cookie pagenumber="2" pagingcookie="%253Ccookie%2520page%253D%25221%2522[^"<>]+" '
        r'istracking="False" />',
        raw,
    )


@pytest.mark.parametrize("next_query", [_python_sdk_next, _js_next])
def test_both_clients_round_trip_the_cookie(world: Engine, next_query: Any) -> None:
    whole = [r["subject"] for r in _run(world, QUERY.replace('count="4"', 'count="5000"')).rows]
    xml, seen = QUERY, []
    for _ in range(10):
        result = _run(world, xml)
        seen += [r["subject"] for r in result.rows]
        if not result.more_records:
            break
        xml = next_query(QUERY, annotation(result.paging_cookie))
    assert seen == whole and len(whole) > 4


def test_a_forged_inner_cookie_is_refused(world: Engine) -> None:
    xml = QUERY.replace(
        "<fetch ",
        '<fetch page="2" paging-cookie="&lt;cookie page=&quot;1&quot;&gt;x&lt;/cookie&gt;" ',
    )
    with pytest.raises(FetchXmlError) as caught:
        _run(world, xml)
    assert caught.value.error_code == "0x80040203"
