"""Rules that read the recipient's whole timeline (pass two), with pass-one verdicts.

Bursts, corroboration, repeats and forwards are properties of several events together:
a single click says little, three links in two seconds from three addresses say a lot.
"""

from __future__ import annotations

from datetime import timedelta

from ..model import EventKind, Verdict
from .events import Context, Event, Timeline
from .features import Features
from .netid import host_key, net_key
from .signals import SCANNER_NETS

SEVEN_DAYS = timedelta(days=7)
TEN_MINUTES = timedelta(minutes=10)


def near_honeypot(ev: Event, _i: int, t: Timeline, _c: Context) -> str | None:
    if ev.honeypot:
        return None
    here = host_key(ev)
    for other in t.honeypots:
        if host_key(other) == here and abs((other.at - ev.at).total_seconds()) <= 10:
            return "Within 10 s of a honeypot hit from the same address."
    return None


def _sweep(i: int, t: Timeline, ctx: Context) -> int:
    """How many links were clicked within 3 s of event i when that is a sweep (three or
    more, or every link of a mail with two or more), else 0."""
    if t.clicks < 2:  # a sweep takes two clicks at least
        return 0
    window = t.around(i, 3)
    if len(window) < 2:
        return 0
    links = {o.link_id for o in window if o.kind is EventKind.CLICK and not o.honeypot}
    if len(links) >= 3 or (ctx.link_count >= 2 and len(links) >= ctx.link_count):
        return len(links)
    return 0


def link_burst(_ev: Event, i: int, t: Timeline, ctx: Context) -> str | None:
    if links := _sweep(i, t, ctx):
        return (
            f"{links} different links clicked within 3 s: scanners follow every link "
            "at once; people click one."
        )
    return None


def many_addresses(_ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    if t.addresses < 3:
        return None
    window = t.around(i, 30)
    if len(window) < 3:
        return None
    addresses = {host_key(o) for o in window if o.kind is not EventKind.REPLY}
    if len(addresses) >= 3:
        return (
            f"{len(addresses)} different addresses fetched this recipient's mail within "
            "30 s: a filter farm, not one reader."
        )
    return None


def open_in_link_sweep(_ev: Event, i: int, t: Timeline, ctx: Context) -> str | None:
    if links := _sweep(i, t, ctx):
        return (
            f"Fetched within 3 s of a sweep over {links} links: the scanner that "
            "followed every link loaded the pixel too."
        )
    return None


def click_confirms_open(_ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    if t.first_pass[i] is Verdict.MACHINE:  # a prefetch or scan is not the person's open
        return None
    if t.last_human_click > i:
        return "The recipient clicked a link afterwards, so this open was theirs."
    return None


def after_scanner_check(ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    """Safe Links time-of-click: the gateway fetches the URL, then the person's browser does."""
    if t.first_pass[i] is Verdict.MACHINE:
        return None
    for j in range(i - 1, -1, -1):
        other = t.events[j]
        if (ev.at - other.at).total_seconds() > 60:
            break
        if (
            other.link_id == ev.link_id
            and host_key(other) != host_key(ev)
            and not other.features["net.labels"].isdisjoint(SCANNER_NETS)
        ):
            return (
                "A gateway checked this link seconds before; this request from the "
                "reader's own address is the person following it (time-of-click check)."
            )
    return None


def proxy(f: Features) -> bool:
    """A prefetcher or a bare 'Mozilla/5.0': the `when` of repeat.proxy_refetch. Not
    webmail image proxies: Gmail's proxy fetching again is the person opening again."""
    return f["ua.category"] == "prefetcher" or bool(f["ua.bare_mozilla"])


def proxy_refetch(ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    if not proxy(ev.features):
        return None
    for j in range(i - 1, -1, -1):
        other = t.events[j]
        if (ev.at - other.at) > TEN_MINUTES:
            return None
        if other.kind is EventKind.OPEN and other.user_agent == ev.user_agent:
            return (
                "The same proxy fetched the pixel again within 10 minutes: a cache refresh, "
                "not another reading."
            )
    return None


def new_device(ev: Event, i: int, t: Timeline, _c: Context) -> str | None:
    first = t.first_human
    if first < 0 or first >= i or t.first_pass[i] is not Verdict.HUMAN:
        return None
    origin = t.events[first]
    if "image-proxy" in (ev.features["ua.category"], origin.features["ua.category"]):
        return None  # the proxy hides the device; no basis to compare
    if net_key(ev) == net_key(origin):  # same network
        return None
    os_now, os_then = ev.fact("ua.os"), origin.fact("ua.os")
    country_now, country_then = ev.fact("net.country"), origin.fact("net.country")
    if country_now and country_then and country_now != country_then:
        return (
            f"Read in {country_now} after the recipient read it in {country_then}: "
            "probably forwarded to someone else."
        )
    if os_now and os_then and os_now != os_then and "Other" not in (os_now, os_then):
        return (
            f"A person on {os_now} from another network, after the recipient read it on "
            f"{os_then}: probably a forward (or the same person on another device)."
        )
    return None


def no_click_week(_ev: Event, i: int, t: Timeline, ctx: Context) -> str | None:
    if ctx.now is None or ctx.sent_at is None or ctx.now - ctx.sent_at < SEVEN_DAYS:
        return None
    if t.last_human_click >= 0 or t.first_pass[i] is Verdict.MACHINE:
        return None
    return (
        "Seven days on, nobody clicked anything: opens alone are the weakest signal, so "
        "this one counts with less confidence."
    )
