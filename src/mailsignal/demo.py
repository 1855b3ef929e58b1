"""Demo data for `make run`: a small sales team, a few tracked emails and the hits that
real mail systems produce for them (Apple MPP prefetches, a Safe Links scan, a Gmail
image-proxy open, real clicks), all passed through the normal ingest path so every
label and reason a newcomer sees was computed, not typed in.

Every address is under the reserved `.test` TLD (RFC 2606); user agents come from
docs/fixtures of real clients (see tests/fixtures/user_agents.tsv) and IPs from inside the
bundled network lists, or from documentation ranges (RFC 5737) for people.
"""

from __future__ import annotations

import os
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from . import demostory, passwords
from .demostory import (
    APPLE_MAIL,
    APPLE_RELAY_IP,
    CHROME_WIN,
    EOP_IP,
    GATEWAY_UA,
    OUTLOOK,
    SAFARI_IOS,
    Hit,
)
from .model import RawHit, TokenKind
from .outgoing import Outgoing, build_message
from .pipeline.enrichment import default_enrichment
from .pipeline.ingest import store_hits
from .settings import Settings
from .store import emails, parties, sessions, teams, users
from .tokens import Signer

GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GOOGLE_PROXY_IP = "66.249.84.20"  # Google

HTML = """<!doctype html><html><body style="font-family:Arial,sans-serif">
<p>Hi {first},</p>
<p>Thanks for the call on Tuesday. As promised, here is our
<a href="https://www.example.com/pricing">pricing overview</a> and the
<a href="https://www.example.com/case-studies/logistics">logistics case study</a>.</p>
<p>Would <a href="https://cal.example.com/alice/30min">a 30-minute slot next week</a> work?</p>
<p>Best regards,<br>Alice<br><a href="mailto:alice@northwind.test">alice@northwind.test</a></p>
</body></html>"""


S, M = timedelta(seconds=1), timedelta(minutes=1)
SCENARIOS: list[tuple[str, str, str, list[Hit]]] = [
    (
        "Dana Fischer",
        "dana.fischer@contoso.test",
        "Pricing and the logistics case study",
        [
            Hit(2 * S, TokenKind.OPEN, None, APPLE_RELAY_IP, APPLE_MAIL),
            Hit(47 * M, TokenKind.OPEN, None, "198.51.100.23", SAFARI_IOS),
            Hit(48 * M, TokenKind.CLICK, 0, "198.51.100.23", SAFARI_IOS),
            Hit(95 * M, TokenKind.OPEN, None, "198.51.100.23", SAFARI_IOS),  # read again
        ],
    ),
    (
        "Lee Novak",
        "lee.novak@fabrikam.test",
        "Following up on our call",
        [
            Hit(4 * S, TokenKind.OPEN, None, EOP_IP, GATEWAY_UA),
            Hit(5 * S, TokenKind.CLICK, 0, EOP_IP, GATEWAY_UA),
            Hit(5 * S, TokenKind.CLICK, 1, EOP_IP, GATEWAY_UA),
            Hit(6 * S, TokenKind.CLICK, 2, EOP_IP, GATEWAY_UA),
        ],
    ),
    (
        "Sam Okafor",
        "sam.okafor@adatum.test",
        "Next steps for the pilot",
        [
            Hit(3 * timedelta(hours=1), TokenKind.OPEN, None, GOOGLE_PROXY_IP, GMAIL_PROXY),
            Hit(3 * timedelta(hours=1) + 2 * M, TokenKind.CLICK, 2, "203.0.113.40", CHROME_WIN),
        ],
    ),
    (
        "Ravi Iyer",
        "ravi.iyer@woodgrove.test",
        "The logistics case study",
        [
            Hit(1 * S, TokenKind.OPEN, None, APPLE_RELAY_IP, APPLE_MAIL),
            Hit(2 * timedelta(hours=1), TokenKind.OPEN, None, APPLE_RELAY_IP, APPLE_MAIL),
        ],
    ),
    (
        "Mia Larsen",
        "mia.larsen@litware.test",
        "Quick question about your rollout",
        [
            Hit(26 * M, TokenKind.OPEN, None, "192.0.2.77", OUTLOOK),
        ],
    ),
]


def has_data(engine: Engine) -> bool:
    with engine.connect() as conn:
        return emails.any_exist(conn)


