"""Secrets sealed under the instance keyring (pure): the reps' IMAP passwords.

AES-256-GCM under a key derived (HKDF-SHA256, a label of its own, so never the
token-signing key itself) from the keyring's newest key, so the database alone never
reveals a password. The sealed text names the key id it used, so `mailsignal keys
rotate` does not orphan secrets sealed earlier, and the caller's `context` (the rep's
id) is the AEAD associated data, so a sealed secret copied onto another row does not
decrypt.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError
from .keyring import Keyring

_INFO = b"mailsignal mailbox secret v1"


def _derive(master: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(master)


def seal(keyring: Keyring, plaintext: str, context: bytes) -> str:
    """Encrypt a secret as `v1:<key id>:<base64url(nonce | ciphertext | tag)>`."""
    keys, current = keyring
    nonce = os.urandom(12)
    sealed = AESGCM(_derive(keys[current])).encrypt(nonce, plaintext.encode(), context)
    return f"v1:{current}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def unseal(keyring: Keyring, token: str, context: bytes) -> str:
    """The secret `seal` sealed with this context; ConfigError when it cannot be opened."""
    keys, _current = keyring
    try:
        version, kid_text, body = token.split(":", 2)
        kid, data = int(kid_text), base64.urlsafe_b64decode(body)
    except ValueError as exc:
        raise ConfigError("the stored mailbox secret is not in a known format") from exc
    if version != "v1" or kid not in keys:
        raise ConfigError(
            f"the mailbox secret was sealed with key {kid}, which is not in the keyring; "
            "set the password again with `mailsignal mailbox set`"
        )
    try:
        return AESGCM(_derive(keys[kid])).decrypt(data[:12], data[12:], context).decode()
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise ConfigError(
            "the mailbox secret does not decrypt with this instance's key; "
            "set the password again with `mailsignal mailbox set`"
        ) from exc
