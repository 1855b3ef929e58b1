"""The classifier's vocabulary: timeline events, rules, and how evidence combines.

Evidence is additive in log-odds (a naive-Bayes reading of independent signals): each
rule that fires adds a signed weight to a per-kind prior; the sign decides human or
machine, the size decides confidence. That keeps every verdict explainable as "these
rules fired with these weights" and lets a user switch a rule off without retuning
the others. Rules run in two passes: pass one reads only the event's own facts; pass
two reads the recipient's timeline together with pass-one verdicts (a later human
click corroborates an open; a honeypot hit condemns the burst around it).

What a rule may read is declared in the table (`Rule.reads`), and that is what makes
classifying cheap: most pass-one rules read only an event's `Features` (its kind, method,
user agent and network facts), which repeat from event to event (one proxy, one
gateway, one mail client at a time), so their answers are worked out once per distinct
`Features` and reused. Only the few rules that read the time, and the timeline rules,
run for every event.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, NamedTuple, cast

from ..model import Classification, EventKind, Evidence, Facts, Verdict

VERSION = "2026.11.3"

# Before any evidence: a click is more often a person than a pixel fetch is, because
# pixels are fetched by every proxy and prefetcher on delivery.
PRIOR = {EventKind.OPEN: 0.4, EventKind.CLICK: 0.8, EventKind.ATTACHMENT: 0.8, EventKind.REPLY: 3.0}
# Below this margin the evidence is too balanced to call.
UNKNOWN_MARGIN = 0.25


class Features(NamedTuple):
    """What a `reads="facts"` rule sees of one event: never its time, address or timeline.

    Fact values are what `Event.fact` returns, with the same defaults; flags are reduced
    to bool, as rules only test their truth.
    """

    kind: EventKind
    method: str
    honeypot: bool
    category: str  # ua.category, "unknown" when absent
    family: Any  # ua.family as stored (None when absent)
    agent: str  # how sentences name the agent: ua.family, else the UA's first 60 chars
    empty: bool  # ua.empty
    bare_mozilla: bool  # ua.bare_mozilla
    outdated_chrome: bool  # ua.outdated_chrome
    labels: frozenset[str]  # net.labels
    owner: Any  # net.owner


_features_of = functools.partial(tuple.__new__, Features)  # Features(...) minus arg parsing
_UA_FACTS = operator.itemgetter("category", "family", "empty", "bare_mozilla", "outdated_chrome")
_NET_FACTS = operator.itemgetter("labels", "owner")


def read_features(ev: Event) -> Features:
    facts = ev.facts
    try:  # as our enrichers write them: every key present (two C calls, not seven)
        category, family, empty, bare_mozilla, outdated_chrome = _UA_FACTS(facts["ua"])
        labels, owner = _NET_FACTS(facts["net"])
    except (KeyError, TypeError):  # a missing fact or namespace: Event.fact's defaults
        ua, net = facts.get("ua", {}), facts.get("net", {})
        category, family = ua.get("category", "unknown"), ua.get("family")
        empty, bare_mozilla = ua.get("empty"), ua.get("bare_mozilla")
        outdated_chrome = ua.get("outdated_chrome")
        labels, owner = net.get("labels"), net.get("owner")
    return _features_of(
        (
            ev.kind,
            ev.method,
            ev.honeypot,
            str(category),
            family,
            str(family or ev.user_agent[:60] or "(none)"),
            bool(empty),
            bool(bare_mozilla),
            bool(outdated_chrome),
            frozenset(labels or ()),
            owner,
        )
    )


_NO_HEADERS: dict[str, str] = {}  # a sentinel, never handed out: Event's default is a new {}


@dataclass(frozen=True, slots=True, init=False)
class Event:
    """One hit of one recipient, with its enrichment facts, as rules read it.

    `facts` must not be edited once the event is built: `features` is derived from them
    on first use and kept.
    """

    key: str
    kind: EventKind
    at: datetime
    ip: str
    user_agent: str
    method: str
    facts: Facts
    link_id: int | None = None
    honeypot: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    _features: Features | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(
        self,
        key: str,
        kind: EventKind,
        at: datetime,
        ip: str,
        user_agent: str,
        method: str,
        facts: Facts,
        link_id: int | None = None,
        honeypot: bool = False,
        headers: dict[str, str] = _NO_HEADERS,
    ) -> None:
        # The dataclass __init__, but each slot set through its own descriptor rather than
        # object.__setattr__ (which looks the name up first): 40% cheaper, and an event is
        # built for every hit and again for every reclassification. Still frozen.
        (
            set_key,
            set_kind,
            set_at,
            set_ip,
            set_user_agent,
            set_method,
            set_facts,
            set_link_id,
            set_honeypot,
            set_headers,
            set_features,
        ) = _EVENT_SLOTS
        set_key(self, key)
        set_kind(self, kind)
        set_at(self, at)
        set_ip(self, ip)
        set_user_agent(self, user_agent)
        set_method(self, method)
        set_facts(self, facts)
        set_link_id(self, link_id)
        set_honeypot(self, honeypot)
        set_headers(self, {} if headers is _NO_HEADERS else headers)
        set_features(self, None)

    @property
    def features(self) -> Features:
        features = self._features
        if features is None:
            features = read_features(self)
            object.__setattr__(self, "_features", features)
        return features

    def fact(self, namespace: str, name: str, default: Any = None) -> Any:
        return self.facts.get(namespace, {}).get(name, default)

    def labels(self) -> frozenset[str]:
        return self.features.labels


_EVENT_SLOTS = tuple(Event.__dict__[f.name].__set__ for f in fields(Event))


@dataclass(frozen=True, slots=True)
class Context:
    """What rules know about the email and recipient beyond the events."""

    sent_at: datetime | None
    link_count: int
    delivery_window_seconds: float = 10.0
    disabled: frozenset[str] = frozenset()
    now: datetime | None = None  # for time-based rules (no click after 7 days)


_at = operator.attrgetter("at")
_honeypot = operator.attrgetter("honeypot")
_kind = operator.attrgetter("kind")
_ip = operator.attrgetter("ip")


class Timeline:
    """The recipient's events in time order, plus pass-one verdicts once known.

    Indexes are built once per timeline so that timeline rules stay O(log n) per event:
    a delivery forwarded to a list, or hammered by a proxy, can carry thousands of events.
    `clicks` and `addresses` bound what any window can hold, so that burst rules skip the
    window altogether on the many timelines that cannot have a burst.
    """

    __slots__ = (
        "addresses",
        "clicks",
        "events",
        "first_human",
        "first_pass",
        "honeypots",
        "last_human_click",
        "times",
    )

    def __init__(self, events: Sequence[Event], first_pass: Sequence[Verdict] = ()) -> None:
        self.events = events
        # map/filter, not comprehensions: no Python frame per timeline (most hold 1-5).
        self.times = list(map(datetime.timestamp, map(_at, events)))
        self.honeypots = list(filter(_honeypot, events))
        # How many clicks (honeypots too) and distinct addresses (replies too) it holds.
        self.clicks = list(map(_kind, events)).count(EventKind.CLICK)
        self.addresses = len(set(map(_ip, events))) if len(events) > 1 else len(events)
        self.set_first_pass(first_pass)

    def set_first_pass(self, first_pass: Sequence[Verdict]) -> None:
        """Record pass-one verdicts (classify_timeline does, between its two passes)."""
        self.first_pass = first_pass
        self.first_human = self.last_human_click = -1
        if Verdict.HUMAN not in first_pass:  # one C-level scan settles most timelines
            return
        for i, verdict in enumerate(first_pass):
            if verdict is Verdict.HUMAN:
                self.first_human = i
                break
        events = self.events
        for i in range(min(len(events), len(first_pass)) - 1, -1, -1):
            if first_pass[i] is Verdict.HUMAN and events[i].kind is not EventKind.OPEN:
                self.last_human_click = i
                break

    def window(self, at: datetime, seconds: float) -> Sequence[Event]:
        """Events within +-seconds of `at`."""
        t = at.timestamp()
        lo = bisect.bisect_left(self.times, t - seconds)
        hi = bisect.bisect_right(self.times, t + seconds)
        return self.events[lo:hi]

    def around(self, index: int, seconds: float) -> Sequence[Event]:
        """Events within +-seconds of event `index`: `window` without re-reading its time."""
        times = self.times
        t = times[index]
        lo = bisect.bisect_left(times, t - seconds)
        return self.events[lo : bisect.bisect_right(times, t + seconds)]


FactCheck = Callable[[Features], str | None]
"""A `reads="facts"` rule's test: the sentence explaining why it fired, or None."""
Check = Callable[[Event, int, "Timeline", "Context"], str | None]
"""An `"event"` or `"timeline"` rule's test: the sentence explaining why it fired, or None."""
When = Callable[[Features], bool]
"""A `Rule.when`: whether an event with these features could make the rule fire."""
Reads = Literal["facts", "event", "timeline"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A stable id, the label it argues for and its weight (log-odds), a one-line
    description, where the signal is documented, and the check itself.

    `reads` says what the check is given: "facts", the event's `Features` only (pass
    one; its answer is reused for every event with the same features); "event", the
    event, its index, the timeline and the context (pass one: for rules that read the
    time); "timeline", the same in pass two, with the pass-one verdicts.

    `when`, for an "event" or "timeline" rule, is part of the rule: it fires only for
    events whose `Features` pass `when` (an old Chrome, a cloud network), and its check is
    not even called for the others, which saves a call per event where most fail it.
    """

    id: str
    verdict: Verdict
    weight: float
    description: str
    source: str
    check: FactCheck | Check
    kinds: frozenset[EventKind] = frozenset(EventKind)
    reads: Reads = "facts"
    when: When | None = None

    def __post_init__(self) -> None:
        if self.reads not in ("facts", "event", "timeline"):
            raise ValueError(f"rule {self.id}: reads={self.reads!r}")
        if self.when is not None and self.reads == "facts":
            raise ValueError(f"rule {self.id}: `when` is for event and timeline rules")

    @property
    def timeline(self) -> bool:
        """True: runs in pass two, after every event's pass one."""
        return self.reads == "timeline"


