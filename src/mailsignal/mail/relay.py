"""The relay's SMTP handler (aiosmtpd hooks): authenticate, check, track, queue.

Each hook returns an exact status, aiosmtpd-style. The handler never talks to the
smarthost: `handle_DATA` records the email, writes every outgoing copy to the durable
spool and answers 250 only after both are safe; the delivery worker (mail/delivery.py)
forwards from there, so a smarthost that is down costs a delay, never a message.

    530 5.7.0   MAIL before AUTH (aiosmtpd)       538 5.7.11  AUTH without TLS (aiosmtpd)
    535 5.7.8   wrong login or API key            454 4.7.0   too many failures / store down
    550 5.7.1   sender not allowed, unknown, off  553 5.1.3   malformed recipient address
    452 4.5.3   too many recipients               552 5.3.4   message too big (server.py)
    554 5.6.0   MIME we cannot parse              451 4.3.0   store or spool trouble: retry
    250 2.0.0   recorded and queued

Blocking work (database, parsing, fsync) runs in threads, so one slow message never
stalls the other sessions. On SQLite the transactions take a process-wide lock: SQLite
has one writer anyway, and a deferred transaction that reads then writes can otherwise
fail with SQLITE_BUSY instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.errors
import email.policy
import logging
import threading
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from .. import instrument, outgoing
from ..errors import AuthError, InputError, MimeError, NotFoundError, StoreError
from ..instrument import parse_message
from ..settings import Settings
from ..store import repo
from ..store.files import AttachmentFiles
from ..tokens import Signer
from .auth import AuthUser, FailureLimiter, b64, decode_plain
from .dkim import DkimSigner
from .outbound import Rcpt, Spool

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000
BAD_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
TOO_MANY_FAILURES = "454 4.7.0 Too many failed authentication attempts; try again later"
STORE_DOWN = "451 4.3.0 Local store unavailable; try again later"
AUTH_STORE_DOWN = "454 4.7.0 Temporary authentication failure; try again later"


def _line(text: str) -> str:
    """One short ASCII line for a status text (the client may not speak SMTPUTF8)."""
    return " ".join(text.encode("ascii", "replace").decode("ascii").split())[:300]


def _parse(raw: bytes) -> EmailMessage:
    try:
        return parse_message(raw)
    except MimeError as exc:
        if "content_types" not in exc.detail:
            raise
        # Sound MIME with nothing to instrument (a calendar invite, a bare PDF): record
        # and forward it as it is rather than refuse legitimate mail.
        return email.message_from_bytes(raw, policy=email.policy.default)


class RelayHandler:
    """aiosmtpd handler; `kick(ids)` hands newly queued spool entries to the worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        signer: Signer,
        spool: Spool,
        kick: Callable[[list[str]], None],
        clock: Callable[[], float],
        files: AttachmentFiles | None = None,
        dkim: DkimSigner | None = None,
        limiter: FailureLimiter | None = None,
        fail_delay: float = 1.0,
    ) -> None:
        self.settings, self.engine, self.signer = settings, engine, signer
        self.spool, self.kick, self.clock = spool, kick, clock
        self.files, self.dkim = files, dkim
        self.limiter = limiter or FailureLimiter()
        self.fail_delay = fail_delay
        self.in_flight = 0  # messages between DATA and their reply (for a graceful stop)
        self._db_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    # --- AUTH (aiosmtpd calls handler methods named auth_<MECHANISM>) ---------------------

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob = b64(args[1]) if len(args) > 1 else await server.challenge_auth("")
        pair = decode_plain(blob) if isinstance(blob, bytes) else None
        if pair is None:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad AUTH PLAIN")
        return await self._login(server, *pair)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login = b64(args[1]) if len(args) > 1 else await server.challenge_auth("Username:")
        if not isinstance(login, bytes):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad AUTH LOGIN")
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad AUTH LOGIN")
        return await self._login(
            server, login.decode("utf-8", "replace"), password.decode("utf-8", "replace")
        )

    async def _login(self, server: SMTP, login: str, password: str) -> AuthResult:
        peer = server.session.peer if server.session else None
        keys = (str(peer[0]) if isinstance(peer, tuple) else "", login.strip().lower())
        if self.limiter.blocked(*keys):
            return AuthResult(success=False, handled=False, message=TOO_MANY_FAILURES)
        try:
            user = await asyncio.to_thread(self._verify, login, password)
        except SQLAlchemyError:
            log.exception("AUTH: store unavailable")
            return AuthResult(success=False, handled=False, message=AUTH_STORE_DOWN)
        if user is None:
            self.limiter.failed(*keys)
            await asyncio.sleep(self.fail_delay)
            return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS)
        return AuthResult(success=True, auth_data=user)

    def _verify(self, login: str, password: str) -> AuthUser | None:
        try:
            address = repo.normalise_address(login)
            with self._db_lock, self.engine.begin() as conn:
                user = repo.user_for_api_key(conn, password)
        except (AuthError, InputError):
            return None
        if user["internalemailaddress"] != address:
            return None
        return AuthUser(address, str(user["accessrole"]), str(user["systemuserid"]))

    # --- envelope -------------------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        user = session.auth_data
        assert isinstance(user, AuthUser)  # aiosmtpd answers 530 before MAIL without AUTH
        try:
            sender = repo.normalise_address(address)
        except InputError:
            return "550 5.7.1 Sender address not allowed"
        if sender != user.address:
            if not user.is_admin:
                return f"550 5.7.1 {_line(user.address)} may not send as {_line(sender)}"
            known = await asyncio.to_thread(self._user_exists, sender)
            if not known:
                return f"550 5.7.1 Sender {_line(sender)} is not a MailSignal user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Sender OK"

    def _user_exists(self, address: str) -> bool:
        with self.engine.connect() as conn:
            user = repo.user_by_address(conn, address)
        return user is not None and not user["isdisabled"]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        try:
            repo.normalise_address(address)
        except InputError:
            return "553 5.1.3 Recipient address syntax not accepted"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        assert envelope.mail_from is not None
        options = ["SMTPUTF8"] if envelope.smtp_utf8 else []
        self.in_flight += 1
        try:
            activity_id, ids = await asyncio.to_thread(
                self.accept, envelope.mail_from, list(envelope.rcpt_tos), options, raw
            )
        except MimeError as exc:
            return f"554 5.6.0 {_line(exc.message)}"
        except (email.errors.MessageError, UnicodeError, LookupError) as exc:
            return f"554 5.6.0 Message cannot be processed: {_line(str(exc))}"
        except (NotFoundError, InputError) as exc:
            return f"550 5.7.1 {_line(exc.message)}"
        except (SQLAlchemyError, StoreError):
            log.exception("relay: store unavailable; answered 451")
            return STORE_DOWN
        except OSError:
            log.exception("relay: cannot write the outbound spool; answered 451")
            return "451 4.3.0 Cannot queue the message now; try again later"
        finally:
            self.in_flight -= 1
        self.kick(ids)
        return f"250 2.0.0 OK queued as {activity_id}"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("relay: unexpected error", exc_info=error)
        return "451 4.3.0 Internal error; try again later"

    # --- accept: record + queue (blocking, runs in a thread) ------------------------------

    def accept(
        self, mail_from: str, rcpts: list[str], options: list[str], raw: bytes
    ) -> tuple[str, list[str]]:
        """Record the email and stage one spool entry per transaction; (activity id, ids)."""
        msg = _parse(raw)
        if msg.get("Message-ID") is None:
            # Replies are matched by In-Reply-To, so the recorded id must be the sent one.
            message_id = make_msgid(domain=mail_from.rpartition("@")[2] or None)
            raw = f"Message-ID: {message_id}\r\n".encode("ascii") + raw
            msg["Message-ID"] = message_id
        # Scanned once for every copy, and before the lock: other messages' transactions
        # (and their fsyncs) need not wait for this one's parsing.
        prepared = instrument.prepare(msg)
        envelope = {repo.normalise_address(r): r for r in reversed(rcpts)}
        staged: list[str] = []
        try:
            with self._db_lock, self.engine.begin() as conn:
                tracked = outgoing.track(
                    conn,
                    self.signer,
                    self.settings.base_url,
                    prepared,
                    sender=mail_from,
                    recipients=[repo.normalise_address(r) for r in rcpts],
                    honeypot=self.settings.honeypot,
                    attachments=self.files,
                )
                activity_id = str(tracked.activity_id)
                plain = [c for c in tracked.copies if not c.decision.tracked]
                if plain:  # one transaction, the original bytes, for every untracked recipient
                    rcpt = [Rcpt(envelope[c.recipient], c.delivery_id) for c in plain]
                    staged.append(self._stage(raw, mail_from, rcpt, options, activity_id))
                for c in tracked.copies:
                    if c.decision.tracked:
                        data = c.as_bytes(linesep="\r\n")
                        rcpt = [Rcpt(envelope[c.recipient], c.delivery_id)]
                        staged.append(self._stage(data, mail_from, rcpt, options, activity_id))
                self.spool.sync(staged)  # every entry's files at once, before the commit
        except BaseException:
            self.spool.discard(staged)
            raise
        self.spool.commit(staged)
        return activity_id, staged

    def _stage(
        self, data: bytes, mail_from: str, rcpts: list[Rcpt], options: list[str], activity: str
    ) -> str:
        if self.dkim is not None:
            data = self.dkim.sign(data)
        opts = list(options)
        if not data.isascii() and "SMTPUTF8" not in opts:
            opts.append("BODY=8BITMIME")
        now = self.clock()
        return self.spool.stage(
            data,
            mail_from=mail_from,
            rcpts=rcpts,
            now=now,
            deadline=now + self.settings.outbound_bounce_after_hours * 3600,
            options=opts,
            activity_id=activity,
            durable=False,  # made durable together by `sync`
        )
