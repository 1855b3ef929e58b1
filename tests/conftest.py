"""Shared fixtures. Database tests run on SQLite and on PostgreSQL (`db_url` is
parametrised). PostgreSQL comes from MAILSIGNAL_TEST_PG_URL (`.ci/run` sets it); outside
CI a missing service skips with a message, in CI (CI=true) it fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from mailsignal.keyring import create_secret
from mailsignal.settings import Settings
from mailsignal.store.db import make_engine, migrate

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Default: the local server this project's machines run; override or point elsewhere.
PG_URL = os.environ.get(
    "MAILSIGNAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test?connect_timeout=3"
)
FIXTURES = Path(__file__).parent / "fixtures"


def need(condition: bool, what: str, how: str) -> None:
    """Skip (or, in CI, fail) a test whose service is missing."""
    if condition:
        return
    message = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(f"CI requires it: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[tuple[Engine, str] | None]:
    if not PG_URL:
        yield None
        return
    admin = create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        if "+psycopg" not in PG_URL
        else PG_URL,
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # unreachable server: report, don't crash collection
        admin.dispose()
        yield (None, str(exc))  # type: ignore[misc]
        return
    template = f"ms_tpl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{template}"'))
    tpl_engine = make_engine(admin.url.set(database=template).render_as_string(False))
    migrate(tpl_engine)
    tpl_engine.dispose()
    yield admin, template
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    _sqlite_template: Path,
    _pg_admin: Any,
) -> Iterator[str]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "mailsignal.db"
        shutil.copy(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    need(
        bool(PG_URL),
        "PostgreSQL",
        "set MAILSIGNAL_TEST_PG_URL=postgresql+psycopg://"
        "postgres@127.0.0.1:5432/test (or run .ci/run)",
    )
    admin, template = _pg_admin
    need(admin is not None, "PostgreSQL", f"cannot connect to {PG_URL}: {template}")
    name = f"ms_t_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield admin.url.set(database=name).render_as_string(False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    create_secret(tmp_path / "secret.key")
    return Settings(data_dir=tmp_path, database_url=db_url, base_url="http://track.test")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.db_url)
    yield eng
    eng.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(
    env: dict[str, str], *args: str, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `mailsignal` command."""
    exe = Path(sys.executable).with_name("mailsignal")
    return subprocess.run(
        [str(exe), *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
        input=input_text,
    )


def wait_http(url: str, timeout: float = 20.0, verify: ssl.SSLContext | bool = True) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, verify=verify).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


class LiveServer:
    """A real `mailsignal serve` (granian) in its own process group."""

    def __init__(
        self,
        data_dir: Path,
        *,
        ingest: bool = True,
        extra_env: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port = free_port()
        self.tls = tls  # (certificate, key): serve https with them
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "MAILSIGNAL_DATA_DIR": str(data_dir),
            "MAILSIGNAL_BASE_URL": self.url,
            "MAILSIGNAL_PORT": str(self.port),
            "MAILSIGNAL_INGEST_INTERVAL_SECONDS": "0.1",
            "MAILSIGNAL_LOG_LEVEL": "warning",
            **(
                {"MAILSIGNAL_TLS_CERT": str(tls[0]), "MAILSIGNAL_TLS_KEY": str(tls[1])}
                if tls
                else {}
            ),
            **(extra_env or {}),
        }
        self.ingest = ingest
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        exe = Path(sys.executable).with_name("mailsignal")
        args = [str(exe), "serve"] + ([] if self.ingest else ["--no-ingest"])
        self.log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=self.log, stderr=self.log, start_new_session=True
        )
        trust = ssl.create_default_context(cafile=self.tls[0]) if self.tls else True
        wait_http(self.url + "/healthz", verify=trust)
        return self

    def kill(self, sig: int = 9) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            self.proc.wait(20)
        self.proc = None
        self.log.close()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """A served, initialised instance with one opted-in rep; yields (server, api key)."""
    server = LiveServer(tmp_path / "data")
    cli(server.env, "init")
    out = cli(server.env, "users", "add", "rep@northwind.test", "--opt-in", "--key")
    key = out.stdout.strip().rsplit(" ", 1)[-1]
    server.start()
    yield server, key
    server.kill(15)
