"""FetchXML input/expected pairs (tests/fixtures/fetchxml/*.cases), run on SQLite and
PostgreSQL against the world in conftest.py, plus paging and the compiled SQL's shape.

A case file holds blocks like (sqlglot's fixture pairs, with a header):

    === a name
    caller: rep_la            admin | rep_la | rep_akl (their stored time zone)...
    tz: Pacific/Auckland      ...unless overridden
    only: subject, c.fullname compare these output columns only (default: all)
    <fetch>...</fetch>
    ---
    {"subject": "..."}        the expected rows in order, one JSON object per line
    error: 0x80041103 text    or the expected error code and the start of its message
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from fetchxml.world import NOW, caller  # type: ignore[import-not-found]
from mailsignal.errors import FetchXmlError
from mailsignal.fetchxml import compile_fetch, parse
from mailsignal.store.catalog import CATALOG
from mailsignal.store.fetch import execute

CASES = Path(__file__).parents[1] / "fixtures" / "fetchxml"


@dataclass
class Case:
    file: str
    name: str
    xml: str
    caller: str = "admin"
    tz: str | None = None
    only: list[str] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(CASES.glob("*.cases")):
        for block in path.read_text().split("\n=== ")[1:]:
            head, _, expected = block.partition("\n---\n")
            name, *lines = head.splitlines()
            meta: dict[str, str] = {}
            xml: list[str] = []
            for line in lines:
                if xml or line.lstrip().startswith("<"):
                    xml.append(line)
                elif ":" in line:
                    key, _, value = line.partition(":")
                    meta[key.strip()] = value.strip()
            case = Case(path.stem, name.strip(), "\n".join(xml).strip())
            case.caller = meta.get("caller", "admin")
            case.tz = meta.get("tz")
            case.only = [c.strip() for c in meta["only"].split(",")] if "only" in meta else None
            for line in expected.strip().splitlines():
                if line.startswith("error:"):
                    code, _, message = line.removeprefix("error:").strip().partition(" ")
                    case.error = (code, message)
                elif line.strip() and not line.startswith("#"):
                    case.rows.append(json.loads(line))
            cases.append(case)
    return cases


def plain(value: Any) -> Any:
    """A result value as the fixtures write it: ids as text, instants as ISO `Z`."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 4)
    return value


def run_case(engine: Engine, case: Case) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = execute(conn, case.xml, caller(case.caller, case.tz), now=NOW)
    keep = case.only or list(result.columns)
    return [{k: plain(row[k]) for k in keep} for row in result.rows]


ALL = load_cases()


def test_fixture_files_hold_cases() -> None:
    assert len(ALL) >= 250
    assert len({c.id for c in ALL}) == len(ALL), "case names must be unique per file"
    for case in ALL:
        assert case.xml.startswith(("<fetch", "<!DOCTYPE")), case.id
        assert case.xml.endswith("</fetch>"), case.id
    assert sum(1 for c in ALL if c.rows) >= 100  # most cases expect rows, not silence


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_case(world: Engine, case: Case) -> None:
    if case.error is not None:
        with pytest.raises(FetchXmlError) as caught:
            run_case(world, case)
        code, message = case.error
        assert caught.value.error_code == code, str(caught.value)
        assert caught.value.message.startswith(message), caught.value.message
        return
    assert run_case(world, case) == case.rows


# --- the compiled SQL -------------------------------------------------------------------

ENGAGED = (CASES / "views.cases").read_text().split("<fetch", 1)[1].split("</fetch>")[0]


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()])
def test_values_are_bound_and_aliases_generated(dialect: Any) -> None:
    xml = """<fetch><entity name="email"><attribute name="subject" alias="s"/>
      <filter><condition attribute="subject" operator="eq" value="x' OR '1'='1"/></filter>
      <link-entity name="contact" from="contactid" to="regardingobjectid" alias="Robert_tables">
        <attribute name="fullname"/></link-entity></entity></fetch>"""
    compiled = compile_fetch(
        parse(xml), caller("rep_la"), CATALOG, now=NOW, dialect_name=dialect.name
    )
    sql = str(compiled.select.compile(dialect=dialect))
    assert "OR '1'='1" not in sql and "Robert_tables" not in sql
    assert " AS t0" in sql and " AS t1" in sql
    assert compiled.columns == ("s", "Robert_tables.fullname", "activityid")


def test_compile_requires_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        compile_fetch(
            parse("<fetch><entity name='email'/></fetch>"),
            caller("admin"),
            CATALOG,
            now=datetime(2026, 1, 1),
            dialect_name="sqlite",
        )


def test_engaged_view_is_verbatim() -> None:
    assert ENGAGED.startswith(' version="1.0" output-format="xml-platform" mapping="logical"')
