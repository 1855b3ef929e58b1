from __future__ import annotations

import json
from collections.abc import Iterator
from email import message_from_string, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from helpers import CHROME, HTML, OUTLOOK, add_rep, tracked_urls
from mailsignal.pipeline.worker import Ingestor
from mailsignal.settings import Settings
from mailsignal.store import parties, users
from mailsignal.web.app import create_app

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def keys(engine: Engine) -> dict[str, str]:
    with engine.begin() as conn:
        rep = add_rep(conn)
        other = add_rep(conn, "other@northwind.test")
        admin = add_rep(conn, "admin@northwind.test", role="admin")
        parties.add(conn, "contact", "No Track", "notrack@contoso.test", follow=False)
        return {
            "rep": users.create_api_key(conn, rep),
            "other": users.create_api_key(conn, other),
            "admin": users.create_api_key(conn, admin),
        }


@pytest.fixture
def client(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as c:
        c.app_under_test = app  # type: ignore[attr-defined]
        yield c
    app.journal.close()


def _auth(keys: dict[str, str], who: str = "rep") -> dict[str, str]:
    return {"authorization": f"Bearer {keys[who]}"}


def _create(client: TestClient, keys: dict[str, str], **body: Any) -> Any:
    payload = {
        "sender": "rep@northwind.test",
        "recipients": ["dana@contoso.test"],
        "subject": "Pricing",
        "html": HTML,
        **body,
    }
    return client.post("/api/v1/emails", json=payload, headers=_auth(keys))


def test_requires_a_key(client: TestClient) -> None:
    r = client.get("/api/v1/emails")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = client.get("/api/v1/emails", headers={"authorization": "Bearer msk_nope_x"})
    assert r.status_code == 401


def test_create_track_ingest_read(
    client: TestClient, keys: dict[str, str], engine: Engine, settings: Settings
) -> None:
    r = _create(client, keys, recipients=["dana@contoso.test", "notrack@contoso.test"])
    assert r.status_code == 201, r.text
    body = r.json()
    dana, notrack = body["deliveries"]
    assert dana["tracked"] and not notrack["tracked"]
    assert notrack["untracked_reasons"] == ["recipient.do_not_track"]
    assert tracked_urls(notrack["mime"]) == []
    urls = tracked_urls(dana["mime"])
    assert len([u for u in urls if "/c/" in u]) == 2 and urls[-1].endswith(".gif")
    pixel = next(u for u in urls if u.endswith(".gif"))
    click = next(u for u in urls if "/c/" in u)
    assert (
        client.get(
            pixel.removeprefix("http://track.test"), headers={"user-agent": OUTLOOK}
        ).status_code
        == 200
    )
    r = client.get(click.removeprefix("http://track.test"), headers={"user-agent": CHROME})
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/pricing?a=1&b=2"
    Ingestor(engine, settings).drain()
    email_id = body["activityid"]
    got = client.get(f"/api/v1/emails/{email_id}", headers=_auth(keys)).json()
    assert (got["opencount"], got["linksclickedcount"]) == (1, 1)
    assert [d["tracked"] for d in got["deliveries"]] == [True, False]
    events = client.get(f"/api/v1/emails/{email_id}/events", headers=_auth(keys)).json()["value"]
    assert [(e["interactiontype"], e["emailaddress"]) for e in events] == [
        (0, "dana@contoso.test"),
        (1, "dana@contoso.test"),
    ]
    assert all(e["verdict"] in ("human", "machine", "unknown", "forward") for e in events)
    assert all("fired" in e["reasons"] for e in events)


def test_rep_sees_only_own_email_admin_sees_all(client: TestClient, keys: dict[str, str]) -> None:
    email_id = _create(client, keys).json()["activityid"]
    assert client.get(f"/api/v1/emails/{email_id}", headers=_auth(keys, "other")).status_code == 404
    assert (
        client.get(f"/api/v1/emails/{email_id}/events", headers=_auth(keys, "other")).status_code
        == 404
    )
    assert client.get(f"/api/v1/emails/{email_id}", headers=_auth(keys, "admin")).status_code == 200
    assert client.get("/api/v1/emails", headers=_auth(keys, "other")).json()["value"] == []


def test_rep_cannot_send_as_someone_else(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/emails",
        headers=_auth(keys, "other"),
        json={"sender": "rep@northwind.test", "recipients": ["a@b.test"], "html": HTML},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_opted_out_sender_gets_untracked_copies(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    with engine.begin() as conn:
        user = users.by_address(conn, "rep@northwind.test")
        assert user is not None
        users.set_optin(conn, user["systemuserid"], False)
        users.set_org(conn, monitoring=False)
    copy = _create(client, keys).json()["deliveries"][0]
    assert not copy["tracked"]
    assert copy["untracked_reasons"] == ["org.monitoring_disabled", "sender.not_opted_in"]


def test_raw_mime_from_a_real_client(client: TestClient, keys: dict[str, str]) -> None:
    files = sorted((FIXTURES / "mail").glob("*.eml"))
    assert files, "fixtures/mail holds real client messages"
    for path in files:
        r = client.post(
            "/api/v1/emails",
            headers=_auth(keys, "admin"),
            json={
                "sender": "rep@northwind.test",
                "recipients": ["dana@contoso.test"],
                "mime": path.read_text(errors="surrogateescape"),
            },
        )
        if r.status_code == 400:  # fixtures that exist to be refused
            assert r.json()["error"]["message"]
            continue
        assert r.status_code == 201, (path.name, r.text)


def test_settings_reach_the_copies_through_the_service(
    settings: Settings, keys: dict[str, str]
) -> None:
    # The app builds its Outgoing once from settings: honeypot and base_url come with it.
    settings = settings.model_copy(update={"honeypot": True, "base_url": "https://t.example"})
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            r = _create(client, keys, recipients=["dana@contoso.test", "notrack@contoso.test"])
    finally:
        app.journal.close()
    assert r.status_code == 201, r.text
    dana, notrack = (_html(d["mime"]) for d in r.json()["deliveries"])
    assert dana.count('data-mailsignal-notrack aria-hidden="true"') == 1  # the honeypot link
    assert dana.count("data-mailsignal-notrack") == 2  # and the stop-tracking line's (#13)
    assert 'href="https://t.example/c/' in dana and "http://track.test" not in dana
    assert "data-mailsignal-notrack" not in notrack


def _html(mime: str) -> str:
    part = message_from_string(mime, policy=policy.default).get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"recipients": ["a@b.test"], "html": HTML}, 400, "sender"),
        ({"sender": "rep@northwind.test", "html": HTML}, 400, "recipients"),
        ({"sender": "rep@northwind.test", "recipients": ["a@b.test"]}, 400, "html, text or mime"),
        (
            {"sender": "rep@northwind.test", "recipients": ["not-an-address"], "html": HTML},
            400,
            "not an email address",
        ),
        ({"sender": "rep@northwind.test", "mime": "this is not a message"}, 400, ""),
        (
            {
                "sender": "rep@northwind.test",
                "recipients": ["a@b.test"],
                "html": HTML,
                "sent_at": "2026-11-27T09:00:00",
            },
            400,
            "time zone",
        ),
        (
            {"sender": "rep@northwind.test", "recipients": ["a@b.test"], "html": HTML, "bogus": 1},
            400,
            "bogus",
        ),
    ],
)
def test_bad_input_is_a_clear_4xx(
    client: TestClient, keys: dict[str, str], body: dict[str, Any], status: int, needle: str
) -> None:
    r = client.post("/api/v1/emails", json=body, headers=_auth(keys))
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_unknown_sender_is_404(client: TestClient, keys: dict[str, str]) -> None:
    r = client.post(
        "/api/v1/emails",
        headers=_auth(keys, "admin"),
        json={"sender": "ghost@northwind.test", "recipients": ["a@b.test"], "html": HTML},
    )
    assert r.status_code == 404 and "users add" in r.json()["error"]["message"]


