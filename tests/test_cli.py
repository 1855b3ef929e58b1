"""The real `mailsignal` command, run as a user would, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import Engine

from conftest import FIXTURES, cli
from helpers import tracked_urls
from mailsignal.settings import Settings


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "MAILSIGNAL_DATA_DIR": str(settings.data_dir),
        "MAILSIGNAL_DATABASE_URL": settings.db_url,
        "MAILSIGNAL_BASE_URL": "http://track.test",
    }


def test_init_is_idempotent_and_keeps_the_key(env: dict[str, str], settings: Settings) -> None:
    first = cli(env, "init")
    key = settings.secret_file.read_text()
    second = cli(env, "init")
    assert "kept" in second.stdout and settings.secret_file.read_text() == key
    assert "migrated" in first.stdout


def test_users_org_and_instrument_an_eml(env: dict[str, str], tmp_path: Path) -> None:
    cli(env, "users", "add", "rep@northwind.test", "--name", "Rep One", "--opt-in")
    dup = cli(env, "users", "add", "REP@northwind.test", check=False)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    assert "Traceback" not in dup.stderr
    listed = cli(env, "users", "list").stdout
    assert "rep@northwind.test" in listed and "yes" in listed
    eml = tmp_path / "m.eml"
    eml.write_text(
        "From: Rep One <rep@northwind.test>\nTo: Dana <dana@contoso.test>, lee@fabrikam.test\n"
        "Subject: Pricing\nMessage-ID: <m1@northwind.test>\nMIME-Version: 1.0\n"
        "Content-Type: text/html; charset=utf-8\n\n"
        '<p>Grüße, see <a href="https://example.com/p">pricing</a></p>\n'
    )
    cli(env, "org", "set", "--no-tracking")
    out_dir = tmp_path / "out"
    result = cli(env, "emails", "instrument", str(eml), "--out", str(out_dir))
    assert "org.monitoring_disabled" in result.stdout
    cli(env, "org", "set", "--tracking")
    # A new message: the same Message-ID again would be the untracked email again.
    eml.write_text(eml.read_text().replace("<m1@", "<m2@"))
    result = cli(env, "emails", "instrument", str(eml), "--out", str(out_dir))
    activity = re.search(r"email ([0-9a-f-]{36})", result.stdout)
    assert activity is not None
    copies = sorted(out_dir.glob(f"{activity.group(1)}-*.eml"))
    assert {c.name.removeprefix(activity.group(1) + "-") for c in copies} == {
        "dana@contoso.test.eml",
        "lee@fabrikam.test.eml",
    }
    assert all(
        b"\r\n" in c.read_bytes() and b"\n" not in c.read_bytes().replace(b"\r\n", b"")
        for c in copies
    )
    assert len(copies) == 2
    for copy in copies:
        msg = message_from_bytes(copy.read_bytes(), policy=policy.default)
        urls = tracked_urls(msg)  # type: ignore[arg-type]
        assert any("/c/" in u for u in urls) and any(u.endswith(".gif") for u in urls)
        assert "Grüße" in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    shown = cli(env, "emails", "show", activity.group(1)).stdout
    assert "Pricing" in shown and "opencount" in shown
    assert "rep@northwind.test" in cli(env, "emails", "show", activity.group(1), "--json").stdout
    assert cli(env, "events", "list", activity.group(1), "--json").stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["emails", "show", "nope"], "not an id"),
        (["emails", "show", "00000000-0000-0000-0000-000000000000"], "Does Not Exist"),
        (["emails", "instrument", "/nonexistent.eml"], "no such file"),
        (["users", "add", "not-an-address"], "not an email address"),
        (["users", "add", "x@y.test", "--role", "king"], "role must be"),
        (["users", "add", "x@y.test", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["users", "opt-in", "ghost@y.test"], "no user"),
        (["data", "refresh", "nosuchlist", "/etc/hostname"], "unknown list"),
        (["emails", "list", "--limit", "-5"], "--limit"),
        (["report", "noise", "--days", "-5"], "--days"),
        (["report", "noise", "--days", "1000000000"], "--days"),
        (["export", "events", "--out", "/nonexistent/dir/events.jsonl"], "cannot write"),
    ],
)
def test_errors_are_one_line_no_traceback(
    env: dict[str, str], args: list[str], needle: str
) -> None:
    result = cli(env, *args, check=False)
    assert result.returncode == 2
    assert needle in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr


def test_instrument_garbage_names_the_file(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"\x00\x01 this is not mail")
    result = cli(env, "emails", "instrument", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")


def test_data_refresh_reports_the_bad_line(env: dict[str, str], tmp_path: Path) -> None:
    feed = tmp_path / "cf.txt"
    feed.write_text("173.245.48.0/20\n# comment\nnot-a-prefix\n")
    result = cli(env, "data", "refresh", "cloudflare", str(feed), check=False)
    assert result.returncode == 2 and "line 3" in result.stderr
    feed.write_text("173.245.48.0/20\n2400:cb00::/32\n")
    ok = cli(env, "data", "refresh", "cloudflare", str(feed))
    assert "2 prefixes" in ok.stdout
    row = next(
        line for line in cli(env, "data", "list").stdout.splitlines() if "cloudflare" in line
    )
    assert "refreshed copy" in row


def test_serve_refuses_uninitialised(tmp_path: Path) -> None:
    env = {**os.environ, "MAILSIGNAL_DATA_DIR": str(tmp_path / "empty")}
    result = cli(env, "serve", check=False)
    assert result.returncode == 2 and "mailsignal init" in result.stderr


def test_real_client_fixture_instruments(env: dict[str, str], tmp_path: Path) -> None:
    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    fixture = next(iter(sorted((FIXTURES / "mail").glob("*outlook*.eml"))), None)
    assert fixture is not None
    result = cli(
        env,
        "emails",
        "instrument",
        str(fixture),
        "--sender",
        "rep@northwind.test",
        "--out",
        str(tmp_path / "o"),
    )
    assert "yes" in result.stdout


def test_score_recompute_and_explain(env: dict[str, str], engine: Engine) -> None:
    from mailsignal.store import parties

    with engine.begin() as conn:
        parties.add(conn, "contact", "Dana", "dana@contoso.test")
    assert "recomputed 1 scores" in cli(env, "score", "--recompute").stdout
    explained = cli(env, "score", "--explain", "dana@contoso.test").stdout
    assert "contact dana@contoso.test: score 0.00" in explained
    missing = cli(env, "score", "--explain", "ghost@nowhere.test", check=False)
    assert missing.returncode == 2 and "no contact, lead or account" in missing.stderr
    both = cli(env, "score", check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr


# --- hostile input: a clear error, nothing stored (#10) ---------------------------------------

EML = (
    "From: Rep One <rep@northwind.test>\nTo: Dana <dana@contoso.test>\n"
    "Subject: Pricing\nMessage-ID: <m1@northwind.test>\nMIME-Version: 1.0\n"
    "Content-Type: text/html; charset=utf-8\n\n"
    '<p>See <a href="https://example.com/p">pricing</a></p>\n'
)


def _stored(engine: Engine) -> int:
    from sqlalchemy import func, select

    from mailsignal.store.schema import email, emaildelivery

    with engine.connect() as conn:
        return sum(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (email, emaildelivery)
        )


def test_instrument_refuses_bad_input_before_storing(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    eml = tmp_path / "m.eml"
    eml.write_text(EML)
    (tmp_path / "a-file").write_text("")
    deep = tmp_path / "deep.eml"
    deep.write_text(
        EML.replace(
            "Content-Type: text/html; charset=utf-8\n\n",
            "".join(
                f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(2000)
            )
            + "Content-Type: text/html\n\n",
        )
    )
    out = str(tmp_path / "out")
    for args, needle in (
        (["--out", str(tmp_path / "a-file" / "out")], "cannot create the folder"),
        (["--out", out, "--sent-at", "0001-01-01T00:00:00"], "outside the accepted range"),
        (["--out", out, "--sent-at", "9999-12-31T23:59:59"], "outside the accepted range"),
        (["--out", out, "--sender", "rep@northwind.test\r\nBcc: spy@evil.test"], "not an"),
    ):
        result = cli(env, "emails", "instrument", str(eml), *args, check=False)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    result = cli(env, "emails", "instrument", str(deep), "--out", out, check=False)
    assert result.returncode == 2 and "nest more than 100 levels" in result.stderr
    assert _stored(engine) == 0


def test_instrument_copies_that_cannot_be_written_leave_nothing_stored(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    """The copies are written in the email's transaction: a write that fails (here: over
    the process's file size limit, which the database's own small writes stay under)
    rolls the email back and removes the copies already written."""
    import resource
    import subprocess
    import sys

    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    eml = tmp_path / "big.eml"
    eml.write_text(
        EML.replace("Cc: ", "").replace("To: Dana <dana@contoso.test>", "To: a@x.test, b@x.test")
        + "<p>"
        + "padding " * 400_000
        + "</p>\n"
    )
    limit = 2_000_000  # the copies are ~3.2 MB each; the database writes far less

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    exe = Path(sys.executable).with_name("mailsignal")
    out = tmp_path / "out"
    result = subprocess.run(
        [str(exe), "emails", "instrument", str(eml), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot write" in result.stderr and "nothing was recorded" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.iterdir()) == []
    assert _stored(engine) == 0


def test_recompute_counts_verdicts_apart_from_reasons(env: dict[str, str], tmp_path: Path) -> None:
    """`classify --recompute` says how many verdicts changed, not how many events got
    new reasons (issue 11, item 14): disabling the rule that condemned a mail gateway's
    opens turns those verdicts around; re-running with nothing changed changes none."""
    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    eml = tmp_path / "m.eml"
    eml.write_text(EML)
    out_dir = tmp_path / "out"
    activity = cli(env, "emails", "instrument", str(eml), "--out", str(out_dir)).stdout.split()[1]
    copy = sorted(out_dir.iterdir())[0]
    msg = message_from_bytes(copy.read_bytes(), policy=policy.default)
    pixel = next(u for u in tracked_urls(msg) if u.endswith(".gif"))  # type: ignore[arg-type]
    hits = tmp_path / "hits.jsonl"
    hits.write_text(
        "".join(
            f'{{"time": "2026-11-30T09:00:0{i}Z", "url": "{pixel}", '
            f'"ip": "40.107.22.51", "user_agent": "Mozilla/5.0"}}\n'
            for i in range(3)
        )
    )
    cli(env, "import", "hits", str(hits))
    unchanged = cli(env, "classify", "--recompute").stdout
    assert "0 verdicts changed, 0 more events with new reasons" in unchanged
    listed = cli(env, "events", "list", activity, "--json").stdout.splitlines()
    fired = {e["rule"] for line in listed for e in json.loads(line)["reasons"]["fired"]}
    assert fired, listed
    disabled = {**env, "MAILSIGNAL_DISABLED_RULES": json.dumps(sorted(fired))}
    changed = cli(disabled, "classify", "--recompute").stdout
    found = re.search(r"(\d+) verdicts changed, (\d+) more events", changed)
    assert found is not None and int(found.group(1)) > 0, changed


def test_instrumenting_a_message_twice_is_one_email(env: dict[str, str], tmp_path: Path) -> None:
    """The same Message-ID from the same sender again is the email it made (issue 11,
    item 10): the same id, the same copy files, nothing new stored."""
    cli(env, "users", "add", "rep@northwind.test", "--opt-in")
    eml = tmp_path / "m.eml"
    eml.write_text(EML)
    out_dir = tmp_path / "out"
    first = cli(env, "emails", "instrument", str(eml), "--out", str(out_dir)).stdout
    files = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    again = cli(env, "emails", "instrument", str(eml), "--out", str(out_dir)).stdout
    assert first.split()[1] == again.split()[1] and "recorded before" in again
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == files
    assert cli(env, "emails", "list").stdout.count(first.split()[1][:8]) == 1
