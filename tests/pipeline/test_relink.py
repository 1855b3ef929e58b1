"""Resolution by address, both ways (store/relink.py, #11 item 8), on SQLite and PostgreSQL.

Two worlds get the same three emails and the same opens and clicks from a person
through the real ingest path: in one the contact (with an account) exists when the mail
is sent, in the other it is created afterwards, under another spelling of its address.
The late contact must end with the same deliveries, human events, roll-ups and score as
the early one; its account too. Then an address change and a removal move the mail on.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine, select

from helpers import CHROME, OUTLOOK, PERSON_IP, track_html
from mailsignal import outgoing
from mailsignal.engagement import PARTY_COUNTERS, decay, weights_of
from mailsignal.keyring import load_keyring
from mailsignal.model import RawHit, TokenKind
from mailsignal.pipeline.enrichment import default_enrichment
from mailsignal.pipeline.ingest import store_hits
from mailsignal.settings import Settings
from mailsignal.store import emails, parties, records, relink, users
from mailsignal.store.catalog import CATALOG
from mailsignal.store.parties import TABLES
from mailsignal.store.schema import email as email_table
from mailsignal.store.schema import emaildelivery
from mailsignal.tokens import Signer

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_keys = itertools.count()
CONTACT = CATALOG.entity("contact")
assert CONTACT is not None
ROLLUPS = (*PARTY_COUNTERS, "emailsfollowedcount", "lasthumanengagementon")


def _send(engine: Engine, settings: Settings, address: str) -> list[Any]:
    """Three tracked emails to `address`, an hour apart, each opened and clicked by a
    person hours later; returns the tracked emails."""
    keys, current = load_keyring(settings.secret_file)
    signer = Signer(keys, current)
    with engine.begin() as conn:
        if users.by_address(conn, "rep@northwind.test") is None:
            users.add(conn, "Rep", "rep@northwind.test", opt_in=True)
        sent = [
            track_html(conn, signer, [address], sent_at=SENT + timedelta(hours=n)) for n in range(3)
        ]
    enrichment = default_enrichment(settings)
    with engine.connect() as conn:
        links = {e.activity_id: emails.link_ids(conn, e.activity_id) for e in sent}
    hits = []
    for n, tracked in enumerate(sent):
        delivery = tracked.copies[0].delivery_id
        at = SENT + timedelta(hours=5 + n)
        for kind, agent, link in ((TokenKind.OPEN, OUTLOOK, None), (TokenKind.CLICK, CHROME, 0)):
            hits.append(
                RawHit(
                    hit_id=f"r{next(_keys)}",
                    received_at=at + timedelta(minutes=3 if link is not None else 0),
                    kind=kind,
                    delivery_id=delivery,
                    link_id=links[tracked.activity_id][link] if link is not None else None,
                    ip=PERSON_IP,
                    user_agent=agent,
                    method="GET",
                )
            )
    with engine.begin() as conn:
        store_hits(conn, hits, enrichment, settings, now=SENT + timedelta(days=1))
    return sent


def _row(engine: Engine, party: tuple[str, uuid.UUID]) -> dict[str, Any]:
    table, key = TABLES[party[0]]
    with engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c[key] == party[1])).mappings().one())


def _deliveries(engine: Engine, sent: list[Any]) -> list[tuple[Any, ...]]:
    ids = [e.activity_id for e in sent]
    d = emaildelivery
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    d.c.recipientobjecttypecode,
                    d.c.recipientobjectid,
                    email_table.c.regardingobjecttypecode,
                    email_table.c.regardingobjectid,
                )
                .join(email_table, email_table.c.activityid == d.c.emailactivityid)
                .where(d.c.emailactivityid.in_(ids))
            )
        ]


def _assert_same(early: dict[str, Any], late: dict[str, Any], weights: Any, at: datetime) -> None:
    """Roll-ups equal; the early score (as of its last update) aged to `at` equals the late one."""
    for name in ROLLUPS:
        assert late[name] == early[name], name
    since = early["engagementscoreupdatedon"]
    aged = early["engagementscore"] * decay(weights, (at - since).total_seconds())
    assert early["engagementscore"] > 0
    assert abs(late["engagementscore"] - aged) <= 1e-9 * max(1.0, aged)


def test_a_party_created_later_gets_the_mail_sent_before(
    engine: Engine, settings: Settings
) -> None:
    weights = weights_of(settings)
    with engine.begin() as conn:
        early_account = parties.add(conn, "account", "Contoso", None)
        early = parties.add(conn, "contact", "Dana", "dana@contoso.test", parent=early_account)
    early_sent = _send(engine, settings, "dana@contoso.test")
    late_sent = _send(engine, settings, "erin@contoso.test")
    assert {r[:2] for r in _deliveries(engine, late_sent)} == {(None, None)}

    now = SENT + timedelta(days=3)
    with engine.begin() as conn:
        late_account = parties.add(conn, "account", "Fabrikam", None)
        late = parties.add(conn, "contact", "Erin", "Erin@Contoso.TEST", parent=late_account)
        assert relink.relink(conn, ["Erin@Contoso.TEST"], weights, now) == 3
        # Nothing left to do a second time.
        assert relink.relink(conn, ["erin@contoso.test"], weights, now) == 0

    assert _deliveries(engine, late_sent) == [("contact", late, "contact", late)] * 3
    assert _deliveries(engine, early_sent) == [("contact", early, "contact", early)] * 3
    _assert_same(_row(engine, ("contact", early)), _row(engine, ("contact", late)), weights, now)
    _assert_same(
        _row(engine, ("account", early_account)),
        _row(engine, ("account", late_account)),
        weights,
        now,
    )
    assert _row(engine, ("contact", late))["humanclickcount"] == 3


def test_mail_moves_with_the_address_and_stays_when_removed(
    engine: Engine, settings: Settings
) -> None:
    weights = weights_of(settings)
    sent = _send(engine, settings, "gil@contoso.test")
    now = SENT + timedelta(days=3)
    with engine.begin() as conn:
        lead = parties.add(conn, "lead", "Gil", "gil@contoso.test")
        relink.relink(conn, ["gil@contoso.test"], weights, now)
        # A contact created for the same address does not take mail the lead holds.
        other = parties.add(conn, "contact", "Gil too", "gil@contoso.test")
        assert relink.relink(conn, ["gil@contoso.test"], weights, now) == 0
    assert {r[:2] for r in _deliveries(engine, sent)} == {("lead", lead)}
    assert _row(engine, ("lead", lead))["humanopencount"] == 3

    # Removing the lead hands its mail to the contact that has the address; removing
    # that too leaves the mail unresolved, not deleted.
    with engine.begin() as conn:
        assert relink.remove(conn, "lead", lead, weights, now) == 3
    assert {r[:2] for r in _deliveries(engine, sent)} == {("contact", other)}
    assert _row(engine, ("contact", other))["humanopencount"] == 3
    with engine.begin() as conn:
        relink.remove(conn, "contact", other, weights, now)
    assert _deliveries(engine, sent) == [(None, None, None, None)] * 3

    # A contact that changes its address leaves the old address's mail and takes the new's.
    with engine.begin() as conn:
        hal = parties.add(conn, "contact", "Hal", "gil@contoso.test")
        relink.relink(conn, ["gil@contoso.test"], weights, now)
    assert _row(engine, ("contact", hal))["humanopencount"] == 3
    with engine.begin() as conn:
        records.update_columns(conn, CONTACT, hal, {"emailaddress1": "hal@contoso.test"})
        relink.relink(conn, ["gil@contoso.test", "hal@contoso.test"], weights, now)
    assert {r[:2] for r in _deliveries(engine, sent)} == {(None, None)}
    gone = _row(engine, ("contact", hal))
    assert (gone["humanopencount"], gone["engagementscore"], gone["emailsfollowedcount"]) == (
        0,
        0.0,
        0,
    )


def test_auto_create_contacts_names_them_by_display_name(
    engine: Engine, settings: Settings
) -> None:
    """Off (the default), mail to an unknown address stays unresolved; on, the recipient
    becomes a contact named as the message names them, with earlier mail to it linked."""
    earlier = _send(engine, settings, "zoe@fabrikam.test")
    keys, current = load_keyring(settings.secret_file)
    msg = EmailMessage()
    msg["From"] = "rep@northwind.test"
    msg["To"] = "Zoë Quinn <Zoe@Fabrikam.test>, yan@fabrikam.test"
    msg["Subject"] = "Hello"
    msg.set_content("Hi")
    recipients = ["zoe@fabrikam.test", "yan@fabrikam.test"]
    on = settings.model_copy(update={"auto_create_contacts": True})
    with engine.begin() as conn:
        service = outgoing.Outgoing.from_settings(settings, Signer(keys, current))
        service.track(conn, msg, sender="rep@northwind.test", recipients=recipients)
        assert parties.find(conn, "zoe@fabrikam.test") is None
        service = outgoing.Outgoing.from_settings(on, Signer(keys, current))
        tracked = service.track(conn, msg, sender="rep@northwind.test", recipients=recipients)
        zoe = parties.find(conn, "zoe@fabrikam.test")
        yan = parties.find(conn, "yan@fabrikam.test")
    assert zoe is not None and yan is not None
    assert _row(engine, ("contact", zoe[1]))["fullname"] == "Zoë Quinn"
    assert _row(engine, ("contact", yan[1]))["fullname"] == "yan@fabrikam.test"
    # The three emails sent before, and both sent since, are Zoe's.
    assert {r[:2] for r in _deliveries(engine, earlier)} == {("contact", zoe[1])}
    assert _row(engine, ("contact", zoe[1]))["emailsfollowedcount"] == 5
    assert _row(engine, ("contact", zoe[1]))["humanclickcount"] == 3
    assert tracked.copies[0].delivery_id


def test_deliveries_are_found_by_an_index_search(engine: Engine) -> None:
    with engine.connect() as conn:
        query = relink.deliveries_to(conn, ["dana@contoso.test", "erin@contoso.test"])
        compiled = query.compile(conn)
        if engine.dialect.name == "sqlite":
            params = tuple(compiled.params[name] for name in compiled.positiontup or ())
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
            plan = " ".join(str(r[-1]) for r in rows)
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # an empty table: force the choice
            rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
            plan = " ".join(str(r[0]) for r in rows)
    assert "ix_emaildelivery_emailaddress" in plan, plan
