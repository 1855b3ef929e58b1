"""The demo (`make run` loads it): the discovery email the field reports as "opened nine
times", labelled through the normal ingest as what happened; weeks of mail by two reps
and their manager; sign-ins with random passwords in a private file (issue 12)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import Engine

from mailsignal import demo, demostory, passwords
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import emails, fetch, sessions, users
from mailsignal.tokens import Signer

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_story_email_is_nine_opens_of_which_two_by_the_reader(
    engine: Engine, settings: Settings
) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    count = demo.load(engine, settings, signer, now=NOW)
    assert count > 40
    with engine.connect() as conn:
        story = [
            e
            for e in emails.list_recent(conn, limit=500)
            if e["subject"] == demostory.STORY_SUBJECT
        ]
        assert len(story) == 1
        e = emails.get(conn, story[0]["activityid"])
        assert (e["opencount"], e["humanopencount"], e["machineopencount"]) == (9, 2, 3)
        assert e["forwardopencount"] == 4  # two colleagues, twice each
        assert (e["linksclickedcount"], e["humanlinksclickedcount"]) == (3, 1)
        maria = users.by_address(conn, "maria@northwind.test")
        alice = users.by_address(conn, "alice@northwind.test")
        ben = users.by_address(conn, "ben@northwind.test")
        assert maria and alice and ben
        caller = fetch.load_caller(conn, maria["systemuserid"])
        assert caller.team == {alice["systemuserid"], ben["systemuserid"]}
        assert not caller.is_admin


def test_sign_ins_are_random_and_private(engine: Engine, settings: Settings) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    demo.load(engine, settings, signer, now=NOW)
    path = demo.sign_ins_file(settings)
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()[1:]
    assert [line.split()[0] for line in lines] == [a for a, _ in demo.SIGN_INS]
    first = dict(re.findall(r"^(\S+)\s+(\S+)", "\n".join(lines), re.M))
    with engine.connect() as conn:
        for address, password in first.items():
            _, stored = sessions.password_hash(conn, address)
            assert passwords.verify(stored, password)
    demo.write_sign_ins(engine, settings)  # a second run makes new ones
    second = dict(re.findall(r"^(\S+)\s+(\S+)", path.read_text(), re.M))
    assert all(second[a] != p for a, p in first.items())


def test_small_is_the_five_scenarios(engine: Engine, settings: Settings) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    assert demo.load(engine, settings, signer, now=NOW, small=True) == 5
    assert not demo.sign_ins_file(settings).exists()
