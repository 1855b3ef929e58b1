"""`mailsignal privacy notice`: the paragraph follows the settings (organization name,
tracking host, basis, IP storage, retention, notice URL, the stop-tracking line), and a
wrong basis is a one-line error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import cli
from mailsignal.cli.privacy_notice import PLACEHOLDER_URL, paragraph
from mailsignal.keyring import create_secret
from mailsignal.settings import Settings


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, base_url="https://t.northwind.test/track")


def test_legitimate_interests_paragraph(base: Settings) -> None:
    text = paragraph(base, "Northwind Traders", "legitimate_interests")
    assert text.startswith("Northwind Traders measures whether you open")
    assert "Art. 6(1)(f) GDPR" in text and "t.northwind.test." in text
    assert "shortened to its network" in text  # ip_storage=truncated, the default
    assert "for 395 days" in text and "object at any time with the link" in text
    assert "also for emails you received before" in text
    assert text.endswith(f"{PLACEHOLDER_URL}.")


def test_settings_change_the_paragraph(base: Settings) -> None:
    changed = base.model_copy(
        update={
            "ip_storage": "none",
            "event_retention_days": 90,
            "privacy_notice_url": "https://northwind.test/privacy",
            "tracking_notice_line": False,
        }
    )
    text = paragraph(changed, "Northwind", "legitimate_interests")
    assert "no IP address" in text and "for 90 days" in text
    assert "object at any time by writing to us" in text
    assert text.endswith("https://northwind.test/privacy.")
    forever = paragraph(base.model_copy(update={"event_retention_days": 0}), "N", "consent")
    assert "until you ask us to delete them" in forever
    full = paragraph(base.model_copy(update={"ip_storage": "full"}), "N", "consent")
    assert "record when, for which email and link, your IP address, and" in full


def test_consent_and_off(base: Settings) -> None:
    consent = paragraph(base, "Northwind", "consent")
    assert consent.startswith("With your consent, Northwind measures")
    assert "withdraw your consent at any time with the link" in consent
    assert "Art. 6(1)(f)" not in consent
    off = paragraph(base, "Northwind", "off")
    assert "does not measure" in off and "IP" not in off
    with pytest.raises(Exception, match="tracking basis must be one of"):
        paragraph(base, "Northwind", "maybe")


def test_the_command(tmp_path: Path) -> None:
    create_secret(tmp_path / "secret.key")
    env = {**os.environ, "MAILSIGNAL_DATA_DIR": str(tmp_path)}
    cli(env, "init")
    cli(env, "org", "set", "--name", "Northwind Traders")
    done = cli(env, "privacy", "notice", "--basis", "consent")
    assert done.stdout.startswith("With your consent, Northwind Traders measures")
    assert "127.0.0.1" in done.stdout and "privacy_notice_url is not set" in done.stderr
    told = {**env, "MAILSIGNAL_PRIVACY_NOTICE_URL": "https://northwind.test/privacy"}
    assert "https://northwind.test/privacy." in cli(told, "privacy", "notice").stdout
    bad = cli(env, "privacy", "notice", "--basis", "never", check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: tracking basis must be")


def test_consent_with_aggregate_opens_says_emails_are_counted(base: Settings) -> None:
    """Issue 13: with aggregate_opens the paragraph tells non-consenting recipients that
    each email's opens are counted in total, and nothing about who opened it."""
    assert "in total" not in paragraph(base, "Northwind", "consent")
    counted = paragraph(base.model_copy(update={"aggregate_opens": True}), "Northwind", "consent")
    assert "not measured individually. They carry one image that counts how often" in counted
    assert "recording nothing about who opened it." in counted
