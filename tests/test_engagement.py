from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsignal.engagement import Weights, contribution, decay, score
from mailsignal.model import EventKind, Verdict

W = Weights()
T0 = datetime(2026, 11, 1, tzinfo=UTC)

events = st.lists(
    st.tuples(
        st.sampled_from(list(EventKind)), st.sampled_from(list(Verdict)), st.integers(0, 90 * 86400)
    ),
    max_size=40,
)


def _as_events(
    raw: list[tuple[EventKind, Verdict, int]],
) -> list[tuple[str, EventKind, Verdict, datetime]]:
    return [(f"e{i}", k, v, T0 + timedelta(seconds=s)) for i, (k, v, s) in enumerate(raw)]


@given(events, events)
def test_machine_and_unknown_events_never_change_a_score(base: list, noise: list) -> None:  # type: ignore[type-arg]
    asof = T0 + timedelta(days=91)
    machine = [
        (k, v if v in (Verdict.MACHINE, Verdict.UNKNOWN) else Verdict.MACHINE, s)
        for k, v, s in noise
    ]
    before, _ = score(W, _as_events(base), asof)
    after, _ = score(W, _as_events(base + machine), asof)
    assert abs(after - before) < 1e-9


@given(events)
@settings(max_examples=200)
def test_incremental_equals_recompute(raw: list) -> None:  # type: ignore[type-arg]
    evs = sorted(_as_events(raw), key=lambda e: e[3])
    running, since = 0.0, None
    for _key, kind, verdict, at in evs:  # one event at a time, as ingest sees them
        aged = running * decay(W, (at - since).total_seconds()) if since else running
        running = aged + contribution(W, kind, verdict, at, at)
        since = at
    asof = T0 + timedelta(days=100)
    running = running * decay(W, (asof - since).total_seconds()) if since else running
    total, _ = score(W, evs, asof)
    assert abs(running - total) <= 1e-9 * max(1.0, total)


def test_weights_and_decay() -> None:
    now = T0 + timedelta(days=14)
    assert contribution(W, EventKind.CLICK, Verdict.HUMAN, T0, now) == 2.5  # one half-life
    assert contribution(W, EventKind.REPLY, Verdict.HUMAN, now, now) == 10.0
    assert contribution(W, EventKind.OPEN, Verdict.FORWARD, now, now) == 0.5
    assert contribution(W, EventKind.CLICK, Verdict.MACHINE, now, now) == 0.0
    total, top = score(
        W,
        [
            ("a", EventKind.OPEN, Verdict.HUMAN, now),
            ("b", EventKind.CLICK, Verdict.HUMAN, now),
            ("c", EventKind.CLICK, Verdict.MACHINE, now),
        ],
        now,
    )
    assert total == 6.0 and [t.key for t in top] == ["b", "a"]
