"""SMTP AUTH for the relay: the user's address as login, one of their API keys as password.

No second password table: an API key already names a user, can be revoked, and records
its last use. Failed attempts are counted per (client address, login) and per client
address, never per login alone: someone guessing from elsewhere cannot lock the real
user out of their own address. Past a limit the pair, or the address, is refused with a
temporary 454 for a while that doubles with every further failure (`throttle.FailureLimiter`),
and each failure is answered only after a short delay; together they make guessing a
256-bit key hopeless and keep a scripted guesser from costing much. The relay keeps the
counts in a file under the data directory, so they hold across its worker processes
(`relay_workers`) and its restarts.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuthUser:
    """Who an SMTP session authenticated as (kept in aiosmtpd's `session.auth_data`), and
    with which key (its prefix), so each new transaction can check both are still good."""

    address: str
    role: str
    user_id: str
    key: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def decode_plain(blob: bytes) -> tuple[str, str] | None:
    """(login, password) from a SASL PLAIN response "authzid\\0login\\0password"."""
    parts = blob.split(b"\x00")
    if len(parts) != 3:
        return None
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError:
        return None


def b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
