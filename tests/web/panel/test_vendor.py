"""The panel's vendored front-end files (static/vendor) are the npm packages pinned in
assets/package.json, byte for byte as scripts/vendor_assets.py recorded them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[3]
VENDOR = ROOT / "src" / "mailsignal" / "web" / "panel" / "static" / "vendor"


def test_vendored_files_match_their_record_and_the_pinned_versions() -> None:
    readme = (VENDOR / "README.md").read_text()
    pinned = json.loads((ROOT / "assets" / "package.json").read_text())["dependencies"]
    for package, version in pinned.items():
        assert f"## {package} {version} (" in readme, package
    files = re.findall(r"- `([^`]+)` sha256 `([0-9a-f]{64})`", readme)
    assert files
    for name, digest in files:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    licences = [name for name, _ in files if name.endswith("LICENSE")]
    assert len(licences) == len(pinned)