def test_not_json_and_oversized(
    client: TestClient, keys: dict[str, str], settings: Settings
) -> None:
    r = client.post(
        "/api/v1/emails",
        content=b"{not json",
        headers={**_auth(keys), "content-type": "application/json"},
    )
    assert r.status_code == 400
    big = b"x" * (settings.max_body_bytes + 1)
    r = client.post("/api/v1/emails", content=big, headers=_auth(keys))
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_bad_ids(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/api/v1/emails/not-a-uuid", headers=_auth(keys)).status_code == 400
    r = client.get("/api/v1/emails/00000000-0000-0000-0000-000000000000", headers=_auth(keys))
    assert r.status_code == 404 and "Does Not Exist" in r.json()["error"]["message"]


def test_openapi_published(client: TestClient) -> None:
    spec = client.get("/api/v1/openapi.json").json()
    assert {
        "/api/v1/emails",
        "/api/v1/emails/{activityid}",
        "/api/v1/emails/{activityid}/events",
    } <= set(spec["paths"])
    assert client.get("/healthz").json()["status"] == "ok"


# --- hostile input: a clear 4xx naming the field, nothing stored (#10) ------------------------


def _post(client: TestClient, keys: dict[str, str], **fields: Any) -> Any:
    """`_create`, the body escaped to ASCII JSON, as a client sends a lone surrogate."""
    payload = {
        "sender": "rep@northwind.test",
        "recipients": ["dana@contoso.test"],
        "subject": "Pricing",
        "html": HTML,
        **fields,
    }
    headers = {**_auth(keys), "content-type": "application/json"}
    return client.post("/api/v1/emails", content=json.dumps(payload), headers=headers)


def _rows(engine: Engine) -> tuple[int, ...]:
    from sqlalchemy import func, select

    from mailsignal.store.schema import email, emaildelivery, trackedlink

    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (email, emaildelivery, trackedlink)
        )


