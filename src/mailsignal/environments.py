"""A recipient's mail environment, as far as MailSignal can see it (pure).

Mail into a Microsoft 365 tenant is opened and clicked by Safe Links seconds after
delivery; mail to an iPhone user is fetched by Apple's Privacy Protection proxy; mail to
a Gmail address is fetched through Google's image proxy. Which of these a recipient sits
behind decides how much of their raw counts are machines, so the panel charts machine
share by environment (issue 12).

Nothing here looks up MX records (no network at run time). The environment of one
recipient's copy is read from what MailSignal already knows, first match wins:

1. the address's domain is a consumer mailbox provider (gmail.com, outlook.com,
   icloud.com, ...): that provider;
2. a machine event on the copy came from a mail-security gateway's network (the
   `security-gateway` label of data/net/lists.toml): the first such gateway's vendor;
3. a machine event came from Apple's Privacy Protection relay: Apple Mail Privacy
   Protection;
4. any other machine event: "another scanner" (cloud hosts, unknown networks);
5. nothing yet: None, shown as "no machine seen".

A copy's environment can change as events arrive (a gateway's fetch is usually the
first event; a person's open before it leaves the copy at 5 until then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

CONSUMER_DOMAINS: dict[str, str] = {
    **dict.fromkeys(("gmail.com", "googlemail.com"), "gmail"),
    **dict.fromkeys(
        ("outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk", "outlook.de"),
        "outlook-com",
    ),
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), "icloud"),
    **dict.fromkeys(("yahoo.com", "ymail.com", "yahoo.co.uk", "yahoo.fr", "aol.com"), "yahoo"),
    **dict.fromkeys(("proton.me", "protonmail.com", "pm.me"), "proton"),
    **dict.fromkeys(("gmx.de", "gmx.net", "gmx.com", "web.de"), "gmx-webde"),
}

NAMES: dict[str, str] = {
    "gmail": "Gmail",
    "outlook-com": "Outlook.com",
    "icloud": "iCloud Mail",
    "yahoo": "Yahoo / AOL Mail",
    "proton": "Proton Mail",
    "gmx-webde": "GMX / WEB.DE",
    "microsoft": "Microsoft 365 (Safe Links)",
    "google": "Google Workspace",
    "proofpoint": "Proofpoint",
    "mimecast": "Mimecast",
    "barracuda": "Barracuda",
    "cisco": "Cisco Secure Email",
    "trend-micro": "Trend Micro",
    "sophos": "Sophos",
    "forcepoint": "Forcepoint",
    "symantec": "Symantec / Broadcom",
    "check-point": "Check Point",
    "fortinet": "Fortinet",
    "apple-mpp": "Apple Mail Privacy Protection",
    "other-scanner": "Another scanner",
}
NONE_SEEN = "No machine seen"
MAX_KEY = 32  # emaildelivery.mailenvironment


def name(key: str | None) -> str:
    """What the panel calls an environment key."""
    if key is None:
        return NONE_SEEN
    return NAMES.get(key, key.replace("-", " ").capitalize())


def _network(facts: Mapping[str, Any]) -> Mapping[str, Any]:
    net = facts.get("net") if isinstance(facts, Mapping) else None
    return net if isinstance(net, Mapping) else {}


def of_copy(address: str, machine_facts: Iterable[Mapping[str, Any]]) -> str | None:
    """The environment of a copy to `address` whose machine events, in time order, had
    these enrichment facts (`interactionforemail.facts`)."""
    domain = address.rpartition("@")[2].lower()
    if domain in CONSUMER_DOMAINS:
        return CONSUMER_DOMAINS[domain]
    found: str | None = None
    apple = False
    for facts in machine_facts:
        net = _network(facts)
        labels = net.get("labels") or ()
        owner = net.get("owner")
        if "security-gateway" in labels and isinstance(owner, str) and owner:
            return owner[:MAX_KEY]
        apple = apple or "apple-private-relay" in labels
        found = "other-scanner"
    return "apple-mpp" if apple else found
