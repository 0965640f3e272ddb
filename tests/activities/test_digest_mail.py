"""The digest message itself (activities/digest.py, the digest templates, compose_digest): its
English wording, every status's detail, the escaping of the HTML part and the MIME structure a
mail client reads. The whole path (workflow, outbox, SMTP) is tests/workflows/test_digest.py."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from activity_helpers import AGGREGATOR, LEADER, MailServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.digest import CHART_CID, DigestActivities, digest_variables, xlsx_name
from activities.mail import MailActivities
from activities.models import AgreementFacts, DigestRequest, ObligationFact, TaskFact, TaskState
from activities.templates import Locale, MailPart, Recipient, compose_digest, package_templates
from agreements.models import Deliverable, RecipientRole
from infra.db import AuditRow, OutboxRow
from infra.settings import SmtpSettings
from reports.model import (
    AgencyCompliance,
    ComplianceStatus,
    ComplianceTotals,
    ConsolidatedReport,
    TaskCompliance,
)

S = ComplianceStatus
DUE = datetime(2025, 7, 14, 17, 0, tzinfo=UTC)  # before 15/07/2025, Hà Nội time
HOSTILE = 'Sở <b>"Thử"</b> & Co'


def _task(agency: str, name: str, status: ComplianceStatus, **fields: Any) -> TaskCompliance:
    return TaskCompliance(
        task_id=f"a/bao-cao/{agency}/2025-q2",
        obligation_id="bao-cao",
        item_number="1",
        obligation_title="Báo cáo quý II",
        period_label="2025-q2",
        agency=agency,
        agency_name=name,
        status=status,
        state=TaskState.DONE_LATE if status is S.LATE else None,
        due_at=DUE,
        **fields,
    )


def report() -> ConsolidatedReport:
    tasks = [
        _task(
            "STP",
            "Sở Tư pháp",
            S.LATE,
            late_working_days=3,
            submitted_at=datetime(2025, 7, 17, 3, 0, tzinfo=UTC),
        ),
        _task("SNV", "Sở Nội vụ", S.WAIVED, waiver_reason="Đơn vị mới sáp nhập"),
        _task("TTT", "Thanh tra tỉnh", S.EXTENDED, extended_to=date(2025, 7, 31)),
        _task("X", HOSTILE, S.OVERDUE, escalation_level=2),
    ]
    counts = {status: sum(t.status is status for t in tasks) for status in ComplianceStatus}
    return ConsolidatedReport(
        agreement_id="a",
        tenant="quang-binh",
        document_number="289/KH-UBND",
        title="Kế hoạch 289",
        issuer=None,
        province="Quảng Bình",
        period=None,
        periods=["2025-q2"],
        as_of=datetime(2025, 7, 15, 0, 30, tzinfo=UTC),
        time_zone="Asia/Ho_Chi_Minh",
        tasks=tasks,
        agencies=[
            AgencyCompliance(
                agency=t.agency,
                agency_name=t.agency_name,
                counts={s: int(s is t.status) for s in ComplianceStatus},
                due=int(t.status in (S.LATE, S.OVERDUE)),
                on_time_rate=0.0 if t.status in (S.LATE, S.OVERDUE) else None,
            )
            for t in tasks
        ],
        totals=ComplianceTotals(
            tasks=4, counts=counts, due=2, on_time=0, on_time_rate=0.0, escalations={2: 1}
        ),
        indicators=[],
        missing=[],
        narratives=[],
    )


def request() -> DigestRequest:
    facts = AgreementFacts(
        agreement_id="a",
        tenant="quang-binh",
        document_number="289/KH-UBND",
        title="Kế hoạch 289",
        issuer=None,
        time_zone="Asia/Ho_Chi_Minh",
        period_start=date(2025, 1, 1),
        period_end=date(2025, 12, 31),
        as_of=datetime(2025, 7, 15, 0, 30, tzinfo=UTC),
        obligations={},
        tasks=[],
    )
    return DigestRequest(
        business_key="a/digest/2025-q2/2025-07-15",
        kind="due",
        scheduled_at=datetime(2025, 7, 15, 0, 30, tzinfo=UTC),
        periods=["2025-q2"],
        due_days=[date(2025, 7, 14)],
        facts=facts,
    )


def message(
    locale: Locale, name: str = "Lê Văn <An>", portal_url: str | None = None
) -> EmailMessage:
    reader = Recipient(
        "lanh-dao", name, "lanh-dao@example.vn", RecipientRole.PROVINCIAL_LEADERSHIP, locale
    )
    ask = request()
    rendered = package_templates().render_digest(
        reader.locale,
        digest_variables(report(), ask, reader, reader.locale, portal_url),
        chart_cid=CHART_CID,
    )
    composed = compose_digest(
        rendered,
        sender="Accord <accord@example.vn>",
        recipient=reader,
        date=ask.scheduled_at,
        business_key=ask.business_key,
        agreement_id="a",
        time_zone="Asia/Ho_Chi_Minh",
        inline=[MailPart("image/png", "chart.png", b"\x89PNG\r\n\x1a\nfake", CHART_CID)],
        attachments=[MailPart("application/octet-stream", xlsx_name(ask), b"PK\x03\x04")],
    )
    parsed = email.message_from_bytes(composed.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(parsed: EmailMessage, kind: str) -> str:
    part = parsed.get_body(preferencelist=(kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def test_english_digest_names_every_status_detail() -> None:
    parsed = message("en")
    assert parsed["Subject"] == "[Accord] Reporting digest for period 2025-q2 – 289/KH-UBND"
    assert parsed["Date"] == "Tue, 15 Jul 2025 07:30:00 +0700"
    assert parsed["X-Accord-Kind"] == "digest"
    assert parsed["Auto-Submitted"] == "auto-generated"
    text = body(parsed, "plain")
    assert "Dear Lê Văn <An>,\n" in text
    assert "after the deadline of 14/07/2025" in text
    assert "Tasks: 4; due: 2; on time: 0; on-time rate: 0.0%." in text
    assert "- Sở Tư pháp – Báo cáo quý II (period 2025-q2, before 15/07/2025): Late – 3 " in text
    assert "working day(s) late; submitted 17/07/2025\n" in text
    assert ": Waived – reason: Đơn vị mới sáp nhập\n" in text
    assert ": Extended – new deadline before 31/07/2025\n" in text
    assert ": Overdue, not received – escalation level 2\n" in text
    assert "Reported for your information and direction." in text


def test_vietnamese_html_escapes_names_and_shows_the_chart_by_cid() -> None:
    parsed = message("vi")
    html = body(parsed, "html")
    assert "Kính gửi đồng chí Lê Văn &lt;An&gt;," in html
    assert "Sở &lt;b&gt;&#34;Thử&#34;&lt;/b&gt; &amp; Co" in html
    assert "<b>" not in html
    assert f'<img src="cid:{CHART_CID}"' in html
    assert "Trễ hạn – trễ 3 ngày làm việc" in html
    # mixed [ related [ alternative [plain, html], png ], attachment ]
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed",
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
        "application/octet-stream",
    ]
    png = next(p for p in parsed.walk() if p.get_content_type() == "image/png")
    assert png["Content-ID"] == f"<{CHART_CID}>"
    assert png.get_content_disposition() == "inline"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "tong-hop-sau-han-nop-2025-07-15.xlsx"
    assert attachment.get_payload(decode=True) == b"PK\x03\x04"


# --------------------------------------------------------------------------------------------
# Through the outbox, against a real SMTP server: retried safely, never twice


def stored_request() -> DigestRequest:
    """A digest of one overdue task of STP, whose report goes to SNV (activity_helpers'
    directory: SNV's focal point and the provincial leader receive it)."""
    due = datetime(2025, 7, 14, 17, 0, tzinfo=UTC)
    facts = request().facts.model_copy(
        update={
            "obligations": {
                "bao-cao": ObligationFact(
                    obligation_id="bao-cao",
                    item_number="1",
                    title="Báo cáo quý II",
                    deliverable=Deliverable.REPORT,
                    recipient="SNV",
                )
            },
            "tasks": [
                TaskFact(
                    task_id="a/bao-cao/STP/2025-q2",
                    obligation_id="bao-cao",
                    agency="STP",
                    period_label="2025-q2",
                    state=TaskState.OVERDUE,
                    due_at=due,
                    escalation_level=1,
                )
            ],
        }
    )
    return request().model_copy(update={"facts": facts})


async def test_a_retried_digest_sends_each_officer_one_message(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = MailActivities(sessions, smtp_settings)
    digest = DigestActivities(sessions, smtp_settings, mail)
    ask = stored_request()
    try:
        # First attempt: the leader's mailbox answers 451; the aggregator's message goes.
        mail_server.handler.defer.add(LEADER.email)
        with pytest.raises(ApplicationError, match="deferred 1 of 2"):
            await ActivityEnvironment().run(digest.send_digest, ask)
        assert [m.rcpt_tos for m in mail_server.received] == [[AGGREGATOR.email]]
        # The retry sends the leader's only.
        mail_server.handler.defer.clear()
        result = await ActivityEnvironment().run(digest.send_digest, ask)
        assert (result.recipients, result.sent, result.already_sent) == (2, 1, 1)
        # Once more (a replayed activity): nothing.
        result = await ActivityEnvironment().run(digest.send_digest, ask)
        assert (result.recipients, result.sent, result.already_sent) == (2, 0, 2)
    finally:
        await mail.aclose()
    assert sorted(m.rcpt_tos[0] for m in mail_server.received) == sorted(
        [AGGREGATOR.email, LEADER.email]
    )
    # Nobody else: not STP's focal point or head, not the admin.
    parsed = [m.parsed() for m in mail_server.received]
    assert {str(m["X-Accord-Key"]) for m in parsed} == {"a/digest/2025-q2/2025-07-15"}
    text = body(parsed[0], "plain")
    assert "- Sở Tư pháp – Báo cáo quý II (kỳ 2025-q2, trước ngày 15/07/2025): Quá hạn" in text
    with sessions() as session:
        rows = session.execute(
            select(OutboxRow.recipient_email, OutboxRow.kind, OutboxRow.task_id, OutboxRow.status)
        ).all()
        audit = session.scalars(select(AuditRow).where(AuditRow.action == "digest_sent")).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        (address, "digest", "a/digest", "sent") for address in (AGGREGATOR.email, LEADER.email)
    )
    assert [(a.event_key, a.detail["sent"]) for a in audit] == [
        ("a/digest/2025-q2/2025-07-15/sent", "2")
    ]


def test_the_digest_links_to_the_portal_home_in_both_parts() -> None:
    link = "http://127.0.0.1:8000/l/Xy-1.a&b"
    parsed = message("vi", portal_url=link)
    text, html = body(parsed, "plain"), body(parsed, "html")
    assert f"\nMở trang Accord: {link}\n\n--\n" in text
    assert "đề nghị không chuyển tiếp thư này." in text
    assert '<a href="http://127.0.0.1:8000/l/Xy-1.a&amp;b">Mở trang Accord</a>' in html
    english = body(message("en", portal_url=link), "plain")
    assert f"\nOpen Accord: {link}\n\n--\n" in english
    without = body(message("vi"), "plain")
    assert "Mở trang Accord" not in without
    assert without.endswith("Vui lòng không trả lời thư này.\n")