def combine(kind: EventKind, fired: Sequence[Evidence]) -> tuple[Verdict, float]:
    logit = PRIOR[kind] + sum(e.weight for e in fired)
    confidence = round(1.0 / (1.0 + math.exp(-abs(logit))), 3)
    if abs(logit) < UNKNOWN_MARGIN:
        return Verdict.UNKNOWN, confidence
    if logit < 0:
        return Verdict.MACHINE, confidence
    forward = any(e.verdict is Verdict.FORWARD and e.weight > 0 for e in fired)
    return (Verdict.FORWARD if forward else Verdict.HUMAN), confidence


# --- running the table -----------------------------------------------------------------
#
# An event's classification is a pure function of its `Features` (through the "facts"
# rules), the sentences of its "event" rules and the sentences of its "timeline" rules,
# each None or a string. Features repeat (a few hundred distinct values in 100k hits of
# the evaluation set), and so do the sentences, so what each step concludes is kept:
#
#   Features -> _Known: the facts rules' evidence, worked out once;
#   _Known + "event" sentences -> _PassOne: pass-one evidence and verdict;
#   _PassOne + "timeline" sentences -> the Classification itself.
#
# Per event, then, only the "event" and "timeline" checks run (9 or 10 of 27 rules, fewer
# where a rule's `when` rules it out for the event's features).
# The caches belong to the table compiled for one (rules, disabled) pair (`_Plan`), are
# bounded, and hold only immutable values: Classification and Evidence are frozen, so
# events with the same reasons share one object.

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
    """What the plan knows about one distinct Features value."""

    __slots__ = ("after", "kind", "linked_on", "plan", "rules", "runs", "timed", "timed_on")

    def __init__(self, plan: _Plan, features: Features) -> None:
        self.plan = plan
        self.kind = features.kind
        self.rules = rules = plan.kinds[features.kind]
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


