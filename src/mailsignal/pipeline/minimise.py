"""Minimisation of stored IP addresses (issue 13, docs/privacy.md "Minimisation").

- `ip_policy`: what ingest keeps of a hit's address under `ip_storage`, with the key of
  the address pseudonyms the classifier compares instead (classify/netid.py). The key is
  derived from the lowest-numbered key of the instance keyring (`secret.key`), which a
  rotation keeps, so pseudonyms stay comparable across rotations. Without a keyring (a
  test, a bench run, `mailsignal demo` before `init`) a fixed key is used and a warning
  says so once: such pseudonyms hide nothing from whoever reads this source.
- `minimise_stored`: what `mailsignal privacy minimise` runs: events stored before (under
  `full`, or before this release) get their pseudonyms and have their address (and the
  addresses in their kept `x-forwarded-for` header) cut to what `ip_storage` keeps, in
  batches of one transaction each.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from ..classify.netid import IpStorage
from ..errors import ConfigError
from ..keyring import load_keyring
from ..settings import Settings
from ..store import minimise as stored
from .rows import IpPolicy

log = logging.getLogger(__name__)
_NO_KEYRING = b"mailsignal: no keyring"


@functools.lru_cache(maxsize=8)
def _policy(storage: IpStorage, secret_file: Path) -> IpPolicy:
    try:
        keys, _current = load_keyring(secret_file)
    except ConfigError:
        if secret_file.exists():
            raise  # there, but unreadable or open to others: say so, do not weaken
        log.warning(
            "no keyring at %s: IP pseudonyms use a fixed key (run `mailsignal init`)",
            secret_file,
        )
        return IpPolicy.from_secret(storage, _NO_KEYRING)
    return IpPolicy.from_secret(storage, keys[min(keys)])


def ip_policy(settings: Settings) -> IpPolicy:
    """The address policy of these settings (cached per setting and keyring file)."""
    return _policy(settings.ip_storage, settings.secret_file)


def minimise_stored(
    engine: Engine,
    settings: Settings,
    *,
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Add pseudonyms to stored events lacking them and cut their addresses to what
    `ip_storage` keeps; one transaction per `batch` events. Returns how many changed.
    Run again, it finds nothing to do."""
    policy = ip_policy(settings)
    changed = 0
    after: str | None = None
    while True:
        with engine.begin() as conn:
            rows = stored.page(conn, after, batch)
            if not rows:
                return changed
            after = rows[-1].hitid
            updates = []
            for row in rows:
                facts = dict(row.facts or {})
                ip = row.ipaddress or ""
                if "addr" not in facts and ip:
                    facts["addr"] = policy.facts_for(ip, row.deliveryid)
                new_ip = policy.stored(ip)
                headers = row.headers or {}
                new_headers = policy.headers(headers)
                if new_ip != ip or facts != (row.facts or {}) or new_headers != headers:
                    updates.append((row.interactionforemailid, new_ip, facts, new_headers))
            stored.rewrite(conn, updates)
        changed += len(updates)
        if progress:
            progress(len(rows))
