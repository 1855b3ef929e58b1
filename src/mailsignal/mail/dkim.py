"""DKIM signing of what the relay sends, when it is given a key (dkimpy).

Why here and not left to the smarthost alone: instrumenting rewrites the body, and a
DKIM signature covers the body, so a signature made before the relay is broken by it.
Either the relay sits *before* the signing MTA (docs/relay.md), or it signs itself,
after instrumenting, with `dkim_key_file` and `dkim_selector`. d= is the domain of the
From header, so each sender signs for their own domain (the key must be published
under `<selector>._domainkey.<domain>` for each domain the relay signs).

relaxed/relaxed canonicalization survives the header refolding and trailing-whitespace
changes that MTAs downstream are known to make.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path

import dkim  # type: ignore[import-untyped]

from ..errors import ConfigError
from ..settings import Settings

# Headers a reader sees or a client threads by; signing them stops a replay with them changed.
_SIGNED = [
    b"from",
    b"sender",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"to",
    b"cc",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"in-reply-to",
    b"references",
    b"list-unsubscribe",
]


class DkimSigner:
    def __init__(self, key_pem: bytes, selector: str) -> None:
        self.key = key_pem
        self.selector = selector.encode("ascii")
        # Fail at start-up on an unusable key, not on the first message.
        self.sign(b"From: check@example.com\r\nSubject: key check\r\n\r\nok\r\n")

    @classmethod
    def from_settings(cls, settings: Settings) -> DkimSigner | None:
        if settings.dkim_key_file is None and settings.dkim_selector is None:
            return None
        if settings.dkim_key_file is None or not settings.dkim_selector:
            raise ConfigError("DKIM needs both dkim_key_file and dkim_selector")
        try:
            key = Path(settings.dkim_key_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read dkim_key_file {settings.dkim_key_file}: {exc}") from exc
        try:
            return cls(key, settings.dkim_selector)
        except dkim.DKIMException as exc:
            raise ConfigError(f"dkim_key_file {settings.dkim_key_file}: {exc}") from exc

    def sign(self, data: bytes) -> bytes:
        """`data` with a DKIM-Signature header in front (unchanged if From has no domain)."""
        headers = BytesHeaderParser().parsebytes(data)
        domain = parseaddr(str(headers.get("from", "")))[1].rpartition("@")[2]
        if not domain:
            return data
        try:
            d = domain.encode("idna")
        except UnicodeError:
            return data  # no domain DNS could publish a key for
        present = {name.lower().encode() for name in headers}
        include = [h for h in _SIGNED if h in present]
        signature: bytes = dkim.sign(
            data,
            self.selector,
            d,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        return signature + data
