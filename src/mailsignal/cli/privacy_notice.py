"""`privacy notice`: the privacy-notice paragraph about email tracking (issue 13), filled
in from the settings and the organization's name, for the operator to adapt and publish
(docs/privacy.md, "Privacy notice", explains each sentence and the duties that remain).

The paragraph follows what the tracker really does with these settings: the basis
(`tracking_basis`), what is kept of an IP address (`ip_storage`), how long events are
kept (`event_retention_days`), the tracking host (`base_url`), whether emails count
their opens in total under consent (`aggregate_opens`) and where the full notice is
(`privacy_notice_url`). Settings another part of the code may not define yet are read
with their documented defaults.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from ..errors import InputError
from ..settings import Settings
from ..store import users
from . import common
from .common import err, out

BASES = ("consent", "legitimate_interests", "off")
PLACEHOLDER_URL = "[link to your privacy notice]"

IP_KEPT = {
    "full": "your IP address",
    "truncated": "your IP address shortened to its network (the last part removed)",
    "none": "no IP address (it is used at that moment only, to find the country and network)",
}


def _retention(days: Any) -> str:
    if not days:
        return "until you ask us to delete them"
    return (
        f"for {int(days)} days after the last time you opened the email or followed one "
        "of its links"
    )


def paragraph(settings: Settings, org_name: str, basis: str | None = None) -> str:
    """The notice paragraph for these settings (or for `basis` instead of the setting's)."""
    basis = basis or str(getattr(settings, "tracking_basis", "legitimate_interests"))
    if basis not in BASES:
        raise InputError(f"tracking basis must be one of {', '.join(BASES)}, not {basis!r}")
    host = urlsplit(settings.base_url).hostname or settings.base_url
    url = getattr(settings, "privacy_notice_url", None) or PLACEHOLDER_URL
    more = f"How we handle your personal data, and how to reach us about it: {url}."
    if basis == "off":
        return (
            f"{org_name} does not measure whether you open the emails we send you or "
            "which links in them you follow: our emails carry no tracking image and their "
            f"links lead straight to their destination. {more}"
        )
    ip_kept = IP_KEPT.get(str(getattr(settings, "ip_storage", "truncated")), IP_KEPT["full"])
    recorded = (
        "each email we send you carries a small image and links that pass through "
        f"{host}. When the image is loaded or a link followed, we record when, for which "
        f"email and link, {ip_kept}, and the name of your mail program or browser; from "
        "the address we also note your approximate country and network, and we tell "
        "visits by people from those by mail filters and security scanners. If you "
        "reply, we note that you did. We use this to see which of our messages are read "
        "and to follow up on them"
    )
    kept = _retention(getattr(settings, "event_retention_days", 395))
    rights = "You may ask us for a copy of the data we hold about you, and for its deletion."
    if basis == "consent":
        total = ""
        if getattr(settings, "aggregate_opens", False):  # the aggregate pixel (issue 13)
            total = (
                " They carry one image that counts how often each email is opened in "
                "total, recording nothing about who opened it."
            )
        return (
            f"With your consent, {org_name} measures whether you open the emails we send "
            f"you and which links in them you follow: {recorded}. We keep these records "
            f"{kept}. You can withdraw your consent at any time with the link at the end "
            "of each of our emails; from that moment nothing more is recorded, also for "
            "emails you received before. Without your consent, our emails to you are not "
            f"measured individually.{total} {rights} {more}"
        )
    # The stop-tracking line is a setting under legitimate interests (always on under
    # consent): without it the recipient objects by writing.
    link = bool(getattr(settings, "tracking_notice_line", True))
    how = "with the link at the end of each of our emails" if link else "by writing to us"
    return (
        f"{org_name} measures whether you open the emails we send you and which links in "
        f"them you follow, in our legitimate interest in knowing whether our messages "
        f"reach and interest their readers (Art. 6(1)(f) GDPR): {recorded}. We keep these "
        f"records {kept}. You can object at any time {how}; from that moment nothing "
        f"more is recorded, also for emails you received before. {rights} {more}"
    )


def notice(
    basis: Annotated[
        str | None,
        typer.Option(
            help="Write it for this tracking basis (consent, legitimate_interests, off) "
            "instead of the tracking_basis setting's.",
        ),
    ] = None,
) -> None:
    """Print a privacy-notice paragraph about email tracking, filled in from the settings
    (organization name, tracking host, basis, IP storage, retention, notice URL), to adapt
    and publish; docs/privacy.md explains it."""
    settings = common.settings()
    with common.engine(settings).begin() as conn:  # get_org creates the row on first use
        name = str(users.get_org(conn)["name"])
    text = paragraph(settings, name, basis)
    out.print(text, soft_wrap=True, highlight=False, markup=False)
    if getattr(settings, "privacy_notice_url", None) is None:
        err.print(
            "note: privacy_notice_url is not set; replace the placeholder or set it",
            highlight=False,
        )
