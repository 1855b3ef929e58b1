"""Precision and recall of "a person engaged" on the labelled set, against three baselines.

    .venv/bin/python bench/accuracy.py [--emails 5000] [--seed 20261127] [--examples 5]
                                       [--dump verdicts.jsonl] [--ip-storage truncated]

`--dump` writes every event's facts and classification (verdict, confidence, fired rules
with their sentences, rules not fired, classifier version), one JSON line per event in a
fixed order: two runs that classify alike give byte-identical files (`cmp`), which is how
a change to the classifier or the enrichers that must not change a verdict is checked.
`--ip-storage` (full, truncated, none; default the setting's default) classifies events
as ingest stores them under that `ip_storage`: the address cut down, the pseudonyms the
timeline rules compare in the facts (pipeline/rows.IpPolicy). The three dumps are equal.

Runs the real pipeline in memory, recipient timeline by recipient timeline, as ingest
does: `Pipeline.default().enrich` -> `Event` -> `classify_timeline(events, Context, RULES)`
with default settings (honeypot off) and `now` = the end of the generated period.

Positive class: an event caused by a person (ground truth `human` or `forward`; verdict
`human` or `forward`; `unknown` counts as not a person, as the human counters do). An
email is engaged when any of its events is. Baselines, on the same events:

- every hit is a person (Dynamics 365, listmonk, Postal: raw counters);
- the "1 < opencount < 20" view filter people put on raw counters: an email is engaged,
  and all its events count, when its raw open count is in (1, 20);
- an Apple-only MPP flag (SendGrid `sg_machine_open`): an open with UA exactly
  "Mozilla/5.0" from an Apple egress address is a machine, everything else a person.

Targets (issue #3): opens precision >= 0.95 at recall >= 0.90; clicks precision >= 0.97
at recall >= 0.95; every baseline beaten by a clear margin.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evalset import SCENARIOS, SEED, EvalSet, Hit, generate

from mailsignal.classify import RULES, VERSION, Context, Event, classify_timeline, disabled_rules
from mailsignal.classify.rule import PRIOR, UNKNOWN_MARGIN
from mailsignal.enrich import Pipeline
from mailsignal.model import Classification, EventKind, Facts, RawHit, TokenKind, Verdict
from mailsignal.pipeline.rows import IpPolicy
from mailsignal.settings import Settings

PERSON = (Verdict.HUMAN, Verdict.FORWARD)
KINDS = (("opens", EventKind.OPEN), ("clicks", EventKind.CLICK))
TARGETS = {"opens": (0.95, 0.90), "clicks": (0.97, 0.95)}  # (precision, recall)


@dataclass(frozen=True, slots=True)
class Scored:
    """One hit with its facts, MailSignal's verdict and the rules that fired."""

    email: int
    hit: Hit
    facts: Facts
    result: Classification

    @property
    def truth_person(self) -> bool:
        return self.hit.truth in PERSON

    @property
    def said_person(self) -> bool:
        return self.result.verdict in PERSON

    def fired(self) -> tuple[str, ...]:
        return tuple(e.rule for e in self.result.fired)


def classify_set(es: EvalSet, pipeline: Pipeline, settings: Settings) -> list[Scored]:
    """Enrich and classify every recipient timeline of the set, the way ingest does."""
    disabled = disabled_rules(settings.disabled_rules)
    ip = IpPolicy.from_secret(settings.ip_storage, b"bench/accuracy")
    out: list[Scored] = []
    for email in es.emails:
        ctx = Context(
            sent_at=email.sent_at,
            link_count=email.links,
            delivery_window_seconds=settings.delivery_window_seconds,
            disabled=disabled,
            now=es.now,
        )
        for r, rcpt in enumerate(email.recipients):
            events: list[Event] = []
            facts_of: list[Facts] = []
            for h, hit in enumerate(rcpt.hits):
                hit_id = f"e{email.number}r{r}h{h:04d}"
                link_id = None if hit.link is None else email.number * 10 + hit.link
                kind = TokenKind.OPEN if hit.kind is EventKind.OPEN else TokenKind.CLICK
                raw = RawHit(hit_id, hit.at, kind, r, link_id, hit.ip, hit.user_agent, hit.method)
                # Enriched from the full address; stored as ingest stores it (rows.hit_row).
                facts = ip.facts(raw, pipeline.enrich(raw))
                facts_of.append(facts)
                stored = ip.stored(hit.ip)
                events.append(
                    Event(
                        hit_id, hit.kind, hit.at, stored, hit.user_agent, hit.method, facts, link_id
                    )
                )
            # ingest orders a timeline by (time, hitid); the generator sorted by time.
            order = sorted(range(len(events)), key=lambda i: (events[i].at, events[i].key))
            events = [events[i] for i in order]
            results = classify_timeline(events, ctx, RULES)
            for i, result in zip(order, results, strict=True):
                out.append(Scored(email.number, rcpt.hits[i], facts_of[i], result))
    return out


