"""Stage a recorded email's outgoing copies as spool entries, as the relay queues them.

One entry carries the original bytes to every untracked recipient; each tracked
recipient gets an entry of their own with their copy, headed by the email's
`X-MailSignal-Id` (its `emailtrackingid`), so bounces and replies that lost In-Reply-To
(or whose Message-ID the smarthost rewrote) still name the email. Entries are staged
without an fsync: the relay makes a whole group durable at once (`Spool.sync`) before
its one commit.
"""

from __future__ import annotations

from collections.abc import Callable

from ..addresses import normalise_address
from ..outgoing import TrackedEmail
from ..replies import TRACKING_HEADER  # the header reply matching reads
from .dkim import DkimSigner
from .outbound import Rcpt, Spool


class Stager:
    """Writes copies into `spool` (DKIM-signed when `dkim` is set), each with a deadline
    `bounce_after` seconds after `clock()`, after which it bounces."""

    def __init__(
        self,
        spool: Spool,
        clock: Callable[[], float],
        bounce_after: float,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.spool, self.clock, self.bounce_after, self.dkim = spool, clock, bounce_after, dkim

    def stage_email(
        self,
        raw: bytes,
        mail_from: str,
        rcpts: list[str],
        options: list[str],
        tracked: TrackedEmail,
        staged: dict[str, bytes],
    ) -> None:
        """Stage one email's entries into `staged` ({entry id: its bytes}) as they are
        made, so a caller whose later step fails can discard every one of them.

        `raw` is the message as submitted (untracked recipients get it byte for byte,
        except a copy with the consent request line, which is its own entry),
        `rcpts` the envelope recipients as the client spelt them.
        """
        envelope = {normalise_address(r): r for r in reversed(rcpts)}
        activity_id = str(tracked.activity_id)
        plain = [c for c in tracked.copies if not c.altered]
        if plain:
            rcpt = [Rcpt(envelope[c.recipient], c.delivery_id) for c in plain]
            self._stage(staged, raw, mail_from, rcpt, options, activity_id)
        mark = f"{TRACKING_HEADER}: <{tracked.tracking_id}>\r\n".encode("ascii")
        for c in tracked.copies:
            if c.altered:  # tracked, or with the consent request line (issue 13)
                data = (mark if c.decision.tracked else b"") + c.as_bytes(linesep="\r\n")
                rcpt = [Rcpt(envelope[c.recipient], c.delivery_id)]
                self._stage(staged, data, mail_from, rcpt, options, activity_id)

    def _stage(
        self,
        staged: dict[str, bytes],
        data: bytes,
        mail_from: str,
        rcpts: list[Rcpt],
        options: list[str],
        activity: str,
    ) -> None:
        if self.dkim is not None:
            data = self.dkim.sign(data)
        opts = list(options)
        if not data.isascii() and "SMTPUTF8" not in opts:
            opts.append("BODY=8BITMIME")
        now = self.clock()
        entry_id = self.spool.stage(
            data,
            mail_from=mail_from,
            rcpts=rcpts,
            now=now,
            deadline=now + self.bounce_after,
            options=opts,
            activity_id=activity,
            durable=False,  # made durable together by `sync`
        )
        staged[entry_id] = data