class _Plan:
    """The rule table compiled for one (rules, disabled) pair, with what it has learnt."""

    __slots__ = ("kinds", "known", "size")

    def __init__(self, rules: Sequence[Rule], disabled: frozenset[str]) -> None:
        self.kinds: dict[EventKind, _KindPlan] = {}
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
        self.known: dict[Features, _Known] = {}
        self.size = 0

    def keep(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        if self.size >= _MAX_KNOWN:  # start afresh; callers still hold what they need
            self.known.clear()
            self.size = 0
        cache[key] = value
        self.size += 1

    def learn(self, features: Features) -> _Known:
        try:
            known = self.known.get(features)
        except TypeError:  # an unhashable fact value (not from our enrichers): no cache
            return _Known(self, features)
        if known is None:
            known = _Known(self, features)
            self.keep(self.known, features, known)
        return known


_PLANS: dict[tuple[int, frozenset[str]], tuple[Sequence[Rule], _Plan]] = {}
_last: tuple[Sequence[Rule], frozenset[str], _Plan] | None = None  # most callers pass the same


def _plan(rules: Sequence[Rule], disabled: frozenset[str]) -> _Plan:
    global _last
    if _last is not None and _last[0] is rules and _last[1] is disabled:
        return _last[2]
    if type(rules) is not tuple:  # a list may change between calls: compile every time
        return _Plan(rules, disabled)
    key = (id(rules), disabled)
    cached = _PLANS.get(key)
    if cached is not None and cached[0] is rules:  # holding `rules` keeps its id unique
        plan = cached[1]
    else:
        if len(_PLANS) >= 8:  # one table, one setting, in practice; tests vary them
            _PLANS.clear()
        plan = _Plan(rules, disabled)
        _PLANS[key] = (rules, plan)
    _last = (rules, disabled, plan)
    return plan


def classify_timeline(
    events: Sequence[Event], ctx: Context, rules: Sequence[Rule]
) -> list[Classification]:
    """Classify every event of one recipient's timeline (events sorted by time)."""
    plan = _plan(rules, ctx.disabled)
    learnt = plan.known
    timeline = Timeline(events)
    ones: list[_PassOne] = []
    verdicts: list[Verdict] = []
    said: list[str | None] = []
    say, clear = said.append, said.clear
    for i, ev in enumerate(events):
        features = ev._features  # the property's own cache, read without calling it
        if features is None:
            features = ev.features
        try:
            known = learnt[features]
        except (KeyError, TypeError):
            known = plan.learn(features)
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
