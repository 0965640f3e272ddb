"""Serving the portal: its context from settings, and uvicorn in the current event loop
(`accord portal`, and `accord run` beside the worker)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from accord.identity import Credential
from accord.portal.app import create_app, make_templates
from accord.portal.context import PortalContext
from infra.claim_keys import signing_key
from infra.links import derive_link_key
from infra.settings import Settings, SmtpSettings


def build_context(
    settings: Settings,
    client: Client,
    session_factory: sessionmaker[Session],
    *,
    smtp: SmtpSettings | None = None,
) -> PortalContext:
    """The portal's context: its credential signs claims as the officer himself (channel
    portal, no operator) with the claim key; the link key is derived from it."""
    key = signing_key(settings, create=False)
    return PortalContext(
        settings=settings,
        client=client,
        session_factory=session_factory,
        credential=Credential(operator=None, key=key, channel="portal"),
        link_key=derive_link_key(key.secret),
        templates=make_templates(),
        smtp=smtp,
    )


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's owner (`accord run`'s stop
    event) decides when it stops."""

    def __init__(self, config: uvicorn.Config, listening: asyncio.Event) -> None:
        super().__init__(config)
        self.listening = listening

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.listening.set()


async def serve_portal(
    ctx: PortalContext,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
    sdk_metrics_address: str | None = None,
) -> None:
    """Serve the portal on the settings' host and port until `stop` is set; `started` is set
    once it listens. OSError when it cannot listen. uvicorn logs through the process's logging
    (`infra.logs`), never with its own coloured handlers."""
    portal = ctx.settings.portal
    config = uvicorn.Config(
        create_app(ctx, sdk_metrics_address),
        host=portal.host,
        port=portal.port,
        log_level="warning",
        log_config=None,
        use_colors=False,
        proxy_headers=True,
        server_header=False,
        lifespan="off",
    )
    server = _Server(config, started or asyncio.Event())
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot listen
            await serving
    if not server.started:
        raise OSError(f"the portal could not listen on {portal.host}:{portal.port}")


def portal_url(settings: Settings) -> str:
    return f"http://{settings.portal.host}:{settings.portal.port}"
