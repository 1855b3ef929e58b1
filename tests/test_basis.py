"""The tracking basis per recipient domain (issue 13): the rule grammar, first match
wins, the default where no rule matches, and settings refusing a bad rule at load with
an error naming it."""

from __future__ import annotations

import pytest

from mailsignal.basis import basis_for, parse_rule, parse_rules
from mailsignal.errors import ConfigError
from mailsignal.settings import load_settings

RULES = parse_rules(
    [
        "partner.fr=legitimate_interests",  # an exact domain before the French catch-all
        ".fr=consent",
        "*.de=consent",
        ".co.uk = consent",
        "*.example.com=off",
    ]
)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("anne@orange.fr", "consent"),
        ("anne@mail.orange.FR", "consent"),
        ("bob@partner.fr", "legitimate_interests"),  # first match wins
        ("bob@sub.partner.fr", "consent"),  # exact means exactly
        ("jan@web.de", "consent"),
        ("x@de", "legitimate_interests"),  # *.de is under .de, not de itself
        ("sam@bbc.co.uk", "consent"),
        ("sam@co.uk", "consent"),  # .suffix: the domain itself too
        ("eve@mail.example.com", "off"),
        ("eve@example.com", "legitimate_interests"),  # *.domain: its subdomains only
        ("lee@fabrikam.test", "legitimate_interests"),
        ("pat@notfr", "legitimate_interests"),  # a suffix matches whole labels
        ("pat@gmail.com", "legitimate_interests"),  # only the domain is known, not a country
    ],
)
def test_rules_pick_the_basis_by_domain(address: str, expected: str) -> None:
    assert basis_for(address, "legitimate_interests", RULES) == expected


def test_the_default_and_a_catch_all() -> None:
    assert basis_for("a@b.test", "consent", ()) == "consent"
    assert basis_for("a@b.test", "consent", parse_rules(["*=off"])) == "off"
    assert parse_rule("*.Example.COM=OFF").domain == "example.com"


@pytest.mark.parametrize(
    "bad",
    ["fr", ".fr=maybe", "=consent", "*.=consent", "a b.fr=consent", "..fr=consent", "**.fr=off"],
)
def test_bad_rules_are_refused_naming_the_rule(bad: str) -> None:
    with pytest.raises(ValueError, match=r"rule 2: "):
        parse_rules([".de=consent", bad])
    with pytest.raises(ConfigError, match=r"tracking_basis_rules: .*rule 2 "):
        load_settings(tracking_basis_rules=[".de=consent", bad])


def test_settings_take_the_same_rules_as_the_parser() -> None:
    texts = ["example.com=off", "*.example.com=consent", ".fr=consent", "*=legitimate_interests"]
    assert load_settings(tracking_basis_rules=texts).tracking_basis_rules == texts
    assert [r.text for r in parse_rules(texts)] == texts
    with pytest.raises(ConfigError, match="tracking_basis"):
        load_settings(tracking_basis="maybe")
