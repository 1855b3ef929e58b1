"""Each rule: fires, does not fire, switched off, fact missing, combined with others.

Events are built from real user-agent strings and real addresses inside the bundled
lists, and enriched by the real pipeline, so these tests also pin the enrichers' facts
the rules depend on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailsignal.classify import RULE_IDS, RULES, Context, Event, classify_timeline
from mailsignal.enrich import Pipeline
from mailsignal.model import Classification, EventKind, RawHit, TokenKind, Verdict

PIPE = Pipeline.default()
SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
OLD_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/72.0.3626.109 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)
APPLE_WEBKIT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
BARRACUDA = "Barracuda Sentinel (EE)"
APPLE = "104.28.28.10"  # Apple Private Relay egress 104.28.28.0/26
EOP = "40.107.22.51"  # Microsoft EOP 40.107.0.0/16
AWS = "3.5.140.2"  # Amazon
GOOGLE = "66.249.84.20"
HOME = "198.51.100.23"
OFFICE = "192.0.2.80"


def ev(
    seconds: float,
    kind: str = "open",
    ua: str = OUTLOOK,
    ip: str = HOME,
    link: int | None = None,
    method: str = "GET",
    honeypot: bool = False,
) -> Event:
    token_kind = {"open": TokenKind.OPEN, "click": TokenKind.CLICK}[kind]
    if honeypot:
        token_kind = TokenKind.HONEYPOT
    if kind == "click" and link is None:
        link = 1
    at = SENT + timedelta(seconds=seconds)
    hit = RawHit(f"h{seconds}", at, token_kind, 1, link, ip, ua, method)
    return Event(
        key=hit.hit_id,
        kind=EventKind.CLICK if kind == "click" else EventKind.OPEN,
        at=at,
        ip=ip,
        user_agent=ua,
        method=method,
        facts=PIPE.enrich(hit),
        link_id=link,
        honeypot=honeypot,
    )


def run(*events: Event, **ctx: Any) -> list[Classification]:
    options: dict[str, Any] = {"sent_at": SENT, "link_count": 3, "now": SENT + timedelta(days=1)}
    options.update(ctx)
    return classify_timeline(sorted(events, key=lambda e: e.at), Context(**options), RULES)


def fired(result: Classification) -> set[str]:
    return {e.rule for e in result.fired}


HOUR = 3600.0
# rule id -> (events that make it fire on the LAST event, events where it does not)
CASES: dict[str, tuple[list[Event], list[Event]]] = {
    "honeypot.clicked": ([ev(HOUR, "click", CHROME, honeypot=True)], [ev(HOUR, "click", CHROME)]),
    "useragent.automation": ([ev(HOUR, ua="python-requests/2.32.3")], [ev(HOUR)]),
    "useragent.security_scanner": ([ev(HOUR, "click", BARRACUDA)], [ev(HOUR, "click", CHROME)]),
    "useragent.preview_bot": ([ev(HOUR, "click", SLACK)], [ev(HOUR, "click", CHROME)]),
    "network.apple_mpp": (
        [ev(HOUR, ua="Mozilla/5.0", ip=APPLE)],
        [ev(HOUR, ua="Mozilla/5.0", ip=HOME)],
    ),
    "useragent.bare_mozilla": (
        [ev(HOUR, ua="Mozilla/5.0", ip=HOME)],
        [ev(HOUR, ua="Mozilla/5.0", ip=APPLE)],
    ),
    "useragent.prefetch": (
        [ev(HOUR, ua=GMAIL_PREFETCH, ip=GOOGLE)],
        [ev(HOUR, ua=GMAIL_PROXY, ip=GOOGLE)],
    ),
    "useragent.image_proxy_open": ([ev(HOUR, ua=GMAIL_PROXY, ip=GOOGLE)], [ev(HOUR)]),
    "network.security_gateway": ([ev(HOUR, ip=EOP)], [ev(HOUR, ip=HOME)]),
    "network.cloud_click": ([ev(HOUR, "click", CHROME, AWS)], [ev(HOUR, "open", CHROME, AWS)]),
    "network.private_relay_click": (
        [ev(HOUR, "click", IPHONE, APPLE)],
        [ev(HOUR, "click", IPHONE, HOME)],
    ),
    "request.head": ([ev(HOUR, method="HEAD")], [ev(HOUR)]),
    "useragent.outdated_chrome": (
        [ev(HOUR, "click", OLD_CHROME, AWS)],
        # a pinned corporate browser at home is not a sandbox
        [ev(HOUR, "click", OLD_CHROME, HOME)],
    ),
    "timing.within_seconds_of_send": ([ev(3)], [ev(30)]),
    "timing.before_send": ([ev(-600)], [ev(60)]),
    "useragent.person_client": ([ev(HOUR)], [ev(HOUR, ua="curl/8.5.0")]),
    "honeypot.nearby": (
        [ev(HOUR, "click", CHROME, honeypot=True), ev(HOUR + 5, "click", CHROME)],
        [ev(HOUR, "click", CHROME, honeypot=True), ev(HOUR + 60, "click", CHROME)],
    ),
    "burst.all_links": (
        [
            ev(HOUR, "click", CHROME, link=1),
            ev(HOUR + 1, "click", CHROME, link=2),
            ev(HOUR + 2, "click", CHROME, link=3),
        ],
        [ev(HOUR, "click", CHROME, link=1), ev(HOUR + 600, "click", CHROME, link=2)],
    ),
    "burst.many_addresses": (
        [
            ev(HOUR, ip="203.0.113.1"),
            ev(HOUR + 5, ip="203.0.113.2"),
            ev(HOUR + 9, ip="203.0.113.3"),
        ],
        [ev(HOUR, ip="203.0.113.1"), ev(HOUR + 5, ip="203.0.113.1")],
    ),
    "repeat.proxy_refetch": (
        [ev(HOUR, ua=GMAIL_PREFETCH, ip=GOOGLE), ev(HOUR + 180, ua=GMAIL_PREFETCH, ip=GOOGLE)],
        # Gmail's image proxy fetching again is the person opening again.
        [ev(HOUR, ua=GMAIL_PROXY, ip=GOOGLE), ev(HOUR + 180, ua=GMAIL_PROXY, ip=GOOGLE)],
    ),
    "network.apple_mpp_webkit": (
        [ev(HOUR, ua=APPLE_WEBKIT, ip=APPLE)],
        [ev(HOUR, ua=APPLE_WEBKIT, ip=HOME)],
    ),
    "network.cloud_click_at_delivery": (
        [ev(60, "click", CHROME, AWS)],
        [ev(HOUR, "click", CHROME, AWS)],
    ),
    "burst.open_in_link_sweep": (
        [
            ev(HOUR, "click", OLD_CHROME, EOP, link=1),
            ev(HOUR + 0.5, "click", OLD_CHROME, EOP, link=2),
            ev(HOUR + 1, "click", OLD_CHROME, EOP, link=3),
            ev(HOUR + 1.5, ua=OLD_CHROME, ip=EOP),
        ],
        [
            ev(HOUR, "click", OLD_CHROME, EOP, link=1),
            ev(HOUR + 0.5, "click", OLD_CHROME, EOP, link=2),
            ev(HOUR + 1, "click", OLD_CHROME, EOP, link=3),
            ev(HOUR + 60, ua=OUTLOOK),
        ],
    ),
    "corroboration.later_click": (
        [ev(2 * HOUR, "click", CHROME), ev(HOUR)],
        [ev(HOUR), ev(2 * HOUR, "click", "curl/8.5.0")],
    ),
    "corroboration.after_scanner_check": (
        [ev(HOUR, "click", OLD_CHROME, EOP, link=2), ev(HOUR + 20, "click", CHROME, link=2)],
        [ev(HOUR, "click", OLD_CHROME, EOP, link=2), ev(HOUR + 20, "click", CHROME, link=1)],
    ),
    "forward.new_device": (
        [ev(HOUR, ua=OUTLOOK, ip=OFFICE), ev(5 * HOUR, ua=IPHONE, ip=HOME)],
        [ev(HOUR, ua=OUTLOOK, ip=OFFICE), ev(5 * HOUR, ua=OUTLOOK, ip="192.0.2.81")],
    ),
}


def _last_fired(events: list[Event], **ctx: Any) -> set[str]:
    results = run(*events, **ctx)
    order = sorted(range(len(events)), key=lambda i: events[i].at)
    return fired(results[order.index(len(events) - 1)])


def test_every_rule_has_a_case() -> None:
    assert set(CASES) | {"timing.no_click_after_7_days"} == RULE_IDS


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fires(rule: str) -> None:
    assert rule in _last_fired(CASES[rule][0])


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_does_not_fire(rule: str) -> None:
    assert rule not in _last_fired(CASES[rule][1])


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_switched_off(rule: str) -> None:
    events = CASES[rule][0]
    results = run(*events, disabled=frozenset({rule}))
    for result in results:
        assert rule not in fired(result) and rule not in result.not_fired


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_with_facts_missing_does_not_crash_or_fire_on_facts(rule: str) -> None:
    bare = [replace(e, facts={}) for e in CASES[rule][0]]
    results = run(*bare)
    fact_rules = {
        "useragent.automation",
        "useragent.security_scanner",
        "useragent.preview_bot",
        "network.apple_mpp",
        "useragent.bare_mozilla",
        "useragent.prefetch",
        "useragent.image_proxy_open",
        "network.security_gateway",
        "network.cloud_click",
        "network.private_relay_click",
        "useragent.outdated_chrome",
        "useragent.person_client",
    }
    if rule in fact_rules:
        assert all(rule not in fired(r) for r in results)
    assert all(r.verdict in Verdict for r in results)


def test_no_click_after_seven_days() -> None:
    late = SENT + timedelta(days=8)
    assert "timing.no_click_after_7_days" in fired(run(ev(HOUR), now=late)[0])
    early = SENT + timedelta(days=2)
    assert "timing.no_click_after_7_days" not in fired(run(ev(HOUR), now=early)[0])
    with_click = run(ev(HOUR), ev(2 * HOUR, "click", CHROME), now=late)
    assert "timing.no_click_after_7_days" not in fired(with_click[0])


# --- combinations: the verdicts a rep sees --------------------------------------------


def test_mpp_on_delivery_is_machine_with_high_confidence() -> None:
    [result] = run(ev(4, ua="Mozilla/5.0", ip=APPLE))
    assert result.verdict is Verdict.MACHINE and result.confidence > 0.99
    assert {"network.apple_mpp", "timing.within_seconds_of_send"} <= fired(result)


def test_safe_links_sweep_then_the_person() -> None:
    scan = [ev(43 + i * 0.3, "click", OLD_CHROME, EOP, link=i + 1) for i in range(3)]
    person = ev(2 * HOUR, "click", CHROME, OFFICE, link=2)
    results = run(ev(42, ua=OLD_CHROME, ip=EOP), *scan, person)
    assert [r.verdict for r in results[:4]] == [Verdict.MACHINE] * 4
    assert results[4].verdict is Verdict.HUMAN


def test_gmail_proxy_open_is_human_gmail_prefetch_is_machine() -> None:
    assert run(ev(HOUR, ua=GMAIL_PROXY, ip=GOOGLE))[0].verdict is Verdict.HUMAN
    assert run(ev(HOUR, ua=GMAIL_PREFETCH, ip=GOOGLE))[0].verdict is Verdict.MACHINE


def test_private_relay_click_is_human() -> None:
    assert run(ev(HOUR, "click", IPHONE, APPLE))[0].verdict is Verdict.HUMAN


def test_forward_is_labelled_forward() -> None:
    results = run(ev(HOUR, ua=OUTLOOK, ip=OFFICE), ev(5 * HOUR, ua=IPHONE, ip=HOME))
    assert [r.verdict for r in results] == [Verdict.HUMAN, Verdict.FORWARD]


def test_reasons_list_what_did_not_fire() -> None:
    [result] = run(ev(HOUR))
    assert "network.apple_mpp" in result.not_fired
    assert not set(result.not_fired) & fired(result)
    assert result.version
