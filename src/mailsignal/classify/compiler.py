"""The rule table compiled into a plan that remembers what it has worked out, and
`classify_timeline`, which runs it.

An event's classification is a pure function of its features key (through the "facts"
rules), the sentences of its "event" rules and the sentences of its "timeline" rules,
each None or a string. Keys repeat (a few hundred distinct values in 100k hits of
the evaluation set), and so do the sentences, so what each step concludes is kept:

  key -> _Known: the facts rules' evidence and the Features rules read, worked out once;
  _Known + "event" sentences -> _PassOne: pass-one evidence and verdict;
  _PassOne + "timeline" sentences -> the Classification itself.

Per event, then, only the "event" and "timeline" checks run (9 or 10 of 27 rules, fewer
where a rule's `when` rules it out for the event's features).
A plan belongs to one (rules, disabled, declared facts) triple. Compiling checks every
enabled rule's reads against the declarations and picks the Features layout (the union of
what the enabled rules read, features.py). Its caches are bounded and hold only
immutable values: Classification and Evidence are frozen, so events with the same reasons
share one object.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, cast

from ..errors import ConfigError
from ..model import STANDARD_FACTS, Classification, EventKind, Evidence, FactRegistry, Verdict
from .events import SET_FEATURES, Context, Event, Timeline
from .features import Features, Key, Read, layout_for, unknown_reads
from .rule import VERSION, Check, FactCheck, Rule, When, combine

_Meta = tuple[str, Verdict, float]  # a rule's id, the verdict it argues for, its weight
_Said = tuple[str | None, ...]  # the sentence of each rule of a step, or None
_MAX_KNOWN = 20_000  # cached values per plan before it starts afresh


def _said(metas: Sequence[_Meta], said: _Said, fired: list[Evidence], not_fired: list[str]) -> None:
    for (rule_id, verdict, weight), sentence in zip(metas, said, strict=True):
        if sentence is None:
            not_fired.append(rule_id)
        else:
            fired.append(Evidence(rule_id, verdict, weight, sentence))


class _Step(NamedTuple):
    """An "event" or "timeline" rule as the plan runs it."""

    meta: _Meta
    check: Check
    when: When | None  # Rule.when: unless it holds, the check cannot fire


class _KindPlan(NamedTuple):
    """The enabled rules for one event kind, in table order (the order of reasons)."""

    runs: tuple[tuple[tuple[_Meta, FactCheck], ...], ...]  # facts rules around `timed`
    timed: tuple[_Step, ...]  # pass one, "event" rules
    linked: tuple[_Step, ...]  # pass two, "timeline" rules


def _applicable(steps: Sequence[_Step], features: Features) -> tuple[int, ...]:
    """Which of `steps` can fire for these features (the others are silent: not fired)."""
    return tuple(i for i, step in enumerate(steps) if step.when is None or step.when(features))


def _in_full(steps: Sequence[_Step], on: Sequence[int], said: _Said) -> _Said:
    """The sentences of every step, from those of the applicable ones."""
    full: list[str | None] = [None] * len(steps)
    for i, sentence in zip(on, said, strict=True):
        full[i] = sentence
    return tuple(full)


class _Known:
    """What the plan knows about one distinct key, and its Features (which events share)."""

    __slots__ = (
        "after",
        "features",
        "kind",
        "linked_on",
        "plan",
        "rules",
        "runs",
        "timed",
        "timed_on",
    )

    def __init__(self, plan: _Plan, key: Key) -> None:
        self.plan = plan
        self.features = features = plan.view(key)
        self.kind = kind = features["kind"]
        self.rules = rules = plan.kinds[kind]
        runs: list[tuple[tuple[Evidence, ...], tuple[str, ...]]] = []
        for run in rules.runs:
            fired: list[Evidence] = []
            not_fired: list[str] = []
            _said([meta for meta, _c in run], tuple(c(features) for _m, c in run), fired, not_fired)
            runs.append((tuple(fired), tuple(not_fired)))
        self.runs = tuple(runs)
        # The "event" and "timeline" checks worth calling for these features, in order.
        self.timed_on = _applicable(rules.timed, features)
        self.timed = tuple(rules.timed[i].check for i in self.timed_on)
        self.linked_on = _applicable(rules.linked, features)
        self.after: dict[_Said, _PassOne] = {}

    def pass_one(self, timed: _Said) -> _PassOne:
        known = self.after.get(timed)
        if known is None:
            known = _PassOne(self, timed)
            self.plan.keep(self.after, timed, known)
        return known


class _PassOne:
    """Pass one for one _Known and the sentences of its "event" checks."""

    __slots__ = ("after", "fired", "known", "linked", "not_fired", "verdict")

    def __init__(self, known: _Known, timed: _Said) -> None:
        self.known = known
        rules = known.rules
        self.linked = tuple(rules.linked[i].check for i in known.linked_on)
        fired, not_fired = list(known.runs[0][0]), list(known.runs[0][1])
        for step, sentence, (more, more_not) in zip(
            rules.timed, _in_full(rules.timed, known.timed_on, timed), known.runs[1:], strict=True
        ):
            _said((step.meta,), (sentence,), fired, not_fired)
            fired += more
            not_fired += more_not
        self.fired, self.not_fired = tuple(fired), tuple(not_fired)
        self.verdict = combine(known.kind, fired)[0]
        self.after: dict[_Said, Classification] = {}

    def classification(self, linked: _Said) -> Classification:
        result = self.after.get(linked)
        if result is None:
            known = self.known
            steps = known.rules.linked
            fired, not_fired = list(self.fired), list(self.not_fired)
            _said(
                [step.meta for step in steps],
                _in_full(steps, known.linked_on, linked),
                fired,
                not_fired,
            )
            verdict, confidence = combine(known.kind, fired)
            result = Classification(verdict, confidence, tuple(fired), tuple(not_fired), VERSION)
            known.plan.keep(self.after, linked, result)
        return result


def _check_reads(rule: Rule, facts: FactRegistry) -> None:
    """Refuse a rule that reads a fact no enricher declares: without the check it would
    read the default on every event and never say why."""
    unknown = unknown_reads(facts, rule.facts)
    unknown += [name for name in rule.lookups if name not in facts and name not in unknown]
    if unknown:
        raise ConfigError(
            f"rule {rule.id} reads {', '.join(map(repr, unknown))}, which no enricher declares "
            f"(declared: {', '.join(facts)}); add the enricher that provides it, or "
            "disable the rule",
            detail={"rule": rule.id, "undeclared": unknown},
        )


class _Plan:
    """The rule table compiled for one (rules, disabled, facts), with what it has learnt."""

    __slots__ = ("features", "kinds", "known", "read", "size", "view")

    def __init__(
        self, rules: Sequence[Rule], disabled: frozenset[str], facts: FactRegistry
    ) -> None:
        self.kinds: dict[EventKind, _KindPlan] = {}
        reads: set[Read] = set()
        for rule in rules:
            if rule.id not in disabled:
                _check_reads(rule, facts)
                reads.update(rule.facts)
        layout = layout_for(facts, reads)
        self.read, self.view, self.features = layout.read, layout.view, layout.features
        for kind in EventKind:
            runs: list[tuple[tuple[_Meta, FactCheck], ...]] = []
            run: list[tuple[_Meta, FactCheck]] = []
            timed: list[_Step] = []
            linked: list[_Step] = []
            for rule in rules:
                if rule.id in disabled or kind not in rule.kinds:
                    continue
                meta = (rule.id, rule.verdict, rule.weight)
                if rule.reads == "facts":
                    run.append((meta, cast(FactCheck, rule.check)))
                    continue
                step = _Step(meta, cast(Check, rule.check), rule.when)
                if rule.reads == "event":
                    runs.append(tuple(run))
                    run = []
                    timed.append(step)
                else:
                    linked.append(step)
            runs.append(tuple(run))
            self.kinds[kind] = _KindPlan(tuple(runs), tuple(timed), tuple(linked))
        self.known: dict[Key, _Known] = {}
        self.size = 0

    def keep(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if self.size >= _MAX_KNOWN:  # start afresh; callers still hold what they need
            self.known.clear()
            self.size = 0
        cache[key] = value
        self.size += 1

    def learn(self, key: Key) -> _Known:
        try:
            known = self.known.get(key)
        except TypeError:  # an unhashable fact value (not from our enrichers): no cache
            return _Known(self, key)
        if known is None:
            known = _Known(self, key)
            self.keep(self.known, key, known)
        return known


_PlanKey = tuple[int, frozenset[str], tuple[tuple[str, Any], ...]]
_PLANS: dict[_PlanKey, tuple[Sequence[Rule], _Plan]] = {}
# What most callers pass every time, checked by identity before anything is hashed.
_last: tuple[Sequence[Rule], frozenset[str], FactRegistry, _Plan] | None = None


def _plan(rules: Sequence[Rule], disabled: frozenset[str], facts: FactRegistry) -> _Plan:
    global _last
    last = _last
    if last is not None and last[0] is rules and last[1] is disabled and last[2] is facts:
        return last[3]
    if type(rules) is not tuple:  # a list may change between calls: compile every time
        return _Plan(rules, disabled, facts)
    # Declarations by value: each pipeline builds its own registry, alike for the same
    # enrichers, and a new pipeline must not cost a new plan (nor new Features).
    key = (id(rules), disabled, tuple(facts.items()))
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is rules:  # holding `rules` keeps its id unique
        plan = cached[1]
    else:
        if len(_PLANS) >= 8:  # one table, one setting, in practice; tests vary them
            _PLANS.clear()
        plan = _Plan(rules, disabled, facts)
        _PLANS[key] = (rules, plan)
    if type(facts) is MappingProxyType:  # a dict may change between calls: no shortcut
        _last = (rules, disabled, facts, plan)
    return plan


def classify_timeline(
    events: Sequence[Event],
    ctx: Context,
    rules: Sequence[Rule],
    facts: FactRegistry = STANDARD_FACTS,
) -> list[Classification]:
    """Classify every event of one recipient's timeline (events sorted by time).

    `facts` are the declarations of the enrichers that wrote the events' facts
    (`Pipeline.facts`); every enabled rule must read only facts declared there.
    """
    plan = _plan(rules, ctx.disabled, facts)
    learnt, read, layout = plan.known, plan.read, plan.features
    timeline = Timeline(events)
    ones: list[_PassOne] = []
    verdicts: list[Verdict] = []
    said: list[str | None] = []
    say, clear = said.append, said.clear
    for i, ev in enumerate(events):
        # Read here, not in a loop of its own: pass one's checks read their own event
        # (an "event" rule is about its time); pass two's find every event's features set.
        features = ev._features
        if features.__class__ is layout:  # read before, for rules reading the same
            try:
                known = learnt[features.key]
            except (KeyError, TypeError):
                known = plan.learn(features.key)
        else:
            key = read(ev)
            try:
                known = learnt[key]
            except (KeyError, TypeError):
                known = plan.learn(key)
            SET_FEATURES(ev, known.features)
        clear()
        for check in known.timed:
            say(check(ev, i, timeline, ctx))
        timed = tuple(said)
        one = known.after.get(timed)
        if one is None:
            one = known.pass_one(timed)
        ones.append(one)
        verdicts.append(one.verdict)
    timeline.set_first_pass(verdicts)
    out: list[Classification] = []
    for i, ev in enumerate(events):
        one = ones[i]
        clear()
        for check in one.linked:
            say(check(ev, i, timeline, ctx))
        linked = tuple(said)
        result = one.after.get(linked)
        out.append(result if result is not None else one.classification(linked))
    return out