def load(
    engine: Engine,
    settings: Settings,
    signer: Signer,
    now: datetime | None = None,
    *,
    small: bool = False,
) -> int:
    """Create the demo team, emails and hits; returns the number of emails.

    `small`: only the five short scenarios (Alice's), as the Dataverse client tests use.
    Otherwise also demostory.py's discovery email and three weeks of mail by two reps, a
    manager over both, and panel sign-ins for Alice, her manager and the admin with
    fresh random passwords (written to `sign_ins_file`, mode 0600).
    """
    now = now or datetime.now(UTC)
    enrichment = default_enrichment(settings)
    service = Outgoing.from_settings(settings, signer)
    with engine.begin() as conn:
        if users.by_address(conn, "alice@northwind.test") is None:
            users.add(
                conn, "Alice Martin", "alice@northwind.test", opt_in=True, timezone="Europe/Berlin"
            )
            users.add(conn, "Ops Admin", "admin@northwind.test", role="admin", opt_in=True)
        mails = [
            demostory.Mail(
                "alice@northwind.test",
                name,
                address,
                subject,
                now - timedelta(days=n, hours=2),
                tuple(script),
            )
            for n, (name, address, subject, script) in enumerate(SCENARIOS)
        ]
        if not small:
            _team(conn)
            mails += demostory.mails(now, ("alice@northwind.test", "ben@northwind.test"))
        known: dict[str, uuid.UUID] = {}
        hits: list[RawHit] = []
        for mail in mails:
            if mail.address not in known:
                company = mail.address.split("@")[1].split(".")[0].title()
                account = parties.accounts_named(conn, company)
                parent = account[0] if account else parties.add(conn, "account", company, None)
                known[mail.address] = parties.add(
                    conn, "contact", mail.name, mail.address, parent=parent
                )
            hits += _send(conn, service, mail, now)
        store_hits(conn, hits, enrichment, settings)
    if not small:
        write_sign_ins(engine, settings)
    return len(mails)


def _send(conn: Connection, service: Outgoing, mail: demostory.Mail, now: datetime) -> list[RawHit]:
    msg = build_message(
        mail.sender,
        [mail.address],
        mail.subject,
        HTML.format(first=mail.name.split()[0]),
        None,
        sent_at=mail.sent,
    )
    tracked = service.track(
        conn, msg, sender=mail.sender, recipients=[mail.address], sent_at=mail.sent
    )
    delivery = tracked.copies[0].delivery_id
    links = emails.link_ids(conn, tracked.activity_id)
    return [
        RawHit(
            hit_id=f"demo:{tracked.activity_id}:{i}",
            received_at=mail.sent + hit.after,
            kind=hit.kind,
            delivery_id=delivery,
            link_id=links[hit.link] if hit.link is not None else None,
            ip=hit.ip,
            user_agent=hit.ua,
            method="GET",
        )
        for i, hit in enumerate(mail.hits)
        if mail.sent + hit.after <= now
    ]


def _team(conn: Connection) -> None:
    """Ben (a second rep) and Maria, who manages a team of Alice and Ben."""
    if users.by_address(conn, "ben@northwind.test") is not None:
        return
    ben = users.add(conn, "Ben Ortiz", "ben@northwind.test", opt_in=True, timezone="Europe/London")
    maria = users.add(
        conn, "Maria Chen", "maria@northwind.test", opt_in=True, timezone="Europe/Berlin"
    )
    alice = users.by_address(conn, "alice@northwind.test")
    assert alice is not None
    team = teams.add(conn, "Field Sales", maria)
    for member in (alice["systemuserid"], ben):
        teams.add_member(conn, team, member)


SIGN_INS = (
    ("alice@northwind.test", "a rep"),
    ("maria@northwind.test", "her manager"),
    ("admin@northwind.test", "an admin"),
)


def sign_ins_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-sign-ins.txt"


def write_sign_ins(engine: Engine, settings: Settings) -> Path:
    """Fresh random panel passwords for the demo's people, in a 0600 file: the demo
    ships no fixed password."""
    lines = ["# MailSignal demo sign-ins (random; `mailsignal demo` wrote them)"]
    with engine.begin() as conn:
        for address, who in SIGN_INS:
            user = users.by_address(conn, address)
            if user is None:
                continue
            password = secrets.token_urlsafe(12)
            sessions.set_password_hash(conn, user["systemuserid"], passwords.make(password))
            lines.append(f"{address}  {password}  ({who})")
    path = sign_ins_file(settings)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path
