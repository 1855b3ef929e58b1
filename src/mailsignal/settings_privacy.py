"""The privacy settings (issue 13, docs/privacy.md): the tracking basis and its rules,
consent, the recipient's stop-tracking line, minimisation, retention and the opt-in
rollout. `settings.Settings` inherits them: they are read, validated and documented
with every other setting (docs/settings.md lists them after the others)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_BASIS_RULE = re.compile(
    rf"\s*(?:\*|(?:\*\.|\.)?{_LABEL}(?:\.{_LABEL})*)\s*="
    r"\s*(?:consent|legitimate_interests|off)\s*",
    re.IGNORECASE,
)


class PrivacySettings(BaseModel):
    """The privacy fields of `settings.Settings`."""

    # Recipients who stop tracking (issue 13, docs/privacy.md).
    tracking_notice_line: bool = Field(
        default=True,
        description="End each tracked copy with a short line, in the recipient's language, "
        "linking their own stop-tracking page. The consent tracking basis forces it on.",
    )
    privacy_notice_url: str | None = Field(
        default=None,
        description="Your privacy notice (an http or https URL), linked from the "
        "stop-tracking page.",
    )
    tracking_basis: Literal["consent", "legitimate_interests", "off"] = Field(
        default="legitimate_interests",
        description="The lawful basis recipients are tracked under (docs/privacy.md): "
        "consent (only recipients with a recorded, not withdrawn consent get tracked "
        "copies; the stop-tracking line is always on), legitimate_interests (everyone "
        "who has not objected) or off (nobody; hits on mail already sent are dropped).",
    )
    tracking_basis_rules: list[str] = Field(
        default_factory=list,
        description="Per recipient domain overrides of tracking_basis, first match wins: "
        "'PATTERN=BASIS' strings where PATTERN is a domain (example.com), *.domain (its "
        "subdomains), .suffix (.fr: that domain or TLD and all under it) or *, e.g. "
        '[".fr=consent", ".de=consent"]. Only the domain is known at send time.',
    )
    consent_request_line: bool = Field(
        default=True,
        description="Under the consent basis, end each copy left untracked for want of "
        "consent with a short line, in the recipient's language, linking a page where "
        "they can allow tracking.",
    )
    aggregate_opens: bool = Field(
        default=False,
        description="Under the consent basis, give each copy left untracked for want of "
        "consent one pixel that names only the email, never the recipient, and count its "
        "opens per email (raw: machine opens included, they cannot be told apart). Hits on "
        "such pixels are dropped while it is off.",
    )
    aggregate_opens_min_copies: int = Field(
        default=5,
        ge=1,
        description="The fewest copies of one email left untracked for want of consent "
        "that get the aggregate pixel (aggregate_opens): with fewer, a count per email would "
        "tell whose opens it is (one-to-one sales mail), so none is added.",
    )
    erase_events_on_optout: bool = Field(
        default=False,
        description="When a recipient stops tracking, also delete their past events "
        "(counters and scores are recomputed); otherwise only new hits stop being stored.",
    )
    # --- minimisation and retention (issue #13, docs/privacy.md) -----------------------
    ip_storage: Literal["full", "truncated", "none"] = Field(
        default="truncated",
        description="What is kept of a hit's IP address once it is enriched: full, "
        "truncated (IPv4 to its /24 as 203.0.113.0, IPv6 to its /48 as 2001:db8:1::) or "
        "none (an empty string). Network owner, labels and country are taken from the "
        "full address first and kept as facts, so verdicts do not change.",
    )
    event_retention_days: int | None = Field(
        default=395,
        ge=0,
        description="Days a recipient copy's open, click and download events are kept "
        "after its newest event; older ones are deleted by the hourly sweep, their counts "
        "and points kept as aggregates. 0 or unset keeps them forever.",
    )
    reply_retention_days: int | None = Field(
        default=395,
        ge=0,
        description="Days reply events (who replied, the reply's Message-ID) are kept, as "
        "event_retention_days for the other events. 0 or unset keeps them forever.",
    )
    outbound_retention_days: int | None = Field(
        default=30,
        ge=0,
        description="Days an outbound copy the relay set aside (outbound/failed/, kept for "
        "an operator) is kept before the sweep deletes it. 0 or unset keeps them forever.",
    )
    attachment_retention_days: int | None = Field(
        default=395,
        ge=0,
        description="Days a tracked attachment's file is kept after its email was sent; "
        "after that its download link answers 404. 0 or unset keeps them forever.",
    )
    # --- opt-in rollout (issue #13) ------------------------------------------------------
    default_user_optin: bool = Field(
        default=False,
        description="Whether a new user starts opted in to email engagement tracking, "
        "when the command or request that creates them does not say (`users add`, "
        "POST /api/v1/users). Existing users keep their choice; `mailsignal users gaps` "
        "lists who has not opted in.",
    )

    @field_validator("tracking_basis_rules")
    @classmethod
    def _basis_rules(cls, value: list[str]) -> list[str]:
        # The grammar of basis.parse_rule (a logic module settings may not import).
        for n, rule in enumerate(value, 1):
            if not _BASIS_RULE.fullmatch(rule):
                raise ValueError(
                    f"rule {n} {rule!r}: write PATTERN=BASIS, PATTERN a domain, *.domain, "
                    ".suffix or *, BASIS consent, legitimate_interests or off"
                )
        return value
