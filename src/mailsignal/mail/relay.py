"""The relay's SMTP handler (aiosmtpd hooks): authenticate, check, track, queue.

Each hook returns an exact status, aiosmtpd-style. The handler never talks to the
smarthost: `handle_DATA` records the email, writes every outgoing copy to the durable
spool and answers 250 only after both are safe; the delivery worker (mail/delivery.py)
forwards from there, so a smarthost that is down costs a delay, never a message.

    530 5.7.0   MAIL before AUTH (aiosmtpd)       538 5.7.11  AUTH without TLS (aiosmtpd)
    535 5.7.8   wrong login or API key            454 4.7.0   too many failures / store down
    550 5.7.1   sender not allowed, unknown, off  553 5.1.3   malformed recipient address
    452 4.5.3   too many recipients               552 5.3.4   message too big (server.py)
    554 5.6.0   MIME we cannot parse or nested    451 4.3.0   store or spool trouble: retry
                over instrument.MAX_DEPTH levels
    250 2.0.0   recorded and queued

Blocking work (parsing, database, fsync) runs off the event loop, on one thread that
takes the messages waiting at that moment as a group: it parses and scans each, then
records them all in one transaction and makes their spool entries durable with one
round of fsyncs before the one commit (group commit; see `accept_group`). Every copy
leaves with its email's `X-MailSignal-Id` (tracked copies) and without `Bcc`. On SQLite
a writer takes `WriterLock` (this process's threads and every other relay process) and
BEGIN IMMEDIATE: SQLite has one writer anyway, and a deferred transaction that reads
then writes can otherwise fail with SQLITE_BUSY instead of waiting.

Beside it: submitted.py (the message as submitted: Bcc stripped, parsed), staging.py
(a recorded email's spool entries), writer_lock.py; tracking itself is `Outgoing`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.errors
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from .. import instrument
from ..addresses import normalise_address
from ..errors import AuthError, InputError, MimeError, NotFoundError, StoreError
from ..outgoing import Outgoing, TrackedEmail
from ..settings import Settings
from ..store import users
from ..store.db import writing
from ..throttle import FailureLimiter
from .auth import AuthUser, b64, decode_plain
from .dkim import DkimSigner
from .outbound import Spool
from .staging import Stager
from .submitted import Submitted, parse_submitted, strip_fields
from .writer_lock import WRITER_LOCK_FILE, WriterLock

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 1000
BAD_CREDENTIALS = "535 5.7.8 Authentication credentials invalid"
TOO_MANY_FAILURES = "454 4.7.0 Too many failed authentication attempts; try again later"
STORE_DOWN = "451 4.3.0 Local store unavailable; try again later"
AUTH_STORE_DOWN = "454 4.7.0 Temporary authentication failure; try again later"


def _line(text: str) -> str:
    """One short ASCII line for a status text (the client may not speak SMTPUTF8)."""
    return " ".join(text.encode("ascii", "replace").decode("ascii").split())[:300]


GROUP_MAX = 32  # messages recorded in one transaction at most


@dataclass(slots=True)
class _Job:
    """A message ready to record: its envelope, its bytes as sent, its scanned MIME."""

    mail_from: str
    rcpts: list[str]
    options: list[str]
    raw: bytes
    prepared: instrument.Prepared


class RelayHandler:
    """aiosmtpd handler; `kick(ids, data)` hands newly queued spool entries (and their
    bytes, so the worker need not read them back) to the worker."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        outgoing: Outgoing,
        spool: Spool,
        kick: Callable[[list[str], Mapping[str, bytes]], None],
        clock: Callable[[], float],
        dkim: DkimSigner | None = None,
        limiter: FailureLimiter | None = None,
        fail_delay: float = 1.0,
    ) -> None:
        self.settings, self.engine, self.outgoing = settings, engine, outgoing
        self.spool, self.kick, self.clock = spool, kick, clock
        self.stager = Stager(spool, clock, settings.outbound_bounce_after_hours * 3600, dkim)
        self.limiter = limiter or FailureLimiter()
        self.fail_delay = fail_delay
        self.in_flight = 0  # messages between DATA and their reply (for a graceful stop)
        # Messages waiting for their turn, and the task accepting them group by group.
        self._waiting: list[tuple[Submitted, asyncio.Future[tuple[str, dict[str, bytes]]]]] = []
        self._acceptor: asyncio.Task[None] | None = None
        self._sqlite = engine.dialect.name == "sqlite"
        self._db_lock: contextlib.AbstractContextManager[Any] = (
            WriterLock(settings.data_dir / WRITER_LOCK_FILE)
            if self._sqlite
            else contextlib.nullcontext()
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that will write (`store.db.writing`: BEGIN IMMEDIATE on SQLite),
        taken after this process's and every other relay process's turn (`WriterLock`)."""
        with self._db_lock, writing(self.engine) as conn:
            yield conn

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
        who = (str(peer[0]) if isinstance(peer, tuple) else "", login.strip().lower())
        # In a thread: the limiter's counts may be in a file other processes lock.
        if await asyncio.to_thread(self.limiter.locked, *who):
            return AuthResult(success=False, handled=False, message=TOO_MANY_FAILURES)
        try:
            user = await asyncio.to_thread(self._verify, login, password)
        except SQLAlchemyError:
            log.exception("AUTH: store unavailable")
            return AuthResult(success=False, handled=False, message=AUTH_STORE_DOWN)
        if user is None:
            await asyncio.to_thread(self.limiter.failed, *who)
            await asyncio.sleep(self.fail_delay)
            return AuthResult(success=False, handled=False, message=BAD_CREDENTIALS)
        await asyncio.to_thread(self.limiter.succeeded, *who)
        return AuthResult(success=True, auth_data=user)

    def _verify(self, login: str, password: str) -> AuthUser | None:
        try:
            address = normalise_address(login)
            user = users.authenticate(self.engine, password)
        except (AuthError, InputError):
            return None
        if user["internalemailaddress"] != address:
            return None
        return AuthUser(
            address, str(user["accessrole"]), str(user["systemuserid"]), users.key_prefix(password)
        )

    # --- envelope -------------------------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        user = session.auth_data
        assert isinstance(user, AuthUser)  # aiosmtpd answers 530 before MAIL without AUTH
        # The session may have logged in before its user was disabled or its key revoked.
        try:
            await asyncio.to_thread(self._still_allowed, user)
        except AuthError:
            return f"550 5.7.1 {_line(user.address)} is disabled or its API key was revoked"
        except SQLAlchemyError:
            log.exception("MAIL: store unavailable")
            return STORE_DOWN
        try:
            sender = normalise_address(address)
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

    def _still_allowed(self, user: AuthUser) -> None:
        with self.engine.connect() as conn:
            users.session_user(conn, uuid.UUID(user.user_id), user.key)

    def _user_exists(self, address: str) -> bool:
        with self.engine.connect() as conn:
            user = users.by_address(conn, address)
        return user is not None and not user["isdisabled"]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        try:
            normalise_address(address)
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
            activity_id, queued = await self._accepted(
                Submitted(envelope.mail_from, list(envelope.rcpt_tos), options, raw)
            )
        except MimeError as exc:
            return f"554 5.6.0 {_line(exc.message)}"
        except (email.errors.MessageError, UnicodeError, LookupError) as exc:
            return f"554 5.6.0 Message cannot be processed: {_line(str(exc))}"
        except RecursionError:
            # Sending it again would fail again: a permanent refusal, never 451 (retries).
            return "554 5.6.0 Message structure too deeply nested"
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
        self.kick(list(queued), queued)
        return f"250 2.0.0 OK queued as {activity_id}"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("relay: unexpected error", exc_info=error)
        return "451 4.3.0 Internal error; try again later"

    # --- accept: prepare, record and queue, in groups, on one thread ----------------------
    #
    # Why one thread does it all rather than one thread per message: the writer's turn
    # (one at a time: SQLite has one writer, and `WriterLock` spans every relay process) is
    # what throughput waits on, and a turn is a string of short database calls and file
    # writes, each of which lets go of the GIL. With other threads busy parsing messages,
    # each call waited up to a GIL switch interval (5 ms) to get it back: a turn took three
    # to twenty times its CPU time. Group commit shares the turn's fixed costs (fsyncs,
    # the commit) between the messages that queued up while the previous group was written.

    def accept(
        self, mail_from: str, rcpts: list[str], options: list[str], raw: bytes
    ) -> tuple[str, dict[str, bytes]]:
        """Record one message and queue its copies (blocking); see `accept_group`."""
        [result] = self.accept_group([Submitted(mail_from, rcpts, options, raw)])
        if isinstance(result, BaseException):
            raise result
        return result

    def accept_group(
        self, messages: list[Submitted]
    ) -> list[tuple[str, dict[str, bytes]] | BaseException]:
        """Prepare each message, then record and queue those that parsed, together (see
        `commit`); per message (activity id, {entry id: its bytes}) or why it was refused.
        """
        results: list[tuple[str, dict[str, bytes]] | BaseException | None] = []
        jobs: list[_Job] = []
        for message in messages:
            try:
                jobs.append(self.prepare(message))
                results.append(None)
            except Exception as exc:  # answered per message (554 for MIME, ...)
                results.append(exc)
        committed = iter(self.commit(jobs))
        return [next(committed) if r is None else r for r in results]

    def prepare(self, message: Submitted) -> _Job:
        """Everything about a message that needs no database: parse, check, scan."""
        raw = strip_fields(message.raw)
        msg = parse_submitted(raw)
        if msg.get("Message-ID") is None:
            # Replies are matched by In-Reply-To, so the recorded id must be the sent one.
            message_id = make_msgid(domain=message.mail_from.rpartition("@")[2] or None)
            raw = f"Message-ID: {message_id}\r\n".encode("ascii") + raw
            msg["Message-ID"] = message_id
        # Scanned once for every copy, before the writer's turn; so is the serialised frame
        # every copy is written into (an unchanged copy builds it, and it is kept).
        prepared = instrument.prepare(msg)
        prepared.render(str, None).as_bytes(linesep="\r\n")
        return _Job(message.mail_from, message.rcpts, message.options, raw, prepared)

    async def _accepted(self, message: Submitted) -> tuple[str, dict[str, bytes]]:
        """`accept` this message with whichever others are waiting (group commit)."""
        future: asyncio.Future[tuple[str, dict[str, bytes]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append((message, future))
        if self._acceptor is None or self._acceptor.done():
            self._acceptor = asyncio.create_task(self._accept_waiting())
        return await future

    async def _accept_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            try:
                results = await asyncio.to_thread(self.accept_group, [m for m, _f in group])
            except asyncio.CancelledError:
                for _message, future in group + self._waiting:
                    future.cancel()
                raise
            except Exception as exc:  # accept_group answers per message: this is a bug
                results = [exc] * len(group)
            for (_message, future), result in zip(group, results, strict=True):
                if future.done():  # the client went away; the message is queued regardless
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def commit(self, jobs: list[_Job]) -> list[tuple[str, dict[str, bytes]] | BaseException]:
        """Record prepared messages and queue their copies, durable on return; per job
        (activity id, {entry id: its bytes}) or the exception that refused it.

        One transaction, one round of fsyncs and one commit for the whole group: the
        writer's turn is what the relay's throughput waits on (SQLite has one writer),
        and a lone message paid for a round of fsyncs and a commit of its own. When the
        group fails, each message is tried alone, so one bad message costs only itself.
        """
        try:
            return list(self._commit_group(jobs))
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        out: list[tuple[str, dict[str, bytes]] | BaseException] = []
        for job in jobs:
            try:
                out += self._commit_group([job])
            except Exception as exc:
                out.append(exc)
        return out

    def _commit_group(self, jobs: list[_Job]) -> list[tuple[str, dict[str, bytes]]]:
        staged: list[dict[str, bytes]] = []
        try:
            with self._write() as conn:
                recorded = [self._track(conn, job) for job in jobs]
                for job, tracked in zip(jobs, recorded, strict=True):
                    staged.append({})
                    self.stager.stage_email(
                        job.raw, job.mail_from, job.rcpts, job.options, tracked, staged[-1]
                    )
                # Every entry's files at once, before the commit.
                self.spool.sync([entry for group in staged for entry in group])
        except BaseException:
            self.spool.discard([entry for group in staged for entry in group])
            raise
        try:
            # Not waiting for the renames to reach the disk: the emails are committed, so
            # a crash that undoes them leaves `.pending` entries the worker promotes.
            self.spool.commit([entry for group in staged for entry in group], durable=False)
        except OSError:
            # Recorded and durably queued all the same: the worker promotes what stayed
            # `.pending` (Spool.pending), so the 250 holds and a resend would duplicate.
            log.exception("relay: could not promote queued entries; the worker will")
        return [(str(e.activity_id), group) for e, group in zip(recorded, staged, strict=True)]

    def _track(self, conn: Connection, job: _Job) -> TrackedEmail:
        recipients = [normalise_address(r) for r in job.rcpts]
        return self.outgoing.track(conn, job.prepared, sender=job.mail_from, recipients=recipients)