# --- methods: does this event count as a person? ------------------------------------------
def _apple_mpp(s: Scored) -> bool:
    labels = s.facts.get("net", {}).get("labels", ())
    return (
        s.hit.kind is EventKind.OPEN
        and s.hit.user_agent == "Mozilla/5.0"
        and "apple-private-relay" in labels
    )


Method = Callable[[Scored], bool]


def methods(scored: Sequence[Scored]) -> dict[str, Method]:
    opens: Counter[int] = Counter(s.email for s in scored if s.hit.kind is EventKind.OPEN)
    return {
        f"MailSignal {VERSION}": lambda s: s.said_person,
        "every hit is a person": lambda s: True,
        "1 < opencount < 20": lambda s: 1 < opens[s.email] < 20,
        "Apple MPP flag only": lambda s: not _apple_mpp(s),
    }


@dataclass(frozen=True, slots=True)
class PR:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(pairs: Iterable[tuple[bool, bool]]) -> PR:
    """(truth, predicted) pairs -> counts."""
    c = Counter(pairs)
    return PR(c[(True, True)], c[(False, True)], c[(True, False)])


def evaluate(es: EvalSet, scored: Sequence[Scored]) -> dict[str, dict[str, PR]]:
    """Per method: PR for opens, clicks and emails."""
    by_email: dict[int, list[Scored]] = defaultdict(list)
    for s in scored:
        by_email[s.email].append(s)
    table: dict[str, dict[str, PR]] = {}
    for name, says in methods(scored).items():
        row = {
            label: score((s.truth_person, says(s)) for s in scored if s.hit.kind is kind)
            for label, kind in KINDS
        }
        row["emails"] = score(
            (e.engaged(), any(says(s) for s in by_email[e.number])) for e in es.emails
        )
        table[name] = row
    return table


# --- printing ------------------------------------------------------------------------
def print_table(table: dict[str, dict[str, PR]]) -> None:
    cols = ("opens", "clicks", "emails")
    print(f"{'method':28}" + "".join(f"{c + ' P':>9}{c[0] + ' R':>7}{'F1':>6}" for c in cols))
    for name, row in table.items():
        cells = "".join(
            f"{row[c].precision:9.3f}{row[c].recall:7.3f}{row[c].f1:6.3f}" for c in cols
        )
        print(f"{name:28}{cells}")


def print_targets(table: dict[str, dict[str, PR]]) -> None:
    ours_name = next(iter(table))
    ours = table[ours_name]
    for col, (p_min, r_min) in TARGETS.items():
        pr = ours[col]
        ok = pr.precision >= p_min and pr.recall >= r_min
        print(
            f"target {col}: precision {pr.precision:.3f} >= {p_min} at recall "
            f"{pr.recall:.3f} >= {r_min}: {'PASS' if ok else 'FAIL'}"
            f"  (tp {pr.tp}, fp {pr.fp}, fn {pr.fn})"
        )
    for name, row in list(table.items())[1:]:
        diffs = ", ".join(
            f"{c} F1 {ours[c].f1 - row[c].f1:+.3f} (P {ours[c].precision - row[c].precision:+.3f})"
            for c in ("opens", "clicks", "emails")
        )
        print(f"vs {name}: {diffs}")


