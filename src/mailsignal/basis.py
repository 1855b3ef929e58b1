"""The tracking basis of a recipient (issue 13): which lawful basis the operator tracks
them under, picked by the domain of their address.

Three bases (setting `tracking_basis`, docs/privacy.md):

    consent               only a recipient with a recorded, not withdrawn consent gets an
                          individually tracked copy (store/consent.py)
    legitimate_interests  everyone who has not objected is tracked; each copy carries the
                          notice and objection line (today's behaviour, the default)
    off                   nobody is tracked

An operator selling into several regions overrides the default per recipient domain
with `tracking_basis_rules`, a list of "PATTERN=BASIS" strings, first match wins:

    example.com       exactly that domain
    *.example.com     any subdomain of example.com (mail.example.com), not itself
    .fr  .example.com that domain and every domain under it: `.fr` is every French
                      address (orange.fr, mail.orange.fr), `.co.uk` every .co.uk one
    *                 every domain (a catch-all, the same as `tracking_basis` itself)

A recipient's country is not known when mail is sent: the domain is all there is, so a
French person at gmail.com falls under the gmail.com / `.com` rules, not `.fr`.
Patterns are compared lower-case; write internationalised domains as the addresses carry
them. `parse_rules` is what settings.py validates with at load.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Basis = Literal["consent", "legitimate_interests", "off"]
BASES: tuple[Basis, ...] = ("consent", "legitimate_interests", "off")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule: how its pattern matches (`exact`, `sub`, `suffix`, `any`)."""

    how: Literal["exact", "sub", "suffix", "any"]
    domain: str  # without the leading "*." or "."; "" for `any`
    basis: Basis
    text: str  # the rule as written, for messages and the docs

    def matches(self, domain: str) -> bool:
        if self.how == "any":
            return True
        if self.how == "exact":
            return domain == self.domain
        under = domain.endswith("." + self.domain)
        return under or (self.how == "suffix" and domain == self.domain)


def parse_rule(text: str) -> Rule:
    """One "PATTERN=BASIS" string as a Rule; ValueError saying what is wrong."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"{text!r}: write PATTERN=BASIS, for example '.fr=consent'")
    pattern, _, basis = (part.strip().lower() for part in text.partition("="))
    if basis not in BASES:
        raise ValueError(f"{text!r}: the basis must be one of {', '.join(BASES)}")
    chosen: Basis = basis
    if pattern == "*":
        return Rule("any", "", chosen, text)
    how: Literal["exact", "sub", "suffix"] = "exact"
    domain = pattern
    if pattern.startswith("*."):
        how, domain = "sub", pattern[2:]
    elif pattern.startswith("."):
        how, domain = "suffix", pattern[1:]
    if not _DOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError(
            f"{text!r}: the pattern must be a domain (example.com), *.domain, .suffix (.fr) or *"
        )
    return Rule(how, domain, chosen, text)


def parse_rules(texts: Iterable[str]) -> tuple[Rule, ...]:
    """Every rule parsed, in order; ValueError naming the first bad one (1-based)."""
    rules = []
    for n, text in enumerate(texts, 1):
        try:
            rules.append(parse_rule(text))
        except ValueError as exc:
            raise ValueError(f"rule {n}: {exc}") from None
    return tuple(rules)


def basis_for(address: str, default: Basis, rules: Sequence[Rule]) -> Basis:
    """The basis a recipient address is tracked under: the first matching rule's, else
    `default`."""
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    for rule in rules:
        if rule.matches(domain):
            return rule.basis
    return default
