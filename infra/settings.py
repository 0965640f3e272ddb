"""Every knob of Accord, read from `ACCORD_*` environment variables (and `.env`), validated once.

Nested values use a double underscore: `ACCORD_SMTP__HOST=relay.example`. Secrets (the database
URL, the SMTP password, the Temporal API key) have no default and are `SecretStr`, so they never
appear in logs or reprs. The `.env` file is `ACCORD_ENV_FILE` or the project root's, never the
current folder's (`env_file`).

Infrastructure: it imports only pydantic and pydantic-settings, never the rest of the project,
and reads the environment only when `Settings()` is built (by `worker.py` or a command), never
at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmtpSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="SMTP relay host.")
    port: int = Field(default=8025, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "tls"] = Field(
        default="none", description="'starttls' upgrades a plain connection; 'tls' is implicit TLS."
    )
    sender: str = Field(default="Accord <accord@accord.example>", description="From header.")
    timeout_seconds: float = Field(default=30.0, gt=0)
    idle_connections: int = Field(
        default=8,
        ge=0,
        description="Open SMTP sessions a worker keeps for the next notifications; 0 = a new "
        "session for every notification.",
    )
    idle_seconds: float = Field(
        default=30.0, gt=0, description="A kept session idle longer than this is closed."
    )
    messages_per_connection: int = Field(
        default=50,
        ge=1,
        description="A session that has carried this many messages is closed when it is given "
        "back (relays may limit messages per session).",
    )
    embedded: bool = Field(
        default=True,
        description="Start the built-in SMTP server that keeps each message as an .eml file.",
    )

    @model_validator(mode="after")
    def _auth_pair(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both ACCORD_SMTP__USERNAME and ACCORD_SMTP__PASSWORD, or neither")
        # A login over a plain connection hands the password to anyone on the path. No
        # exception for a relay on this machine: it can offer STARTTLS too, and a rule with no
        # exception is one nobody misreads.
        if self.username is not None and self.security == "none":
            raise ValueError(
                "ACCORD_SMTP__USERNAME and ACCORD_SMTP__PASSWORD need ACCORD_SMTP__SECURITY="
                "starttls or tls: a login without TLS would send the password in clear"
            )
        return self


class TemporalSettings(BaseModel):
    address: str | None = Field(
        default=None, description="host:port of a Temporal cluster; unset = embedded dev server."
    )
    namespace: str = "default"
    task_queue: str = "accord"
    api_key: SecretStr | None = Field(
        default=None, description="API key sent as `authorization: Bearer …` (implies TLS)."
    )
    tls: bool = False
    tls_client_cert: Path | None = Field(
        default=None, description="Client certificate (PEM) for mTLS; needs tls_client_key."
    )
    tls_client_key: Path | None = Field(
        default=None, description="The client certificate's private key (PEM)."
    )
    tls_server_ca: Path | None = Field(
        default=None, description="CA that signed the server's certificate; unset = system CAs."
    )
    tls_server_name: str | None = Field(
        default=None,
        description="Name the server's certificate is checked against (and sent as SNI), when "
        "it is not the host of `address`.",
    )
    dev_port: int = Field(default=7233, description="Port of the embedded dev server.")
    ui_port: int = Field(default=8233, description="Web UI port of the embedded dev server.")
    retention_days: int = Field(
        default=3650, ge=1, description="Closed-workflow retention set on the embedded server."
    )

    @field_validator("tls_client_cert", "tls_client_key", "tls_server_ca", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        # An empty `ACCORD_TEMPORAL__TLS_…=` would otherwise become Path("") = the current dir.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _client_pair(self) -> TemporalSettings:
        # The SDK would take a certificate without its key and fail deep in the connection with
        # a bare ValueError; say which setting is missing instead.
        if self.tls_client_cert is not None and self.tls_client_key is None:
            raise ValueError(
                "ACCORD_TEMPORAL__TLS_CLIENT_CERT is set without ACCORD_TEMPORAL__TLS_CLIENT_KEY: "
                "set the client certificate's key too"
            )
        if self.tls_client_key is not None and self.tls_client_cert is None:
            raise ValueError(
                "ACCORD_TEMPORAL__TLS_CLIENT_KEY is set without ACCORD_TEMPORAL__TLS_CLIENT_CERT: "
                "set the client certificate too"
            )
        return self


class ClaimSettings(BaseModel):
    """The key that signs actor claims (workflows.claims), and the CLI's operator credential."""

    key: SecretStr | None = Field(
        default=None,
        description="Signing key (≥ 32 characters). Unset with the embedded server: a key is "
        "generated once into <data_dir>/claims.key (mode 0600). Required with a cluster.",
    )
    key_id: str = Field(
        default="k1", pattern=r"^[A-Za-z0-9._-]{1,40}$", description="ID of `key` (rotation)."
    )
    previous_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Retired keys still accepted for verifying, by key ID (JSON object).",
    )
    operator: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9._@-]+$",
        description="Operator ID: who runs the CLI's acting commands, recorded as 'on behalf "
        "of X, by operator Y'. Without it those commands refuse.",
    )


