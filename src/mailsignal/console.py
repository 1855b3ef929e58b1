"""What every command-line module shares: the consoles and the way to open the store.

One place, so `mailsignal`, `mailsignal relay` and `mailsignal sync-replies` word the same
problem the same way.
"""

from __future__ import annotations

import sys

from rich.console import Console
from sqlalchemy import Engine

from .errors import MailSignalError
from .settings import Settings, load_keyring, load_settings
from .store.db import is_initialised, make_engine
from .tokens import Signer

# Wide enough for ids when piped (Rich would otherwise assume 80 columns and fold them).
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)  # one line per error, even when piped


def settings() -> Settings:
    return load_settings()


def engine(settings: Settings) -> Engine:
    """The store's engine; refuses an uninitialised database with the command to run."""
    eng = make_engine(settings.db_url)
    if not is_initialised(eng):
        raise MailSignalError("the database is not initialised: run `mailsignal init` first")
    return eng


def signer(settings: Settings) -> Signer:
    keys, current = load_keyring(settings.secret_file)
    return Signer(keys, current)
