"""Do-not-track as a service (issue 13): record a recipient's choice, and keep hits on
mail already sent from being stored once tracking is no longer allowed.

`opt_out` is what the stop-tracking page's button, `mailsignal privacy optout` and
`POST /api/v1/privacy/do-not-track` do: the normalised address goes on the list (a keyed
hash of it, store/donottrack.py), every contact and lead with it gets `followemail`
false, and with `erase_events_on_optout` its past opens, clicks and downloads are
deleted and the counters and scores they fed rebuilt (tally.rebuild). `opt_in` undoes it.

`drop_hits` is ingest's check (ingest.py): for one batch, the org switch is read once and
the batch's addresses are screened in one statement; a hit on a copy that may no longer
be tracked is dropped, and counted per UTC day and reason (`droppedhits`, read with
`mailsignal privacy dropped`). The tracker itself still answers every hit as before.
The tracking basis (basis.py) applies too: an address whose basis is `off` is dropped
(`org.basis_off`) without a query, and one under `consent` without an open consent
(store/consent.py, in the same statement) is dropped as `recipient.no_consent`. `opt_out`
also withdraws every open consent of the address.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from ..addresses import normalise_address
from ..basis import basis_for, parse_rules
from ..keyring import load_keyring
from ..model import RawHit
from ..settings import Settings
from ..store import audit, consent, donottrack, users
from ..store.events import Delivery
from ..tokens import Signer
from . import tally

_SIGNERS: dict[tuple[Path, int, int], Signer] = {}


@dataclass(frozen=True, slots=True)
class OptOut:
    address_hash: str
    new: bool  # False: the address was on the list already
    parties: int  # contacts and leads whose followemail was set false
    erased: int  # past events deleted (erase_events_on_optout)


def signer_of(settings: Settings) -> Signer | None:
    """The instance keyring as a Signer (cached while the file stays the same); None when
    there is no keyring yet, so nothing can be on the list either."""
    path = settings.secret_file
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _SIGNERS:
        _SIGNERS.clear()
        _SIGNERS[key] = Signer(*load_keyring(path))
    return _SIGNERS[key]


def opt_out(
    conn: Connection,
    signer: Signer,
    address: str,
    settings: Settings,
    *,
    source: str,
    actor: str,
    now: datetime | None = None,
) -> OptOut:
    """Make `address` do-not-track (see the module docstring), in the caller's transaction."""
    now = now or datetime.now(UTC)
    address = normalise_address(address)
    digest = signer.address_hash(address)
    new = donottrack.add(conn, digest, source, now)
    withdrawn = consent.withdraw(conn, digest, now, source)  # a withdrawal of consent too
    parties = donottrack.set_follow(conn, address, False)
    erased = 0
    if settings.erase_events_on_optout:
        erased, emails = donottrack.delete_tracked_events(conn, address)
        tally.rebuild(conn, emails, settings, now)
    details = {"source": source, "new": new, "parties": parties, "erased": erased}
    details["consents_withdrawn"] = withdrawn
    audit.record(conn, "recipient.optout", actor=actor, subject=digest, details=details, at=now)
    return OptOut(digest, new, parties, erased)


def opt_in(
    conn: Connection, signer: Signer, address: str, *, actor: str, now: datetime | None = None
) -> tuple[bool, int]:
    """Take `address` off the list and set `followemail` true on its contacts and leads
    again: (whether it was listed, parties changed)."""
    address = normalise_address(address)
    digest = signer.address_hash(address)
    removed = donottrack.remove(conn, digest)
    parties = donottrack.set_follow(conn, address, True)
    details = {"removed": removed, "parties": parties}
    audit.record(conn, "recipient.optin", actor=actor, subject=digest, details=details, at=now)
    return removed, parties


def drop_hits(
    conn: Connection,
    hits: Sequence[RawHit],
    deliveries: Mapping[int, Delivery],
    settings: Settings,
    now: datetime,
) -> tuple[Sequence[RawHit], int]:
    """The hits that may be stored, and how many were dropped (counted by reason)."""
    if not deliveries:
        return hits, 0
    if not users.get_org(conn)["isemailmonitoringallowed"]:
        reasons = {h.delivery_id: donottrack.ORG_OFF for h in hits if h.delivery_id in deliveries}
    else:
        addresses = {d.address.lower() for d in deliveries.values()}
        rules = parse_rules(settings.tracking_basis_rules)
        bases = {a: basis_for(a, settings.tracking_basis, rules) for a in addresses}
        off = {a: donottrack.BASIS_OFF for a, b in bases.items() if b == "off"}
        addresses -= set(off)
        signer = signer_of(settings)
        hashes = {signer.address_hash(a): a for a in addresses} if signer is not None else {}
        need = [a for a in addresses if bases[a] == "consent"]
        blocked = off | donottrack.screen(conn, addresses, hashes, need)
        if not blocked:
            return hits, 0
        reasons = {
            i: blocked[d.address.lower()]
            for i, d in deliveries.items()
            if d.address.lower() in blocked
        }
    counts = Counter(reasons[h.delivery_id] for h in hits if h.delivery_id in reasons)
    if not counts:
        return hits, 0
    donottrack.count_dropped(conn, now, counts)
    return [h for h in hits if h.delivery_id not in reasons], sum(counts.values())