class PortalSettings(BaseModel):
    """The officer portal (`accord portal`, and `accord run` starts it too)."""

    enabled: bool = Field(default=True, description="`accord run` starts the portal too.")
    host: str = Field(default="127.0.0.1", description="Address the portal listens on.")
    port: int = Field(default=8000, ge=1, le=65535)
    base_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="The portal's address as officers reach it (behind the reverse proxy): "
        "the links in mail start with it; https makes the session cookie Secure.",
    )
    link_days: int = Field(default=30, ge=1, le=366, description="A mailed link's lifetime.")
    session_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="A session's lifetime after the link opened."
    )
    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Largest attachment accepted."
    )
    upload_types: list[str] = Field(
        default_factory=lambda: [
            "application/pdf",
            "image/png",
            "image/jpeg",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.spreadsheet",
            "text/csv",
        ],
        description="Content types an attachment may have.",
    )
    link_requests_per_hour: int = Field(
        default=5, ge=1, description="New-link requests per address, and per client, an hour."
    )

    @property
    def secure(self) -> bool:
        """Served over HTTPS (as officers reach it): cookies are Secure."""
        return self.base_url.startswith("https://")


def settings_problems(error: ValidationError) -> str:
    """What is wrong with the settings, on one line: `field: message; …`. Never the values:
    pydantic's own text quotes them, and one may be a password."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}".removeprefix(": ")
        for e in error.errors(include_url=False, include_input=False)
    )


PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The repository (where pyproject.toml is): its `.env` is the one read by default."""

ENV_FILE_VARIABLE = "ACCORD_ENV_FILE"


def env_file() -> Path | None:
    """The `.env` file to read: `ACCORD_ENV_FILE` when set (it must exist), else the project
    root's `.env` when there is one. Never the current folder's: a command run inside a folder
    someone else controls (a download, a shared checkout) must not take its database URL,
    Temporal address or SMTP relay from a file planted there."""
    explicit = os.environ.get(ENV_FILE_VARIABLE)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists() or path.is_dir():  # /dev/null is fine: no .env at all
            raise ValueError(f"{ENV_FILE_VARIABLE}={explicit}: no such file")
        return path
    default = PROJECT_ROOT / ".env"
    return default if (PROJECT_ROOT / "pyproject.toml").is_file() and default.is_file() else None


class MetricsSettings(BaseModel):
    """The worker's metrics and health server (`infra.observe`). Off unless an address is
    set: several workers may share a host, and each needs its own port."""

    address: str | None = Field(
        default=None,
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port of the worker's HTTP server (/metrics, /healthz, /readyz), e.g. "
        "127.0.0.1:9464; unset = none.",
    )
    sdk_address: str | None = Field(
        default=None,
        pattern=r"^[^\s:]+:\d{1,5}$",
        description="host:port where the Temporal SDK's own Prometheus exporter listens; its "
        "metrics are also served on `address`. Unset = a free loopback port.",
    )
    portal: bool = Field(
        default=False,
        description="The portal serves /metrics too (its health endpoints are always served).",
    )
    tasks_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long the task counts read from Temporal's visibility are reused.",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACCORD_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    def __init__(self, **values: Any) -> None:
        # The `.env` is chosen when the settings are built, never from the working folder.
        super().__init__(_env_file=env_file(), **values)

    data_dir: Path = Field(
        default=Path("data"),
        description="Mail templates and uploads; on embedded defaults also the dev server, the "
        "mail sink, the SQLite database and the generated claims key.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; unset = SQLite file in the data folder. A secret (it may "
        "hold a password): shown only with the password hidden.",
    )
    agreements_dir: Path = Field(default=Path("agreements"), description="Deployed at start-up.")
    retention_days: int = Field(
        default=5 * 365,
        ge=1,
        description="`accord retention purge` blanks mail and report text older than this.",
    )
    locale: Literal["vi", "en"] = "vi"
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    claims: ClaimSettings = Field(default_factory=ClaimSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="Log lines on stderr: 'json' (one object a line), 'text' (readable, no "
        "colours); 'auto' = text on a terminal, json otherwise.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def secrets(self) -> list[str]:
        """Every secret value of the settings, for the log redaction (never log these)."""
        values = [self.smtp.password, self.temporal.api_key, self.database_url, self.claims.key]
        values.extend(self.claims.previous_keys.values())
        found = [v.get_secret_value() for v in values if v is not None]
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                found.append(password)
        return found

    @property
    def resolved_database_url(self) -> str:
        """The URL to connect with, password included: give it to the engine, never print it
        (`infra.db.shown_url` hides the password)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'accord.db').resolve()}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"
