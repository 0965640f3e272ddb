"""SMTP sessions kept open between the notifications one worker process sends.

Opening a session costs a TCP handshake, the greeting, EHLO, and with the relay's settings
STARTTLS (a TLS handshake and a second EHLO) and AUTH, then QUIT at the end: several round
trips and, with TLS, most of the CPU a small message costs. When many reminders fall due at
the same instant (a province's reminders for one deadline all come at 07:30), one session per
notification is the largest part of the mail path. So the mail activity borrows an open
session here and gives it back when its messages are sent.

What is kept and for how long:
- at most `SmtpSettings.idle_connections` idle sessions (0 turns reuse off: one session per
  notification, closed with QUIT);
- a session idle for more than `CHECK_AFTER` is checked with NOOP before it is used again, and
  one idle for more than `SmtpSettings.idle_seconds` is closed instead (relays drop idle
  clients after a few minutes);
- a session that has carried `SmtpSettings.messages_per_connection` messages is closed when it
  is given back (some relays limit messages per session and answer 4xx after that);
- a session whose conversation went wrong (disconnected, timed out, a reply the client could
  not make sense of) is never given back.

Sessions belong to the event loop that opened them; a session opened on another loop is closed,
not used. Nothing here decides what is sent: the outbox does (`activities/mail.py`), so reusing
a session cannot send a message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiosmtplib

from infra.settings import SmtpSettings

CHECK_AFTER = 1.0
"""Seconds of idleness after which a kept session is checked with NOOP before it is reused."""


@dataclass
class SmtpSession:
    client: aiosmtplib.SMTP
    loop: asyncio.AbstractEventLoop
    used_at: float
    messages: int = 0


class SmtpConnections:
    """A small pool of open SMTP sessions to the one relay of `settings`."""

    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings
        self._idle: list[SmtpSession] = []

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self) -> SmtpSession:
        """An open, authenticated session: a kept one if one is usable, else a new one.

        Raises what connecting raises (`aiosmtplib.SMTPException`, `OSError`)."""
        loop = asyncio.get_running_loop()
        while self._idle:
            session = self._idle.pop()  # the most recently used: the least likely to be stale
            idle_for = time.monotonic() - session.used_at
            if (
                session.loop is not loop
                or not session.client.is_connected
                or idle_for > self._settings.idle_seconds
            ):
                await _close(session)
                continue
            if idle_for > CHECK_AFTER:
                try:
                    await session.client.noop()
                except (aiosmtplib.SMTPException, OSError):
                    _hang_up(session)
                    continue
            return session
        return await self._open(loop)

    async def release(self, session: SmtpSession, *, sent: int, healthy: bool) -> None:
        """Give a session back after `sent` messages; close it (QUIT) unless it can serve again."""
        session.messages += sent
        session.used_at = time.monotonic()
        keep = (
            healthy
            and session.client.is_connected
            and session.loop is asyncio.get_running_loop()
            and session.messages < self._settings.messages_per_connection
            and len(self._idle) < self._settings.idle_connections
        )
        if keep:
            self._idle.append(session)
        elif healthy:
            await _close(session)
        else:
            # The conversation broke off (an error, or the borrower was cancelled mid-DATA):
            # a QUIT now could be read as message text and wait out the timeout. Hang up.
            _hang_up(session)

    async def aclose(self) -> None:
        """Close every kept session (QUIT), e.g. when the worker stops."""
        idle, self._idle = self._idle, []
        for session in idle:
            await _close(session)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> SmtpSession:
        settings = self._settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=settings.timeout_seconds,
        )
        try:
            await client.connect()
            if settings.username is not None and settings.password is not None:
                await client.login(settings.username, settings.password.get_secret_value())
        except BaseException:
            client.close()
            raise
        return SmtpSession(client=client, loop=loop, used_at=time.monotonic())


async def _close(session: SmtpSession) -> None:
    """QUIT, or hang up if the session cannot be spoken to any more."""
    client = session.client
    if not client.is_connected or session.loop is not asyncio.get_running_loop():
        _hang_up(session)
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        _hang_up(session)


def _hang_up(session: SmtpSession) -> None:
    # RuntimeError: opened on an event loop that has been closed since; its socket goes with it.
    with contextlib.suppress(RuntimeError):
        session.client.close()
