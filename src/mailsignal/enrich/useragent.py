"""User-agent facts for a hit (namespace `ua`): what kind of software fetched the URL.

Two stages, the first match deciding `category`:

1. MailSignal's table `data/useragents.tsv`, for what general parsers miss or misfile in
   email traffic: image proxies, prefetchers, mail scanners, chat preview bots.
2. ua-parser (uap-core rules; the Rust resolver when `ua-parser-rs` is installed) for
   `family`/`major`/`os`/`device`, then the family sets below.

An ordinary browser UA cannot be told from a scanner detonating the link (Safe Links
sends an old Chrome): `outdated_chrome` is only a weak hint for the classifier, which
combines it with network facts and timing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import ua_parser

from mailsignal.errors import ConfigError
from mailsignal.model import USER_AGENT_FACTS, RawHit

CATEGORIES = (
    "mail-client",
    "browser",
    "image-proxy",
    "prefetcher",
    "security-scanner",
    "preview-bot",
    "automation",
    "crawler",
    "unknown",
)

MatchType = Literal["exact", "contains", "prefix"]
_MATCH_TYPES: dict[str, MatchType] = {"exact": "exact", "contains": "contains", "prefix": "prefix"}

# uap-core families of dedicated mail clients. Everything else with a known family that
# is not a library or a Spider is taken as a browser (webmail included).
MAIL_CLIENT_FAMILIES = frozenset(
    {
        "Apple Mail",  # uap-core maps a bare AppleWebKit UA (no Safari token) to Apple Mail
        "Outlook",
        "Outlook-iOS",
        "MacOutlook",
        "Thunderbird",
        "Airmail",
        "Windows Live Mail",
        "Postbox",
        "Barca",
        "Lotus Notes",
        "Superhuman",
        "Evolution",
    }
)

# uap-core families of HTTP libraries and headless tools. uap-core does not mark most of
# them as Spider, so without this set `curl` would count as a browser.
AUTOMATION_FAMILIES = frozenset(
    {
        "curl",
        "Wget",
        "wget2",
        "Python Requests",
        "Python-urllib",
        "Python aiohttp",
        "PycURL",
        "Go-http-client",
        "Java",
        "okhttp",
        "Apache-HttpClient",
        "Google-HTTP-Java-Client",
        "GuzzleHttp",
        "HTTPClient",
        "libwww-perl",
        "axios",
        "reqwest",
        "PostmanRuntime",
        "HTTPie",
        "aria2",
        "HeadlessChrome",
        "PhantomJS",
        "Scrapy",
    }
)

# Long enough for any real UA (the longest in-app ones run ~500 chars); bounds the cost of
# regex parsing and the memory of cache keys when someone sends a 16 KB header.
MAX_UA_LENGTH = 2048
DEFAULT_CACHE_SIZE = 10_000
# Chrome stable in late 2025; the lead/settings should pass the current one.
DEFAULT_CURRENT_CHROME_MAJOR = 142
# noise-signals.md: Safe Links detonation seen with "Chrome 125, 8+ versions old".
OUTDATED_CHROME_LAG = 8

# `\b` keeps HeadlessChrome/NN out; Edge and Opera carry a Chrome/NN token too.
_CHROME_MAJOR = re.compile(r"\bChrome/(\d+)")


@dataclass(frozen=True, slots=True)
class UaRule:
    """One row of `useragents.tsv`."""

    match: MatchType
    pattern: str
    category: str
    note: str

    @property
    def rule_id(self) -> str:
        return f"table:{self.match}:{self.pattern}"


def _bundled_rules_path() -> Traversable:
    return files("mailsignal").joinpath("data", "useragents.tsv")


def load_rules(path: Path | Traversable | None = None) -> tuple[UaRule, ...]:
    """Read the rule table (tab-separated; `#` lines are comments; first row is a header)."""
    source = path if path is not None else _bundled_rules_path()
    rules: list[UaRule] = []
    header_seen = False
    for lineno, line in enumerate(source.read_text("utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        if not header_seen:
            header_seen = True
            continue
        cols = line.split("\t")
        match = _MATCH_TYPES.get(cols[0])
        if len(cols) != 4 or match is None or not cols[1]:
            raise ConfigError(f"{source} line {lineno}: expected match, pattern, category, note")
        if cols[2] not in CATEGORIES:
            raise ConfigError(f"{source} line {lineno}: unknown category {cols[2]!r}")
        rules.append(UaRule(match, cols[1], cols[2], cols[3]))
    return tuple(rules)


@functools.cache
def _parser() -> ua_parser.Parser:
    # Our own cache sits above this, so the parser gets none (ua_parser.parse would add a
    # second, 2000-entry one). Lazy builtins only pay off with a compiled resolver, which
    # is the same choice ua_parser makes for its global parser.
    resolver_ctor = ua_parser.BestAvailableResolver
    compiled = ua_parser.RegexResolver is not None or ua_parser.Re2Resolver is not None
    matchers = ua_parser.load_lazy_builtins() if compiled else ua_parser.load_builtins()
    return ua_parser.Parser(resolver_ctor(matchers))


def resolver_name() -> str:
    """Which ua-parser resolver is in use (for the bench and the README)."""
    return type(_parser().resolver).__module__


class UserAgentEnricher:
    """Enricher for the `ua` namespace; results are cached per distinct UA string."""

    namespace = "ua"
    # Declared in model.py so the classifier can default to them (it may not import us).
    provides = USER_AGENT_FACTS

    def __init__(
        self,
        rules: Sequence[UaRule] | None = None,
        *,
        current_chrome_major: int = DEFAULT_CURRENT_CHROME_MAJOR,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.rules = tuple(rules) if rules is not None else load_rules()
        self.current_chrome_major = current_chrome_major
        # Lower-cased once here so the per-UA loop does no case folding of patterns.
        self._rules_folded = tuple(
            (r, r.pattern if r.match == "exact" else r.pattern.lower()) for r in self.rules
        )
        # Per instance (not a module-level lru_cache) because the answer depends on
        # current_chrome_major and the rules this instance was given.
        self._cached = functools.lru_cache(maxsize=cache_size)(self._describe)

    def enrich(self, hit: RawHit) -> dict[str, Any]:
        return self.describe(hit.user_agent)

    def describe(self, user_agent: str) -> dict[str, Any]:
        # A copy, so a caller that edits its facts cannot poison the cache.
        return dict(self._cached(user_agent[:MAX_UA_LENGTH]))

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def _match_table(self, ua: str) -> UaRule | None:
        folded = ua.lower()
        for rule, pattern in self._rules_folded:
            if rule.match == "exact":
                if ua == pattern:
                    return rule
            elif rule.match == "prefix":
                if folded.startswith(pattern):
                    return rule
            elif pattern in folded:
                return rule
        return None

    def _describe(self, ua: str) -> dict[str, Any]:
        parsed = _parser().parse(ua)
        agent, os, device = parsed.user_agent, parsed.os, parsed.device
        family = agent.family if agent else "Other"
        device_family = device.family if device else "Other"
        empty = not ua.strip()

        if empty:
            # warmbly #569 treats a missing UA as automated; every browser sends one.
            category, rule = "automation", "empty"
        elif (row := self._match_table(ua)) is not None:
            category, rule = row.category, row.rule_id
        elif family in MAIL_CLIENT_FAMILIES:
            category, rule = "mail-client", f"parser:family={family}"
        elif family in AUTOMATION_FAMILIES:
            category, rule = "automation", f"parser:family={family}"
        elif device_family == "Spider":
            category, rule = "crawler", "parser:device=Spider"
        elif family != "Other":
            category, rule = "browser", f"parser:family={family}"
        else:
            category, rule = "unknown", "parser:no-match"

        chrome = _CHROME_MAJOR.search(ua)
        lag = self.current_chrome_major - int(chrome.group(1)) if chrome else 0
        return {
            "family": family,
            "major": agent.major if agent else None,
            "os": os.family if os else "Other",
            "device": device_family,
            "category": category,
            "rule": rule,
            "bare_mozilla": ua == "Mozilla/5.0",
            "empty": empty,
            "outdated_chrome": lag >= OUTDATED_CHROME_LAG,
        }
