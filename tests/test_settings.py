from __future__ import annotations

from pathlib import Path

import pytest

from mailsignal.errors import ConfigError
from mailsignal.settings import Settings, load_settings


def test_env_overrides_toml_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mailsignal.toml").write_text(
        'base_url = "https://t.example.com/"\nport = 9000\ntrusted_proxies = ["10.0.0.0/8"]\n'
    )
    monkeypatch.setenv("MAILSIGNAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAILSIGNAL_PORT", "9100")
    s = load_settings()
    assert s.base_url == "https://t.example.com"
    assert s.port == 9100
    assert s.trusted_proxies == ["10.0.0.0/8"]
    assert s.db_url == f"sqlite:///{tmp_path / 'mailsignal.db'}"
    assert s.journal_file == tmp_path / "journal.db"


def test_unknown_toml_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mailsignal.toml").write_text("bse_url = 'x'\n")
    monkeypatch.setenv("MAILSIGNAL_DATA_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="bse_url"):
        load_settings()


def test_bad_values_give_one_readable_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAILSIGNAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MAILSIGNAL_TRUSTED_PROXIES", '["not-a-cidr"]')
    with pytest.raises(ConfigError, match="not-a-cidr"):
        load_settings()


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILSIGNAL_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_no_default_secret_anywhere() -> None:
    assert not any("secret" in name and "file" not in name for name in Settings.model_fields)
