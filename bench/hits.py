"""The hits bench/classify.py and bench/classify_pure.py feed: the evaluation set's, in
the order the journal would hand them over, with delivery and link ids assigned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from evalset import EvalSet, Generator

from mailsignal.model import EventKind, RawHit, TokenKind

KIND = {EventKind.OPEN: TokenKind.OPEN, EventKind.CLICK: TokenKind.CLICK}


def build(n_hits: int, seed: int) -> tuple[EvalSet, list[RawHit], dict[int, Any]]:
    """Emails until n_hits hits; hits in time order with delivery and link ids assigned."""
    gen = Generator(seed)
    es = EvalSet(seed, gen.start, gen.now, [])
    hits: list[tuple[datetime, int, int | None, Any]] = []
    deliveries: dict[int, Any] = {}  # delivery id -> (email, links base id)
    delivery_id = link_base = 0
    while len(hits) < n_hits:
        e = gen.email(len(es.emails))
        es.emails.append(e)
        for rcpt in e.recipients:
            delivery_id += 1
            deliveries[delivery_id] = (e, link_base)
            for h in rcpt.hits:
                link = None if h.link is None else link_base + h.link + 1
                hits.append((h.at, delivery_id, link, h))
        link_base += e.links
    hits.sort(key=lambda t: t[0])
    raw = [
        RawHit(f"bench-{i:08d}", at, KIND[h.kind], d, link, h.ip, h.user_agent, h.method)
        for i, (at, d, link, h) in enumerate(hits[:n_hits])
    ]
    return es, raw, deliveries
