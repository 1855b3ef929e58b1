"""Every rule in one readable table, in the order reasons are reported.

Ids are stable: settings (`disabled_rules`), stored reasons, docs/rules.md and the UI all
use them. Weights are log-odds (base.py): negative argues machine, positive person.
Sources: NS = noise-signals.md, FIELD = field.md (research notes), and the named threads.
Weights were checked against bench/accuracy.py's labelled set (docs/rules.md).
`reads` (rule.Rule) says what a check is given: by default the event's `Features` only;
"event" for pass-one rules that read the time since sending; "timeline" for pass two.
`when` names what an event's features must show for such a rule to fire at all.
`facts` names the enrichment facts the check and `when` read (as the enrichers declare
them, model.py; the classifier refuses a rule naming one no enricher declares); `AGENT`
is how sentences name the user agent. `lookups`: facts read per event, off the Features.
"""

from __future__ import annotations

from ..model import EventKind, Verdict
from . import patterns as p
from . import signals as s
from .rule import Rule

M, H, F, U = Verdict.MACHINE, Verdict.HUMAN, Verdict.FORWARD, Verdict.UNKNOWN
OPEN = frozenset({EventKind.OPEN})
FETCHES = frozenset({EventKind.OPEN, EventKind.CLICK, EventKind.ATTACHMENT})
CLICKS = frozenset({EventKind.CLICK, EventKind.ATTACHMENT})
AGENT = s.AGENT  # derived from ua.family: how sentences name the user agent

