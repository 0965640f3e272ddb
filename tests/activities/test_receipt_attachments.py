"""The receipt mail lists the submission's attachments: an uploaded file's name, size and
SHA-256; any other reference as it is. Through a real SMTP server and a real SQLite database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from activity_helpers import FOCAL, TENANT, MailServer, demo_task, notification
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.mail import MailActivities
from activities.models import NotificationKind, NotificationRequest
from activities.templates import Attachment, Recipient, render, size_text
from agreements.models import RecipientRole
from infra.db import SubmissionRow, UploadRow
from infra.settings import SmtpSettings

TASK_ID = demo_task().task_id
PDF = b"%PDF-1.7 bao cao 6 thang\n" * 4000
DIGEST = hashlib.sha256(PDF).hexdigest()
OTHER = hashlib.sha256(b"not stored").hexdigest()
HOSTILE = "<script>alert(1)</script>&.pdf"


@pytest.fixture
def mail(sessions: sessionmaker[Session], smtp_settings: SmtpSettings) -> MailActivities:
    return MailActivities(sessions, smtp_settings)


def store(sessions: sessionmaker[Session], attachments: list[str], *uploads: UploadRow) -> None:
    now = datetime(2025, 5, 10, 2, 0, tzinfo=UTC)
    with sessions() as session:
        session.add(
            SubmissionRow(
                task_id=TASK_ID,
                agreement_id=demo_task().agreement_id,
                tenant=TENANT,
                agency="STP",
                officer_id=FOCAL.id,
                submitted_at=now,
                handled_at=now,
                late=False,
                summary="Đã hoàn thành",
                indicators={},
                attachments=attachments,
                created_at=now,
            )
        )
        session.add_all(uploads)
        session.commit()


def upload(
    name: str, *, digest: str = DIGEST, size: int = len(PDF), tenant: str = TENANT
) -> UploadRow:
    return UploadRow(
        sha256=digest,
        size=size,
        content_type="application/pdf",
        name=name,
        tenant=tenant,
        officer_id=FOCAL.id,
        task_id=TASK_ID,
        at=datetime(2025, 5, 10, 1, 59, tzinfo=UTC),
    )


def receipt() -> NotificationRequest:
    return notification(NotificationKind.RECEIPT, step=None, late=False, closing=True)


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def test_the_receipt_lists_the_uploaded_file_with_its_size_and_digest(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    # Another tenant's upload of the same file for a task of the same ID is not this one.
    store(
        sessions,
        [f"sha256:{DIGEST}", "https://vb.quangbinh.gov.vn/bao-cao.pdf", "phu-luc.xlsx"],
        upload("Báo cáo 6 tháng.pdf"),
        upload("khac-tinh.pdf", tenant="nghe-an"),
    )

    result = await ActivityEnvironment().run(mail.send_notification, receipt())

    assert result.sent == 1
    [received] = mail_server.received
    message = received.parsed()
    assert message["X-Accord-Kind"] == "receipt"
    size = size_text(len(PDF), "vi")
    assert size == "97,7 KB"
    line = f"Tệp đính kèm: Báo cáo 6 tháng.pdf ({size}, SHA-256 {DIGEST})"
    text, html = body(message, "plain"), body(message, "html")
    assert line in text
    assert line in html
    assert "Tệp đính kèm: https://vb.quangbinh.gov.vn/bao-cao.pdf" in text
    assert "Tệp đính kèm: phu-luc.xlsx" in text
    assert "Tệp đính kèm: phu-luc.xlsx" in html
    assert "khac-tinh.pdf" not in text
    # In the submission's order.
    assert text.index(DIGEST) < text.index("https://vb") < text.index("phu-luc.xlsx")


async def test_a_digest_with_no_stored_file_and_a_hostile_name_are_shown_safely(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    store(sessions, [f"sha256:{DIGEST}", f"sha256:{OTHER}"], upload(HOSTILE, size=512))

    await ActivityEnvironment().run(mail.send_notification, receipt())

    [received] = mail_server.received
    message = received.parsed()
    text, html = body(message, "plain"), body(message, "html")
    # The plain text is never escaped; the HTML part always is.
    assert f"Tệp đính kèm: {HOSTILE} (512 B, SHA-256 {DIGEST})" in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;.pdf (512 B, SHA-256 " in html
    assert f"Tệp đính kèm: sha256:{OTHER}" in text


async def test_a_receipt_without_attachments_lists_none(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    store(sessions, [])

    await ActivityEnvironment().run(mail.send_notification, receipt())

    [received] = mail_server.received
    assert "Tệp đính kèm" not in body(received.parsed(), "plain")


def test_the_english_receipt_lists_them_too() -> None:
    recipient = Recipient(
        officer_id=FOCAL.id,
        name=FOCAL.name,
        email=FOCAL.email,
        role=RecipientRole.FOCAL_POINT,
        locale="en",
    )
    attachments = [
        Attachment(f"sha256:{DIGEST}", "report.pdf", 1536 * 1024, DIGEST),
        Attachment("annex.docx"),
    ]

    rendered = render(
        receipt(), recipient=recipient, agency_names={"STP": "Sở Tư pháp"}, attachments=attachments
    )

    assert f"Attachment: report.pdf (1.5 MB, SHA-256 {DIGEST})" in rendered.text
    assert "Attachment: annex.docx" in rendered.text
    assert f"Attachment: report.pdf (1.5 MB, SHA-256 {DIGEST})" in rendered.html


@pytest.mark.parametrize(
    ("size", "vi", "en"),
    [(0, "0 B", "0 B"), (1023, "1.023 B", "1,023 B"), (1024, "1 KB", "1 KB"),
     (20 * 1024 * 1024, "20 MB", "20 MB"), (1536 * 1024, "1,5 MB", "1.5 MB")],
)  # fmt: skip
def test_sizes_read_as_people_read_them(size: int, vi: str, en: str) -> None:
    assert (size_text(size, "vi"), size_text(size, "en")) == (vi, en)
