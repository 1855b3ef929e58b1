"""classify_timeline's caches change nothing: it must give what running every rule on every
event gives (the reference below), whatever repeats, is disabled or is missing.

The reference reads each declared fact from the stored dicts itself (not through the
compiled Features reader), runs every check in table order and combines, as the
classifier did before it learnt to reuse answers.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from mailsignal.classify import (
    RULE_IDS,
    RULES,
    VERSION,
    Context,
    Derived,
    Event,
    Features,
    Rule,
    Timeline,
    classify_timeline,
    combine,
    compiler,
)
from mailsignal.classify.rule import Check, FactCheck
from mailsignal.enrich import Pipeline
from mailsignal.model import (
    STANDARD_FACTS,
    Classification,
    EventKind,
    Evidence,
    FactKind,
    FactRegistry,
    RawHit,
    TokenKind,
    Verdict,
)

PIPE = Pipeline.default()
SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_MISSING = object()
KINDS: dict[FactKind, Any] = {
    FactKind.BOOL: bool,
    FactKind.STR: str,
    FactKind.LABELS: lambda v: frozenset(v or ()),
    FactKind.ANY: lambda v: v,
}
DERIVED = {d for r in RULES for d in r.facts if isinstance(d, Derived)}


def view(ev: Event, registry: FactRegistry = STANDARD_FACTS) -> dict[str, Any]:
    """Every declared fact of `ev` as rules should see it, read one by one from its dicts."""
    seen: dict[str, Any] = {"kind": ev.kind, "method": ev.method, "honeypot": ev.honeypot}
    for name, spec in registry.items():
        namespace, _, key = name.partition(".")
        space = ev.facts.get(namespace)
        value = space.get(key, _MISSING) if isinstance(space, dict) else _MISSING
        seen[name] = spec.default if value is _MISSING else KINDS[spec.kind](value)
    for derived in DERIVED:
        seen[derived.name] = derived.compute(ev, *(seen[name] for name in derived.reads))
    return seen


def reference(events: Sequence[Event], ctx: Context, rules: Sequence[Rule]) -> list[Classification]:
    def run(rule: Rule, ev: Event, i: int, t: Timeline) -> str | None:
        if rule.reads == "facts":
            return cast(FactCheck, rule.check)(cast(Features, view(ev)))
        if rule.when is not None and not rule.when(cast(Features, view(ev))):
            return None
        return cast(Check, rule.check)(ev, i, t, ctx)

    def evidence(passes: list[Rule], ev: Event, i: int, t: Timeline) -> tuple[list[Any], ...]:
        fired: list[Evidence] = []
        not_fired: list[str] = []
        for rule in passes:
            if rule.id in ctx.disabled or ev.kind not in rule.kinds:
                continue
            sentence = run(rule, ev, i, t)
            if sentence is None:
                not_fired.append(rule.id)
            else:
                fired.append(Evidence(rule.id, rule.verdict, rule.weight, sentence))
        return fired, not_fired

    own = [r for r in rules if not r.timeline]
    linked = [r for r in rules if r.timeline]
    bare = Timeline(events)
    first = [evidence(own, ev, i, bare) for i, ev in enumerate(events)]
    verdicts = [combine(ev.kind, f)[0] for ev, (f, _n) in zip(events, first, strict=True)]
    full = Timeline(events, verdicts)
    out = []
    for i, ev in enumerate(events):
        fired, not_fired = first[i]
        more, more_not = evidence(linked, ev, i, full)
        all_fired = tuple(fired + more)
        verdict, confidence = combine(ev.kind, all_fired)
        out.append(
            Classification(verdict, confidence, all_fired, tuple(not_fired + more_not), VERSION)
        )
    return out


def _check(events: Sequence[Event], ctx: Context, rules: Sequence[Rule] = RULES) -> None:
    fresh = [dataclasses.replace(e) for e in events]  # no features cached yet
    assert classify_timeline(events, ctx, rules) == reference(fresh, ctx, rules)


CONTEXTS = [
    Context(sent_at=SENT, link_count=3, now=SENT + timedelta(days=1)),
    Context(sent_at=SENT, link_count=2, now=SENT + timedelta(days=9)),
    Context(sent_at=None, link_count=0),
    Context(sent_at=SENT, link_count=1, delivery_window_seconds=30.0),
]


def _hits(seed: int, n: int) -> list[Event]:
    """n events of one recipient from a pool of agents and addresses, so they repeat."""
    rng = random.Random(seed)
    agents = [
        "Mozilla/5.0",
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/72.0.3626.109 Safari/537.36",
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "python-requests/2.32.3",
        "",
        "Barracuda Sentinel (EE)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0",
    ]
    addresses = [
        "104.28.28.10",
        "40.107.22.51",
        "3.5.140.2",
        "66.249.84.20",
        "198.51.100.23",
        "192.0.2.80",
    ]
    events = []
    at = SENT + timedelta(seconds=rng.choice([-600, 0, 2, 40]))
    for k in range(n):
        at += timedelta(seconds=rng.choice([0.0, 0.4, 1.5, 9.9, 10.0, 61, 700, 86_400]))
        kind = rng.choice([TokenKind.OPEN, TokenKind.CLICK, TokenKind.CLICK])
        link = rng.randint(1, 3) if kind is TokenKind.CLICK else None
        ua, ip = rng.choice(agents), rng.choice(addresses)
        method = rng.choice(["GET", "GET", "HEAD"])
        hit = RawHit(f"r{seed}-{k}", at, kind, 1, link, ip, ua, method)
        events.append(
            Event(
                hit.hit_id,
                EventKind.OPEN if kind is TokenKind.OPEN else EventKind.CLICK,
                at,
                ip,
                ua,
                method,
                PIPE.enrich(hit),
                link,
                honeypot=kind is TokenKind.CLICK and rng.random() < 0.05,
            )
        )
    return events


SEEDS = range(60)


def _damaged(facts: dict[str, Any], how: int) -> dict[str, Any]:
    """Facts as older rows or failed enrichers leave them: the declared defaults apply."""
    ua, net = facts["ua"], facts["net"]
    return [
        {"ua": {"error": "KeyError: 'x'"}, "net": net},  # the ua enricher failed
        {"ua": ua, "net": {"error": "ValueError: y"}},
        {"ua": {k: v for k, v in ua.items() if k != "family"}, "net": net},  # an older row
        {"ua": ua, "net": {**net, "labels": None}},
        {"ua": None, "net": net},  # not a namespace at all
        {"net": net},
    ][how % 6]


@pytest.mark.parametrize("seed", SEEDS)
def test_same_on_random_timelines(seed: int) -> None:
    events = _hits(seed, 1 + seed % 12)
    for ctx in CONTEXTS:
        _check(events, ctx)
        _check(events, dataclasses.replace(ctx, disabled=frozenset({RULES[seed % 27].id})))
        _check(events, ctx, [r for r in RULES if r.id != RULES[seed % 27].id])  # a list
        _check([dataclasses.replace(e, facts={}) for e in events], ctx)
        damaged = [
            dataclasses.replace(e, facts=_damaged(e.facts, seed + i)) for i, e in enumerate(events)
        ]
        _check(damaged, ctx)


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_each_rule_declares_what_it_reads(rule: Rule) -> None:
    # Alone, a rule's Features hold only what it names: reading anything else is a KeyError.
    for seed in SEEDS[:30]:
        for ctx in CONTEXTS:
            _check(_hits(seed, 1 + seed % 12), ctx, (rule,))


def test_the_random_timelines_make_every_rule_fire() -> None:
    fired = {
        e.rule
        for seed in SEEDS
        for ctx in CONTEXTS
        for result in classify_timeline(_hits(seed, 1 + seed % 12), ctx, RULES)
        for e in result.fired
    }
    assert fired == RULE_IDS


def test_same_when_the_caches_keep_starting_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "_MAX_KNOWN", 3)
    monkeypatch.setattr(compiler, "_PLANS", {})
    monkeypatch.setattr(compiler, "_last", None)
    for seed in range(10):
        _check(_hits(seed, 8), CONTEXTS[seed % len(CONTEXTS)])


def test_unhashable_facts_are_classified_without_the_cache() -> None:
    [event] = _hits(1, 1)
    odd = dataclasses.replace(event, facts={**event.facts, "net": {"labels": [], "owner": ["x"]}})
    _check([odd], CONTEXTS[0])


def test_events_with_the_same_reasons_share_one_classification() -> None:
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    hit = RawHit("h", at, TokenKind.OPEN, 1, None, "198.51.100.23", "Mozilla/5.0", "GET")
    facts = PIPE.enrich(hit)
    events = [
        Event(f"h{i}", EventKind.OPEN, at + timedelta(days=i), hit.ip, hit.user_agent, "GET", facts)
        for i in range(3)
    ]
    first, second, third = classify_timeline(events, CONTEXTS[0], RULES)
    assert first is second is third  # a day apart, nothing about them differs
    assert first == reference(events, CONTEXTS[0], RULES)[0]


def test_when_is_part_of_the_rule_and_spares_the_check() -> None:
    called: list[str] = []

    def slow(ev: Event, _i: int, _t: Timeline, _c: Context) -> str | None:
        called.append(ev.key)
        return "fired"

    rule = Rule(
        "x.when",
        Verdict.MACHINE,
        -1.0,
        "d",
        "s",
        slow,
        reads="event",
        when=lambda f: f["ua.empty"],
        facts=("ua.empty",),
    )
    events = _hits(3, 12)
    results = classify_timeline(events, CONTEXTS[0], (rule,))
    empty = [e.key for e in events if e.features["ua.empty"]]
    assert called == empty and 0 < len(empty) < len(events)
    assert results == reference(events, CONTEXTS[0], (rule,))
    assert [r.fired != () for r in results] == [e.key in empty for e in events]
    # The table's own checks also test what their `when` says, so `when` changes nothing.
    for guarded in (r for r in RULES if r.when is not None):
        bare = dataclasses.replace(guarded, when=None)
        table = tuple(bare if r is guarded else r for r in RULES)
        for seed in SEEDS[:20]:
            timeline = _hits(seed, 1 + seed % 12)
            assert classify_timeline(timeline, CONTEXTS[0], table) == classify_timeline(
                timeline, CONTEXTS[0], RULES
            )


def test_a_rule_must_say_what_it_reads() -> None:
    with pytest.raises(ValueError, match="reads='timelines'"):
        Rule("x.y", Verdict.MACHINE, -1.0, "d", "s", lambda f: None, reads="timelines")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`when`"):
        Rule("x.y", Verdict.MACHINE, -1.0, "d", "s", lambda f: None, when=lambda f: True)
    with pytest.raises(ValueError, match="tuple of names"):
        Rule("x.y", Verdict.MACHINE, -1.0, "d", "s", lambda f: None, facts="ua.category")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`lookups`"):
        Rule("x.y", Verdict.MACHINE, -1.0, "d", "s", lambda f: None, lookups=("ua.os",))


def test_event_is_still_a_frozen_dataclass_with_the_same_constructor() -> None:
    params = list(inspect.signature(Event).parameters.values())
    init_fields = [f for f in dataclasses.fields(Event) if f.init]
    assert [p.name for p in params] == [f.name for f in init_fields]
    values = {f.name: object() for f in init_fields}
    assert all(getattr(Event(**values), name) is v for name, v in values.items())
    event = Event("k", EventKind.OPEN, SENT, "198.51.100.23", "ua", "GET", {})
    assert event.headers == {} and event.link_id is None and event.honeypot is False
    assert event.headers is not Event("k", EventKind.OPEN, SENT, "", "", "", {}).headers
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.key = "other"  # type: ignore[misc]
    changed = dataclasses.replace(event, facts={"ua": {"category": "browser"}})
    assert event.features["ua.category"] == "unknown"
    assert changed.features["ua.category"] == "browser"
