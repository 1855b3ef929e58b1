"""A hit and its facts as an `interactionforemail` row; a classification as stored reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..classify.netid import (
    NAMESPACE,
    IpStorage,
    derive_key,
    pseudonyms,
    stored_headers,
    stored_ip,
)
from ..model import Classification, EventKind, Facts, RawHit, TokenKind, new_id
from ..store.db import RawJson, json_text

KIND = {
    TokenKind.OPEN: EventKind.OPEN,
    TokenKind.CLICK: EventKind.CLICK,
    TokenKind.HONEYPOT: EventKind.CLICK,
    TokenKind.ATTACHMENT: EventKind.ATTACHMENT,
}


def location(facts: Facts) -> str | None:
    """ "City, Country" as far as the network facts know it."""
    net = facts.get("net", {})
    parts = [p for p in (net.get("city"), net.get("country")) if p]
    return ", ".join(parts) if parts else None


@dataclass(frozen=True, slots=True)
class IpPolicy:
    """What a stored event keeps of its hit's address (`ip_storage`), and the key of the
    address pseudonyms the classifier compares instead (classify/netid.py)."""

    storage: IpStorage
    key: bytes

    @classmethod
    def from_secret(cls, storage: IpStorage, secret: bytes) -> IpPolicy:
        return cls(storage, derive_key(secret))

    def facts(self, hit: RawHit, facts: Facts) -> Facts:
        """The enrichers' facts plus the address pseudonyms (a new dict)."""
        return {**facts, NAMESPACE: self.facts_for(hit.ip, hit.delivery_id)}

    def facts_for(self, ip: str, delivery_id: int) -> dict[str, str]:
        """The pseudonyms of `ip` on this recipient copy."""
        return pseudonyms(ip, str(delivery_id), self.key)

    def stored(self, ip: str) -> str:
        return stored_ip(ip, self.storage)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The kept request headers with their addresses cut as `stored` cuts the client's."""
        return stored_headers(headers, self.storage)


FULL_UNKEYED = IpPolicy("full", derive_key(b"mailsignal: no keyring"))
"""For callers that have no settings at hand (tests of the row shape): the full address,
pseudonyms under a key that is no secret."""


def hit_row(
    hit: RawHit,
    facts: Facts,
    email_id: Any,
    address: str,
    target: Any,
    recorded: datetime,
    ip: IpPolicy = FULL_UNKEYED,
) -> dict[str, Any]:
    """The event row of one hit (its verdict columns are filled in by classification).

    `target` is the link or attachment row the hit names (None for an open); `recorded`
    is the batch's time, which `createdon` gets so that a score can age every event from
    a time not later than when it was first counted (engagement.effective_time). `facts`
    were taken from the full address; `ip` says what of it the row keeps, and adds the
    pseudonyms timeline rules compare (pipeline/minimise.ip_policy builds it).
    """
    is_file = hit.kind is TokenKind.ATTACHMENT
    return {
        "interactionforemailid": new_id(),
        "emailactivityid": email_id,
        "deliveryid": hit.delivery_id,
        "linkid": None if is_file else hit.link_id,
        "attachmentid": hit.link_id if is_file else None,
        "interactiontype": int(KIND[hit.kind]),
        "emailinteractiontime": hit.received_at,
        "interactionlocation": location(facts),
        "interactionuseragent": hit.user_agent,
        "interactedcomponenttext": (
            None if target is None else target.filename if is_file else target.url
        ),
        "emailaddress": address,
        "ipaddress": ip.stored(hit.ip),
        "httpmethod": hit.method[:8],
        "ishoneypot": hit.kind is TokenKind.HONEYPOT,
        "headers": ip.headers(dict(hit.headers)),
        "facts": ip.facts(hit, facts),
        "hitid": hit.hit_id,
        "externalid": hit.external_id,
        "createdon": recorded,
    }


def reasons_json(result: Classification) -> dict[str, Any]:
    """The stored form of a classification's reasons (`interactionforemail.reasons`)."""
    return {
        "fired": [
            {"rule": e.rule, "verdict": str(e.verdict), "weight": e.weight, "text": e.text}
            for e in result.fired
        ],
        "not_fired": list(result.not_fired),
    }


class Reasons:
    """Stored reasons of classifications, serialised once per distinct classification.

    The classifier hands out one shared `Classification` per distinct outcome, so a batch
    of thousands of events holds a few hundred: keyed by identity (each kept alive here,
    so an id is never reused while the cache lives), one per batch.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[Classification, RawJson]] = {}

    def __call__(self, result: Classification) -> RawJson:
        known = self._known.get(id(result))
        if known is None:
            known = self._known[id(result)] = (result, json_text(reasons_json(result)))
        return known[1]


def label(row: dict[str, Any], result: Classification, reasons: Reasons) -> None:
    """Write a classification into an event row."""
    row["verdict"] = str(result.verdict)
    row["confidence"] = result.confidence
    row["reasons"] = reasons(result)
    row["classifierversion"] = result.version
