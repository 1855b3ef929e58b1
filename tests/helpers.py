"""Small builders shared by tests (real addresses under .test, real user agents)."""

from __future__ import annotations

import datetime
import ipaddress
import re
from email import message_from_string, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Connection, Engine, select

from mailsignal import outgoing
from mailsignal.environments import of_copy
from mailsignal.store import users
from mailsignal.store.rollups import EVERYONE
from mailsignal.store.schema import email as email_table
from mailsignal.store.schema import (
    emaildelivery,
    engagementhour,
    environmentday,
    interactionforemail,
)
from mailsignal.tokens import Signer

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/142.0.0.0 Safari/537.36"
)
SAFE_LINKS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/72.0.3626.109 Safari/537.36"
)
APPLE_RELAY_IP = "104.28.28.10"
EOP_IP = "40.107.22.51"
PERSON_IP = "198.51.100.23"

HTML = (
    '<html><body><p>Hello <a href="https://example.com/pricing?a=1&amp;b=2">pricing</a>,'
    ' <a href="https://example.com/case">case study</a>,'
    ' <a href="mailto:rep@northwind.test">mail me</a>.</p></body></html>'
)


def add_rep(
    conn: Connection, address: str = "rep@northwind.test", *, opt_in: bool = True, role: str = "rep"
) -> Any:
    return users.add(conn, "Rep", address, opt_in=opt_in, role=role)


def tracked_urls(msg: EmailMessage | str) -> list[str]:
    """Tracking URLs in every text part of a message (decoded, so QP/base64 don't hide them)."""
    if isinstance(msg, str):
        msg = message_from_string(msg, policy=policy.default)  # type: ignore[assignment]
    assert isinstance(msg, EmailMessage)
    found: list[str] = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            found += re.findall(
                r"https?://[A-Za-z0-9.:\-]+/[oc]/[A-Za-z0-9_\-]+(?:\.gif)?", part.get_content()
            )
    return found


def track_html(conn: Connection, signer: Signer, recipients: list[str], **kw: Any) -> Any:
    """Track the HTML sales email from the rep; `kw` goes to `Outgoing.track` (sent_at)."""
    msg = outgoing.build_message("rep@northwind.test", recipients, "Hello", HTML, None)
    service = outgoing.Outgoing(signer, "http://track.test")
    return service.track(conn, msg, sender="rep@northwind.test", recipients=recipients, **kw)


class LandingPage(BaseHTTPRequestHandler):
    """Where tracked links lead in browser tests: a real page on localhost."""

    def do_GET(self) -> None:
        body = b"<!doctype html><title>Pricing</title><h1>Pricing page</h1>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def throwaway_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA), valid for a
    day, the key 0600; (cert, key). The relay's and the server's TLS tests use it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


PANEL_PASSWORD = "correct horse battery staple"


def with_password(conn: Connection, address: str, password: str = PANEL_PASSWORD) -> None:
    """Give an existing user a panel password (as `mailsignal users password` does)."""
    from mailsignal import passwords
    from mailsignal.store import sessions

    user = users.by_address(conn, address)
    assert user is not None, address
    sessions.set_password_hash(conn, user["systemuserid"], passwords.make(password))


def sign_in(client: Any, address: str, password: str = PANEL_PASSWORD) -> Any:
    """Sign `client` (a TestClient) in to the panel through the real form; the response."""
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None, form.text
    return client.post(
        "/login",
        data={"address": address, "password": password, "csrf": token[1], "next": "/"},
        follow_redirects=False,
    )


def csrf_of(html: str) -> str:
    """The CSRF token a panel page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no form with a CSRF token on the page"
    return found[1]


def assert_rollups_match_events(engine: Engine) -> None:
    """The panel's roll-ups (store/rollups.py), kept by delta, equal a count of the stored
    events: per owner (and everyone), hour and verdict; per copy, events by people and
    machines and its environment; per owner (and everyone), sent day and environment."""
    ev, d, e = interactionforemail, emaildelivery, email_table
    hours: dict[tuple[Any, datetime.datetime, str], int] = {}
    copies: dict[int, list[int]] = {}
    machine: dict[int, list[Any]] = {}

    def bump(table: dict[Any, Any], key: Any, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    with engine.connect() as conn:
        for owner, at, verdict, delivery, facts in conn.execute(
            select(
                ev.c.ownerid, ev.c.emailinteractiontime, ev.c.verdict, ev.c.deliveryid, ev.c.facts
            ).order_by(ev.c.deliveryid, ev.c.emailinteractiontime, ev.c.hitid)
        ):
            hour = at.replace(minute=0, second=0, microsecond=0)
            bump(hours, (owner, hour, verdict))
            bump(hours, (EVERYONE, hour, verdict))
            count = copies.setdefault(delivery, [0, 0])
            if verdict in ("human", "forward"):
                count[0] += 1
            elif verdict == "machine":
                count[1] += 1
                machine.setdefault(delivery, []).append(facts)
        kept = {(o, h, v): n for o, h, v, n in conn.execute(select(engagementhour)) if n}
        stored = list(
            conn.execute(
                select(
                    d.c.deliveryid,
                    d.c.emailaddress,
                    d.c.personevents,
                    d.c.machineevents,
                    d.c.mailenvironment,
                    e.c.ownerid,
                    e.c.senton,
                ).select_from(d.join(e, e.c.activityid == d.c.emailactivityid))
            )
        )
        kept_days = {
            (o, day, env): (p, m)
            for o, day, env, p, m in conn.execute(select(environmentday))
            if p or m
        }
    assert kept == hours
    days: dict[tuple[Any, ...], list[int]] = {}
    for row in stored:
        people, machines = copies.get(row.deliveryid, [0, 0])
        assert [row.personevents, row.machineevents] == [people, machines], row.deliveryid
        if row.deliveryid in copies:
            expected = of_copy(row.emailaddress, machine.get(row.deliveryid, []))
            assert row.mailenvironment == expected
        if (people or machines) and row.senton is not None:
            for who in (row.ownerid, EVERYONE):
                key = (who, row.senton.date(), row.mailenvironment or "")
                total = days.setdefault(key, [0, 0])
                total[0] += people
                total[1] += machines
    assert kept_days == {k: tuple(v) for k, v in days.items() if v[0] or v[1]}
