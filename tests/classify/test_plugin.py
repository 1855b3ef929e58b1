"""The plug-in claim: a new enricher and rules that read its facts, with no engine change.

Everything the classifier needs to know about the new facts is in the enricher's
declarations (`provides`), handed over as `pipeline.facts`; the rules name them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailsignal.classify import RULES, Context, Event, Rule, Timeline, classify_timeline
from mailsignal.classify.features import Features
from mailsignal.enrich import NetworkEnricher, Pipeline, UserAgentEnricher
from mailsignal.enrich.network import load_networks
from mailsignal.errors import ConfigError
from mailsignal.model import EventKind, FactKind, FactSpec, RawHit, TokenKind, Verdict

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
HOSTED, HOME = "203.0.113.7", "198.51.100.23"


class AsnEnricher:
    """A toy autonomous-system lookup: the shape of any enricher a newcomer would add."""

    namespace = "asn"
    provides = (
        FactSpec("number", FactKind.ANY, None, "autonomous system number; None when unknown"),
        FactSpec("hosting", FactKind.BOOL, False, "the AS rents out servers"),
    )

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.table = {HOSTED: (64500, True), HOME: (64501, False)}

    def enrich(self, hit: RawHit) -> dict[str, Any]:
        if self.fail:
            raise LookupError("asn table missing")
        number, hosting = self.table.get(hit.ip, (None, False))
        return {"number": number, "hosting": hosting}


CALLS: list[Any] = []


def hosting_click(f: Features) -> str | None:
    CALLS.append(f)
    if f["kind"] is not EventKind.OPEN and f["asn.hosting"]:
        return "Clicked from a hosting provider's network, where link scanners run."
    return None


def asn_hop(ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    if i and ev.fact("asn.number") != t.events[i - 1].fact("asn.number"):
        return f"Moved to AS{ev.fact('asn.number')} from the previous hit's network."
    return None


HOSTING = Rule(
    "asn.hosting_click",
    Verdict.MACHINE,
    -2.0,
    "A click from a hosting provider's network.",
    "test",
    hosting_click,
    frozenset({EventKind.CLICK}),
    facts=("kind", "asn.hosting"),
)
HOP = Rule(
    "asn.hop",
    Verdict.FORWARD,
    0.1,
    "A hit from another network than the one before.",
    "test",
    asn_hop,
    reads="timeline",
    lookups=("asn.number",),
)
TABLE = (*RULES, HOSTING, HOP)


def pipeline(fail: bool = False) -> Pipeline:
    return Pipeline([UserAgentEnricher(), NetworkEnricher(load_networks()), AsnEnricher(fail)])


def events(pipe: Pipeline, ips: list[str]) -> list[Event]:
    out = []
    for k, ip in enumerate(ips):
        at = SENT + timedelta(hours=1, minutes=k)
        hit = RawHit(f"h{k}", at, TokenKind.CLICK, 1, 1, ip, CHROME, "GET")
        out.append(Event(hit.hit_id, EventKind.CLICK, at, ip, CHROME, "GET", pipe.enrich(hit), 1))
    return out


CTX = Context(sent_at=SENT, link_count=1)


def test_a_new_enricher_and_its_rules_classify_with_no_engine_change() -> None:
    pipe = pipeline()
    assert pipe.facts["asn.hosting"].kind is FactKind.BOOL
    evs = events(pipe, [HOME, HOSTED, HOSTED])
    CALLS.clear()
    table = (*RULES, HOSTING, HOP)  # a table of its own: a plan with nothing learnt yet
    plugged = classify_timeline(evs, CTX, table, pipe.facts)
    fired = [{e.rule for e in r.fired} for r in plugged]
    assert ["asn.hosting_click" in f for f in fired] == [False, True, True]
    assert ["asn.hop" in f for f in fired] == [False, True, False]
    assert len(CALLS) == 2  # once per distinct Features (home, hosted), not per event
    # The standard rules see the same events exactly as before.
    standard = classify_timeline(evs, CTX, RULES)
    for before, after in zip(standard, plugged, strict=True):
        assert [e for e in after.fired if not e.rule.startswith("asn.")] == list(before.fired)


def test_a_failed_plugin_enricher_reads_as_missing_facts() -> None:
    pipe = pipeline(fail=True)
    evs = events(pipe, [HOME, HOSTED])
    assert evs[1].facts["asn"] == {"error": "LookupError: asn table missing"}
    results = classify_timeline(evs, CTX, TABLE, pipe.facts)
    assert all(not {"asn.hosting_click", "asn.hop"} & {e.rule for e in r.fired} for r in results)
    assert results == classify_timeline(events(pipeline(), [HOME, HOME]), CTX, TABLE, pipe.facts)


def test_without_the_enricher_its_rules_are_refused_by_name() -> None:
    evs = events(Pipeline.default(), [HOSTED])
    with pytest.raises(ConfigError, match=r"rule asn\.hosting_click reads 'asn\.hosting'"):
        classify_timeline(evs, CTX, TABLE)  # the standard declarations: no `asn`
