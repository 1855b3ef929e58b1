"""The token signing keyring: one key per line, "<key id> <64+ hex chars>"; the last line
signs, every line verifies (tokens.py), so keys rotate without breaking old links."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import ConfigError


def create_secret(path: Path) -> bool:
    """Create the keyring with one fresh 256-bit key; return False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(f"1 {secrets.token_hex(32)}\n")
    return True


def rotate_secret(path: Path) -> int:
    """Append a new key and return its id; older keys keep verifying old tokens."""
    keys, _ = load_keyring(path)
    kid = max(keys) + 1
    if kid > 255:
        raise ConfigError("keyring is full (255 keys); remove retired keys first")
    with path.open("a") as fh:
        fh.write(f"{kid} {secrets.token_hex(32)}\n")
    return kid


Keyring = tuple[dict[int, bytes], int]
"""{key id: secret} and the id of the key new tokens and sealed secrets use."""


def load_keyring(path: Path) -> Keyring:
    """Read the keyring; refuse a file others can read."""
    if not path.is_file():
        raise ConfigError(f"no secret key at {path}: run `mailsignal init` first")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    keys: dict[int, bytes] = {}
    current = -1
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            kid_text, hex_key = line.split()
            kid, key = int(kid_text), bytes.fromhex(hex_key)
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: expected '<id> <hex key>'") from exc
        if len(key) < 32:
            raise ConfigError(f"{path}:{lineno}: key shorter than 32 bytes")
        keys[kid] = key
        current = kid
    if not keys:
        raise ConfigError(f"{path} holds no key")
    return keys, current
