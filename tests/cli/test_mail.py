"""`import mail` run as a user would: an mbox archive, a directory of .eml files, bad input."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES, cli

REP = "rep@northwind.test"
SENT_ID = "<20261120093000.4711@northwind.test>"


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # The real `mailsignal` command, as a user runs it.
    return subprocess.run(
        [str(Path(sys.executable).with_name("mailsignal")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _instance(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "MAILSIGNAL_DATA_DIR": str(tmp_path / "data")}
    env.pop("MAILSIGNAL_DATABASE_URL", None)
    cli(env, "init")
    cli(env, "users", "add", REP, "--opt-in")
    eml = tmp_path / "sent.eml"
    eml.write_text(
        f"From: {REP}\nTo: dana@contoso.test, lee@fabrikam.test\nSubject: Hello\n"
        f"Message-ID: {SENT_ID}\nMIME-Version: 1.0\nContent-Type: text/plain\n\nHello\n"
    )
    out = cli(env, "emails", "instrument", str(eml), "--out", str(tmp_path / "out")).stdout
    env["ACTIVITY"] = out.split()[1]
    return env


def _row(stdout: str, first: str) -> dict[str, str]:
    lines = stdout.splitlines()
    head = next(line for line in lines if "┃" in line)
    row = next(line for line in lines if "│" in line and first in line)
    names = [c.strip() for c in head.strip("┃").split("┃")]
    return dict(zip(names, (c.strip() for c in row.strip("│").split("│")), strict=True))


def test_import_mbox_counts_each_kind_once(tmp_path: Path) -> None:
    env = _instance(tmp_path)
    archive = tmp_path / "replies.mbox"
    box = mailbox.mbox(archive)
    for path in sorted((FIXTURES / "replies").glob("*.eml")):
        box.add(path.read_bytes())
    box.add(b"From: news@shop.test\nSubject: Sale\n\n50% off\n")
    box.flush()
    box.close()
    first = _run(env, "import", "mail", str(archive))
    assert first.returncode == 0, first.stderr
    row = _row(first.stdout, "replies.mbox")
    assert row == {
        "source": "replies.mbox",
        "read": "13",
        "replies": "3",  # Gmail, Outlook, broken-MIME Dana
        "forwards": "1",  # Jürgen, Dana's colleague
        "auto-replies": "3",
        "bounces": "4",
        "notices": "1",
        "unmatched": "1",
        "own": "0",
        "already stored": "0",
        "errors": "0",
    }
    again = _row(_run(env, "import", "mail", str(archive)).stdout, "replies.mbox")
    assert (again["read"], again["already stored"], again["unmatched"]) == ("13", "12", "1")
    shown = json.loads(cli(env, "emails", "show", env["ACTIVITY"], "--json").stdout)
    assert shown["replycount"] == 4  # people only: auto-replies and bounces are not replies
    assert {d["status"] for d in shown["deliveries"]} == {"failed"}  # both bounced in there


def test_import_directory_names_bad_files(tmp_path: Path) -> None:
    env = _instance(tmp_path)
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "a.eml").write_bytes((FIXTURES / "replies" / "gmail_human_reply.eml").read_bytes())
    (folder / "b.eml").write_bytes(b"")
    (folder / "c.eml").write_bytes(b"\x00\xff binary junk, not mail")
    (folder / "notes.txt").write_text("ignored: not .eml or .mbox")
    result = _run(env, "import", "mail", str(folder))
    assert result.returncode == 0, result.stderr
    row = _row(result.stdout, "inbox")
    assert (row["read"], row["replies"], row["unmatched"]) == ("2", "1", "1")
    assert "b.eml: empty file" in result.stderr
    missing = _run(env, "import", "mail", str(tmp_path / "nope.mbox"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
