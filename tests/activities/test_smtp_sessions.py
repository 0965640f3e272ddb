"""SMTP sessions kept open between notifications (infra/smtp.py), against a real server:
reused while healthy, replaced when stale, capped, and never a cause of a lost or doubled
message."""

from __future__ import annotations

import asyncio
import time

import pytest
from activity_helpers import FOCAL, MailServer, demo_task, notification
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import infra.smtp
from activities.mail import MailActivities
from activities.models import NotificationRequest, NotificationResult
from infra.db import OutboxRow
from infra.settings import SmtpSettings


def requests(n: int) -> list[NotificationRequest]:
    """n reminders of n different periods: one message each, to the same focal point."""
    return [notification(task=demo_task(period_label=f"2025-{i:02d}")) for i in range(n)]


async def send(mail: MailActivities, request: NotificationRequest) -> NotificationResult:
    return await ActivityEnvironment().run(mail.send_notification, request)


async def send_each(mail: MailActivities, batch: list[NotificationRequest]) -> None:
    """One after the other, each sent in full."""
    for request in batch:
        assert (await send(mail, request)).sent == 1


def mail_activities(
    sessions: sessionmaker[Session], settings: SmtpSettings, **changes: object
) -> MailActivities:
    return MailActivities(sessions, settings.model_copy(update=changes))


def peers(server: MailServer) -> list[tuple[str, int]]:
    return [mail.peer for mail in server.received]


def statuses(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return sorted(row.status for row in session.scalars(select(OutboxRow)))


async def test_one_session_carries_consecutive_notifications(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings)
    await send_each(mail, requests(4))

    assert len(mail_server.received) == 4
    assert len(set(peers(mail_server))) == 1
    assert all(mail.rcpt_tos == [FOCAL.email] for mail in mail_server.received)
    await mail.aclose()


async def test_no_reuse_when_no_idle_session_is_kept(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings, idle_connections=0)
    await send_each(mail, requests(3))

    assert len(set(peers(mail_server))) == 3


async def test_concurrent_notifications_use_separate_sessions_then_share_them(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings, idle_connections=2)
    mail_server.handler.data_delay = 0.2  # each send holds its session for a while
    batch = requests(8)

    await asyncio.gather(*(send(mail, request) for request in batch[:4]))
    opened_by_burst = set(peers(mail_server))
    mail_server.handler.data_delay = 0
    await send_each(mail, batch[4:])

    assert len(opened_by_burst) == 4  # no session is shared by two senders at once
    later = set(peers(mail_server)[4:])
    assert len(later) == 1 and later <= opened_by_burst  # only 2 were kept; one serves on
    assert statuses(sessions) == ["sent"] * 8
    await mail.aclose()


async def test_a_session_is_closed_after_its_message_cap(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings, messages_per_connection=2)
    await send_each(mail, requests(5))

    sessions_used = peers(mail_server)
    assert len(set(sessions_used)) == 3
    assert sessions_used[0] == sessions_used[1] != sessions_used[2] == sessions_used[3]
    await mail.aclose()


async def test_an_idle_session_past_its_time_is_not_reused(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings, idle_seconds=0.2)
    first, second, third = requests(3)
    await send(mail, first)
    await send(mail, second)
    await asyncio.sleep(0.4)
    await send(mail, third)

    used = peers(mail_server)
    assert used[0] == used[1] != used[2]
    await mail.aclose()


async def test_a_session_the_server_dropped_is_replaced_after_a_check(
    sessions: sessionmaker[Session],
    smtp_settings: SmtpSettings,
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(infra.smtp, "CHECK_AFTER", 0.0)  # check every kept session
    mail = mail_activities(sessions, smtp_settings)
    first, second = requests(2)
    await send(mail, first)
    mail_server.stop()  # the server restarts: the kept session is dead
    mail_server.start()

    result = await send(mail, second)

    assert result.sent == 1
    assert len(mail_server.received) == 2
    assert mail_server.received[0].peer != mail_server.received[1].peer
    assert statuses(sessions) == ["sent", "sent"]
    await mail.aclose()


async def test_a_session_dropped_unchecked_loses_and_doubles_nothing(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings)
    first, second = requests(2)
    await send(mail, first)
    mail_server.stop()
    mail_server.start()

    # Used again within CHECK_AFTER, the session is not checked. Either the client has already
    # seen the server hang up (the session is discarded and a new one opened) or the send
    # itself finds out: then the attempt fails as retryable, the message stays pending and the
    # retry sends it. Both ways: each message once.
    try:
        await send(mail, second)
    except ApplicationError as failed:
        assert failed.type == "SmtpUnavailable"
        assert not failed.non_retryable
        assert statuses(sessions) == ["pending", "sent"]
        result = await send(mail, second)  # the retry opens a new session
        assert result.sent == 1
    assert statuses(sessions) == ["sent", "sent"]
    assert len(mail_server.received) == 2
    assert len({m.data for m in mail_server.received}) == 2
    await mail.aclose()


async def test_closing_quits_the_kept_sessions(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings)
    await send(mail, requests(1)[0])
    assert mail._connections.idle == 1

    await mail.aclose()

    assert mail._connections.idle == 0


async def test_a_send_cut_short_hangs_up_instead_of_waiting_for_quit(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = mail_activities(sessions, smtp_settings)  # 5 s SMTP timeout in these tests
    mail_server.handler.data_delay = 3.0
    sending = asyncio.create_task(send(mail, requests(1)[0]))
    await asyncio.sleep(0.5)  # the message is out; the client waits for the server's reply

    began = time.monotonic()
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending

    assert time.monotonic() - began < 1.0  # no QUIT into a conversation that broke off
    assert mail._connections.idle == 0
    assert statuses(sessions) == ["pending"]  # not marked sent: a retry will send it