def _nested(depth: int) -> str:
    opened = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(depth)
    )
    closed = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return (
        "From: rep@northwind.test\nTo: dana@contoso.test\nSubject: deep\nMIME-Version: 1.0\n"
        + opened
        + "Content-Type: text/html\n\n<a href='https://example.com/x'>x</a>\n"
        + closed
    )


@pytest.mark.parametrize(
    ("fields", "code", "needle"),
    [
        ({"subject": "Hi\r\nBcc: spy@evil.test"}, "invalid_input", "subject: must be one line"),
        ({"subject": "Hi\nBcc: spy@evil.test"}, "invalid_input", "subject: must be one line"),
        ({"subject": "Hi\u2028there"}, "invalid_input", "subject: must be one line"),
        (
            {"recipients": ["dana@contoso.test\r\nBcc: spy@evil.test"]},
            "invalid_input",
            "recipients: must be one line",
        ),
        ({"recipients": ["dana\x00@contoso.test"]}, "invalid_input", "recipients:"),
        ({"recipients": ["a" * 400 + "@contoso.test"]}, "invalid_input", "not an email address"),
        (
            {"message_id": "<a@b>\r\nBcc: spy@evil.test"},
            "invalid_input",
            "message_id: must be one line",
        ),
        ({"message_id": "<" + "a" * 1000 + "@b>"}, "invalid_input", "at most 998"),
        ({"sent_at": "0001-01-01T00:00:00+05:00"}, "invalid_input", "outside the accepted range"),
        ({"sent_at": "0001-01-01T00:00:00Z"}, "invalid_input", "1970-01-01 to 2100-01-01"),
        ({"sent_at": "9999-12-31T23:59:59-05:00"}, "invalid_input", "outside the accepted range"),
        ({"sent_at": "9999-12-31T23:59:59Z"}, "invalid_input", "outside the accepted range"),
        ({"html": "<p>\ud800</p>"}, "invalid_input", "html: not Unicode text"),
        ({"html": None, "text": "x\ud800"}, "invalid_input", "text: not Unicode text"),
        ({"html": "<p>a\x00b</p>"}, "invalid_input", "html: contains a NUL"),
        ({"html": None, "recipients": [], "mime": _nested(2000)}, "invalid_mime", "nest more"),
        ({"html": None, "recipients": [], "mime": "Subject: x\n\n\ud800"}, "invalid_mime", ""),
    ],
)
def test_hostile_fields_are_a_400_and_store_nothing(
    client: TestClient, keys: dict[str, str], engine: Engine, fields: Any, code: str, needle: str
) -> None:
    """Each of these was a 500 (a ValueError from the email package, a UnicodeEncodeError,
    a RecursionError, or on PostgreSQL a DataError) after part of the email was written."""
    before = _rows(engine)
    r = _post(client, keys, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code and needle in r.json()["error"]["message"]
    assert _rows(engine) == before


def test_mime_nesting_up_to_the_bound_is_tracked(client: TestClient, keys: dict[str, str]) -> None:
    from mailsignal.instrument import MAX_DEPTH

    r = _create(client, keys, html=None, recipients=[], mime=_nested(MAX_DEPTH))
    assert r.status_code == 201, r.text
    assert tracked_urls(r.json()["deliveries"][0]["mime"])
    r = _create(client, keys, html=None, recipients=[], mime=_nested(MAX_DEPTH + 1))
    assert r.status_code == 400 and r.json()["error"]["max_depth"] == MAX_DEPTH


def test_junk_in_a_whole_message_is_stored_alike_on_both_backends(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """NUL and undecodable bytes in the subject and a link's text are labels: stored with
    U+FFFD, on PostgreSQL as on SQLite; a link with a NUL is not one: left untracked."""
    from sqlalchemy import select

    from mailsignal.store.schema import email, trackedlink

    mime = (
        "From: rep@northwind.test\nTo: dana@contoso.test\nSubject: caf\udce9 \x00 x\n"
        "MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
        "<a href='https://example.com/\x00a'>a</a> <a href='https://example.com/b'>b\x01\x00c</a>\n"
    )
    r = _post(client, keys, html=None, recipients=[], mime=mime)
    assert r.status_code == 201, r.text
    with engine.connect() as conn:
        assert conn.execute(select(email.c.subject)).scalar_one() == "caf\ufffd \ufffd x"
        links = conn.execute(select(trackedlink.c.url, trackedlink.c.text)).all()
    assert [tuple(link) for link in links] == [("https://example.com/b", "bc")]


def test_upper_case_scheme_is_rewritten_and_its_click_redirects(
    client: TestClient, keys: dict[str, str]
) -> None:
    """`HTTPS://Example.com/x` was rewritten but its click answered "expired": the token
    carried the scheme as written, the tracker redirects only http(s) in lower case."""
    html = (
        '<p><a href="HTTPS://Example.com/x?Q=1">upper</a> <a href="Http://example.com/y">y</a></p>'
    )
    r = _create(client, keys, html=html)
    assert r.status_code == 201, r.text
    clicks = [u for u in tracked_urls(r.json()["deliveries"][0]["mime"]) if "/c/" in u]
    assert len(clicks) == 2
    targets = []
    for url in clicks:
        got = client.get(url.removeprefix("http://track.test"), headers={"user-agent": CHROME})
        assert got.status_code == 302, got.text
        targets.append(got.headers["location"])
    assert targets == ["https://Example.com/x?Q=1", "http://example.com/y"]


def test_a_non_ascii_message_id_comes_back_as_utf8_mime(
    client: TestClient, keys: dict[str, str]
) -> None:
    """A Message-ID has no encoded-word form, so `as_bytes` could not write '¡' (found by
    tests/web/test_fuzz.py): the copy comes back as SMTPUTF8 mail has it, not a 500."""
    r = _create(client, keys, message_id="<¡hola@northwind.test>")
    assert r.status_code == 201, r.text
    copy = r.json()["deliveries"][0]
    assert copy["mime_base64"] is None
    assert "Message-ID: <¡hola@northwind.test>" in copy["mime"]


@pytest.mark.parametrize("fields", [{}, {"message_id": "<¡crlf@northwind.test>"}])
def test_mime_copies_end_lines_in_crlf(
    client: TestClient, keys: dict[str, str], fields: dict[str, str]
) -> None:
    """RFC 5322 lines end in CRLF: a copy a client hands to its own SMTP library as it
    comes is already correct (issue 11, item 14), SMTPUTF8 fallback included."""
    r = _create(client, keys, text="Hi\nsecond line", **fields)
    assert r.status_code == 201, r.text
    mime = r.json()["deliveries"][0]["mime"]
    assert "\r\n" in mime and "\n" not in mime.replace("\r\n", "")


# --- Idempotent email creation (issue 11, item 10) -----------------------------------------


def test_the_same_message_id_twice_is_one_email(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """A retried POST (the client never saw the 201) gives the first email back: 200, the
    same activityid and the same copies byte for byte, `replayed` in body and header."""
    first = _create(client, keys, message_id="<retry@northwind.test>")
    assert first.status_code == 201, first.text
    assert first.json()["replayed"] is False and "idempotent-replayed" not in first.headers
    rows = _rows(engine)
    again = _create(client, keys, message_id="<retry@northwind.test>")
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == {**first.json(), "replayed": True}
    assert _rows(engine) == rows
    # Another sender's message with that Message-ID is another email.
    other = client.post(
        "/api/v1/emails",
        json={
            "sender": "other@northwind.test",
            "recipients": ["dana@contoso.test"],
            "html": HTML,
            "message_id": "<retry@northwind.test>",
        },
        headers=_auth(keys, "other"),
    )
    assert other.status_code == 201 and other.json()["activityid"] != first.json()["activityid"]


def test_a_whole_message_again_adds_only_new_recipients(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """A client that sends each Bcc apart repeats the Message-ID with another recipient:
    one email, a delivery more; a message with other links under that id is refused."""
    mime = (
        "From: rep@northwind.test\r\nTo: dana@contoso.test\r\nSubject: Hi\r\n"
        "Message-ID: <bcc@northwind.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + HTML + "\r\n"
    )
    first = _create(client, keys, html=None, recipients=[], mime=mime)
    assert first.status_code == 201, first.text
    bcc = _create(client, keys, html=None, recipients=["lee@fabrikam.test"], mime=mime)
    assert bcc.status_code == 200, bcc.text
    assert bcc.json()["activityid"] == first.json()["activityid"]
    (lee,) = bcc.json()["deliveries"]
    assert lee["recipient"] == "lee@fabrikam.test" and lee["tracked"]
    assert lee["deliveryid"] != first.json()["deliveries"][0]["deliveryid"]
    assert _rows(engine)[:2] == (1, 2)
    other = _create(client, keys, html=None, recipients=[], mime=mime.replace("/pricing", "/other"))
    assert other.status_code == 400 and "other links" in other.json()["error"]["message"]
    assert _rows(engine)[:2] == (1, 2)


def test_an_idempotency_key_makes_a_retry_the_same_email(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """draft-ietf-httpapi-idempotency-key-header: the same key and body answer the first
    response again; the same key with another body is a 422; keys are per user and a
    key older than 24 hours starts afresh."""
    key = {**_auth(keys), "idempotency-key": "order-42"}
    body = {"sender": "rep@northwind.test", "recipients": ["dana@contoso.test"], "html": HTML}
    first = client.post("/api/v1/emails", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/emails", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "replayed": True}
    assert _rows(engine)[0] == 1
    changed = client.post("/api/v1/emails", json={**body, "subject": "Other"}, headers=key)
    assert changed.status_code == 422, changed.text
    assert changed.json()["error"]["code"] == "idempotency_key_reused"
    other_user = {**_auth(keys, "other"), "idempotency-key": "order-42"}
    mine = client.post(
        "/api/v1/emails", json={**body, "sender": "other@northwind.test"}, headers=other_user
    )
    assert mine.status_code == 201, mine.text
    bad = client.post("/api/v1/emails", json=body, headers={**key, "idempotency-key": "a b"})
    assert bad.status_code == 400, bad.text
    assert _rows(engine)[0] == 2

    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from mailsignal.store.schema import idempotencykey

    with engine.begin() as conn:
        conn.execute(
            update(idempotencykey).values(createdon=datetime.now(UTC) - timedelta(hours=25))
        )
    later = client.post("/api/v1/emails", json={**body, "subject": "Other"}, headers=key)
    assert later.status_code == 201, later.text
    assert later.json()["activityid"] != first.json()["activityid"]


def test_two_concurrent_posts_of_one_message_make_one_email(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """The unique key decides, not a look-up first: of two POSTs at once one makes the
    email, the other gets it back."""
    from concurrent.futures import ThreadPoolExecutor

    def post(_n: int) -> Any:
        return _create(client, keys, message_id="<race@northwind.test>")

    for _attempt in range(3):
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(post, range(2)))
        assert sorted(a.status_code for a in answers) in ([200, 201], [200, 200]), [
            a.text for a in answers
        ]
        assert len({a.json()["activityid"] for a in answers}) == 1
    assert _rows(engine)[0] == 1


def test_an_idempotency_key_with_a_lone_surrogate_in_the_body_is_no_500(
    client: TestClient, keys: dict[str, str]
) -> None:
    headers = {**_auth(keys), "content-type": "application/json", "idempotency-key": "k-1"}
    body = json.dumps(
        {
            "sender": "rep@northwind.test",
            "recipients": ["dana@contoso.test"],
            "html": "<p>\ud800</p>",
        }
    )
    r = client.post("/api/v1/emails", content=body, headers=headers)
    assert r.status_code == 400, r.text


def test_an_email_without_a_subject_has_none(client: TestClient, keys: dict[str, str]) -> None:
    """Posted without a subject, an email has none (#11, C.11): no Subject header in its
    copies, null in the store, left out of the Web API's row, found by FetchXML's
    `operator="null"` and OData's `eq null`, and not by `ne null`."""
    r = _create(client, keys, subject=None)
    assert r.status_code == 201, r.text
    copy = message_from_string(r.json()["deliveries"][0]["mime"], policy=policy.default)
    assert copy["Subject"] is None
    activity = r.json()["activityid"]
    assert _create(client, keys).status_code == 201  # one with a subject, to tell them apart
    assert client.get(f"/api/v1/emails/{activity}", headers=_auth(keys)).json()["subject"] is None
    base = "/api/data/v9.2/emails"
    row = client.get(f"{base}({activity})", headers=_auth(keys)).json()
    assert "subject" not in row and row["activityid"] == activity
    fetch = (
        '<fetch><entity name="email"><attribute name="activityid"/><filter>'
        '<condition attribute="subject" operator="null"/></filter></entity></fetch>'
    )
    found = client.get(base, params={"fetchXml": fetch}, headers=_auth(keys)).json()["value"]
    assert [e["activityid"] for e in found] == [activity]
    for test, expected in (("eq null", [activity]), ("ne null", [])):
        params = {"$select": "subject", "$filter": f"subject {test}"}
        rows = client.get(base, params=params, headers=_auth(keys)).json()["value"]
        assert [e["activityid"] for e in rows if e["activityid"] == activity] == expected
