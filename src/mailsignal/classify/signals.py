"""Rules that read one event's own facts: its user agent, network, method and timing.

Each check returns the sentence a rep reads in the reasons, or None when it does not
fire. Facts come from the enrichers (`ua`, `net` namespaces; see enrich/ and the
declarations in model.py) and are read by their declared names, `f["ua.category"]`; each
rule names in the table what its check reads (`facts=`). Most checks are given only the
event's `Features` (`reads="facts"` in the table, the default), so their answer depends
on nothing else and is reused for every event with the same features; the ones that read
the time since sending take the event and the context (`reads="event"`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..model import EventKind
from .events import Context, Event, Timeline
from .features import Derived, Features

# Networks whose fetches happen on delivery, whoever reads the mail.
GATEWAYS = frozenset({"microsoft-eop", "security-gateway"})
# Networks where a click is more often a scanner than a person (warmbly scopes these to
# clicks; a person's open from them is usually a webmail proxy, so opens are exempt).
CLICK_SCANNER_NETS = frozenset({"scanner-clicks-only", "datacenter"})
SCANNER_NETS = GATEWAYS | CLICK_SCANNER_NETS
TWO_MINUTES = timedelta(minutes=2)


def _agent(ev: Event, family: Any) -> str:
    return str(family or ev.user_agent[:60] or "(none)")


AGENT = Derived(
    "agent",
    ("ua.family",),
    _agent,
    "how sentences name the agent: its family, else the user agent's first 60 characters",
)


# --- reads="facts": the event's Features only ------------------------------------------


def automation(f: Features) -> str | None:
    if f["ua.empty"]:
        return "Sent with no user agent at all: scripts do that, mail clients never do."
    if f["ua.category"] == "automation":
        return f"User agent {f['agent']} is an HTTP library or headless browser, not a mail client."
    return None


def scanner_agent(f: Features) -> str | None:
    if f["ua.category"] == "security-scanner":
        return f"User agent {f['agent']} is a security scanner checking the link."
    return None


def preview_agent(f: Features) -> str | None:
    if f["ua.category"] in ("preview-bot", "crawler"):
        return (
            f"User agent {f['agent']} fetches link previews or crawls; the link was "
            "probably pasted into a chat or forwarded."
        )
    return None


def apple_mpp(f: Features) -> str | None:
    if f["ua.bare_mozilla"] and "apple-private-relay" in f["net.labels"]:
        return (
            "Apple Mail Privacy Protection: user agent exactly 'Mozilla/5.0' from an "
            "iCloud Private Relay egress address fetches the pixel on delivery, whether "
            "or not anyone reads the mail."
        )
    return None


def apple_mpp_webkit(f: Features) -> str | None:
    relay = "apple-private-relay" in f["net.labels"]
    if f["ua.family"] == "Apple Mail" and relay and not f["ua.bare_mozilla"]:
        return (
            "Apple Mail's stripped WebKit user agent from an iCloud Private Relay egress "
            "address: the form Apple's privacy fetches also take, so most likely MPP "
            "rather than a reading (weaker than the bare 'Mozilla/5.0' case)."
        )
    return None


def bare_mozilla(f: Features) -> str | None:
    if f["ua.bare_mozilla"] and "apple-private-relay" not in f["net.labels"]:
        return (
            "User agent is exactly 'Mozilla/5.0', as proxies send; the address is not "
            "Apple's, so this is weaker than the Apple MPP rule."
        )
    return None


def prefetch_agent(f: Features) -> str | None:
    if f["ua.category"] == "prefetcher" and not f["ua.bare_mozilla"]:
        return (
            f"User agent {f['agent']} prefetches: images or links fetched before anyone "
            "reads (Gmail prefetch, Office link probe)."
        )
    return None


def image_proxy(f: Features) -> str | None:
    if f["ua.category"] == "image-proxy":
        return (
            f"{f['agent']} is a webmail image proxy: it fetches the pixel when a person "
            "opens the mail (it hides their device and place)."
        )
    return None


def person_client(f: Features) -> str | None:
    if f["ua.category"] in ("mail-client", "browser") and not f["ua.outdated_chrome"]:
        return f"User agent {f['agent']} is a mail client or browser a person uses."
    return None


def private_relay_click(f: Features) -> str | None:
    if f["kind"] is not EventKind.OPEN and "apple-private-relay" in f["net.labels"]:
        return (
            "A click through iCloud Private Relay: a person browsing with iCloud+, not "
            "Mail Privacy Protection (which only fetches images)."
        )
    return None


def security_gateway(f: Features) -> str | None:
    if not f["net.labels"].isdisjoint(GATEWAYS):
        owner = f["net.owner"] or "a mail security gateway"
        return (
            f"Address belongs to {owner}, whose filters fetch images and follow links at "
            "delivery time."
        )
    return None


def cloud_network_click(f: Features) -> bool:
    """A click (not an open) from a cloud or scanner network that is not a gateway's or
    Apple's: the `when` of the cloud-click rules."""
    labels = f["net.labels"]
    if f["kind"] is EventKind.OPEN or not labels.isdisjoint(GATEWAYS):
        return False
    return "apple-private-relay" not in labels and not labels.isdisjoint(CLICK_SCANNER_NETS)


