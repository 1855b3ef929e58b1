"""Panel passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second choice).

Only the hash is stored. `verify` takes the same time whether or not the user exists or
has a password (it checks against a fixed dummy hash then), so a login form cannot tell
an attacker which addresses are users. A hash made with weaker parameters than the
current ones is re-made at the next successful sign-in (`needs_rehash`).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import InputError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work one request can ask for
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password anyone has: equalises the time of a missing user")


def check_new(password: str) -> str:
    """`password` if it may be set.

    Raises:
        InputError: shorter than 12 characters, longer than 1,024, or with a NUL.
    """
    if len(password) < MIN_LENGTH:
        raise InputError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InputError(f"a password has at most {MAX_LENGTH} characters")
    if "\x00" in password:
        raise InputError("a password cannot contain a NUL character")
    return password


def make(password: str) -> str:
    """The hash to store for a new password (checked by `check_new`)."""
    return _HASHER.hash(check_new(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; None (no user, no password) never does, after
    the same work as a real check."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
