"""IMAP client adapter, in httpx's transport style: the interface (`MailSession`, declared
in `pipeline.mailsync` where it is used), the real client on imaplib, and an in-memory fake.

Why imaplib: it is in the standard library, synchronous like the rest of the sync code,
and the few commands needed (LOGIN/AUTHENTICATE, EXAMINE, UID SEARCH, UID FETCH) are
simple to drive; the third-party clients add nothing we use.

The real session only ever EXAMINEs (read-only SELECT) and fetches `BODY.PEEK[]`, so
syncing never marks the rep's mail as read. Every failure becomes a `MailSignalError`
naming the server and what was being done, never the password: imaplib's messages carry
the server's text, and LOGIN's arguments are not echoed back.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import MailSignalError
from ..pipeline.mailboxes import MailAccount
from ..pipeline.mailsync import Connector, Fetched, MailSession

__all__ = [
    "Connector",
    "FakeServer",
    "ImaplibSession",
    "MailSession",
    "connect_imap",
]
TIMEOUT = 30.0  # seconds per socket operation: a stalled server fails the run, not hangs it


def encode_folder(name: str) -> str:
    """A folder name as an IMAP quoted string in modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending = ""

    def flush() -> None:
        nonlocal pending
        if pending:
            data = base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + data.replace("/", ",") + "-")
            pending = ""

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    flush()
    text = "".join(out)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImaplibSession:
    """A logged-in imaplib connection implementing `MailSession`."""

    def __init__(self, imap: imaplib.IMAP4, account: MailAccount) -> None:
        self._imap = imap
        self._where = f"{account.host}:{account.port}"
        self._folder = ""

    def _call(self, doing: str, command: Callable[[], tuple[str, list[Any]]]) -> list[Any]:
        try:
            typ, data = command()
        except (imaplib.IMAP4.abort, OSError) as exc:  # abort first: it is an IMAP4.error
            raise MailSignalError(
                f"IMAP connection to {self._where} lost while {doing}: {exc}"
            ) from exc
        except imaplib.IMAP4.error as exc:
            raise MailSignalError(f"IMAP server {self._where} refused {doing}: {exc}") from exc
        if typ != "OK":
            text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
            raise MailSignalError(f"IMAP server {self._where} refused {doing}: {typ} {text}")
        return data

    def select(self, folder: str) -> int:
        self._folder = folder
        self._call(f"opening {folder!r}", lambda: self._imap.select(encode_folder(folder), True))
        _name, values = self._imap.response("UIDVALIDITY")
        if not values or not values[-1]:
            raise MailSignalError(f"IMAP server {self._where} sent no UIDVALIDITY for {folder!r}")
        return int(values[-1])

    def uids_after(self, last_uid: int) -> list[int]:
        data = self._call(
            f"searching {self._folder!r}", lambda: self._imap.uid("SEARCH", f"UID {last_uid + 1}:*")
        )
        return sorted({int(n) for chunk in data if chunk for n in chunk.split()})

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        if not uids:
            return []
        spec = ",".join(str(u) for u in uids)
        data = self._call(
            f"fetching {len(uids)} messages from {self._folder!r}",
            lambda: self._imap.uid("FETCH", spec, "(UID INTERNALDATE BODY.PEEK[])"),
        )
        return _parse_fetch(data)

    def close(self) -> None:
        _close(self._imap)


def _close(imap: imaplib.IMAP4) -> None:
    try:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):  # already gone: fine
            imap.logout()
    finally:  # logout skips closing the socket when the link is already dead
        with contextlib.suppress(OSError):
            imap.shutdown()


def _parse_fetch(data: list[Any]) -> list[Fetched]:
    """imaplib gives (b'1 (UID 7 INTERNALDATE "..." BODY[] {n}', body) then b')' or, when
    the server orders items differently, b' UID 7)' after the literal."""
    found: list[Fetched] = []
    for i, item in enumerate(data):
        if not isinstance(item, tuple) or len(item) < 2:
            continue  # unsolicited FETCH (FLAGS ...) lines carry no body
        meta = item[0] + (
            data[i + 1] if i + 1 < len(data) and isinstance(data[i + 1], bytes) else b""
        )
        uid = re.search(rb"UID (\d+)", meta)
        if uid is None:
            continue
        when = re.search(rb'INTERNALDATE "([^"]+)"', meta)
        found.append(
            Fetched(
                int(uid.group(1)), bytes(item[1]), _internaldate(when.group(1) if when else None)
            )
        )
    return found


