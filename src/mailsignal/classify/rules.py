"""The rules, in the order they are reported. Ids are stable: config, stored reasons,
docs/rules.md and the UI all use them. Weights are log-odds (see base.py).

Sources abbreviate `../shared/reference/noise-signals.md` as NS and `field.md` as FIELD.
"""

from __future__ import annotations

from datetime import timedelta

from ..model import EventKind, Evidence, Verdict
from .base import Context, Event, Rule, Timeline

M, H, F = Verdict.MACHINE, Verdict.HUMAN, Verdict.FORWARD

# Log-odds each rule adds when it fires; negative = machine. One table, so docs/rules.md
# and a reviewer see every weight side by side.
WEIGHTS: dict[str, float] = {
    "useragent.automation": -6.0,
    "useragent.security_scanner": -6.0,
    "useragent.preview_bot": -5.0,
    "network.apple_mpp": -6.0,
    "useragent.bare_mozilla": -1.5,
    "useragent.gmail_prefetch": -5.0,
    "useragent.image_proxy_open": 2.0,
    "useragent.person_client": 0.5,
    "network.private_relay_click": 0.5,
    "network.security_gateway": -4.0,
    "request.head": -4.0,
    "timing.within_seconds_of_send": -3.0,
    "timing.before_send": 0.0,
    "honeypot.clicked": -10.0,
    "honeypot.nearby": -5.0,
    "burst.all_links": -4.0,
    "corroboration.later_click": 2.0,
}
OPEN = frozenset({EventKind.OPEN})
FETCHES = frozenset({EventKind.OPEN, EventKind.CLICK, EventKind.ATTACHMENT})
CLICKS = frozenset({EventKind.CLICK, EventKind.ATTACHMENT})


def _category(ev: Event) -> str:
    return str(ev.fact("ua", "category", "unknown"))


def _family(ev: Event) -> str:
    return str(ev.fact("ua", "family") or ev.user_agent[:60] or "(none)")


# --- pass one: the event's own facts -----------------------------------------------------


