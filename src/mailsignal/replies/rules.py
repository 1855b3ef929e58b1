"""The reply rules: each reads one signal and, when it fires, returns the sentence stored.

Ids are stable (stored in `interactionforemail.reasons`, documented in docs/replies.md).
Weights are log-odds like the hit classifier's; negative argues for a machine. `group`
says what a fired rule makes the message: a delivery report ("bounce"), an auto-reply
("auto"), or supports a person ("human"). Order is documentation order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .headers import Headers

# Subject prefixes as Exchange/Outlook, Gmail, Apple and the common MTAs write them.
_OOO = (
    r"automatic reply|auto[- ]?reply|autoreply|out of (?:the )?office(?: autoreply| reply)?"
    r"|automatische antwort|abwesenheitsnotiz|abwesend|r[ée]ponse automatique"
    r"|absence du bureau|respuesta autom[áa]tica|fuera de la oficina|automatisch antwoord"
    r"|afwezig|risposta automatica|fuori sede|resposta autom[áa]tica|fora do escrit[óo]rio"
    r"|automatiskt svar|automatisk svar|automaattinen vastaus|odpowied[źz] automatyczna"
    r"|automatyczna odpowied[źz]|automatick[áa] odpov[ěe][ďd]|automatikus v[áa]lasz"
    r"|otomatik yan[ıi]t|автоответ|автоматический ответ|自動応答|自動返信|自动回复|自動回覆"
)
# A reply prefix may come first ("RE: Automatic reply: ..."); French puts a space before ':'.
OOO_SUBJECT = re.compile(rf"^\s*(?:(?:re|aw|sv|antw|rv|r)\s*:\s*)*(?:{_OOO})\s*[:：]", re.I)
_BOUNCE = (
    r"undelivered mail returned to sender|mail delivery failed|delivery status notification"
    r" \(failure\)|undeliverable|unzustellbar|non remis|no se puede entregar|onbestelbaar"
    r"|non recapitabile|n[ãa]o [ée] poss[íi]vel entregar|n[ãa]o_entregue|olevererbart"
    r"|kan ikke leveres|failure notice|returned mail|delivery failure|message not delivered"
    r"|mail system error - returned mail"
)
BOUNCE_SUBJECT = re.compile(rf"^\s*(?:{_BOUNCE})", re.I)
# Exchange on-premises NDRs come from "MicrosoftExchange" + 32 hex digits.
_DAEMON = re.compile(
    r"^(?:mailer-daemon|mail-daemon|postmaster|microsoftexchange[0-9a-f]{32})$", re.I
)
_NOREPLY = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply)(?:[-+._].*)?$", re.I)
AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder")


@dataclass(frozen=True, slots=True)
class View:
    """What the rules read, computed once per message."""

    headers: Headers
    subject: str
    sender: str | None
    has_dsn_part: bool

    def h(self, name: str) -> str:
        return self.headers.first(name)

    @property
    def local(self) -> str:
        return (self.sender or "").partition("@")[0]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    group: str  # "bounce", "auto" or "human"
    weight: float
    summary: str
    check: Callable[[View], str | None]


RULES: list[Rule] = []
# Non-DSN evidence that a delivery failed (a DSN says so per recipient instead).
FAILURE_RULES = frozenset({"reply.ms_ndr", "reply.failed_recipients", "reply.bounce_subject"})


def rule(
    rule_id: str, group: str, weight: float, summary: str
) -> Callable[[Callable[[View], str | None]], Callable[[View], str | None]]:
    def register(check: Callable[[View], str | None]) -> Callable[[View], str | None]:
        RULES.append(Rule(rule_id, group, weight, summary, check))
        return check

    return register


@rule("reply.dsn", "bounce", -8, "multipart/report; report-type=delivery-status (RFC 3464)")
def _dsn(v: View) -> str | None:
    ctype = v.h("content-type").lower()
    if v.has_dsn_part or ("multipart/report" in ctype and "delivery-status" in ctype):
        return "A delivery status notification (RFC 3464 multipart/report)."
    return None


@rule("reply.ms_ndr", "bounce", -6, "X-MS-Exchange-Message-Is-Ndr present")
def _ms_ndr(v: View) -> str | None:
    if v.headers.has("x-ms-exchange-message-is-ndr"):
        return "Exchange non-delivery report (X-MS-Exchange-Message-Is-Ndr)."
    return None


@rule("reply.failed_recipients", "bounce", -6, "X-Failed-Recipients present (Exim)")
def _failed_recipients(v: View) -> str | None:
    value = v.h("x-failed-recipients")
    return f"X-Failed-Recipients: {value[:80]} (Exim's bounce header)." if value else None


@rule("reply.mailer_daemon", "bounce", -5, "From MAILER-DAEMON, postmaster or Exchange's system")
def _mailer_daemon(v: View) -> str | None:
    return f"Sent by {v.sender}, a mail system address." if _DAEMON.match(v.local) else None


@rule("reply.bounce_subject", "bounce", -4, "Bounce subject from a mail system")
def _bounce_subject(v: View) -> str | None:
    found = BOUNCE_SUBJECT.match(v.subject)
    # People write "Undeliverable items" too: a subject alone must never fail a delivery,
    # so it counts only when the message also comes from a mail system.
    system = (
        _DAEMON.match(v.local)
        or v.has_dsn_part
        or v.headers.has("auto-submitted")
        or any(p.strip() in ("<>", "") for p in v.headers.all("return-path"))
    )
    return f"Subject {found.group(0).strip()!r} is a bounce subject." if found and system else None


@rule("reply.auto_submitted", "auto", -6, "Auto-Submitted other than `no` (RFC 3834)")
def _auto_submitted(v: View) -> str | None:
    value = v.h("auto-submitted")
    if value and not value.lower().startswith("no"):
        return f"Auto-Submitted: {value[:60]} (RFC 3834: sent by a program, not a person)."
    return None


@rule("reply.x_autoreply", "auto", -5, "X-Autoreply, X-Autorespond, X-Auto-Reply present")
def _x_autoreply(v: View) -> str | None:
    for name in AUTOREPLY_HEADERS:
        if v.headers.has(name) and v.h(name).lower() not in ("no", "false", "0"):
            return f"{name}: {v.h(name)[:40]} is set by vacation and autoresponder programs."
    return None


@rule("reply.ms_oof", "auto", -5, "Exchange out-of-office or inbox-rule reply markers")
def _ms_oof(v: View) -> str | None:
    if "mailbox rules agent" in v.h("x-ms-exchange-generated-message-source").lower():
        return "Generated by Exchange's Mailbox Rules Agent (out-of-office or rule reply)."
    # Either header alone is not enough: Outlook sets the first on ordinary mail, and
    # the second marks any message an inbox rule touched (forwards too).
    suppress = v.h("x-auto-response-suppress").lower()
    if ("all" in suppress or "oof" in suppress) and v.headers.has("x-ms-exchange-inbox-rules-loop"):
        return "Exchange out-of-office markers: X-Auto-Response-Suppress and an inbox-rule loop."
    return None


@rule("reply.precedence", "auto", -4, "Precedence: auto_reply, bulk or junk")
def _precedence(v: View) -> str | None:
    value = v.h("precedence").strip().lower()
    if value in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {value} marks automatic mail; people's replies never carry it."
    return None


@rule("reply.ooo_subject", "auto", -4, "Out-of-office subject prefix (20 languages)")
def _ooo_subject(v: View) -> str | None:
    found = OOO_SUBJECT.match(v.subject)
    return f"Subject starts with {found.group(0).strip()!r}: out of office." if found else None


@rule("reply.null_return_path", "auto", -3, "Return-Path: <> (null sender)")
def _null_return_path(v: View) -> str | None:
    paths = v.headers.all("return-path")
    if paths and all(p.strip() in ("<>", "") for p in paths):
        return "Return-Path <>: RFC 3834 asks automatic responses to use a null sender."
    return None


@rule("reply.noreply_sender", "auto", -3, "From a no-reply address")
def _noreply_sender(v: View) -> str | None:
    return f"Sent from {v.sender}, a no-reply address." if _NOREPLY.match(v.local) else None


@rule("reply.threaded", "human", 1.5, "In-Reply-To or References present")
def _threaded(v: View) -> str | None:
    if v.headers.has("in-reply-to") or v.headers.has("references"):
        return "In-Reply-To/References set: a mail client's reply in the thread."
    return None
