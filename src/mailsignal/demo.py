"""Demo data for `make run`: a small sales team, a few tracked emails and the hits that
real mail systems produce for them (Apple MPP prefetches, a Safe Links scan, a Gmail
image-proxy open, real clicks), all passed through the normal ingest path so every
label and reason a newcomer sees was computed, not typed in.

Every address is under the reserved `.test` TLD (RFC 2606); user agents come from
docs/fixtures of real clients (see tests/fixtures/user_agents.tsv) and IPs from inside the
bundled network lists, or from documentation ranges (RFC 5737) for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from .model import RawHit, TokenKind
from .outgoing import Outgoing, build_message
from .pipeline.enrichment import default_enrichment
from .pipeline.ingest import store_hits
from .settings import Settings
from .store import emails, parties, users
from .tokens import Signer

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
SAFE_LINKS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/72.0.3626.109 Safari/537.36"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
APPLE_RELAY_IP = "104.28.28.10"  # inside Apple Private Relay egress 104.28.28.0/26
EOP_IP = "40.107.22.51"  # Microsoft Exchange Online Protection 40.107.0.0/16
GOOGLE_PROXY_IP = "66.249.84.20"  # Google

HTML = """<!doctype html><html><body style="font-family:Arial,sans-serif">
<p>Hi {first},</p>
<p>Thanks for the call on Tuesday. As promised, here is our
<a href="https://www.example.com/pricing">pricing overview</a> and the
<a href="https://www.example.com/case-studies/logistics">logistics case study</a>.</p>
<p>Would <a href="https://cal.example.com/alice/30min">a 30-minute slot next week</a> work?</p>
<p>Best regards,<br>Alice<br><a href="mailto:alice@northwind.test">alice@northwind.test</a></p>
</body></html>"""


@dataclass(frozen=True)
class _Hit:
    after: timedelta
    kind: TokenKind
    link: int | None
    ip: str
    ua: str
    method: str = "GET"


S, M = timedelta(seconds=1), timedelta(minutes=1)
SCENARIOS: list[tuple[str, str, str, list[_Hit]]] = [
    (
        "Dana Fischer",
        "dana.fischer@contoso.test",
        "Pricing and the logistics case study",
        [
            _Hit(2 * S, TokenKind.OPEN, None, APPLE_RELAY_IP, "Mozilla/5.0"),
            _Hit(47 * M, TokenKind.OPEN, None, "198.51.100.23", SAFARI_IOS),
            _Hit(48 * M, TokenKind.CLICK, 0, "198.51.100.23", SAFARI_IOS),
            _Hit(95 * M, TokenKind.OPEN, None, "198.51.100.23", SAFARI_IOS),  # read again
        ],
    ),
    (
        "Lee Novak",
        "lee.novak@fabrikam.test",
        "Following up on our call",
        [
            _Hit(4 * S, TokenKind.OPEN, None, EOP_IP, SAFE_LINKS),
            _Hit(5 * S, TokenKind.CLICK, 0, EOP_IP, SAFE_LINKS),
            _Hit(5 * S, TokenKind.CLICK, 1, EOP_IP, SAFE_LINKS),
            _Hit(6 * S, TokenKind.CLICK, 2, EOP_IP, SAFE_LINKS),
        ],
    ),
    (
        "Sam Okafor",
        "sam.okafor@adatum.test",
        "Next steps for the pilot",
        [
            _Hit(3 * timedelta(hours=1), TokenKind.OPEN, None, GOOGLE_PROXY_IP, GMAIL_PROXY),
            _Hit(3 * timedelta(hours=1) + 2 * M, TokenKind.CLICK, 2, "203.0.113.40", CHROME),
        ],
    ),
    (
        "Ravi Iyer",
        "ravi.iyer@woodgrove.test",
        "The logistics case study",
        [
            _Hit(1 * S, TokenKind.OPEN, None, APPLE_RELAY_IP, "Mozilla/5.0"),
            _Hit(2 * timedelta(hours=1), TokenKind.OPEN, None, APPLE_RELAY_IP, "Mozilla/5.0"),
        ],
    ),
    (
        "Mia Larsen",
        "mia.larsen@litware.test",
        "Quick question about your rollout",
        [
            _Hit(26 * M, TokenKind.OPEN, None, "192.0.2.77", OUTLOOK),
        ],
    ),
]


def has_data(engine: Engine) -> bool:
    with engine.connect() as conn:
        return emails.any_exist(conn)


def load(engine: Engine, settings: Settings, signer: Signer, now: datetime | None = None) -> int:
    """Create the demo team, emails and hits; returns the number of emails."""
    now = now or datetime.now(UTC)
    enrichment = default_enrichment(settings)
    service = Outgoing.from_settings(settings, signer)
    with engine.begin() as conn:
        if users.by_address(conn, "alice@northwind.test") is None:
            users.add(
                conn, "Alice Martin", "alice@northwind.test", opt_in=True, timezone="Europe/Berlin"
            )
            users.add(conn, "Ops Admin", "admin@northwind.test", role="admin", opt_in=True)
        hits: list[RawHit] = []
        for n, (name, address, subject, script) in enumerate(SCENARIOS):
            company = address.split("@")[1].split(".")[0].title()
            account = parties.add(conn, "account", company, None)
            parties.add(conn, "contact", name, address, parent=account)
            sent = now - timedelta(days=n, hours=2)
            msg = build_message(
                "alice@northwind.test",
                [address],
                subject,
                HTML.format(first=name.split()[0]),
                None,
                sent_at=sent,
            )
            tracked = service.track(
                conn, msg, sender="alice@northwind.test", recipients=[address], sent_at=sent
            )
            delivery = tracked.copies[0].delivery_id
            links = emails.link_ids(conn, tracked.activity_id)
            for i, hit in enumerate(script):
                hits.append(
                    RawHit(
                        hit_id=f"demo:{tracked.activity_id}:{i}",
                        received_at=sent + hit.after,
                        kind=hit.kind,
                        delivery_id=delivery,
                        link_id=links[hit.link] if hit.link is not None else None,
                        ip=hit.ip,
                        user_agent=hit.ua,
                        method=hit.method,
                    )
                )
        store_hits(conn, hits, enrichment, settings)
    return len(SCENARIOS)