def print_costs(scored: Sequence[Scored], top: int = 4) -> None:
    """Which scenarios cost MailSignal precision (false persons) and recall (missed ones),
    and the figure without that scenario's events: how sensitive the result is to it."""
    for label, kind in KINDS:
        events = [s for s in scored if s.hit.kind is kind]
        total = score((s.truth_person, s.said_person) for s in events)
        fp = Counter(s.hit.scenario for s in events if s.said_person and not s.truth_person)
        fn = Counter(s.hit.scenario for s in events if s.truth_person and not s.said_person)
        for what, counts in (("false persons", fp), ("missed persons", fn)):
            parts = []
            for name, n in counts.most_common(top):
                rest = score(
                    (s.truth_person, s.said_person) for s in events if s.hit.scenario != name
                )
                parts.append(f"{name} {n} (without: P {rest.precision:.3f} R {rest.recall:.3f})")
            print(
                f"{label} {what} ({sum(counts.values())} of {total.tp + total.fp + total.fn} "
                f"scored): " + ("; ".join(parts) or "none")
            )


def print_rule_impact(scored: Sequence[Scored]) -> None:
    """Per rule: events it fired on, and where it was decisive (taking its weight out of
    the final sum flips person / not person; other evidence held fixed)."""
    stats: dict[str, Counter[str]] = defaultdict(Counter)
    for s in scored:
        logit = PRIOR[s.hit.kind] + sum(e.weight for e in s.result.fired)
        person_now = logit >= UNKNOWN_MARGIN
        for e in s.result.fired:
            c = stats[e.rule]
            c["person" if s.truth_person else "machine"] += 1
            if person_now != (logit - e.weight >= UNKNOWN_MARGIN):
                c["helped" if person_now == s.truth_person else "hurt"] += 1
    print(
        f"{'rule':36}{'weight':>7}{'on persons':>11}{'on machines':>12}{'decisive: right':>17}"
        f"{'wrong':>7}"
    )
    for rule in RULES:
        c = stats.get(rule.id, Counter())
        print(
            f"{rule.id:36}{rule.weight:7g}{c['person']:11}{c['machine']:12}{c['helped']:17}"
            f"{c['hurt']:7}"
        )


def print_confusion(scored: Sequence[Scored]) -> None:
    verdicts = [str(v) for v in Verdict]
    for label, kind in KINDS:
        c = Counter((str(s.hit.truth), str(s.result.verdict)) for s in scored if s.hit.kind is kind)
        print(f"{label}: truth \\ verdict " + "".join(f"{v:>9}" for v in verdicts))
        for truth in ("human", "forward", "machine"):
            print(f"  {truth:24}" + "".join(f"{c[(truth, v)]:9}" for v in verdicts))


def _signed(s: Scored) -> str:
    return " ".join(f"{e.rule}({e.weight:+g})" for e in s.result.fired) or "(none: prior only)"


