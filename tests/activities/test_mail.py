"""The mail a user receives, through a real SMTP server and a real SQLite outbox."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from activity_helpers import (
    ADMIN,
    AGGREGATOR,
    FOCAL,
    HEAD,
    LEADER,
    ZONE,
    MailServer,
    demo_directory,
    demo_task,
    notification,
    other_province_directory,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mail import MailActivities, delivery_failure_key
from activities.models import (
    AuditEntry,
    NotificationKind,
    NotificationRequest,
    NotificationResult,
)
from activities.templates import PACKAGE_TEMPLATES, Recipient, package_templates, render
from agreements.models import Officer, OfficerRole, RecipientRole
from infra.db import AuditRow, OutboxRow, upsert_directory
from infra.settings import Settings, SmtpSettings
from worker import load_mail_templates

TITLE = "Báo cáo kết quả công tác dân vận 6 tháng"
TASK_ID = "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"


@pytest.fixture
def mail(sessions: sessionmaker[Session], smtp_settings: SmtpSettings) -> MailActivities:
    return MailActivities(sessions, smtp_settings)


async def send(mail: MailActivities, request: NotificationRequest) -> NotificationResult:
    return await ActivityEnvironment().run(mail.send_notification, request)


def outbox(sessions: sessionmaker[Session], request: NotificationRequest) -> dict[str, OutboxRow]:
    return outbox_by_key(sessions, request.business_key)


def outbox_by_key(sessions: sessionmaker[Session], key: str) -> dict[str, OutboxRow]:
    with sessions() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.business_key == key))
        return {row.recipient_email: row for row in rows}


def all_outbox(sessions: sessionmaker[Session]) -> list[OutboxRow]:
    with sessions() as session:
        return list(session.scalars(select(OutboxRow)))


def audit_rows(sessions: sessionmaker[Session]) -> dict[str, AuditRow]:
    """Every audit row by event key; a key written twice would fail the unique constraint."""
    with sessions() as session:
        return {row.event_key: row for row in session.scalars(select(AuditRow))}


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


BOTH_AT_STP = [RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY]


async def test_reminder_reaches_the_focal_point(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification()

    result = await send(mail, request)

    assert result == NotificationResult(recipients=1, sent=1, already_sent=0, failed_permanently=0)
    [received] = mail_server.received
    assert received.rcpt_tos == [FOCAL.email]
    assert received.mail_from == "accord@accord.example"
    message = received.parsed()
    assert message["Subject"] == (f"[Accord] Nhắc hạn: {TITLE} – Sở Tư pháp – hạn trước 15/05/2025")
    assert message["To"].addresses[0].display_name == "Nguyễn Thị Hoa"
    assert message["From"].addresses[0].display_name == "Accord Quảng Bình"
    assert message["X-Accord-Key"] == request.business_key
    assert message["X-Accord-Task"] == TASK_ID
    assert message["X-Accord-Agency"] == "STP"
    assert message["X-Accord-Kind"] == "reminder"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime == request.scheduled_at

    text = body(message, "plain")
    assert "Kính gửi đồng chí Nguyễn Thị Hoa," in text
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text
    assert "Cơ quan thực hiện: Sở Tư pháp (STP)" in text
    assert "Cách nộp: gửi báo cáo cho Sở Nội vụ (SNV), cơ quan tiếp nhận, tổng hợp" in text
    assert "accord submit" not in text
    html = body(message, "html")
    assert "Kính gửi đồng chí Nguyễn Thị Hoa," in html
    assert "Nhắc hạn: Sở Tư pháp cần nộp báo cáo" in html
    assert "trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in html

    row = outbox(sessions, request)[FOCAL.email]
    assert row.status == "sent"
    assert row.attempts == 1
    assert row.recipient_officer_id == FOCAL.id
    assert row.subject == message["Subject"]
    assert row.message_id == message["Message-ID"]
    assert row.sent_at is not None
    with sessions() as session:
        audit = session.scalar(
            select(AuditRow).where(AuditRow.event_key == f"{request.business_key}/sent")
        )
    assert audit is not None
    assert audit.detail["officers"] == FOCAL.id
    assert audit.task_id == TASK_ID


async def test_a_retry_sends_nothing_twice(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)

    first = await send(mail, request)
    retry = await send(mail, request)

    assert first == NotificationResult(recipients=2, sent=2, already_sent=0, failed_permanently=0)
    assert retry == NotificationResult(recipients=2, sent=0, already_sent=2, failed_permanently=0)
    assert len(mail_server.received_by(FOCAL.email)) == 1
    assert len(mail_server.received_by(HEAD.email)) == 1
    assert len(mail_server.received) == 2
    with sessions() as session:
        audits = session.scalars(select(AuditRow)).all()
    assert len(audits) == 1


async def test_temporary_refusal_is_retried_until_delivered(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.defer_everyone = True

    with pytest.raises(ApplicationError) as raised:
        await send(mail, request)

    assert raised.value.type == "SmtpDeferred"
    assert not raised.value.non_retryable
    assert "@" not in str(raised.value)
    assert mail_server.received == []
    rows = outbox(sessions, request)
    assert {row.status for row in rows.values()} == {"pending"}
    assert {row.attempts for row in rows.values()} == {1}
    assert all("451" in (row.last_error or "") for row in rows.values())

    mail_server.handler.defer_everyone = False
    result = await send(mail, request)
    again = await send(mail, request)

    assert result == NotificationResult(recipients=2, sent=2, already_sent=0, failed_permanently=0)
    assert again.sent == 0
    assert len(mail_server.received_by(FOCAL.email)) == 1
    assert len(mail_server.received_by(HEAD.email)) == 1
    assert {row.attempts for row in outbox(sessions, request).values()} == {2}


async def test_permanent_refusal_does_not_block_others_and_is_reported_to_the_admin(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.reject.add(FOCAL.email)
    mail_server.handler.reject_reply = (
        f"550 5.1.1 <{FOCAL.email}>: Recipient address rejected & unknown"
    )

    result = await send(mail, request)

    assert result == NotificationResult(recipients=2, sent=1, already_sent=0, failed_permanently=1)
    assert mail_server.received_by(FOCAL.email) == []
    assert len(mail_server.received_by(HEAD.email)) == 1
    rows = outbox(sessions, request)
    assert rows[FOCAL.email].status == "failed"
    assert "550" in (rows[FOCAL.email].last_error or "")
    assert rows[HEAD.email].status == "sent"

    [notice] = mail_server.received_by(ADMIN.email)
    assert notice.rcpt_tos == [ADMIN.email]
    message = notice.parsed()
    assert message["Subject"] == f"[Accord] Không gửi được thư: {TITLE} – Sở Tư pháp"
    assert message["To"].addresses[0].display_name == "Hoàng Thị Mai"
    assert message["X-Accord-Kind"] == "delivery_failed"
    notice_key = delivery_failure_key(request.business_key, FOCAL.email)
    assert message["X-Accord-Key"] == notice_key
    assert message["X-Accord-Task"] == TASK_ID
    # The refused address is in no header, raw or decoded, nor in the key.
    raw_headers = notice.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "@stp.quangbinh.example" not in raw_headers
    for name, value in message.items():
        assert FOCAL.email not in str(value), name
    assert "@" not in notice_key
    text = body(message, "plain")
    assert "Kính gửi đồng chí Hoàng Thị Mai," in text
    assert "Máy chủ thư đã từ chối vĩnh viễn thư nhắc hạn gửi đồng chí Nguyễn Thị Hoa" in text
    assert "Cán bộ không nhận được thư: Nguyễn Thị Hoa (stp-dau-moi)" in text
    assert "Trả lời của máy chủ thư: 550" in text
    html = body(message, "html")
    assert f"&lt;{FOCAL.email}&gt;: Recipient address rejected &amp; unknown" in html
    assert f"<{FOCAL.email}>" not in html

    notice_row = outbox_by_key(sessions, notice_key)[ADMIN.email]
    assert notice_row.status == "sent"
    assert notice_row.kind == "delivery_failed"
    assert notice_row.recipient_officer_id == ADMIN.id
    assert notice_row.subject == message["Subject"]
    sent_audit = audit_rows(sessions)[f"{request.business_key}/sent"]
    assert sent_audit.detail["refused"] == FOCAL.id
    assert "refusal_not_reported" not in sent_audit.detail

    # A retry neither re-sends, nor re-tries the refused address, nor reports it again.
    retry = await send(mail, request)
    assert retry == NotificationResult(recipients=2, sent=0, already_sent=1, failed_permanently=1)
    assert len(mail_server.received) == 2
    assert len(mail_server.received_by(ADMIN.email)) == 1


async def test_a_deferred_failure_notice_is_sent_once_by_the_retry(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.reject.add(FOCAL.email)
    mail_server.handler.defer.add(ADMIN.email)

    # The notification itself went out, but the admin's server said "later": retry.
    with pytest.raises(ApplicationError) as raised:
        await send(mail, request)
    assert raised.value.type == "SmtpDeferred"
    assert len(mail_server.received_by(HEAD.email)) == 1
    notice_key = delivery_failure_key(request.business_key, FOCAL.email)
    assert outbox_by_key(sessions, notice_key)[ADMIN.email].status == "pending"

    mail_server.handler.defer.clear()
    retry = await send(mail, request)
    again = await send(mail, request)

    assert retry == NotificationResult(recipients=2, sent=0, already_sent=1, failed_permanently=1)
    assert again == retry
    [notice] = mail_server.received_by(ADMIN.email)
    message = notice.parsed()
    assert message["Subject"] == f"[Accord] Không gửi được thư: {TITLE} – Sở Tư pháp"
    text = body(message, "plain")
    assert "Cán bộ không nhận được thư: Nguyễn Thị Hoa (stp-dau-moi)" in text
    assert "Trả lời của máy chủ thư: 550 5.1.1 No such mailbox here" in text
    assert len(mail_server.received_by(HEAD.email)) == 1
    assert mail_server.received_by(FOCAL.email) == []
    assert audit_rows(sessions)[f"{request.business_key}/sent"].detail["refused"] == FOCAL.id


async def test_refusal_is_reported_only_to_admins_of_the_owing_province(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    english_admin = ADMIN.model_copy(update={"locale": "en"})
    with sessions() as session:
        upsert_directory(
            session, directory=demo_directory([FOCAL, HEAD, AGGREGATOR, LEADER, english_admin])
        )
        upsert_directory(session, directory=other_province_directory())
    mail_server.handler.reject.add(HEAD.email)

    result = await send(mail, notification(roles=BOTH_AT_STP))

    assert result.failed_permanently == 1
    assert mail_server.received_by("nam.lv@snv.nghean.example") == []
    [notice] = mail_server.received_by(ADMIN.email)
    message = notice.parsed()
    assert message["Subject"] == f"[Accord] Undeliverable: {TITLE} – Sở Tư pháp"
    text = body(message, "plain")
    assert "Dear Hoàng Thị Mai," in text
    assert "permanently refused the reminder to Trần Văn Bình (officer ID: stp-giam-doc)" in text


async def test_refusal_without_an_admin_is_logged_and_audited(
    mail: MailActivities,
    mail_server: MailServer,
    sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sessions() as session:
        upsert_directory(session, directory=demo_directory([FOCAL, HEAD, AGGREGATOR, LEADER]))
        # An admin of another province sharing the database is not this province's admin.
        upsert_directory(session, directory=other_province_directory())
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.reject.add(FOCAL.email)

    result = await send(mail, request)

    assert result == NotificationResult(recipients=2, sent=1, already_sent=0, failed_permanently=1)
    assert [m.rcpt_tos for m in mail_server.received] == [[HEAD.email]]
    assert "no active admin to report the refusal for officer stp-dau-moi" in caplog.text
    detail = audit_rows(sessions)[f"{request.business_key}/sent"].detail
    assert detail["refused"] == FOCAL.id
    assert "no active admin in Quảng Bình" in detail["refusal_not_reported"]
    assert FOCAL.id in detail["refusal_not_reported"]

    # Known on a retry too, from the outbox alone.
    retry = await send(mail, request)
    assert retry.failed_permanently == 1
    assert len(mail_server.received) == 1


async def test_a_refused_failure_notice_is_not_reported_again(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.reject.update({FOCAL.email, ADMIN.email})

    result = await send(mail, request)
    retry = await send(mail, request)

    assert result == NotificationResult(recipients=2, sent=1, already_sent=0, failed_permanently=1)
    assert retry == NotificationResult(recipients=2, sent=0, already_sent=1, failed_permanently=1)
    assert [m.rcpt_tos for m in mail_server.received] == [[HEAD.email]]
    notice_key = delivery_failure_key(request.business_key, FOCAL.email)
    assert outbox_by_key(sessions, notice_key)[ADMIN.email].status == "failed"
    assert delivery_failure_key(notice_key, ADMIN.email) not in {
        row.business_key for row in all_outbox(sessions)
    }


async def test_one_deferred_recipient_is_retried_alone(
    mail: MailActivities, mail_server: MailServer
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.defer.add(HEAD.email)

    with pytest.raises(ApplicationError):
        await send(mail, request)
    assert len(mail_server.received_by(FOCAL.email)) == 1

    mail_server.handler.defer.clear()
    result = await send(mail, request)

    assert result == NotificationResult(recipients=2, sent=1, already_sent=1, failed_permanently=0)
    assert len(mail_server.received_by(FOCAL.email)) == 1
    assert len(mail_server.received_by(HEAD.email)) == 1


async def test_server_down_is_retryable(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification()
    mail_server.stop()

    with pytest.raises(ApplicationError) as raised:
        await send(mail, request)

    assert raised.value.type == "SmtpUnavailable"
    assert not raised.value.non_retryable
    row = outbox(sessions, request)[FOCAL.email]
    assert row.status == "pending"
    assert row.attempts == 1
    with sessions() as session:
        assert session.scalars(select(AuditRow)).all() == []

    mail_server.start()
    result = await send(mail, request)

    assert result.sent == 1
    assert len(mail_server.received_by(FOCAL.email)) == 1


async def test_recipients_are_resolved_at_send_time(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    successor = Officer(
        id="stp-dau-moi-moi",
        name="Võ Thị Lan",
        email="lan.vt@stp.quangbinh.example",
        agency="STP",
        roles=[OfficerRole.FOCAL_POINT],
    )
    first = notification(step=1)
    second = notification(step=2, scheduled_at=datetime(2025, 5, 12, 8, 0, tzinfo=ZONE))

    await send(mail, first)
    with sessions() as session:
        upsert_directory(session, directory=demo_directory([successor, HEAD, AGGREGATOR, LEADER]))
    await send(mail, second)

    [to_former] = mail_server.received_by(FOCAL.email)
    [to_successor] = mail_server.received_by(successor.email)
    assert to_former.parsed()["X-Accord-Key"] == first.business_key
    assert to_successor.parsed()["X-Accord-Key"] == second.business_key
    assert "Kính gửi đồng chí Võ Thị Lan," in body(to_successor.parsed(), "plain")


async def test_escalation_reaches_head_and_leadership(
    mail: MailActivities, mail_server: MailServer
) -> None:
    request = notification(
        NotificationKind.ESCALATION,
        [RecipientRole.HEAD_OF_AGENCY, RecipientRole.PROVINCIAL_LEADERSHIP],
        step=2,
        scheduled_at=datetime(2025, 5, 22, 8, 0, tzinfo=ZONE),
    )

    result = await send(mail, request)

    assert result.recipients == 2
    [to_head] = mail_server.received_by(HEAD.email)
    [to_leader] = mail_server.received_by(LEADER.email)
    subject = f"[Accord] Quá hạn (bậc 2): {TITLE} – Sở Tư pháp – hạn trước 15/05/2025"
    assert to_head.parsed()["Subject"] == subject
    assert to_leader.parsed()["Subject"] == subject
    assert "Kính báo cáo để đồng chí nắm và chỉ đạo." in body(to_leader.parsed(), "plain")
    assert "accord submit" not in body(to_leader.parsed(), "plain")


async def test_receipt_to_the_aggregator(mail: MailActivities, mail_server: MailServer) -> None:
    request = notification(
        NotificationKind.RECEIPT, [RecipientRole.AGGREGATOR], step=None, late=True
    )

    await send(mail, request)

    [received] = mail_server.received_by(AGGREGATOR.email)
    message = received.parsed()
    assert message["Subject"] == f"[Accord] Đã nhận báo cáo: {TITLE} – Sở Tư pháp – quá hạn"
    assert "Thông báo để đồng chí nắm, theo dõi và tổng hợp." in body(message, "plain")


async def test_one_message_per_address(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    # The same person is focal point and head: one message, not two.
    both = Officer(
        id="stp-kiem-nhiem",
        name="Đỗ Văn An",
        email="an.dv@stp.quangbinh.example",
        agency="STP",
        roles=[OfficerRole.FOCAL_POINT, OfficerRole.HEAD],
    )
    with sessions() as session:
        upsert_directory(session, directory=demo_directory([both, AGGREGATOR, LEADER]))

    result = await send(mail, notification(roles=BOTH_AT_STP))

    assert result.recipients == 1
    assert len(mail_server.received) == 1


async def test_hostile_names_cannot_add_recipients_or_markup(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    hostile = Officer(
        id="stp-dau-moi",
        name='Hoa "QLVB", <b>Phòng</b>\r\nBcc: evil@x.example',
        email=FOCAL.email,
        agency="STP",
        roles=[OfficerRole.FOCAL_POINT],
    )
    with sessions() as session:
        upsert_directory(
            session,
            directory=demo_directory(
                [hostile, HEAD, AGGREGATOR, LEADER],
                stp_name="Sở <Tư pháp> & Co\r\nBcc: evil@x.example",
            ),
        )
    task = demo_task(title='Báo cáo <script>alert("x")</script>\r\nBcc: evil@x.example')

    await send(mail, notification(task=task))

    [received] = mail_server.received
    assert received.rcpt_tos == [FOCAL.email]
    message = received.parsed()
    assert message["Bcc"] is None
    assert message["Cc"] is None
    assert [a.addr_spec for a in message["To"].addresses] == [FOCAL.email]
    assert "\n" not in message["Subject"]
    assert "\r" not in message["Subject"]
    raw_headers = received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "\nBcc:" not in raw_headers
    html = body(message, "html")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Phòng&lt;/b&gt;" in html
    assert "Sở &lt;Tư pháp&gt; &amp; Co" in html


async def test_english_officer_gets_english(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    english = FOCAL.model_copy(update={"locale": "en"})
    with sessions() as session:
        upsert_directory(session, directory=demo_directory([english, HEAD, AGGREGATOR, LEADER]))

    await send(mail, notification())

    message = mail_server.received_by(FOCAL.email)[0].parsed()
    assert message["Subject"] == f"[Accord] Reminder: {TITLE} – Sở Tư pháp – due before 15/05/2025"
    text = body(message, "plain")
    assert "Dear Nguyễn Thị Hoa," in text
    assert "Due: before 15/05/2025 (last day: 14/05/2025)" in text
    assert "How to submit: send the report to Sở Nội vụ (SNV), the receiving agency" in text


PACKAGE_SENTENCE = "Còn {{ w.days(days_left) }} đến hạn."
PROVINCE_SENTENCE = (
    'Còn {{ w.days(days_left) }} đến hạn; nộp qua "Hệ thống QLVB" <qlvb.quangbinh.example>.'
)


async def test_a_province_rewords_one_sentence_of_the_reminder(
    tmp_path: Path,
    sessions: sessionmaker[Session],
    smtp_settings: SmtpSettings,
    mail_server: MailServer,
) -> None:
    # What README "Rewording mail" tells an admin: copy the file, change the sentence, restart.
    data = tmp_path / "data"
    original = (PACKAGE_TEMPLATES / "vi" / "reminder.txt.j2").read_text(encoding="utf-8")
    assert PACKAGE_SENTENCE in original
    copy = data / "mail_templates" / "vi" / "reminder.txt.j2"
    copy.parent.mkdir(parents=True)
    copy.write_text(original.replace(PACKAGE_SENTENCE, PROVINCE_SENTENCE), encoding="utf-8")
    templates = load_mail_templates(Settings(data_dir=data))
    mail = MailActivities(sessions, smtp_settings, templates=templates)

    await send(mail, notification())
    await send(mail, notification(NotificationKind.ESCALATION, BOTH_AT_STP, step=2, late=True))

    [reminder] = [
        m.parsed() for m in mail_server.received if "reminder" in m.parsed()["X-Accord-Key"]
    ]
    changed = 'Còn 6 ngày đến hạn; nộp qua "Hệ thống QLVB" <qlvb.quangbinh.example>.'
    text = body(reminder, "plain")
    assert changed in text
    assert "Còn 6 ngày đến hạn.\n" not in text
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text  # the rest stays
    html = body(reminder, "html")
    assert (
        "<p>Còn 6 ngày đến hạn; nộp qua &#34;Hệ thống QLVB&#34; &lt;qlvb.quangbinh.example&gt;.</p>"
    ) in html
    assert "<qlvb" not in html
    escalations = [m.parsed() for m in mail_server.received_by(HEAD.email)]
    assert escalations and all(m["X-Accord-Kind"] == "escalation" for m in escalations)
    assert "QLVB" not in body(escalations[0], "plain")

    # Every other kind, and the English reminder, read exactly as the package's.
    for kind in NotificationKind:
        if kind in (NotificationKind.DELIVERY_FAILED, NotificationKind.NO_RECIPIENT):
            continue
        for locale in ("vi", "en"):
            if (kind, locale) == (NotificationKind.REMINDER, "vi"):
                continue
            request = notification(kind, step=2, late=True, approved=True)
            reader = Recipient(
                FOCAL.id, FOCAL.name, FOCAL.email, RecipientRole.FOCAL_POINT, locale=locale
            )
            names = {"STP": "Sở Tư pháp", "SNV": "Sở Nội vụ"}
            province = render(request, recipient=reader, agency_names=names, templates=templates)
            package = render(
                request, recipient=reader, agency_names=names, templates=package_templates()
            )
            assert province == package, (kind, locale)


async def test_no_recipient_is_told_to_the_admins_once(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    # UBND_TINH has no focal point, and a task without a receiving agency has no aggregator.
    request = notification(
        NotificationKind.ESCALATION,
        roles=[RecipientRole.FOCAL_POINT, RecipientRole.AGGREGATOR],
        step=2,
        task=demo_task(agency="UBND_TINH", recipient=None),
    )

    result = await send(mail, request)

    assert result == NotificationResult(
        recipients=0, sent=0, already_sent=0, failed_permanently=0, admins_told=1
    )
    [notice] = mail_server.received
    assert notice.rcpt_tos == [ADMIN.email]
    message = notice.parsed()
    assert message["X-Accord-Kind"] == "no_recipient"
    assert message["X-Accord-Key"] == f"{request.business_key}/no-recipient"
    assert message["X-Accord-Task"] == TASK_ID
    assert message["Subject"] == (
        "[Accord] Không có người nhận: thông báo quá hạn (bậc 2) – "
        f"{TITLE} – Ủy ban nhân dân tỉnh Quảng Bình"
    )
    text = body(message, "plain")
    assert "Kính gửi đồng chí Hoàng Thị Mai," in text
    assert (
        "không cán bộ nào đang giữ vai trò cán bộ đầu mối (focal_point), "
        "đầu mối cơ quan tiếp nhận (aggregator)." in text
    )
    assert f"Mã nhiệm vụ: {TASK_ID}" in text
    row = outbox_by_key(sessions, f"{request.business_key}/no-recipient")[ADMIN.email]
    assert (row.status, row.kind, row.recipient_officer_id) == ("sent", "no_recipient", ADMIN.id)
    audit = audit_rows(sessions)[f"{request.business_key}/sent"]
    assert audit.action == "notification_no_recipient"
    assert audit.detail["admins_told"] == "1"
    assert "focal_point, aggregator" in audit.detail["no_recipient"]

    # A retry (the workflow's durable path after a lost result) tells nobody twice.
    retry = await send(mail, request)
    assert retry == result
    assert len(mail_server.received) == 1


async def test_no_recipient_notice_deferred_is_sent_on_retry(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=[RecipientRole.AGGREGATOR], task=demo_task(recipient=None))
    mail_server.handler.defer.add(ADMIN.email)

    with pytest.raises(ApplicationError) as raised:
        await send(mail, request)
    assert raised.value.type == "SmtpDeferred"
    mail_server.handler.defer.clear()
    result = await send(mail, request)

    assert result.recipients == 0
    assert result.admins_told == 1
    assert [m.rcpt_tos for m in mail_server.received] == [[ADMIN.email]]


async def test_no_recipient_without_an_admin_is_audited(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    with sessions() as session:
        upsert_directory(session, directory=demo_directory([FOCAL, HEAD, AGGREGATOR, LEADER]))
        session.commit()
    request = notification(roles=[RecipientRole.AGGREGATOR], task=demo_task(recipient=None))

    result = await send(MailActivities(sessions, smtp_settings), request)

    assert (result.recipients, result.admins_told) == (0, 0)
    assert mail_server.received == []
    assert audit_rows(sessions)[f"{request.business_key}/sent"].detail["admins_told"] == "0"


# --------------------------------------------------------------------------------------------
# Audit entries handed over by the workflow


def workflow_entries(*actions: str) -> list[AuditEntry]:
    return [
        AuditEntry(
            event_key=f"{TASK_ID}/{action}/{number}/0",
            at=datetime(2025, 5, 15, 0, 0, tzinfo=ZONE),
            agreement_id="289-kh-ubnd-2025",
            task_id=TASK_ID,
            actor="system",
            action=action,
            detail={"state": action},
        )
        for number, action in enumerate(actions)
    ]


async def test_audit_entries_are_written_once_across_retries(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    entries = workflow_entries("overdue", "escalated")
    request = notification(NotificationKind.ESCALATION, roles=BOTH_AT_STP, audit=entries)
    mail_server.stop()

    with pytest.raises(ApplicationError):
        await send(mail, request)
    mail_server.start()
    first = await send(mail, request)
    retry = await send(mail, request)

    assert first.sent == 2
    assert retry.already_sent == 2
    audits = audit_rows(sessions)
    assert set(audits) == {f"{request.business_key}/sent", *(e.event_key for e in entries)}
    overdue = audits[entries[0].event_key]
    assert overdue.action == "overdue"
    assert overdue.detail == {"state": "overdue"}
    assert overdue.at == entries[0].at
    assert overdue.task_id == TASK_ID
    assert audits[f"{request.business_key}/sent"].action == "notification_sent"


class DiesBeforeAudit(MailActivities):
    def _audit(self, *_: object) -> None:
        raise RuntimeError("worker killed")


async def test_audit_entries_written_when_everything_was_sent_before(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    entries = workflow_entries("overdue")
    request = notification(roles=BOTH_AT_STP, audit=entries)

    # A worker sends everything, then dies before writing its audit rows.
    with pytest.raises(RuntimeError):
        await send(DiesBeforeAudit(sessions, smtp_settings), request)
    assert len(mail_server.received) == 2
    assert audit_rows(sessions) == {}

    # The retry has nothing left to send and ends early: the entries are not dropped.
    retry = await send(MailActivities(sessions, smtp_settings), request)

    assert retry == NotificationResult(recipients=2, sent=0, already_sent=2, failed_permanently=0)
    assert len(mail_server.received) == 2
    audits = audit_rows(sessions)
    assert set(audits) == {f"{request.business_key}/sent", entries[0].event_key}
    assert audits[f"{request.business_key}/sent"].detail["sent"] == "2"


async def test_audit_entries_written_with_no_recipient(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    entries = workflow_entries("overdue", "escalated")
    request = notification(
        roles=[RecipientRole.AGGREGATOR],
        task=demo_task(recipient=None),
        audit=entries,
    )

    for _ in range(2):
        result = await send(mail, request)
        assert (result.recipients, result.admins_told) == (0, 1)

    assert set(audit_rows(sessions)) == {
        f"{request.business_key}/sent",
        *(entry.event_key for entry in entries),
    }
    assert [m.rcpt_tos for m in mail_server.received] == [[ADMIN.email]]
    assert [row.business_key for row in all_outbox(sessions)] == [
        f"{request.business_key}/no-recipient"
    ]


# --------------------------------------------------------------------------------------------
# Heartbeats


async def test_regular_activity_heartbeats_while_it_runs(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=0.02))
    mail_server.handler.data_delay = 0.1
    beats: list[float] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(time.monotonic())

    began = time.monotonic()
    result = await env.run(mail.send_notification, notification(roles=BOTH_AT_STP))
    ended = time.monotonic()
    after = len(beats)
    await asyncio.sleep(0.1)

    assert result.sent == 2
    assert after >= 5
    assert all(began <= beat <= ended for beat in beats)
    assert len(beats) == after, "heartbeats went on after the activity returned"


async def test_heartbeats_stop_when_the_activity_fails(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=0.02))
    mail_server.handler.data_delay = 0.1
    mail_server.handler.defer_everyone = True
    beats: list[float] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(time.monotonic())

    with pytest.raises(ApplicationError):
        await env.run(mail.send_notification, notification())
    after = len(beats)
    await asyncio.sleep(0.1)

    assert after >= 1
    assert len(beats) == after


async def test_local_activity_does_not_heartbeat(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=0.02))
    mail_server.handler.data_delay = 0.1
    beats: list[float] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=True)
    env.on_heartbeat = lambda *details: beats.append(time.monotonic())

    result = await env.run(mail.send_notification, notification(roles=BOTH_AT_STP))

    assert result.sent == 2
    assert beats == []
