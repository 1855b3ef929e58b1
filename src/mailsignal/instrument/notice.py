"""The stop-tracking line in each tracked copy (issue 13), in the recipient's language.

Each tracked copy says, in one short line, that it reports opens and clicks, and links
the recipient's own stop-tracking page (urls.py `/p/<token>`, one per delivery). The
line is added when a copy is rendered (prepare.py), after the links were found, so its
link is never rewritten into a click link; it also carries `data-mailsignal-notrack`, so
a copy that passes through the instrumenter again keeps it as it is.

Under the `consent` tracking basis a copy left untracked for want of consent may end
with the consent request line instead (CONSENT_LINES, same languages, same rules),
linking the recipient's consent page (`/k/<token>`, web/consent.py); such a copy is
rendered with its links left as they are.

The language, first match wins (`pick_language`):
1. a language the caller knows for the recipient (parties store none today);
2. the message's `Content-Language` header (RFC 3282), else that of its first text part;
3. English.
A tag counts by its primary subtag (`de-CH` is German); a list (`fr, en`) by its first
language MailSignal has the line in. A text part whose charset cannot hold the line in
that language (an us-ascii part, German) gets it in English; HTML gets character
references, so any charset holds it.
"""

from __future__ import annotations

from email.message import EmailMessage

from markupsafe import Markup, escape

# (what the copy does, the link's words), by primary language subtag.
LINES: dict[str, tuple[str, str]] = {
    "en": (
        "This email reports when it is opened and when its links are clicked.",
        "Stop tracking my email",
    ),
    "de": (
        "Diese E-Mail meldet, wann sie geöffnet und wann ihre Links angeklickt werden.",
        "Tracking meiner E-Mails beenden",
    ),
    "fr": (
        "Cet e-mail signale quand il est ouvert et quand ses liens sont cliqués.",
        "Ne plus suivre mes e-mails",
    ),
    "es": (
        "Este correo informa de cuándo se abre y de cuándo se hace clic en sus enlaces.",
        "Dejar de rastrear mis correos",
    ),
}
# The consent request an untracked copy may end with under the consent basis (setting
# consent_request_line): its link opens the recipient's consent page (web/consent.py).
CONSENT_LINES: dict[str, tuple[str, str]] = {
    "en": (
        "This email is not tracked. The sender would like to know when you open it.",
        "Allow tracking of my email",
    ),
    "de": (
        "Diese E-Mail wird nicht getrackt. Der Absender möchte gern wissen, wann Sie sie öffnen.",
        "Tracking meiner E-Mails erlauben",
    ),
    "fr": (
        "Cet e-mail n'est pas suivi. L'expéditeur aimerait savoir quand vous l'ouvrez.",
        "Autoriser le suivi de mes e-mails",
    ),
    "es": (
        "Este correo no tiene seguimiento. Al remitente le gustaría saber cuándo lo abre.",
        "Permitir el seguimiento de mis correos",
    ),
}
DEFAULT = "en"
_STYLE = "font-size:12px;line-height:1.4;color:#555555;margin:16px 0 0 0"


def pick_language(*candidates: str | None) -> str:
    """The first supported language among `candidates` (each a tag or a comma list)."""
    for candidate in candidates:
        for tag in (candidate or "").split(","):
            primary = tag.strip().split("-")[0].split("_")[0].lower()
            if primary in LINES:
                return primary
    return DEFAULT


def message_language(msg: EmailMessage) -> str | None:
    """The `Content-Language` of the message, else of its first text part; None if none."""
    found = msg.get("Content-Language")
    if found:
        return str(found)
    for part in msg.walk():
        if part.get_content_maintype() == "text" and part.get("Content-Language"):
            return str(part["Content-Language"])
    return None


def notice_html(url: str, language: str, lines: dict[str, tuple[str, str]] = LINES) -> str:
    """The line as one HTML paragraph, escaped, in ASCII (non-ASCII as references);
    `lines` are the words (LINES, or CONSENT_LINES for the consent request)."""
    lead, link = lines.get(language, lines[DEFAULT])
    url = f"{url}?l={language}"  # the page speaks the copy's language (web/stop.py)
    paragraph = Markup(
        '<p lang="{lang}" style="{style}">{lead} '
        '<a href="{url}" data-mailsignal-notrack style="color:#555555">{link}</a></p>'
    ).format(lang=language, style=_STYLE, lead=lead, url=url, link=link)
    return str(escape(paragraph)).encode("ascii", "xmlcharrefreplace").decode("ascii")


def notice_text(
    url: str, language: str, codec: str, newline: str, lines: dict[str, tuple[str, str]] = LINES
) -> str:
    """The line for a text/plain part, in `language` if `codec` holds it, else English."""
    lead, link = lines.get(language, lines[DEFAULT])
    url = f"{url}?l={language}"
    line = f"{newline}{lead}{newline}{link}: {url}{newline}"
    try:
        line.encode(codec)
    except (UnicodeError, LookupError):
        lead, link = lines[DEFAULT]
        line = f"{newline}{lead}{newline}{link}: {url}{newline}"
    return line