def print_scenarios(scored: Sequence[Scored]) -> None:
    """Per scenario: verdict counts, errors, and what fired on the wrong ones."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        groups[s.hit.scenario].append(s)
    print(
        f"{'scenario':26}{'truth':>8}{'n':>7}{'human':>7}{'fwd':>6}{'machine':>8}{'unkn':>6}"
        f"{'wrong':>7}  top rule sets on the wrong ones"
    )
    for name in sorted(groups, key=lambda n: (SCENARIOS[n][0] is Verdict.MACHINE, n)):
        rows = groups[name]
        v = Counter(s.result.verdict for s in rows)
        wrong = [s for s in rows if s.truth_person != s.said_person]
        top = Counter(_signed(s) for s in wrong).most_common(2)
        why = "; ".join(f"{n}x {rules}" for rules, n in top)
        print(
            f"{name:26}{SCENARIOS[name][0]!s:>8}{len(rows):7}{v[Verdict.HUMAN]:7}"
            f"{v[Verdict.FORWARD]:6}{v[Verdict.MACHINE]:8}{v[Verdict.UNKNOWN]:6}"
            f"{len(wrong) / len(rows):7.1%}  {why}"
        )


def print_examples(scored: Sequence[Scored], per_scenario: int) -> None:
    seen: Counter[str] = Counter()
    for s in scored:
        if s.truth_person == s.said_person or seen[s.hit.scenario] >= per_scenario:
            continue
        seen[s.hit.scenario] += 1
        h = s.hit
        print(
            f"- {h.scenario} {h.kind.name.lower()} {h.method} {h.ip} {h.user_agent[:70]!r} "
            f"-> {s.result.verdict} ({s.result.confidence}): {_signed(s)}"
        )


def dump(scored: Sequence[Scored], path: Path) -> None:
    """Every event's facts and classification, one sorted-key JSON line each."""
    with path.open("w", encoding="utf-8") as out:
        for s in scored:
            r = s.result
            record = {
                "email": s.email,
                "at": s.hit.at.isoformat(),
                "facts": s.facts,
                "verdict": str(r.verdict),
                "confidence": r.confidence,
                "fired": [[e.rule, str(e.verdict), e.weight, e.text] for e in r.fired],
                "not_fired": list(r.not_fired),
                "version": r.version,
            }
            out.write(json.dumps(record, sort_keys=True, default=sorted) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--examples", type=int, default=0, help="wrong events to show per scenario")
    parser.add_argument(
        "--disable", action="append", default=[], help="rule id to switch off (disabled_rules)"
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="also repeat MailSignal's row over this many seeds"
    )
    parser.add_argument(
        "--dump", type=Path, default=None, help="write every event's classification (JSONL)"
    )
    parser.add_argument(
        "--ip-storage",
        choices=("full", "truncated", "none"),
        default=Settings.model_fields["ip_storage"].default,
        help="store addresses as ip_storage does (verdicts must not change)",
    )
    args = parser.parse_args(argv)

    # Defaults only: no environment, no TOML file.
    settings = Settings.model_construct(disabled_rules=args.disable, ip_storage=args.ip_storage)
    t0 = time.perf_counter()
    es = generate(args.emails, args.seed)
    pipeline = Pipeline.default()
    t1 = time.perf_counter()
    scored = classify_set(es, pipeline, settings)
    t2 = time.perf_counter()
    rcpts = [r for e in es.emails for r in e.recipients]
    hidden = sum(1 for r in rcpts if r.read and not any(h.truth is Verdict.HUMAN for h in r.hits))
    print(
        f"eval set seed {es.seed}: {len(es.emails)} emails, {len(rcpts)} recipients, "
        f"{len(scored)} events; generated + loaded in {t1 - t0:.1f} s, classified in "
        f"{t2 - t1:.1f} s"
    )
    print(
        f"settings: defaults (honeypot {settings.honeypot}, delivery_window_seconds "
        f"{settings.delivery_window_seconds:g}, disabled_rules {settings.disabled_rules}, "
        f"ip_storage {settings.ip_storage}); "
        f"now = {es.now:%Y-%m-%d %H:%M} UTC"
    )
    print(
        f"recipients who read it but left no person event (MPP cache, images off): {hidden} "
        f"of {sum(r.read for r in rcpts)} readers; no method can see them\n"
    )
    if args.dump is not None:
        dump(scored, args.dump)
        print(f"wrote {len(scored)} classifications to {args.dump}")
    table = evaluate(es, scored)
    print_table(table)
    print()
    print_targets(table)
    print()
    print_costs(scored)
    print()
    print_confusion(scored)
    print()
    print_rule_impact(scored)
    print()
    print_scenarios(scored)
    if args.examples:
        print()
        print_examples(scored, args.examples)
    if args.seeds > 1:
        print(f"\nMailSignal over {args.seeds} seeds (sampling spread, same mixture):")
        for seed in range(args.seeds):
            other = generate(args.emails, args.seed + seed)
            row = next(iter(evaluate(other, classify_set(other, pipeline, settings)).values()))
            cells = "  ".join(
                f"{c} P {row[c].precision:.3f} R {row[c].recall:.3f}"
                for c in ("opens", "clicks", "emails")
            )
            print(f"  seed {args.seed + seed}: {cells}")


if __name__ == "__main__":
    main()
