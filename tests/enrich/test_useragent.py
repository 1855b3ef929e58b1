"""UserAgentEnricher on the 50 real user agents of tests/fixtures/user_agents.tsv."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mailsignal.enrich.useragent import (
    CATEGORIES,
    MAX_UA_LENGTH,
    UserAgentEnricher,
    load_rules,
)
from mailsignal.errors import ConfigError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "user_agents.tsv"
ROWS = list(csv.DictReader(FIXTURE.read_text("utf-8").splitlines(), delimiter="\t"))

SAFE_LINKS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/72.0.3626.109 Safari/537.36"
)
GMAIL_PREFETCH = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0"
)

# What each fixture label may become. human-client splits into mail-client or browser;
# the per-row table below pins which one.
BY_LABEL = {
    "human-client": {"mail-client", "browser"},
    "image-proxy": {"image-proxy"},
    "mpp": {"prefetcher"},
    "security-scanner": {"security-scanner"},
    "preview-bot": {"preview-bot"},
    "other": {"automation"},
}
# Rows whose note says something more precise than their label.
BY_UA = {
    GMAIL_PREFETCH: "prefetcher",  # "Gmail PREFETCH (machine, fires on delivery...)"
    SAFE_LINKS_CHROME: "browser",  # "identifiable only by IP + timing"
    "Microsoft Office Existence Discovery": "prefetcher",  # probe before the real view
    "Chrome Privacy Preserving Prefetch Proxy": "prefetcher",  # "not a page view"
    "Mozilla/5.0 zgrab/0.x": "crawler",  # "zgrab scanner"
    "Hello from Palo Alto Networks, find out more about our scans in "
    "https://docs-cortex.paloaltonetworks.com/r/1/Cortex-Xpanse/Scanning-activity": "crawler",
}
BROWSER_NOTES = ("desktop Chrome", "desktop Firefox", "desktop Safari", "Android Chrome")


@pytest.fixture(scope="module")
def enricher() -> UserAgentEnricher:
    return UserAgentEnricher()


def test_fixture_is_the_full_research_set() -> None:
    counts: dict[str, int] = {}
    for row in ROWS:
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    assert counts == {
        "human-client": 13,
        "image-proxy": 6,
        "mpp": 1,
        "security-scanner": 4,
        "preview-bot": 13,
        "other": 13,
    }


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['label']}:{r['user_agent'][:40]}" for r in ROWS])
def test_every_real_user_agent_gets_its_category(
    enricher: UserAgentEnricher, row: dict[str, str]
) -> None:
    ua, label, notes = row["user_agent"], row["label"], row["notes"]
    facts = enricher.describe(ua)
    if ua in BY_UA:
        assert facts["category"] == BY_UA[ua], facts
    elif label == "human-client":
        expected = "browser" if notes.startswith(BROWSER_NOTES) else "mail-client"
        assert facts["category"] == expected, facts
    else:
        assert facts["category"] in BY_LABEL[label], facts
    assert facts["category"] in CATEGORIES


def test_the_overrides_name_real_fixture_rows() -> None:
    assert set(BY_UA) <= {r["user_agent"] for r in ROWS}


def test_mail_clients_and_browsers_split_as_expected(enricher: UserAgentEnricher) -> None:
    humans = [r["user_agent"] for r in ROWS if r["label"] == "human-client"]
    categories = [enricher.describe(ua)["category"] for ua in humans]
    assert categories.count("mail-client") == 9
    assert categories.count("browser") == 4


def test_apple_mpp_candidate_is_a_bare_mozilla_prefetcher(enricher: UserAgentEnricher) -> None:
    facts = enricher.describe("Mozilla/5.0")
    assert facts["bare_mozilla"] is True
    assert facts["category"] == "prefetcher"
    assert facts["rule"] == "table:exact:Mozilla/5.0"
    # Anything else is not the MPP string, however close.
    for near in ("Mozilla/5.0 ", "mozilla/5.0", "Mozilla/5.0 (compatible)"):
        assert enricher.describe(near)["bare_mozilla"] is False
        assert enricher.describe(near)["category"] != "prefetcher"


def test_gmail_proxy_is_an_image_proxy_but_its_prefetch_is_not(
    enricher: UserAgentEnricher,
) -> None:
    proxy = enricher.describe(
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    assert (proxy["category"], proxy["family"]) == ("image-proxy", "GmailImageProxy")
    prefetch = enricher.describe(GMAIL_PREFETCH)
    assert prefetch["category"] == "prefetcher"
    assert prefetch["family"] == "Edge"  # what ua-parser alone would have believed


def test_safe_links_old_chrome_is_a_browser_flagged_outdated(enricher: UserAgentEnricher) -> None:
    facts = enricher.describe(SAFE_LINKS_CHROME)
    assert facts["category"] == "browser"
    assert (facts["family"], facts["major"], facts["os"]) == ("Chrome", "72", "Windows")
    assert facts["outdated_chrome"] is True


def test_outdated_chrome_starts_eight_majors_back() -> None:
    enricher = UserAgentEnricher(current_chrome_major=142)

    def chrome(major: int) -> str:
        return SAFE_LINKS_CHROME.replace("Chrome/72.0.3626.109", f"Chrome/{major}.0.0.0")

    assert enricher.describe(chrome(134))["outdated_chrome"] is True
    assert enricher.describe(chrome(135))["outdated_chrome"] is False
    assert enricher.describe(chrome(142))["outdated_chrome"] is False
    assert UserAgentEnricher(current_chrome_major=150).describe(chrome(142))["outdated_chrome"]
    # Firefox has no Chrome token; HeadlessChrome/NN is not read as Chrome/NN.
    assert enricher.describe(ROWS[1]["user_agent"])["outdated_chrome"] is False
    headless = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/90.0.0.0 Safari/537.36"
    assert enricher.describe(headless)["outdated_chrome"] is False


def test_empty_user_agent_is_automation(enricher: UserAgentEnricher) -> None:
    for ua in ("", "   "):
        facts = enricher.describe(ua)
        assert (facts["category"], facts["empty"], facts["rule"]) == ("automation", True, "empty")
        assert facts["family"] == "Other"
    assert enricher.describe("curl/8.5.0")["empty"] is False


@pytest.mark.parametrize(
    ("ua", "category", "rule"),
    [
        ("TelegramBot (like TwitterBot)", "preview-bot", "table:contains:TelegramBot"),
        ("Outlook-Android/2.0", "mail-client", "table:prefix:Outlook-Android/"),
        ("MacOutlook/16.89.24091630 (Intelx64 Mac OS X 14.6.1)", "mail-client", None),
        ("Go-http-client/1.1", "automation", "parser:family=Go-http-client"),
        ("okhttp/4.12.0", "automation", "parser:family=okhttp"),
        ("Java/17.0.2", "automation", "parser:family=Java"),  # a Spider to uap-core
        ("python-httpx/0.28.1", "automation", "table:prefix:python-httpx/"),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "crawler",
            "parser:device=Spider",
        ),
        ("SomeInternalTool", "unknown", "parser:no-match"),
    ],
)
def test_rule_names_what_decided(
    enricher: UserAgentEnricher, ua: str, category: str, rule: str | None
) -> None:
    facts = enricher.describe(ua)
    assert facts["category"] == category
    if rule is not None:
        assert facts["rule"] == rule


def test_table_matching_ignores_case_except_exact(enricher: UserAgentEnricher) -> None:
    assert enricher.describe("slackbot-linkexpanding 1.0")["category"] == "preview-bot"
    assert enricher.describe("Mozilla/5.0 SEZNAMEMAILPROXY/3.0")["category"] == "image-proxy"


def test_facts_are_json_values_and_complete(enricher: UserAgentEnricher) -> None:
    facts = enricher.describe(ROWS[0]["user_agent"])
    assert set(facts) == {
        "family",
        "major",
        "os",
        "device",
        "category",
        "rule",
        "bare_mozilla",
        "empty",
        "outdated_chrome",
    }
    assert all(isinstance(v, str | bool | None) for v in facts.values())


def test_cache_serves_repeats_and_hands_out_copies() -> None:
    enricher = UserAgentEnricher(cache_size=4)
    first = enricher.describe("curl/7.88.1")
    first["category"] = "tampered"
    again = enricher.describe("curl/7.88.1")
    assert again["category"] == "automation"
    info = enricher.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 1, 4)


def test_huge_user_agent_is_truncated_not_rejected(enricher: UserAgentEnricher) -> None:
    ua = "Mozilla/5.0 (compatible; Discordbot/2.0) " + "x" * (MAX_UA_LENGTH * 4)
    assert enricher.describe(ua)["category"] == "preview-bot"
    # Only the first MAX_UA_LENGTH characters count: a token past them is not seen.
    late = "x" * MAX_UA_LENGTH + " Discordbot/2.0"
    assert enricher.describe(late)["category"] != "preview-bot"


def test_bundled_table_is_valid_and_sourced() -> None:
    rules = load_rules()
    assert len(rules) >= 30
    assert all(r.note for r in rules)
    assert {r.category for r in rules} <= set(CATEGORIES)
    assert len({(r.match, r.pattern) for r in rules}) == len(rules)


def test_bad_table_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ua.tsv"
    path.write_text("# c\nmatch\tpattern\tcategory\tnote\ncontains\tFoo\tbotty\tnote\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_rules(path)
    path.write_text("match\tpattern\tcategory\tnote\nregex\tFoo\tcrawler\tnote\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_rules(path)


def test_custom_rules_replace_the_table(tmp_path: Path) -> None:
    path = tmp_path / "ua.tsv"
    path.write_text("match\tpattern\tcategory\tnote\nprefix\tcurl/\tsecurity-scanner\tours\n")
    facts = UserAgentEnricher(load_rules(path)).describe("curl/7.88.1")
    assert (facts["category"], facts["rule"]) == ("security-scanner", "table:prefix:curl/")
