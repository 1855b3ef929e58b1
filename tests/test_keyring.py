"""The signing keyring (keyring.py): created 0600 once, rotated, refused when others can
read it or when it is missing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mailsignal.errors import ConfigError
from mailsignal.keyring import create_secret, load_keyring, rotate_secret


def test_secret_created_0600_once_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "d" / "secret.key"
    assert create_secret(path) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = path.read_text()
    assert create_secret(path) is False
    assert path.read_text() == first
    keys, current = load_keyring(path)
    assert current == 1 and len(keys[1]) == 32
    assert rotate_secret(path) == 2
    keys, current = load_keyring(path)
    assert current == 2 and set(keys) == {1, 2} and keys[1] != keys[2]


def test_world_readable_secret_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    create_secret(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(path)


def test_missing_secret_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mailsignal init"):
        load_keyring(tmp_path / "secret.key")
