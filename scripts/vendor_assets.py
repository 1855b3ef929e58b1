"""Copy the panel's front-end files from assets/node_modules (npm ci --prefix assets) into
src/mailsignal/web/panel/static/vendor/, with each package's licence and a README naming
its version and the sha256 of every file copied; `make vendor` runs it. The copies are
committed, so `make run` needs no npm and nothing is loaded from a CDN."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "assets" / "node_modules"
VENDOR = ROOT / "src" / "mailsignal" / "web" / "panel" / "static" / "vendor"
FILES = {
    "swagger-ui-dist": ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"),
}
TARGET = {"swagger-ui-dist": "swagger-ui"}


def main() -> None:
    lines = [
        "# Vendored front-end files",
        "",
        "Copied from npm packages by `make vendor` (scripts/vendor_assets.py) from",
        "`assets/package.json` and its lock; do not edit by hand.",
        "",
    ]
    for package, names in FILES.items():
        source = MODULES / package
        meta = json.loads((source / "package.json").read_text())
        target = VENDOR / TARGET[package]
        target.mkdir(parents=True, exist_ok=True)
        lines.append(f"## {package} {meta['version']} ({meta.get('license', '?')})")
        lines.append("")
        for name in names:
            shutil.copyfile(source / name, target / name)
            digest = hashlib.sha256((target / name).read_bytes()).hexdigest()
            lines.append(f"- `{TARGET[package]}/{name}` sha256 `{digest}`")
        lines.append("")
    (VENDOR / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
