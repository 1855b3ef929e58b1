"""Paging: cookies (keyset) against simple paging, top, totals, distinct and aggregates."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from sqlalchemy import Engine

from fetchxml.world import NOW, caller, uid  # type: ignore[import-not-found]
from mailsignal.errors import FetchXmlError
from mailsignal.fetchxml import codes as fx_codes
from mailsignal.store.fetch import execute

PAGED = """<fetch count="{count}" page="{page}"{cookie}{extra}>
  <entity name="{entity}">
    {body}
  </entity>
</fetch>"""


def _page(
    engine: Engine,
    entity: str,
    body: str,
    count: int,
    page: int,
    cookie: str | None = None,
    extra: str = "",
    who: str = "admin",
) -> Any:
    attr = f' paging-cookie="{cookie}"' if cookie else ""
    xml = PAGED.format(count=count, page=page, cookie=attr, extra=extra, entity=entity, body=body)
    with engine.connect() as conn:
        return execute(conn, xml, caller(who), now=NOW)


def _all_pages(
    engine: Engine,
    entity: str,
    body: str,
    count: int,
    *,
    use_cookie: bool,
    key: str,
    who: str = "admin",
) -> list[Any]:
    seen: list[Any] = []
    page, cookie = 1, None
    while True:
        result = _page(engine, entity, body, count, page, cookie if use_cookie else None, who=who)
        assert len(result.rows) <= count
        seen += [tuple(r[k] for k in key.split(",")) for r in result.rows]
        if not result.more_records:
            assert result.paging_cookie is None
            return seen
        assert result.paging_cookie is not None
        page, cookie = page + 1, result.paging_cookie
        assert page < 20, "paging does not end"


ORDERINGS = [
    ("email", '<attribute name="subject"/><order attribute="subject"/>', "subject"),
    (
        "email",
        '<attribute name="lastopenedtime"/><order attribute="lastopenedtime" descending="true"/>',
        "activityid",
    ),
    (
        "email",
        '<attribute name="opencount"/><order attribute="directioncode"/>'
        '<order attribute="opencount" descending="true"/>',
        "activityid",
    ),
    (
        "contact",
        '<attribute name="fullname"/><order attribute="fullname"/>'
        '<link-entity name="email" from="regardingobjectid" to="contactid" link-type="outer" '
        'alias="e"><attribute name="subject"/><order attribute="senton"/></link-entity>',
        "contactid,e.subject",
    ),
]


@pytest.mark.parametrize("count", [1, 3, 4])
@pytest.mark.parametrize(("entity", "body", "key"), ORDERINGS)
def test_cookie_pages_equal_one_big_page(
    world: Engine, entity: str, body: str, key: str, count: int
) -> None:
    whole = _all_pages(world, entity, body, 5000, use_cookie=True, key=key)
    assert len(whole) == len(set(whole)) and len(whole) >= 5
    assert _all_pages(world, entity, body, count, use_cookie=True, key=key) == whole
    assert _all_pages(world, entity, body, count, use_cookie=False, key=key) == whole


def test_cookie_is_opaque_and_round_trips(world: Engine) -> None:
    body = '<attribute name="subject"/><order attribute="subject"/>'
    first = _page(world, "email", body, 4, 1)
    assert first.more_records and first.paging_cookie and first.page == 1
    assert "<" not in first.paging_cookie and "&" not in first.paging_cookie
    second = _page(world, "email", body, 4, 2, first.paging_cookie)
    assert [r["subject"] for r in second.rows] == [
        "Inbound question",
        "Kia ora from Auckland",
        "Old newsletter",
        "Pricing follow-up",
    ]
    # The cookie names the page it ends: used for page 3 it is ignored (simple paging).
    third = _page(world, "email", body, 4, 3, first.paging_cookie)
    assert [r["subject"] for r in third.rows] == ["Quarterly review", "Re: 100% discount?"]
    assert not third.more_records


@pytest.mark.parametrize(
    "cookie",
    [
        "not base64!",
        "e30",
        "eyJwIjoxLCJrIjoiJyBPUiAxPTEiLCJmIjoieCJ9",
        "W10",
        "eyJwIjowLCJrIjpbXSwiZiI6IiJ9",
    ],
)
def test_bad_cookie_is_invalid_argument(world: Engine, cookie: str) -> None:
    with pytest.raises(FetchXmlError) as caught:
        _page(world, "email", '<order attribute="subject"/>', 2, 2, cookie)
    assert caught.value.error_code == "0x80040203"


def test_cookie_values_are_typed_not_spliced(world: Engine) -> None:
    """A forged cookie with SQL in a key value is just a (bound) string or refused."""
    body = '<attribute name="subject"/><order attribute="subject"/>'
    good = _page(world, "email", body, 2, 1).paging_cookie
    doc = json.loads(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    doc["k"][0] = "z' OR '1'='1"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    assert _page(world, "email", body, 2, 2, forged).rows == []  # nothing sorts after "z'..."
    doc["k"][1] = "'; DROP TABLE email; --"
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    with pytest.raises(FetchXmlError):
        _page(world, "email", body, 2, 2, forged)


def test_total_record_count_and_its_cap(world: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _page(
        world, "email", "<attribute name='subject'/>", 3, 1, extra=' returntotalrecordcount="true"'
    )
    assert (result.total_record_count, result.total_record_count_limit_exceeded) == (10, False)
    assert len(result.rows) == 3 and result.more_records
    monkeypatch.setattr(fx_codes, "MAX_TOTAL_RECORD_COUNT", 4)
    capped = _page(
        world, "email", "<attribute name='subject'/>", 3, 1, extra=' returntotalrecordcount="true"'
    )
    assert (capped.total_record_count, capped.total_record_count_limit_exceeded) == (4, True)
    rep = _page(
        world,
        "email",
        "<attribute name='subject'/>",
        3,
        1,
        extra=' returntotalrecordcount="true"',
        who="rep_akl",
    )
    assert (rep.total_record_count, rep.more_records) == (3, False)


def test_top_returns_n_rows_without_more_records(world: Engine) -> None:
    xml = '<fetch top="2"><entity name="email"><order attribute="senton"/></entity></fetch>'
    with world.connect() as conn:
        result = execute(conn, xml, caller("admin"), now=NOW)
    assert [r["activityid"] for r in result.rows] == [uid("e", 9), uid("e", 8)]
    assert not result.more_records and result.paging_cookie is None


def test_distinct_and_aggregate_page_by_offset(world: Engine) -> None:
    body = '<attribute name="ownerid"/><order attribute="ownerid"/>'
    xml = f'<fetch distinct="true" count="2" page="1"><entity name="email">{body}</entity></fetch>'
    with world.connect() as conn:
        first = execute(conn, xml, caller("admin"), now=NOW)
        second = execute(conn, xml.replace('page="1"', 'page="2"'), caller("admin"), now=NOW)
    assert first.columns == ("ownerid",)  # no primary key under distinct
    assert [r["ownerid"] for r in first.rows + second.rows] == [uid("5e", n) for n in (1, 2, 3)]
    assert first.more_records and first.paging_cookie is None and not second.more_records