def cloud_click(f: Features) -> str | None:
    if cloud_network_click(f):
        owner = f["net.owner"] or "a cloud provider"
        return (
            f"Click from {owner}'s network: link scanners (Safe Links, sandboxes) run "
            "there, while a person's click comes from their own connection."
        )
    return None


def head_request(f: Features) -> str | None:
    if f["method"] == "HEAD":
        return (
            "HEAD request: something checked the URL without loading it; browsers and "
            "mail clients send GET."
        )
    return None


def honeypot_hit(f: Features) -> str | None:
    if f["honeypot"]:
        return "Followed the invisible honeypot link, which no person can see."
    return None


# --- reads="event": the time since sending ---------------------------------------------


def old_chrome(f: Features) -> bool:
    """The `when` of useragent.outdated_chrome."""
    return bool(f["ua.outdated_chrome"])


def outdated_chrome(ev: Event, _i: int, _t: Timeline, ctx: Context) -> str | None:
    # Alone it is a weak hint (pinned corporate browsers exist); it counts only where
    # detonation sandboxes run: on a gateway or cloud network, or at delivery time.
    f = ev.features
    if not f["ua.outdated_chrome"]:
        return None
    at_delivery = ctx.sent_at is not None and (ev.at - ctx.sent_at).total_seconds() < 600
    if at_delivery or not f["net.labels"].isdisjoint(SCANNER_NETS):
        return (
            f"Chrome {ev.fact('ua.major')} is many versions old, as sandboxed link "
            "detonation (Safe Links) reports; people's browsers update themselves."
        )
    return None


def cloud_click_at_delivery(ev: Event, _i: int, _t: Timeline, ctx: Context) -> str | None:
    if ctx.sent_at is None or not cloud_network_click(ev.features):
        return None
    minutes = (ev.at - ctx.sent_at).total_seconds() / 60
    if 0 <= minutes < 10:
        return (
            f"Clicked from a cloud network {minutes:.0f} min after sending: link "
            "scanners run from there at delivery time."
        )
    return None


def soon_after_send(ev: Event, _i: int, _t: Timeline, ctx: Context) -> str | None:
    if ctx.sent_at is None:
        return None
    delta = (ev.at - ctx.sent_at).total_seconds()
    if 0 <= delta < ctx.delivery_window_seconds:
        return (
            f"{delta:.1f} s after sending (window {ctx.delivery_window_seconds:g} s): faster "
            "than a person reads, as scanners and prefetchers do on delivery."
        )
    return None


def before_send(ev: Event, _i: int, _t: Timeline, ctx: Context) -> str | None:
    if ctx.sent_at is not None and ev.at < ctx.sent_at - TWO_MINUTES:
        return (
            "Recorded before the email's send time: a clock is skewed or the send time "
            "given was wrong; timing rules cannot be trusted for this event."
        )
    return None
