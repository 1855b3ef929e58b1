"""Reply sync, storage side (DESIGN §2 layer 2): match messages to sent emails, store
reply events once, keep each mailbox's read cursor and its encrypted secret.

No framework and no socket here: the IMAP client is handed in (`mail.imap`), and the CLI
(`mail.cli_mail`) prints what these functions return.
"""

from __future__ import annotations

from .mailboxes import (
    Keyring,
    MailAccount,
    account,
    list_mailboxes,
    seal,
    set_mailbox,
    show_mailbox,
    unseal,
)
from .run import Connector, Fetched, MailSession, import_messages, sync_all, sync_mailbox
from .store import IncomingMessage, Outcome, SyncSummary, hit_id, store_messages

__all__ = [
    "Connector",
    "Fetched",
    "IncomingMessage",
    "Keyring",
    "MailAccount",
    "MailSession",
    "Outcome",
    "SyncSummary",
    "account",
    "hit_id",
    "import_messages",
    "list_mailboxes",
    "seal",
    "set_mailbox",
    "show_mailbox",
    "store_messages",
    "sync_all",
    "sync_mailbox",
    "unseal",
]
