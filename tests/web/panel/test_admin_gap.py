"""The admin page's opt-in gap, on both backends: it counts only mail untracked because
the sender had not opted in, in the last 30 days, as `users gaps` does (store/optin.py);
mail untracked because the org switch was off is not part of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import add_rep, sign_in, track_html, with_password
from mailsignal.keyring import load_keyring
from mailsignal.settings import Settings
from mailsignal.store import users
from mailsignal.tokens import Signer
from mailsignal.web.app import create_app

REP, ADMIN = "rep@northwind.test", "admin@northwind.test"


def test_the_gap_counts_only_opt_in_untracked_mail(engine: Engine, settings: Settings) -> None:
    signer = Signer(*load_keyring(settings.secret_file))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        rep = add_rep(conn, REP, opt_in=True)
        add_rep(conn, ADMIN, role="admin")
        with_password(conn, ADMIN)
        users.set_org(conn, monitoring=False)  # untracked, but not for the opt-in
        track_html(conn, signer, ["ana@contoso.test"], sent_at=now - timedelta(days=1))
        track_html(conn, signer, ["bo@contoso.test"], sent_at=now - timedelta(days=1))
        users.set_org(conn, monitoring=True)
        users.set_optin(conn, rep, False)
        track_html(conn, signer, ["ana@contoso.test", "bo@contoso.test"], sent_at=now)
        track_html(conn, signer, ["ana@contoso.test"], sent_at=now - timedelta(days=45))
    with TestClient(create_app(settings)) as client:
        sign_in(client, ADMIN)
        page = client.get("/admin")
    assert page.status_code == 200
    gap = page.text.split('id="gap"')[1].split("</section>")[0]
    assert "last 30 days" in gap
    # One email (to two recipients) in the window; the org-switch mail and the old one
    # are not counted (the page used to count every untracked email: 4 here).
    assert re.search(r"rep@northwind\.test</th><td class=\"num\">1</td>", gap), gap
    assert ADMIN not in gap
