"""The way out: a transport interface and its aiosmtplib implementation for the smarthost.

The worker only sees `Transport.send`, which never raises for SMTP trouble: it returns
which recipients failed for now (4xx, network, timeouts) and which for good (5xx), as
httpx's transports hide the wire behind `handle_request`. Tests and benchmarks can hand
in their own transport.

Why classify smarthost login and greeting failures as temporary even when they are 5xx:
they say our configuration is wrong, not that the message is undeliverable. Bouncing
every rep's mail because a password expired would be worse than holding it until an
operator fixes it (the queue bounces after `outbound_bounce_after_hours` anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiosmtplib

from ..errors import ConfigError
from ..settings import Settings

log = logging.getLogger(__name__)

# An idle connection older than this is closed rather than reused: servers drop idle
# clients (Postfix after 300 s by default), and a dropped one costs a failed attempt.
_IDLE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SendResult:
    """Per-recipient outcome; a recipient in neither map was accepted."""

    temporary: dict[str, str] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)


class Transport(Protocol):
    async def send(
        self, mail_from: str, rcpts: Sequence[str], data: bytes, options: Sequence[str]
    ) -> SendResult:
        """Run one SMTP transaction; report failures instead of raising them."""
        ...

    async def close(self) -> None:
        """Close pooled connections."""
        ...


def _all(rcpts: Sequence[str], reply: str, permanent: bool) -> SendResult:
    failed = dict.fromkeys(rcpts, reply)
    return SendResult(permanent=failed) if permanent else SendResult(temporary=failed)


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"[:500]


class SmtpTransport:
    """aiosmtplib client with a small pool of reused connections to one smarthost."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        local_hostname: str | None = None,
        timeout: float = 60.0,
        pool_size: int = 8,
    ) -> None:
        self.host, self.port = host, port
        self.security = security
        self.username, self.password = username, password
        self.verify_tls = verify_tls
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.pool_size = pool_size
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []

    @classmethod
    def from_settings(cls, settings: Settings, local_hostname: str | None = None) -> SmtpTransport:
        if not settings.smarthost:
            raise ConfigError("no smarthost: set MAILSIGNAL_SMARTHOST=host:port for the relay")
        host, sep, port = settings.smarthost.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ConfigError(f"smarthost must be host:port, not {settings.smarthost!r}")
        return cls(
            host.strip("[]"),
            int(port),
            security=settings.smarthost_security,
            username=settings.smarthost_username,
            password=settings.smarthost_password,
            verify_tls=settings.smarthost_verify_tls,
            local_hostname=local_hostname,
        )

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            validate_certs=self.verify_tls,
            local_hostname=self.local_hostname,
            timeout=self.timeout,
        )
        await client.connect()
        return client

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since < _IDLE_SECONDS:
                return client
            client.close()
        return None

    def _give_back(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected and len(self._idle) < self.pool_size:
            self._idle.append((client, time.monotonic()))
        else:
            client.close()

    async def send(
        self, mail_from: str, rcpts: Sequence[str], data: bytes, options: Sequence[str]
    ) -> SendResult:
        # A pooled connection the server has dropped fails at once; try one fresh one then.
        for reused in (True, False):
            client = self._take_idle() if reused else None
            if reused and client is None:
                continue
            try:
                if client is None:
                    client = await self._connect()
            except aiosmtplib.SMTPException as exc:
                return _all(rcpts, f"connecting to {self.host}:{self.port}: {exc}", False)
            except OSError as exc:
                return _all(rcpts, f"connecting to {self.host}:{self.port}: {exc}", False)
            try:
                errors, _ = await client.sendmail(
                    mail_from, list(rcpts), data, mail_options=list(options)
                )
            except aiosmtplib.SMTPServerDisconnected as exc:
                client.close()
                if reused:
                    continue
                return _all(rcpts, f"smarthost disconnected: {exc}", False)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._give_back(client)
                return _split({r.recipient: (r.code, r.message) for r in exc.recipients})
            except aiosmtplib.SMTPResponseException as exc:
                self._give_back(client)
                return _all(rcpts, _reply(exc.code, exc.message), exc.code >= 500)
            except aiosmtplib.SMTPNotSupported as exc:
                self._give_back(client)
                return _all(rcpts, f"554 5.6.7 smarthost: {exc}", True)
            except ValueError as exc:  # an address no SMTP command line can carry
                self._give_back(client)
                return _all(rcpts, f"553 5.1.3 {exc}", True)
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                return _all(rcpts, f"sending to {self.host}:{self.port}: {exc}", False)
            self._give_back(client)
            return _split({addr: (r.code, r.message) for addr, r in errors.items()})
        raise AssertionError("unreachable")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client, _since in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
                await client.quit(timeout=5)
            client.close()


def _split(refused: dict[str, tuple[int, str]]) -> SendResult:
    result = SendResult()
    for address, (code, message) in refused.items():
        target = result.permanent if code >= 500 else result.temporary
        target[address] = _reply(code, message)
    return result