def _internaldate(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.strptime(raw.decode().strip(), "%d-%b-%Y %H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return None


def connect_imap(account: MailAccount, *, timeout: float = TIMEOUT) -> ImaplibSession:
    """Connect and log in; the real `Connector`."""
    where = f"{account.host}:{account.port}"
    context = ssl.create_default_context()
    try:
        if account.security == "tls":
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                account.host, account.port, ssl_context=context, timeout=timeout
            )
        else:
            imap = imaplib.IMAP4(account.host, account.port, timeout=timeout)
    except (imaplib.IMAP4.error, OSError) as exc:
        raise MailSignalError(f"cannot connect to IMAP server {where}: {exc}") from exc
    try:
        if account.security == "starttls":
            imap.starttls(context)
        if "AUTH=PLAIN" in imap.capabilities:  # carries UTF-8 passwords; LOGIN is ASCII only
            credentials = f"\0{account.username}\0{account.password}".encode()
            imap.authenticate("PLAIN", lambda _challenge: credentials)
        else:
            imap.login(account.username, account.password)
    except (imaplib.IMAP4.abort, OSError) as exc:
        _close(imap)
        raise MailSignalError(f"IMAP connection to {where} lost while logging in: {exc}") from exc
    except imaplib.IMAP4.error as exc:
        _close(imap)
        raise MailSignalError(f"IMAP login to {where} as {account.username} failed: {exc}") from exc
    return ImaplibSession(imap, account)


# --- the fake ---------------------------------------------------------------------------


@dataclass
class FakeFolder:
    uidvalidity: int
    messages: dict[int, tuple[bytes, datetime | None]] = field(default_factory=dict)
    next_uid: int = 1


@dataclass
class FakeServer:
    """An in-memory IMAP server for tests: `server.connect` is a `Connector`.

    `drop_after_fetches` makes the N+1th fetch fail like a dropped connection;
    `fetched` logs every UID handed out, so a test can prove nothing is read twice.
    """

    password: str = ""  # the fake accepts exactly this password
    folders: dict[str, FakeFolder] = field(default_factory=lambda: {"INBOX": FakeFolder(1)})
    drop_after_fetches: int | None = None
    fetched: list[int] = field(default_factory=list)
    fetch_calls: int = 0

    def deliver(self, raw: bytes, folder: str = "INBOX", when: datetime | None = None) -> int:
        box = self.folders.setdefault(folder, FakeFolder(1))
        uid, box.next_uid = box.next_uid, box.next_uid + 1
        box.messages[uid] = (raw, when)
        return uid

    def renumber(self, folder: str = "INBOX") -> None:
        """What a server restore does: new UIDVALIDITY, every UID assigned afresh."""
        box = self.folders[folder]
        items = [box.messages[u] for u in sorted(box.messages)]
        self.folders[folder] = FakeFolder(box.uidvalidity + 1)
        for raw, when in items:
            self.deliver(raw, folder, when)

    def connect(self, account: MailAccount) -> MailSession:
        if account.password != self.password:
            raise MailSignalError(f"IMAP login to {account.host} as {account.username} failed")
        return _FakeSession(self)


class _FakeSession:
    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self._box: FakeFolder | None = None

    def select(self, folder: str) -> int:
        if folder not in self._server.folders:
            raise MailSignalError(f"IMAP server refused opening {folder!r}: NO no such folder")
        self._box = self._server.folders[folder]
        return self._box.uidvalidity

    def uids_after(self, last_uid: int) -> list[int]:
        assert self._box is not None
        return sorted(u for u in self._box.messages if u > last_uid)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        assert self._box is not None
        server = self._server
        if (
            server.drop_after_fetches is not None
            and server.fetch_calls >= server.drop_after_fetches
        ):
            raise MailSignalError("IMAP connection to fake lost while fetching: EOF")
        server.fetch_calls += 1
        server.fetched += [u for u in uids if u in self._box.messages]
        return [Fetched(u, *self._box.messages[u]) for u in uids if u in self._box.messages]

    def close(self) -> None:
        pass
