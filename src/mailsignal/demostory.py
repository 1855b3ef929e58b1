"""The panel's demo story (issue 12), on top of demo.py's five short scenarios.

One discovery email that a pixel-counting tool reports as "opened nine times across
three locations": two pre-fetches by the recipient's security gateway (Proofpoint's
network), one Apple Mail Privacy Protection fetch, the one real reader (twice, with a
click), and a forward read by two colleagues on other devices and networks. Then a
few weeks of other mail by two reps, a manager over both, so the lists, views and
charts have something to show. Every hit goes through the normal ingest, so every
label and reason shown was computed; the random choices are seeded, so the demo is the
same every time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .model import TokenKind

S, M, H, D = (timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1))
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)"
CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
APPLE_MAIL = "Mozilla/5.0"  # what Apple Mail's privacy proxy sends
GATEWAY_UA = (  # a security gateway's fetcher poses as an old desktop Chrome
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/72.0.3626.109 Safari/537.36"
)
PROOFPOINT_IP = "148.163.128.20"  # inside Proofpoint's 148.163.128.0/24 (AS13916)
EOP_IP = "40.107.22.51"  # Microsoft Exchange Online Protection 40.107.0.0/16
APPLE_RELAY_IP = "104.28.28.10"  # Apple Private Relay egress 104.28.28.0/26
# People, from the documentation ranges (RFC 5737): no network list claims them.
READER_IP, COLLEAGUE_A_IP, COLLEAGUE_B_IP = "192.0.2.10", "198.51.100.50", "203.0.113.77"


@dataclass(frozen=True)
class Hit:
    after: timedelta
    kind: TokenKind
    link: int | None
    ip: str
    ua: str


@dataclass(frozen=True)
class Mail:
    """One email of the story: who sends it to whom, when, and what happens to it."""

    sender: str
    name: str
    address: str
    subject: str
    sent: datetime
    hits: tuple[Hit, ...]


OPEN, CLICK = TokenKind.OPEN, TokenKind.CLICK
STORY_SUBJECT = "Discovery call follow-up: rollout plan for Tailspin"
# The nine opens: 2 gateway + 1 Apple + 2 by the reader + 4 by two colleagues.
STORY: tuple[Hit, ...] = (
    Hit(3 * S, OPEN, None, PROOFPOINT_IP, GATEWAY_UA),
    Hit(4 * S, CLICK, 0, PROOFPOINT_IP, GATEWAY_UA),
    Hit(4 * S, CLICK, 1, PROOFPOINT_IP, GATEWAY_UA),
    Hit(9 * S, OPEN, None, PROOFPOINT_IP, GATEWAY_UA),
    Hit(14 * S, OPEN, None, APPLE_RELAY_IP, APPLE_MAIL),
    Hit(42 * M, OPEN, None, READER_IP, OUTLOOK),
    Hit(44 * M, CLICK, 1, READER_IP, CHROME_WIN),
    Hit(3 * H, OPEN, None, READER_IP, OUTLOOK),
    Hit(5 * H, OPEN, None, COLLEAGUE_A_IP, SAFARI_IOS),
    Hit(5 * H + 9 * M, OPEN, None, COLLEAGUE_A_IP, SAFARI_IOS),
    Hit(26 * H, OPEN, None, COLLEAGUE_B_IP, CHROME_MAC),
    Hit(26 * H + 4 * M, OPEN, None, COLLEAGUE_B_IP, CHROME_MAC),
)

PEOPLE = (
    ("Jordan Blake", "jordan.blake@tailspin.test"),
    ("Priya Raman", "priya.raman@tailspin.test"),
    ("Tom Weber", "tom.weber@wingtip.test"),
    ("Ana Souza", "ana.souza@wingtip.test"),
    ("Kenji Mori", "kenji.mori@proseware.test"),
    ("Lena Vogel", "lena.vogel@proseware.test"),
    ("Omar Haddad", "omar.haddad@relecloud.test"),
    ("Chloe Martin", "chloe.martin@relecloud.test"),
    ("Eva Novak", "eva.novak@northwindtraders.test"),
    ("Luis Ortega", "luis.ortega@northwindtraders.test"),
)
SUBJECTS = (
    "Pricing for the second phase",
    "Your questions from the demo",
    "Case study: rollout at a logistics firm",
    "Proposal draft for review",
    "Checking in on the pilot",
    "Agenda for our call on Thursday",
    "Security questionnaire answers",
    "Follow-up: integration timeline",
)


def _pattern(rng: random.Random) -> tuple[Hit, ...]:
    """What happens to one ordinary email: the mixes the field reports, in proportion."""
    roll = rng.random()
    reader_ip = f"192.0.2.{rng.randrange(20, 250)}"
    later = rng.randrange(20, 600) * M
    if roll < 0.25:  # an Outlook reader who clicks
        return (
            Hit(later, OPEN, None, reader_ip, OUTLOOK),
            Hit(later + 2 * M, CLICK, rng.randrange(3), reader_ip, CHROME_WIN),
        )
    if roll < 0.45:  # Apple MPP only: a fetch on delivery, nobody known to have read it
        return (Hit(rng.randrange(2, 30) * S, OPEN, None, APPLE_RELAY_IP, APPLE_MAIL),)
    if roll < 0.65:  # a Safe Links scan of everything, then maybe the person
        scan = tuple(Hit((4 + n) * S, CLICK, n, EOP_IP, GATEWAY_UA) for n in range(3))
        person = (Hit(later, OPEN, None, reader_ip, OUTLOOK),) if rng.random() < 0.5 else ()
        return (Hit(3 * S, OPEN, None, EOP_IP, GATEWAY_UA), *scan, *person)
    if roll < 0.85:  # read on a phone, twice
        return (
            Hit(later, OPEN, None, reader_ip, SAFARI_IOS),
            Hit(later + rng.randrange(60, 900) * M, OPEN, None, reader_ip, SAFARI_IOS),
        )
    return ()  # not opened (or images off)


def mails(now: datetime, senders: tuple[str, str], days: int = 21) -> list[Mail]:
    """The story email (by the first sender, two days ago at 09:10 UTC) and a few weeks of
    other mail by both senders, seeded."""
    rng = random.Random(12)
    first, second = senders
    story_sent = (now - 2 * D).replace(hour=9, minute=10, second=0, microsecond=0)
    found = [Mail(first, *PEOPLE[0], STORY_SUBJECT, story_sent, STORY)]
    for day in range(days, 0, -1):
        for _ in range(rng.randrange(1, 4)):
            name, address = PEOPLE[rng.randrange(1, len(PEOPLE))]
            midnight = (now - day * D).replace(hour=0, minute=0, second=0, microsecond=0)
            sent = midnight + rng.randrange(7 * 60, 16 * 60) * M  # working hours (UTC)
            sender = first if rng.random() < 0.6 else second
            found.append(Mail(sender, name, address, rng.choice(SUBJECTS), sent, _pattern(rng)))
    return found
