"""`ip_storage` (issue 13): the stored forms of an address, and the classifier's verdicts on
the labelled set (bench/evalset.py, through bench/accuracy.py as ingest stores events)
identical under full, truncated and none."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mailsignal.classify import RULES, Context, Event, classify_timeline
from mailsignal.classify.netid import (
    derive_key,
    host_key,
    net_key,
    pseudonyms,
    stored_headers,
    stored_ip,
)
from mailsignal.enrich import Pipeline
from mailsignal.model import EventKind, Verdict
from mailsignal.settings import Settings

BENCH = Path(__file__).resolve().parents[2] / "bench"
MODES = ("full", "truncated", "none")


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


evalset = _load("evalset")
accuracy = _load("accuracy")


@pytest.mark.parametrize(
    ("ip", "mode", "stored"),
    [
        ("203.0.113.77", "full", "203.0.113.77"),
        ("203.0.113.77", "truncated", "203.0.113.0"),
        ("203.0.113.77", "none", ""),
        ("2001:db8:1:2:3::9", "truncated", "2001:db8:1::"),
        ("2001:DB8:ab:ff00::1", "truncated", "2001:db8:ab::"),
        ("::ffff:198.51.100.9", "truncated", "198.51.100.0"),
        ("fe80::1%eth0", "truncated", "fe80::"),
        ("not an address", "truncated", ""),
        ("", "truncated", ""),
    ],
)
def test_stored_forms_stay_valid_addresses(ip: str, mode: str, stored: str) -> None:
    assert stored_ip(ip, mode) == stored
    if stored:
        ipaddress.ip_address(stored)  # what a Dataverse view reading ipaddress expects


def test_pseudonyms_are_per_copy_and_keyed() -> None:
    key = derive_key(b"k" * 32)
    a = pseudonyms("203.0.113.7", "1", key)
    assert a == pseudonyms("203.0.113.7", "1", key)
    assert a["host"] != pseudonyms("203.0.113.8", "1", key)["host"]
    assert a["net"] == pseudonyms("203.0.113.8", "1", key)["net"]  # same /24
    assert a["host"] != pseudonyms("203.0.113.7", "2", key)["host"]  # another copy
    assert a["host"] != pseudonyms("203.0.113.7", "1", derive_key(b"j" * 32))["host"]
    assert "203.0.113" not in "".join(a.values())


def _event(key: str, at: datetime, ip: str, facts: dict[str, Any]) -> Event:
    return Event(key, EventKind.OPEN, at, ip, "Mozilla/5.0 (Windows NT 10.0)", "GET", facts)


def test_rules_read_pseudonyms_not_the_stored_address() -> None:
    """Three addresses of one /24 within 30 s are three addresses, truncated or not."""
    t0 = datetime(2026, 5, 4, 9, tzinfo=UTC)
    key = derive_key(b"k" * 32)
    ips = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    full = [_event(f"h{i}", t0 + timedelta(seconds=i), ip, {}) for i, ip in enumerate(ips)]
    cut = [
        _event(
            f"h{i}", t0 + timedelta(seconds=i), "198.51.100.0", {"addr": pseudonyms(ip, "1", key)}
        )
        for i, ip in enumerate(ips)
    ]
    assert len({host_key(e) for e in cut}) == 3 and len({net_key(e) for e in cut}) == 1
    ctx = Context(sent_at=t0 - timedelta(hours=1), link_count=1)
    said_full = classify_timeline(full, ctx, RULES)
    said_cut = classify_timeline(cut, ctx, RULES)
    assert [r.verdict for r in said_full] == [r.verdict for r in said_cut]
    assert all("burst.many_addresses" in {e.rule for e in r.fired} for r in said_cut)


@pytest.fixture(scope="module")
def by_mode() -> tuple[Any, dict[str, list[Any]]]:
    es = evalset.generate(2000)
    pipeline = Pipeline.default()
    return es, {
        mode: accuracy.classify_set(es, pipeline, Settings.model_construct(ip_storage=mode))
        for mode in MODES
    }


def _verdicts(scored: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (s.email, s.hit.at, str(s.result.verdict), s.result.confidence, s.fired()) for s in scored
    ]


def test_labelled_set_gets_the_same_verdicts_under_every_ip_storage(
    by_mode: tuple[Any, dict[str, list[Any]]],
) -> None:
    es, scored = by_mode
    full = _verdicts(scored["full"])
    assert full == _verdicts(scored["truncated"]) == _verdicts(scored["none"])
    # The comparison has teeth: truncation merges addresses the rules tell apart.
    merged = 0
    for email in es.emails:
        for rcpt in email.recipients:
            ips = {h.ip for h in rcpt.hits}
            merged += len(ips) > len({stored_ip(ip, "truncated") for ip in ips})
    assert merged > 0
    fired = {rule for s in scored["none"] for rule in s.fired()}
    assert {
        "burst.many_addresses",
        "forward.new_device",
        "corroboration.after_scanner_check",
    } <= fired
    # And what is stored is what the mode says.
    stored = {s.hit.ip: s for s in scored["truncated"]}
    assert stored and all(s.facts["addr"]["host"] for s in stored.values())
    people = [s for s in scored["full"] if s.result.verdict in (Verdict.HUMAN, Verdict.FORWARD)]
    assert people


def test_forwarded_for_is_cut_like_the_client_address() -> None:
    kept = {"x-forwarded-for": "198.51.100.7, 2001:db8:5:6::1, unknown", "via": "1.1 gw"}
    assert stored_headers(kept, "full") == kept
    assert stored_headers(kept, "truncated") == {
        "x-forwarded-for": "198.51.100.0, 2001:db8:5::",
        "via": "1.1 gw",
    }
    assert stored_headers(kept, "none") == {"via": "1.1 gw"}
    assert stored_headers({"x-forwarded-for": "unknown"}, "truncated") == {}
