"""Typed settings: `MAILSIGNAL_*` environment variables over an optional TOML file.

Precedence, highest first: explicit arguments, environment, the TOML file named by
`MAILSIGNAL_CONFIG` (else `<data_dir>/mailsignal.toml` when it exists), defaults.
Every field is documented in docs/settings.md; a test fails when one is missing.

The signing secret is not a setting: `mailsignal init` generates it into
`<data_dir>/secret.key` (mode 0600) and `keyring.load_keyring` reads it, so no default secret
can ever ship in code or config.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError
from .settings_privacy import PrivacySettings


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mailsignal"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the optional TOML file (flat keys named like the fields)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None and path.is_file():
            try:
                with path.open("rb") as fh:
                    self._data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read settings file {path}: {exc}") from exc
            unknown = sorted(set(self._data) - set(settings_cls.model_fields))
            if unknown:
                raise ConfigError(f"unknown setting(s) in {path}: {', '.join(unknown)}")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings, PrivacySettings):
    """All MailSignal settings. Field descriptions are the documentation's source."""

    model_config = SettingsConfigDict(env_prefix="MAILSIGNAL_", extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Directory for the SQLite database, journal, secret key and data overrides.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; default is a SQLite file in data_dir. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL of the tracker, used in pixel and link URLs.",
    )
    host: str = Field(default="127.0.0.1", description="Address `mailsignal serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `mailsignal serve` binds.")
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) for `mailsignal serve` to answer https itself; "
        "unset, it serves plain http for a TLS-terminating proxy in front.",
    )
    tls_key: Path | None = Field(
        default=None, description="PEM private key for tls_cert (mode 600: no one else reads it)."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDRs of load balancers whose X-Forwarded-For is believed; "
        "any other peer's header is ignored.",
    )
    journal_path: Path | None = Field(
        default=None,
        description="SQLite file where the tracker journals hits before answering; "
        "default data_dir/journal.db. Keep it on local disk.",
    )
    journal_batch_max: int = Field(
        default=2048, ge=1, description="Most hits written in one group commit."
    )
    journal_retention_hours: float = Field(
        default=24.0,
        ge=0,
        description="How long ingested hits stay in the journal before being pruned.",
    )
    journal_spool_dir: Path | None = Field(
        default=None,
        description="Directory, best on another filesystem than the journal, where hits "
        "the journal cannot take (a full disk) are written and fsynced before answering; "
        "they are journaled exactly once when it can again. Unset: they wait in memory.",
    )
    journal_buffer_max: int = Field(
        default=100_000,
        ge=0,
        description="Most hits one server process keeps in memory while neither the journal "
        "nor the spool can take them; beyond it hits are lost (counted, logged, /readyz).",
    )
    ingest_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often the ingest worker polls the journal."
    )
    ingest_batch_size: int = Field(
        default=5000, ge=1, description="Most journal hits ingested in one transaction."
    )
    honeypot: bool = Field(
        default=False,
        description="Add one invisible honeypot link to tracked HTML. Off by default: US "
        "patent 12,489,787 ('Email Bot Click Detection', granted 2025-12-02) claims honeypot "
        "links in email; check whether it binds you before enabling.",
    )
    auto_create_contacts: bool = Field(
        default=False,
        description="Create a contact, named by the display name, for each recipient whose "
        "address no contact, lead or account has, when mail is sent to it. Off by default: "
        "such mail stays unresolved, as in Dynamics, until a record with the address is "
        "added (it is then linked; docs/cli.md, `mailsignal contacts add`).",
    )
    max_body_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        description="Largest API request body or message accepted, in bytes.",
    )
    delivery_window_seconds: float = Field(
        default=10.0,
        ge=0,
        description="An event this soon after sending counts as a machine signal "
        "(rule timing.within_seconds_of_send).",
    )
    noise_open_threshold: int = Field(
        default=20,
        ge=1,
        description="An email whose raw open count exceeds this is flagged as scanner noise.",
    )
    current_chrome_major: int = Field(
        default=142,
        ge=1,
        description="The current stable Chrome major version. A Chrome user agent 8 or more "
        "majors older is a sign of a sandbox detonating links (rule "
        "useragent.outdated_chrome); keep this current, Chrome ships a major every 4 weeks.",
    )
    disabled_rules: list[str] = Field(
        default_factory=list,
        description="Classifier rule ids to switch off (see docs/rules.md).",
    )
    geoip_city_db: Path | None = Field(
        default=None,
        description="Optional MaxMind-format city database (.mmdb) for country and city.",
    )
    log_level: str = Field(default="info", description="Log level: debug, info, warning, error.")
    # --- query bounds (issue #10) -----------------------------------------------------
    query_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest a FetchXML query or saved view may run (Web API, REST, "
        "`views run`) before it is stopped with a clear error; on PostgreSQL also every "
        "statement of the web server, so a locked or frozen database answers 503 in time.",
    )
    max_queries_per_user: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Most FetchXML queries one user may run at once over the Web API and "
        "REST, across all server processes on the host; more are refused with HTTP 429.",
    )
    # --- the engagement panel (issue #12) ---------------------------------------------
    session_idle_minutes: int = Field(
        default=60,
        ge=1,
        le=24 * 60,
        description="A panel session ends after this long without a request.",
    )
    session_lifetime_hours: int = Field(
        default=12,
        ge=1,
        le=24 * 30,
        description="A panel session ends this long after sign-in, however active.",
    )
    login_failure_limit: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Failed panel sign-ins from one address at one login before that pair "
        "must wait (a minute, doubling with each further failure, up to an hour).",
    )
    # --- lead scores (issue #5) -------------------------------------------------------
    score_open: float = Field(default=1.0, ge=0, description="Points for a human open.")
    score_click: float = Field(default=5.0, ge=0, description="Points for a human click.")
    score_reply: float = Field(default=10.0, ge=0, description="Points for a reply.")
    score_attachment: float = Field(
        default=5.0, ge=0, description="Points for a human attachment download."
    )
    score_forward_fraction: float = Field(
        default=0.5, ge=0, le=1, description="Share of the points a forward event earns."
    )
    score_half_life_days: float = Field(
        default=14.0, gt=0, description="Days after which an event's points have halved."
    )
    # --- SMTP relay (issue #4) ---------------------------------------------------------
    relay_host: str = Field(default="127.0.0.1", description="Address `mailsignal relay` binds.")
    relay_port: int = Field(
        default=8025, ge=1, le=65535, description="Port `mailsignal relay` listens on."
    )
    relay_tls_cert: Path | None = Field(
        default=None, description="PEM certificate for STARTTLS / implicit TLS on the relay."
    )
    relay_tls_key: Path | None = Field(
        default=None, description="PEM private key for relay_tls_cert."
    )
    relay_implicit_tls: bool = Field(
        default=False, description="Serve implicit TLS (port 465 style) instead of STARTTLS."
    )
    relay_allow_plain_auth_localhost: bool = Field(
        default=False,
        description="Allow AUTH without TLS for clients connecting from 127.0.0.1/::1 only.",
    )
    relay_max_message_bytes: int = Field(
        default=35 * 1024 * 1024, ge=1024, description="Largest message the relay accepts."
    )
    relay_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Relay processes listening on relay_port together (SO_REUSEPORT), "
        "sharing the outbound queue and the database.",
    )
    smarthost: str | None = Field(
        default=None, description="Upstream SMTP server the relay forwards to, as host:port."
    )
    smarthost_security: str = Field(
        default="starttls", description="How to reach the smarthost: starttls, tls or none."
    )
    smarthost_username: str | None = Field(default=None, description="Smarthost AUTH user.")
    smarthost_password: str | None = Field(
        default=None, description="Smarthost AUTH password (prefer the environment variable)."
    )
    smarthost_verify_tls: bool = Field(
        default=True, description="Verify the smarthost's TLS certificate."
    )
    outbound_bounce_after_hours: float = Field(
        default=48.0,
        gt=0,
        description="A queued message the smarthost has not accepted by then is bounced "
        "to its sender.",
    )
    dkim_key_file: Path | None = Field(
        default=None,
        description="PEM private key: when set, the relay DKIM-signs after instrumenting.",
    )
    dkim_selector: str | None = Field(
        default=None, description="DKIM selector (d= is the From domain)."
    )
    # --- tracked attachments (issue #4) ----------------------------------------------
    attachments_mode: str = Field(
        default="off",
        description="Replace attachments by tracked download links: off, all, or over_size.",
    )
    attachments_min_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="With attachments_mode=over_size, attachments at least this big are replaced.",
    )
    attachments_dir: Path | None = Field(
        default=None,
        description="Where replaced attachments are kept; default data_dir/attachments.",
    )
    # --- reply sync (issue #4) --------------------------------------------------------
    imap_poll_seconds: float = Field(
        default=300.0, gt=0, description="How often `sync-replies --follow` polls each mailbox."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not a CIDR or address: {item!r}") from exc
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = os.environ.get("MAILSIGNAL_CONFIG")
        if config:
            path: Path | None = Path(config)
            if path is not None and not path.is_file():
                raise ConfigError(f"MAILSIGNAL_CONFIG names {config}, which does not exist")
        else:
            data_dir = os.environ.get("MAILSIGNAL_DATA_DIR")
            path = (Path(data_dir) if data_dir else _default_data_dir()) / "mailsignal.toml"
        return (init_settings, env_settings, _TomlSource(settings_cls, path))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mailsignal.db'}"

    @property
    def journal_file(self) -> Path:
        return self.journal_path or self.data_dir / "journal.db"

    @property
    def attachment_dir(self) -> Path:
        return self.attachments_dir or self.data_dir / "attachments"

    @field_validator("smarthost_security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value not in ("starttls", "tls", "none"):
            raise ValueError("must be starttls, tls or none")
        return value

    @field_validator("attachments_mode")
    @classmethod
    def _attachments_mode(cls, value: str) -> str:
        if value not in ("off", "all", "over_size"):
            raise ValueError("must be off, all or over_size")
        return value

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "secret.key"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation errors into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
