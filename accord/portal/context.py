"""What every portal route needs: settings, the Temporal client, the database, the portal's
signing credential, the link key and the templates (`portal_context(request)`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from accord.identity import Credential
from infra.settings import Settings, SmtpSettings


@dataclass
class PortalContext:
    settings: Settings
    client: Client
    session_factory: sessionmaker[Session]
    credential: Credential
    """Channel "portal", operator None: the officer acts himself."""
    link_key: bytes
    templates: Jinja2Templates
    smtp: SmtpSettings | None = None
    """Where the portal's own mail (a new link) goes; None: `settings.smtp` (`accord run`
    passes its embedded sink's)."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The portal's idea of now: when a request is received (its claim), when a link or a
    session expires. Tests on the time-skipping server set it to the server's time."""

    def now(self) -> datetime:
        return self.clock()

    def link_url(self, token: str) -> str:
        """The address of a link, as officers reach the portal."""
        return f"{self.settings.portal.base_url.rstrip('/')}/l/{token}"


def portal_context(request: Request) -> PortalContext:
    """The app's context, in a route or a dependency."""
    context: PortalContext = request.app.state.portal
    return context


def task_path(task_id: str) -> str:
    """The portal path of a task's page: `/tasks/<task ID>` (the ID's slashes kept)."""
    return "/tasks/" + quote(task_id, safe="/")


def safe_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default`: never a redirect elsewhere
    (`//host`, `/\\host`, a scheme, control characters)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ord(c) < 0x20 or c in "\\" for c in target)
        or len(target) > 1000
    ):
        return default
    return target