def ua_automation(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.fact("ua", "empty") or _category(ev) == "automation":
        what = "no user agent" if ev.fact("ua", "empty") else f"user agent {_family(ev)}"
        return Evidence(
            "useragent.automation",
            M,
            WEIGHTS["useragent.automation"],
            f"Sent with {what}: an HTTP library or headless browser, not a mail client.",
        )
    return None


def ua_scanner(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if _category(ev) == "security-scanner":
        return Evidence(
            "useragent.security_scanner",
            M,
            WEIGHTS["useragent.security_scanner"],
            f"User agent {_family(ev)} is a security scanner checking the link.",
        )
    return None


def ua_preview(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if _category(ev) in ("preview-bot", "crawler"):
        return Evidence(
            "useragent.preview_bot",
            M,
            WEIGHTS["useragent.preview_bot"],
            f"User agent {_family(ev)} fetches link previews or crawls; "
            "the link was probably pasted into a chat or forwarded.",
        )
    return None


def apple_mpp(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.fact("ua", "bare_mozilla") and "apple-private-relay" in ev.labels():
        return Evidence(
            "network.apple_mpp",
            M,
            WEIGHTS["network.apple_mpp"],
            "Apple Mail Privacy Protection: user agent exactly 'Mozilla/5.0' from an "
            "iCloud Private Relay egress address fetches the pixel on delivery, "
            "whether or not anyone reads the mail.",
        )
    return None


def bare_mozilla(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.fact("ua", "bare_mozilla") and "apple-private-relay" not in ev.labels():
        return Evidence(
            "useragent.bare_mozilla",
            M,
            WEIGHTS["useragent.bare_mozilla"],
            "User agent is exactly 'Mozilla/5.0', as proxies send; the address is not "
            "Apple's, so this is weaker than the Apple MPP rule.",
        )
    return None


def gmail_prefetch(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if _category(ev) == "prefetcher" and not ev.fact("ua", "bare_mozilla"):
        return Evidence(
            "useragent.gmail_prefetch",
            M,
            WEIGHTS["useragent.gmail_prefetch"],
            "Gmail prefetch user agent (Chrome 42 / Edge 12): images fetched on "
            "delivery while a Gmail session is open, before anyone reads the mail.",
        )
    return None


def image_proxy(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if _category(ev) == "image-proxy":
        return Evidence(
            "useragent.image_proxy_open",
            H,
            WEIGHTS["useragent.image_proxy_open"],
            f"{_family(ev)} is a webmail image proxy: it fetches the pixel when a "
            "person opens the mail (it hides their device and place).",
        )
    return None


def mail_client(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if _category(ev) in ("mail-client", "browser"):
        return Evidence(
            "useragent.person_client",
            H,
            WEIGHTS["useragent.person_client"],
            f"User agent {_family(ev)} is a mail client or browser a person uses.",
        )
    return None


def private_relay_click(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.kind is not EventKind.OPEN and "apple-private-relay" in ev.labels():
        return Evidence(
            "network.private_relay_click",
            H,
            WEIGHTS["network.private_relay_click"],
            "A click through iCloud Private Relay: a person browsing with iCloud+, "
            "not Mail Privacy Protection (which only fetches images).",
        )
    return None


def security_gateway(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    labels = ev.labels()
    if "microsoft-eop" in labels or "security-gateway" in labels:
        owner = ev.fact("net", "owner") or "a mail security gateway"
        return Evidence(
            "network.security_gateway",
            M,
            WEIGHTS["network.security_gateway"],
            f"Address belongs to {owner}, whose filters fetch images and follow "
            "links at delivery time.",
        )
    return None


def head_request(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.method == "HEAD":
        return Evidence(
            "request.head",
            M,
            WEIGHTS["request.head"],
            "HEAD request: something checked the URL without loading it; "
            "browsers and mail clients send GET.",
        )
    return None


def soon_after_send(ev: Event, _i: int, _t: Timeline, ctx: Context) -> Evidence | None:
    if ctx.sent_at is None:
        return None
    delta = (ev.at - ctx.sent_at).total_seconds()
    if 0 <= delta < ctx.delivery_window_seconds:
        return Evidence(
            "timing.within_seconds_of_send",
            M,
            WEIGHTS["timing.within_seconds_of_send"],
            f"{delta:.1f} s after sending (window {ctx.delivery_window_seconds:g} s): "
            "faster than a person reads, as scanners and prefetchers do on delivery.",
        )
    return None


def before_send(ev: Event, _i: int, _t: Timeline, ctx: Context) -> Evidence | None:
    if ctx.sent_at is not None and ev.at < ctx.sent_at - timedelta(minutes=2):
        return Evidence(
            "timing.before_send",
            Verdict.UNKNOWN,
            WEIGHTS["timing.before_send"],
            "Recorded before the email's send time: a clock is skewed or the send "
            "time given was wrong; timing rules cannot be trusted for this event.",
        )
    return None


def honeypot_hit(ev: Event, _i: int, _t: Timeline, _c: Context) -> Evidence | None:
    if ev.honeypot:
        return Evidence(
            "honeypot.clicked",
            M,
            WEIGHTS["honeypot.clicked"],
            "Followed the invisible honeypot link, which no person can see.",
        )
    return None


# --- pass two: the recipient's timeline ------------------------------------------------


def near_honeypot(ev: Event, i: int, t: Timeline, _c: Context) -> Evidence | None:
    if ev.honeypot:
        return None
    for other in t.honeypots:
        if other.ip == ev.ip and abs((other.at - ev.at).total_seconds()) <= 10:
            return Evidence(
                "honeypot.nearby",
                M,
                WEIGHTS["honeypot.nearby"],
                "Within 10 s of a honeypot hit from the same address.",
            )
    return None


def link_burst(ev: Event, i: int, t: Timeline, ctx: Context) -> Evidence | None:
    window = [o for o in t.window(ev.at, 3) if o.kind is EventKind.CLICK and not o.honeypot]
    links = {o.link_id for o in window}
    if len(links) >= 3 or (ctx.link_count >= 2 and len(links) >= ctx.link_count):
        return Evidence(
            "burst.all_links",
            M,
            WEIGHTS["burst.all_links"],
            f"{len(links)} different links clicked within 3 s: scanners follow "
            "every link at once; people click one.",
        )
    return None


def click_confirms_open(ev: Event, i: int, t: Timeline, _c: Context) -> Evidence | None:
    if t.first_pass[i] is M:  # a prefetch or scan is not the person's open, click or not
        return None
    if t.last_human_click > i:
        return Evidence(
            "corroboration.later_click",
            H,
            WEIGHTS["corroboration.later_click"],
            "The recipient clicked a link afterwards, so this open was theirs.",
        )
    return None


RULES: tuple[Rule, ...] = (
    Rule(
        "honeypot.clicked",
        "Hit on the invisible honeypot link.",
        "FIELD best-practice 1; mautic #9798",
        honeypot_hit,
        CLICKS,
    ),
    Rule(
        "useragent.automation",
        "HTTP library, headless browser or empty user agent.",
        "NS signals table (automation)",
        ua_automation,
        FETCHES,
    ),
    Rule(
        "useragent.security_scanner",
        "User agent of a link/attachment security scanner.",
        "NS signals table (Barracuda Sentinel, Google-Safety, VirusTotal)",
        ua_scanner,
        FETCHES,
    ),
    Rule(
        "useragent.preview_bot",
        "Chat/link-preview bot or crawler.",
        "NS signals table (preview bots)",
        ua_preview,
        FETCHES,
    ),
    Rule(
        "network.apple_mpp",
        "Apple MPP prefetch: 'Mozilla/5.0' from Private Relay egress.",
        "NS; uap-core #509; ClickDimensions adjusted opens",
        apple_mpp,
        OPEN,
    ),
    Rule(
        "useragent.bare_mozilla",
        "Bare 'Mozilla/5.0' user agent from a non-Apple address.",
        "NS (MPP row)",
        bare_mozilla,
        OPEN,
    ),
    Rule(
        "useragent.gmail_prefetch",
        "Gmail prefetch user agent.",
        "NS; gmass false-opens; SparkPost is_prefetched",
        gmail_prefetch,
        OPEN,
    ),
    Rule(
        "network.security_gateway",
        "Address in Microsoft EOP or a mail-security vendor range.",
        "NS (EOP ranges; gateway ASNs)",
        security_gateway,
        FETCHES,
    ),
    Rule(
        "request.head", "HEAD request on a tracked URL.", "NS; Collie PR #50", head_request, FETCHES
    ),
    Rule(
        "timing.within_seconds_of_send",
        "First seconds after sending.",
        "NS timing row; mautic #16263",
        soon_after_send,
        FETCHES,
    ),
    Rule(
        "timing.before_send",
        "Hit time before the send time (clock skew).",
        "MailSignal",
        before_send,
        FETCHES,
    ),
    Rule(
        "useragent.image_proxy_open",
        "Webmail image proxy that fires on a real open.",
        "NS (GoogleImageProxy, YahooMailProxy)",
        image_proxy,
        OPEN,
    ),
    Rule(
        "useragent.person_client",
        "Mail client or browser user agent.",
        "NS (Outlook, Apple Mail, Thunderbird)",
        mail_client,
        FETCHES,
    ),
    Rule(
        "network.private_relay_click",
        "Click through iCloud Private Relay is a person.",
        "NS (Private Relay on clicks)",
        private_relay_click,
        CLICKS,
    ),
    Rule(
        "honeypot.nearby",
        "Within 10 s of a honeypot hit from the same address.",
        "mautic #9798",
        near_honeypot,
        CLICKS,
        timeline=True,
    ),
    Rule(
        "burst.all_links",
        "Several or all links clicked within seconds.",
        "FIELD (bursts); craft-campaign #546; Paminga",
        link_burst,
        frozenset({EventKind.CLICK}),
        timeline=True,
    ),
    Rule(
        "corroboration.later_click",
        "A later human click confirms an open.",
        "FIELD (corroboration)",
        click_confirms_open,
        OPEN,
        timeline=True,
    ),
)
RULE_IDS = frozenset(r.id for r in RULES)
