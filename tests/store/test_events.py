"""The event repository (store/events.py) on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from helpers import add_rep, track_html
from mailsignal.keyring import load_keyring
from mailsignal.model import new_id
from mailsignal.settings import Settings
from mailsignal.store import events
from mailsignal.tokens import Signer

WHEN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _rows(activity: Any, delivery: int, n: int) -> list[dict[str, Any]]:
    return [
        {
            "interactionforemailid": new_id(),
            "emailactivityid": activity,
            "deliveryid": delivery,
            "interactiontype": 0,
            "emailinteractiontime": WHEN,
            "emailaddress": "dana@contoso.test",
            "headers": {},
            "facts": {"ua": {"category": "mail-client"}},
            "reasons": {"fired": [], "not_fired": []},
            "hitid": f"t:{i}",
            "createdon": WHEN,
        }
        for i in range(n)
    ]


def test_insert_adds_each_hit_once(engine: Engine, settings: Settings) -> None:
    """A batch stored again adds nothing (on PostgreSQL the COPY fails on the duplicate
    and the batch goes again as INSERT ... ON CONFLICT DO NOTHING), and a batch that is
    half new adds its new half; the transaction stays usable throughout."""
    signer = Signer(*load_keyring(settings.secret_file))
    with engine.begin() as conn:
        add_rep(conn)
        sent = track_html(conn, signer, ["dana@contoso.test"])
        delivery = sent.copies[0].delivery_id
        rows = _rows(sent.activity_id, delivery, 6)
        assert events.insert(conn, rows[:4]) == 4
        assert events.insert(conn, rows[:4]) == 0
        assert events.insert(conn, rows[2:]) == 2
        stored = events.of_email(conn, sent.activity_id)
    assert sorted(e["hitid"] for e in stored) == [f"t:{i}" for i in range(6)]
    assert stored[0]["facts"] == {"ua": {"category": "mail-client"}}
    assert stored[0]["emailinteractiontime"] == WHEN
    with engine.connect() as conn:
        assert events.stored_hit_ids(conn, ["t:0", "t:9"]) == {"t:0"}
        assert events.stored_hit_ids(conn, []) == set()
