"""Every knob of Accord, read from `ACCORD_*` environment variables (and `.env`), validated once.

Nested values use a double underscore: `ACCORD_SMTP__HOST=relay.example`. Secrets have no
default and are `SecretStr`, so they never appear in logs or reprs.

Infrastructure: it imports only pydantic and pydantic-settings, never the rest of the project,
and reads the environment only when `Settings()` is built (by `worker.py` or a command), never
at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
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
        return self


class TemporalSettings(BaseModel):
    address: str | None = Field(
        default=None, description="host:port of a Temporal cluster; unset = embedded dev server."
    )
    namespace: str = "default"
    task_queue: str = "accord"
    api_key: SecretStr | None = Field(default=None, description="Temporal Cloud API key.")
    tls: bool = False
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    tls_server_ca: Path | None = None
    dev_port: int = Field(default=7233, description="Port of the embedded dev server.")
    ui_port: int = Field(default=8233, description="Web UI port of the embedded dev server.")
    retention_days: int = Field(
        default=3650, ge=1, description="Closed-workflow retention set on the embedded server."
    )


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ACCORD_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    data_dir: Path = Field(default=Path("data"), description="Embedded server, mail and database.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset = SQLite file in the data folder."
    )
    agreements_dir: Path = Field(default=Path("agreements"), description="Deployed at start-up.")
    locale: Literal["vi", "en"] = "vi"
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    claims: ClaimSettings = Field(default_factory=ClaimSettings)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'accord.db').resolve()}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"
