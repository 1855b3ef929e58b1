"""Run the relay: aiosmtpd sessions on a listening socket plus the outbound worker.

One asyncio loop serves every client: sessions are cheap coroutines and the blocking
work of each message runs in a thread (mail/relay.py), so many reps can submit at once.
`RelayServer` is what `mailsignal relay` runs in the foreground and what the tests start
on a thread. With `relay_workers` above one, `mailsignal relay` runs that many of them in
as many processes on one port (SO_REUSEPORT: the kernel spreads connections), sharing
the spool, the database and the AUTH failure counts (files under data_dir).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP
from sqlalchemy import Engine

from ..errors import ConfigError
from ..outgoing import Outgoing
from ..settings import Settings
from ..store import emails
from ..throttle import FailureLimiter
from ..tokens import Signer
from .delivery import OutboundWorker
from .dkim import DkimSigner
from .outbound import Spool
from .relay import RelayHandler
from .smarthost import SmtpTransport, Transport

log = logging.getLogger(__name__)

AUTH_FAILURES_FILE = "relay-auth-failures.json"  # under data_dir; see auth.FailureLimiter

# aiosmtpd's own size replies carry no enhanced status code (RFC 3463); clients and
# logs key on "5.3.4", so the relay says it.
_ENHANCED = {
    "552 Error: message size exceeds fixed maximum message size": (
        "552 5.3.4 Message size exceeds fixed maximum message size"
    ),
    "552 Error: Too much mail data": "552 5.3.4 Message size exceeds fixed maximum message size",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line longer than 998 characters",
}


class _NoLoginDataNoise(logging.Filter):
    """aiosmtpd itself sets its deprecated `Session.login_data` on every successful AUTH
    and logs a deprecation warning each time; the relay never reads it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_NoLoginDataNoise())


class RelaySMTP(SMTP):
    """One client session. Decides per connection whether AUTH needs TLS."""

    def __init__(
        self,
        handler: RelayHandler,
        *,
        allow_plain_local: bool,
        sessions: set[RelaySMTP],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self._allow_plain_local = allow_plain_local
        self._sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again with the TLS transport
        super().connection_made(transport)
        if first:
            peer = transport.get_extra_info("peername")
            encrypted = transport.get_extra_info("ssl_object") is not None
            local = self._allow_plain_local and _loopback(peer[0] if peer else "")
            # aiosmtpd sets this once per server; implicit TLS and the localhost
            # exception are facts of each connection.
            self._auth_require_tls = not (encrypted or local)
            self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = _ENHANCED.get(status, status)
        await super().push(status)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.relay_tls_cert is None and settings.relay_tls_key is None:
        return None
    if settings.relay_tls_cert is None or settings.relay_tls_key is None:
        raise ConfigError("relay TLS needs both relay_tls_cert and relay_tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.relay_tls_cert, settings.relay_tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the relay certificate: {exc}") from exc
    return context


def committed(engine: Engine, activity_id: str) -> bool:
    """Whether the relay's transaction for this email committed (settles `.pending`)."""
    with engine.connect() as conn:
        return emails.exists(conn, uuid.UUID(activity_id))


def mark_failed(engine: Engine, delivery_ids: list[int]) -> None:
    with engine.begin() as conn:
        emails.mark_failed(conn, delivery_ids)


class RelayServer:
    """The SMTP listener, its handler and the outbound worker, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        signer: Signer,
        *,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        auth_fail_delay: float = 1.0,
        host: str | None = None,
        port: int | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.settings, self.engine, self.signer = settings, engine, signer
        self.reuse_port = reuse_port  # several relay processes listen on one port
        self.host = host or settings.relay_host
        self.port = port or settings.relay_port
        self.hostname = socket.gethostname()
        self.clock = clock
        self.auth_fail_delay = auth_fail_delay
        self.spool = Spool(settings.data_dir / "outbound")
        self.transport = transport
        self._stop = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._sessions: set[RelaySMTP] = set()

    async def start(self) -> None:
        settings = self.settings
        tls = tls_context(settings)
        if tls is None and not settings.relay_allow_plain_auth_localhost:
            raise ConfigError(
                "the relay needs relay_tls_cert and relay_tls_key (AUTH is refused without "
                "TLS), or relay_allow_plain_auth_localhost for clients on this host"
            )
        if settings.relay_implicit_tls and tls is None:
            raise ConfigError("relay_implicit_tls needs relay_tls_cert and relay_tls_key")
        self.transport = self.transport or SmtpTransport.from_settings(settings, self.hostname)
        self.worker = OutboundWorker(
            self.spool,
            self.transport,
            bounce_after_seconds=settings.outbound_bounce_after_hours * 3600,
            committed=functools.partial(committed, self.engine),
            mark_failed=functools.partial(mark_failed, self.engine),
            clock=self.clock,
            hostname=self.hostname,
        )
        self.handler = RelayHandler(
            settings=settings,
            engine=self.engine,
            # The same service as REST, the CLI and imports: attachments_mode included.
            outgoing=Outgoing.from_settings(settings, self.signer),
            spool=self.spool,
            kick=self.worker.kick,
            clock=self.clock,
            dkim=DkimSigner.from_settings(settings),
            # In a file every relay process shares (and that outlives restarts).
            limiter=FailureLimiter(path=settings.data_dir / AUTH_FAILURES_FILE, clock=self.clock),
            fail_delay=self.auth_fail_delay,
        )
        loop = asyncio.get_running_loop()
        implicit = settings.relay_implicit_tls

        def session() -> RelaySMTP:
            return RelaySMTP(
                self.handler,
                allow_plain_local=settings.relay_allow_plain_auth_localhost,
                sessions=self._sessions,
                data_size_limit=settings.relay_max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=self.hostname,
                ident="MailSignal relay",
                tls_context=None if implicit else tls,
                auth_required=True,
                auth_require_tls=True,
                loop=loop,
            )

        self._server = await loop.create_server(
            session,
            self.host,
            self.port,
            ssl=tls if implicit else None,
            reuse_port=self.reuse_port or None,
        )
        self._worker_task = asyncio.create_task(self.worker.run(self._stop))
        log.info("relay listening on %s:%s (%s)", self.host, self.port, self.mode)

    @property
    def mode(self) -> str:
        if self.settings.relay_implicit_tls:
            return "implicit TLS"
        return "STARTTLS" if self.settings.relay_tls_cert else "plain, localhost AUTH only"

    async def stop(self, grace: float = 30.0) -> None:
        """Stop listening, finish messages being accepted and deliveries in flight."""
        if self._server is not None:
            self._server.close()
            # A message between DATA and its reply is finished, so its client gets the
            # 250 (or 4xx) it waits for; idle sessions are closed, not waited out (since
            # Python 3.12 wait_closed() would wait for every client to leave).
            deadline = time.monotonic() + grace
            while self.handler.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for session in list(self._sessions):
                if session.transport is not None:
                    session.transport.close()
            await self._server.wait_closed()
        self._stop.set()
        if self._worker_task is not None:
            await self._worker_task
        if self.transport is not None:
            await self.transport.close()
