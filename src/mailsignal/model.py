"""Frozen value types shared by every layer.

Nothing here does I/O or imports a framework: the pure-logic layer (tokens, instrument,
enrich, classify, scoring) and the edges exchange these, and the store maps them to rows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from uuid_utils.compat import uuid7


def new_id() -> UUID:
    """A fresh row id: a UUIDv7 (RFC 9562), whose leading 48 bits are the creation time.

    Time-ordered keys land at the right edge of every B-tree that indexes them, instead of
    on a random page: at 1M events that made SQLite's inserts five times faster than with
    UUIDv4 (bench/classify.py). Dataverse also hands out sequential GUIDs.
    """
    return uuid7()


class EventKind(enum.IntEnum):
    """Dataverse `interactionforemail.interactiontype` values."""

    OPEN = 0  # EmailOpen
    CLICK = 1  # LinkOpen
    ATTACHMENT = 2  # AttachmentOpen
    REPLY = 3  # EmailReply


class Verdict(enum.StrEnum):
    """Who caused an event. `forward` is a human who is not the recipient."""

    HUMAN = "human"
    MACHINE = "machine"
    FORWARD = "forward"
    UNKNOWN = "unknown"


class TokenKind(enum.IntEnum):
    """What a tracking URL stands for; the first byte of every token."""

    OPEN = 1
    CLICK = 2
    ATTACHMENT = 3
    HONEYPOT = 4
    STOP = 5  # the recipient's stop-tracking page (/p/), never a hit
    CONSENT = 6  # the recipient's consent page (/k/), never a hit
    # The aggregate open pixel (/o/, issue 13): names an aggregate pixel of one email
    # (`aggregatepixel.pixelid`, in TokenClaims.delivery_id), never a recipient.
    AGGREGATE_OPEN = 7


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token names. `url` is set for click tokens only. For an
    AGGREGATE_OPEN token `delivery_id` is the email's aggregate pixel id, not a copy."""

    kind: TokenKind
    delivery_id: int
    link_id: int | None = None
    url: str | None = None
    key_id: int = 0


@dataclass(frozen=True, slots=True)
class RawHit:
    """One request to a tracking URL, as the hot path journals it (before enrichment).

    `hit_id` is unique across every journal and import (journal uuid + sequence, or
    `ext:<external id>`), so ingesting the same hit twice stores it once.
    """

    hit_id: str
    received_at: datetime  # timezone-aware UTC
    kind: TokenKind
    delivery_id: int
    link_id: int | None
    ip: str
    user_agent: str
    method: str
    headers: Mapping[str, str] = field(default_factory=dict)
    external_id: str | None = None


Facts = dict[str, dict[str, Any]]
"""Enrichment output: one namespace per enricher (`ua`, `net`, ...) holding plain JSON values."""


# --- declared facts: the contract between enrichers and the classifier -------------------
#
# Enrichers (enrich/) write facts and the classifier (classify/) reads them, and neither
# may import the other (DESIGN §2): the declarations are the plain data both sides share.
# The standard enrichers' declarations live here too, rather than in their modules, so
# that the classifier can default to them without a pipeline at hand.


class FactKind(enum.StrEnum):
    """How the classifier reads a stored fact (plain JSON) before rules see it."""

    BOOL = "bool"  # its truth: bool(value)
    STR = "str"  # str(value): for facts always stored as text (None would read "None")
    LABELS = "labels"  # a set of labels stored as a JSON list: frozenset(value or ())
    ANY = "any"  # as stored: text or None, a number; must be hashable


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One fact an enricher declares it writes in its namespace (`name` without it).

    `default` is what the classifier reads when the fact is missing (an older stored
    hit, an enricher that failed): it is used as is, not passed through `kind`.
    """

    name: str
    kind: FactKind
    default: Any
    description: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"fact name {self.name!r} is not an identifier")
        if self.name == "error":  # where the pipeline records an enricher's failure
            raise ValueError("fact name 'error' is reserved for enrichment failures")
        if not isinstance(self.kind, FactKind):
            raise ValueError(f"fact {self.name}: kind {self.kind!r} is not a FactKind")
        hash(self.default)  # rules' answers are cached on fact values: they must hash


FactRegistry = Mapping[str, FactSpec]
"""Every declared fact by its full name (`"ua.category"`), in pipeline order."""


def fact_registry(namespaces: Iterable[tuple[str, Iterable[FactSpec]]]) -> FactRegistry:
    """A read-only registry from (namespace, declarations) pairs; names must be unique."""
    registry: dict[str, FactSpec] = {}
    for namespace, specs in namespaces:
        if not namespace.isidentifier():  # "ua.category" is split at its first dot
            raise ValueError(f"namespace {namespace!r} is not an identifier")
        for spec in specs:
            full = f"{namespace}.{spec.name}"
            if full in registry:
                raise ValueError(f"fact {full!r} is declared twice")
            registry[full] = spec
    return MappingProxyType(registry)


USER_AGENT_FACTS = (
    FactSpec("family", FactKind.ANY, None, "ua-parser family ('Chrome', 'Outlook') or 'Other'"),
    FactSpec("major", FactKind.ANY, None, "major version as text; None when unknown"),
    FactSpec("os", FactKind.ANY, None, "operating system family; 'Other' when unknown"),
    FactSpec("device", FactKind.STR, None, "device family ('Spider' for crawlers)"),
    FactSpec(
        "category",
        FactKind.STR,
        "unknown",
        "mail-client, browser, image-proxy, prefetcher, security-scanner, preview-bot, "
        "automation, crawler or unknown",
    ),
    FactSpec("rule", FactKind.STR, None, "what decided the category: a table row or parser"),
    FactSpec("bare_mozilla", FactKind.BOOL, False, "exactly 'Mozilla/5.0', as Apple MPP sends"),
    FactSpec("empty", FactKind.BOOL, False, "no user agent at all"),
    FactSpec("outdated_chrome", FactKind.BOOL, False, "a Chrome 8 or more versions old"),
)
"""What `UserAgentEnricher` writes under `ua`."""

NETWORK_FACTS = (
    FactSpec("valid", FactKind.BOOL, False, "the client address parsed as an IP address"),
    FactSpec("ip_version", FactKind.ANY, None, "4 or 6; None when not an address"),
    FactSpec("labels", FactKind.LABELS, frozenset(), "every network list holding the address"),
    FactSpec("owner", FactKind.ANY, None, "vendor of the most specific list holding it"),
    FactSpec("private", FactKind.BOOL, False, "a local or carrier-NAT address"),
    FactSpec("country", FactKind.ANY, None, "ISO country code; only with a geo database"),
    FactSpec("city", FactKind.ANY, None, "city name in English; only with a geo database"),
)
"""What `NetworkEnricher` writes under `net`."""

STANDARD_FACTS = fact_registry((("ua", USER_AGENT_FACTS), ("net", NETWORK_FACTS)))
"""The facts of `Pipeline.default()`: what the classifier assumes when given no registry."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one rule concluded about one event.

    `weight` is in log-odds: positive pushes towards a person, negative towards a
    machine. `verdict` says which label the rule argues for (`forward` for a person
    who is not the recipient).
    """

    rule: str
    verdict: Verdict
    weight: float
    text: str


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's answer for one event: label, confidence and why."""

    verdict: Verdict
    confidence: float
    fired: tuple[Evidence, ...]
    not_fired: tuple[str, ...]
    version: str


@dataclass(frozen=True, slots=True)
class TrackingDecision:
    """Whether one recipient's copy is tracked, and if not, why not (stable reason ids)."""

    tracked: bool
    reasons: tuple[str, ...] = ()
