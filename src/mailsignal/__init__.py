"""MailSignal: email engagement tracking that labels every event human, machine or forward."""

__version__ = "0.1.0"
