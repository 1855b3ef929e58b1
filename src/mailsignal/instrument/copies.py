"""One recipient's copy of an outgoing message, as `outgoing.Outgoing.track` returns it:
the address, its delivery, the tracking decision and the message (rendered lazily)."""

from __future__ import annotations

from email.message import EmailMessage

from mailsignal.model import TrackingDecision

from .prepare import Copy


class TrackedCopy:
    """One recipient's copy. A copy rendered from the prepared message becomes an
    `EmailMessage` only when `message` is read: the relay needs its bytes alone."""

    __slots__ = ("_message", "_rendered", "decision", "delivery_id", "recipient")

    @property
    def altered(self) -> bool:
        """Whether this copy differs from the message as given: tracked, or untracked
        with the consent request line or the aggregate pixel; an untracked copy
        otherwise is the message."""
        return self.decision.tracked or self._rendered is not None

    def __init__(
        self,
        recipient: str,
        delivery_id: int,
        decision: TrackingDecision,
        message: EmailMessage | Copy,
    ) -> None:
        self.recipient, self.delivery_id, self.decision = recipient, delivery_id, decision
        self._message = message if isinstance(message, EmailMessage) else None
        self._rendered = message if isinstance(message, Copy) else None

    @property
    def message(self) -> EmailMessage:
        if self._message is None:
            assert self._rendered is not None
            self._message = self._rendered.message()
        return self._message

    def as_bytes(self, linesep: str | None = None) -> bytes:
        """`message.as_bytes()` with the message's own policy, `linesep` ending each line
        if given; a rendered copy is written from its template, never built."""
        if self._message is None and self._rendered is not None:
            return self._rendered.as_bytes(linesep)
        msg = self.message
        return msg.as_bytes(
            policy=msg.policy if linesep is None else msg.policy.clone(linesep=linesep)
        )

    def __repr__(self) -> str:
        fields = f"recipient={self.recipient!r}, delivery_id={self.delivery_id}"
        return f"TrackedCopy({fields}, decision={self.decision!r})"