# fmt: off
RULES: tuple[Rule, ...] = (
    # Certain: nobody sees the honeypot; these agents announce themselves.
    Rule("honeypot.clicked", M, -10.0, "Hit on the invisible honeypot link.",
         "FIELD (most effective first, 1); mautic #9798", s.honeypot_hit, CLICKS,
         facts=("honeypot",)),
    Rule("useragent.automation", M, -6.0, "HTTP library, headless browser or empty user agent.",
         "NS signals table (automation); warmbly #569", s.automation, FETCHES,
         facts=("ua.empty", "ua.category", AGENT)),
    Rule("useragent.security_scanner", M, -6.0, "User agent of a link or attachment scanner.",
         "NS (Barracuda Sentinel, Google-Safety, VirusTotal)", s.scanner_agent, FETCHES,
         facts=("ua.category", AGENT)),
    Rule("useragent.preview_bot", M, -5.0, "Chat link-preview bot or crawler.",
         "NS (Slack, Teams, LinkedIn, ... preview bots)", s.preview_agent, FETCHES,
         facts=("ua.category", AGENT)),
    # Proxies and prefetchers: know which fire on a real open and which do not.
    Rule("network.apple_mpp", M, -6.0, "Apple MPP: 'Mozilla/5.0' from Private Relay egress.",
         "NS; uap-core #509; ClickDimensions adjusted opens", s.apple_mpp, OPEN,
         facts=("ua.bare_mozilla", "net.labels")),
    Rule("network.apple_mpp_webkit", M, -4.0,
         "Apple Mail's stripped WebKit user agent from Private Relay egress.",
         "NS (stripped WebKit row); warmbly #564, PR #569", s.apple_mpp_webkit, OPEN,
         facts=("ua.family", "net.labels", "ua.bare_mozilla")),
    Rule("useragent.bare_mozilla", M, -1.5, "Bare 'Mozilla/5.0' from a non-Apple address.",
         "NS (MPP row)", s.bare_mozilla, OPEN, facts=("ua.bare_mozilla", "net.labels")),
    Rule("useragent.prefetch", M, -5.0, "Prefetcher user agent (Gmail prefetch, Office probe).",
         "NS; gmass false opens; SparkPost is_prefetched", s.prefetch_agent, FETCHES,
         facts=("ua.category", "ua.bare_mozilla", AGENT)),
    Rule("useragent.image_proxy_open", H, 2.0, "Webmail image proxy that fires on a real open.",
         "NS (GoogleImageProxy, YahooMailProxy)", s.image_proxy, OPEN,
         facts=("ua.category", AGENT)),
    # Networks.
    Rule("network.security_gateway", M, -4.0, "Address of Microsoft EOP or a mail gateway.",
         "NS (EOP ranges; gateway ASNs); warmbly scanner-networks", s.security_gateway, FETCHES,
         facts=("net.labels", "net.owner")),
    Rule("network.cloud_click_at_delivery", M, -2.5,
         "Click from a cloud network within 10 minutes of sending.",
         "NS (cloud data centres on a click); FIELD (bursts start ~43 s after send)",
         s.cloud_click_at_delivery, CLICKS, reads="event", when=s.cloud_network_click,
         facts=("kind", "net.labels")),
    Rule("network.cloud_click", M, -1.0, "Click from a cloud or scanner-prone network.",
         "NS (Microsoft on a click; cloud data centres); warmbly PR #412", s.cloud_click,
         CLICKS, facts=("kind", "net.labels", "net.owner")),
    Rule("network.private_relay_click", H, 0.5, "A click through iCloud Private Relay.",
         "NS (Private Relay on clicks)", s.private_relay_click, CLICKS,
         facts=("kind", "net.labels")),
    # Request shape and timing.
    Rule("request.head", M, -4.0, "HEAD request on a tracked URL.", "NS; Collie PR #50",
         s.head_request, FETCHES, facts=("method",)),
    Rule("useragent.outdated_chrome", M, -1.5,
         "Old Chrome on a gateway or cloud network, or at delivery (detonation sandbox).",
         "NS (Safe Links row); opencollective #3656", s.outdated_chrome, FETCHES,
         reads="event", when=s.old_chrome, facts=("ua.outdated_chrome", "net.labels"),
         lookups=("ua.major",)),
    Rule("timing.within_seconds_of_send", M, -3.0, "First seconds after sending.",
         "NS timing row; mautic #16263; Collie PR #50", s.soon_after_send, FETCHES,
         reads="event"),
    Rule("timing.before_send", U, 0.0, "Hit time before the send time (clock skew).",
         "MailSignal", s.before_send, FETCHES, reads="event"),
    Rule("useragent.person_client", H, 0.5, "Mail client or current browser user agent.",
         "NS (Outlook, Apple Mail, Thunderbird)", s.person_client, FETCHES,
         facts=("ua.category", "ua.outdated_chrome", AGENT)),
    # Pass two: the recipient's timeline.
    Rule("honeypot.nearby", M, -5.0, "Within 10 s of a honeypot hit from the same address.",
         "mautic #9798", p.near_honeypot, CLICKS, reads="timeline"),
    Rule("burst.all_links", M, -4.0, "Several or all links clicked within 3 seconds.",
         "FIELD (bursts); craft-campaign #546; Paminga", p.link_burst,
         frozenset({EventKind.CLICK}), reads="timeline"),
    Rule("burst.open_in_link_sweep", M, -4.0, "An open within 3 s of a sweep over the links.",
         "FIELD (bursts); craft-campaign #546", p.open_in_link_sweep, OPEN, reads="timeline"),
    Rule("burst.many_addresses", M, -2.5, "Three or more addresses within 30 seconds.",
         "FIELD (bursts: >= 3 IPs in 30 s)", p.many_addresses, FETCHES, reads="timeline"),
    Rule("repeat.proxy_refetch", M, -2.5, "A prefetcher fetched the pixel again in 10 minutes.",
         "NS (repeated opens from one proxy); wordtothewise 2013", p.proxy_refetch, OPEN,
         reads="timeline", when=p.proxy, facts=("ua.category", "ua.bare_mozilla")),
    Rule("corroboration.later_click", H, 2.0, "A later human click confirms an open.",
         "FIELD (corroboration)", p.click_confirms_open, OPEN, reads="timeline"),
    Rule("corroboration.after_scanner_check", H, 1.5, "The person's click after a gateway check.",
         "NS (time-of-click); resend #901", p.after_scanner_check, CLICKS, reads="timeline",
         facts=("net.labels",)),
    Rule("forward.new_device", F, 0.5, "A person elsewhere, after the recipient read it.",
         "NS (geography jump, weak)", p.new_device, FETCHES, reads="timeline",
         facts=("ua.category",), lookups=("ua.os", "net.country")),
    Rule("timing.no_click_after_7_days", U, -0.3, "Open with no click after seven days.",
         "FIELD (reliable signals are clicks and replies)", p.no_click_week, OPEN,
         reads="timeline"),
)
# fmt: on
RULE_IDS = frozenset(r.id for r in RULES)
WEIGHTS = {r.id: r.weight for r in RULES}
