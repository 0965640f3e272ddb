"""What officers read: subjects, bodies and headers of every notification kind."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from activity_helpers import ZONE, demo_task, notification
from icalendar import Calendar

from activities.models import NotificationKind, NotificationRequest
from activities.templates import _RECIPIENT_NAMES as RECIPIENT_VARIABLES
from activities.templates import (
    SUBJECT_MAX,
    VARIABLES,
    MailTemplateError,
    MailTemplates,
    Recipient,
    RefusedDelivery,
    build_delivery_failure,
    build_message,
    message_id,
    no_recipient_subject,
    render,
    render_delivery_failure,
    render_no_recipient,
)
from activities.templates import _variables as template_variables
from agreements.models import Deliverable, RecipientRole

NAMES = {"STP": "Sở Tư pháp", "SNV": "Sở Nội vụ"}
TITLE = "Báo cáo kết quả công tác dân vận 6 tháng"
SEND_TO_SNV_VI = (
    "Cách nộp: gửi báo cáo cho Sở Nội vụ (SNV), cơ quan tiếp nhận, tổng hợp (không trả lời "
    "thư này). Khi báo cáo được ghi nhận, đồng chí sẽ nhận được thư xác nhận."
)
SEND_TO_SNV_EN = (
    "How to submit: send the report to Sở Nội vụ (SNV), the receiving agency (not as a reply "
    "to this message). You will receive a receipt once the report is recorded."
)


def officer(
    role: RecipientRole = RecipientRole.FOCAL_POINT,
    locale: str = "vi",
    name: str = "Nguyễn Thị Hoa",
) -> Recipient:
    return Recipient(
        officer_id="stp-dau-moi",
        name=name,
        email="hoa.nt@stp.quangbinh.example",
        role=role,
        locale="en" if locale == "en" else "vi",
    )


def subject_of(request: NotificationRequest, recipient: Recipient | None = None) -> str:
    return render(request, recipient=recipient or officer(), agency_names=NAMES).subject


def test_reminder_in_vietnamese() -> None:
    rendered = render(notification(), recipient=officer(), agency_names=NAMES)

    assert rendered.subject == f"[Accord] Nhắc hạn: {TITLE} – Sở Tư pháp – hạn trước 15/05/2025"
    text = rendered.text
    assert text.startswith("Kính gửi đồng chí Nguyễn Thị Hoa,\n")
    assert "Văn bản: 289/KH-UBND – Kế hoạch thực hiện công tác dân vận năm 2025" in text
    assert "Nội dung: III.7" in text
    assert f"Nhiệm vụ: {TITLE}" in text
    assert "Kỳ báo cáo: 2025-6t" in text
    assert "Cơ quan thực hiện: Sở Tư pháp (STP)" in text
    assert "Nơi nhận: Sở Nội vụ (SNV)" in text
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text
    assert "Còn 6 ngày đến hạn." in text
    assert "Mã nhiệm vụ: 289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t" in text
    assert SEND_TO_SNV_VI in text
    assert "trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in rendered.html
    assert '<html lang="vi">' in rendered.html


def test_reminder_in_english() -> None:
    rendered = render(notification(), recipient=officer(locale="en"), agency_names=NAMES)

    assert rendered.subject == f"[Accord] Reminder: {TITLE} – Sở Tư pháp – due before 15/05/2025"
    assert rendered.text.startswith("Dear Nguyễn Thị Hoa,\n")
    assert "Due: before 15/05/2025 (last day: 14/05/2025)" in rendered.text
    assert SEND_TO_SNV_EN in rendered.text
    assert '<html lang="en">' in rendered.html


@pytest.mark.parametrize(
    ("request_", "vi", "en"),
    [
        (
            notification(NotificationKind.ESCALATION, step=2),
            f"[Accord] Quá hạn (bậc 2): {TITLE} – Sở Tư pháp – hạn trước 15/05/2025",
            f"[Accord] Overdue (step 2): {TITLE} – Sở Tư pháp – due before 15/05/2025",
        ),
        (
            notification(NotificationKind.RECEIPT, step=None, late=False),
            f"[Accord] Đã nhận báo cáo: {TITLE} – Sở Tư pháp – đúng hạn",
            f"[Accord] Report received: {TITLE} – Sở Tư pháp – on time",
        ),
        (
            notification(NotificationKind.RECEIPT, step=None, late=True),
            f"[Accord] Đã nhận báo cáo: {TITLE} – Sở Tư pháp – quá hạn",
            f"[Accord] Report received: {TITLE} – Sở Tư pháp – late",
        ),
        (
            notification(
                NotificationKind.EXTENSION_REQUESTED,
                step=None,
                new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
                reason="Chờ số liệu của các phòng",
            ),
            f"[Accord] Đề nghị gia hạn: {TITLE} – Sở Tư pháp",
            f"[Accord] Extension requested: {TITLE} – Sở Tư pháp",
        ),
        (
            notification(
                NotificationKind.EXTENSION_DECIDED,
                step=None,
                # As the workflow sends it: the task already carries the new deadline.
                task=demo_task(due_at=datetime(2025, 5, 25, tzinfo=ZONE)),
                approved=True,
                new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
            ),
            f"[Accord] Chấp thuận gia hạn: {TITLE} – Sở Tư pháp – mới: hạn trước 25/05/2025",
            f"[Accord] Extension approved: {TITLE} – Sở Tư pháp – new due before 25/05/2025",
        ),
        (
            notification(NotificationKind.EXTENSION_DECIDED, step=None, approved=False),
            f"[Accord] Không chấp thuận gia hạn: {TITLE} – Sở Tư pháp",
            f"[Accord] Extension declined: {TITLE} – Sở Tư pháp",
        ),
        (
            notification(NotificationKind.WAIVED, step=None, reason="Đơn vị sáp nhập"),
            f"[Accord] Miễn báo cáo: {TITLE} – Sở Tư pháp",
            f"[Accord] Waived: {TITLE} – Sở Tư pháp",
        ),
    ],
    ids=[
        "escalation",
        "receipt",
        "receipt-late",
        "ext-requested",
        "ext-approved",
        "ext-declined",
        "waived",
    ],
)
def test_subject_of_every_kind(request_: NotificationRequest, vi: str, en: str) -> None:
    assert subject_of(request_) == vi
    assert subject_of(request_, officer(locale="en")) == en


# A delivery-failure or no-recipient notice is about another notification: built from it.
ADMIN_NOTICES = (NotificationKind.DELIVERY_FAILED, NotificationKind.NO_RECIPIENT)
NOTIFICATION_KINDS = [kind for kind in NotificationKind if kind not in ADMIN_NOTICES]


@pytest.mark.parametrize("kind", NOTIFICATION_KINDS)
@pytest.mark.parametrize("role", list(RecipientRole))
@pytest.mark.parametrize("locale", ["vi", "en"])
def test_every_kind_role_and_locale_renders_the_task(
    kind: NotificationKind, role: RecipientRole, locale: str
) -> None:
    rendered = render(
        notification(kind, step=1, late=True, approved=True, reason="Lý do"),
        recipient=officer(role, locale),
        agency_names=NAMES,
    )
    for part in (rendered.text, rendered.html):
        assert "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t" in part
        assert "289/KH-UBND" in part
        assert TITLE in part
        assert "2025-6t" in part
    assert rendered.subject.startswith("[Accord] ")
    # Only the owing agency is told where to send its report; nobody is given a command.
    owing = role in (RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY)
    expects_where = owing and kind in (
        NotificationKind.REMINDER,
        NotificationKind.ESCALATION,
        NotificationKind.EXTENSION_DECIDED,
        # Issue 17: a task still owed after the agreement's order (new deadline, resumed,
        # passed to a successor).
        NotificationKind.DUE_CHANGED,
        NotificationKind.RESUMED,
        NotificationKind.TRANSFERRED,
    )
    where = "How to submit:" if locale == "en" else "Cách nộp:"
    assert (where in rendered.text) == expects_where
    assert "accord submit" not in rendered.text
    assert "accord submit" not in rendered.html


def test_escalation_counts_days_overdue() -> None:
    request = notification(
        NotificationKind.ESCALATION,
        [RecipientRole.HEAD_OF_AGENCY],
        step=2,
        scheduled_at=datetime(2025, 5, 22, 0, 0, tzinfo=ZONE),
    )
    text = render(request, recipient=officer(RecipientRole.HEAD_OF_AGENCY), agency_names=NAMES).text
    assert "Quá hạn: đến 00:00 ngày 22/05/2025 (UTC+7), Sở Tư pháp chưa nộp báo cáo" in text
    assert "Đã quá hạn 7 ngày." in text
    assert "Đây là thông báo quá hạn bậc 2." in text
    assert "Đề nghị đồng chí chỉ đạo bộ phận đầu mối khẩn trương hoàn thành và nộp báo cáo." in text


def test_due_shown_in_task_time_zone() -> None:
    # 17:00 UTC on 14 May is midnight on 15 May in Hà Nội time.
    task = demo_task(due_at=datetime(2025, 5, 14, 17, 0, tzinfo=UTC))
    rendered = render(notification(task=task), recipient=officer(), agency_names=NAMES)
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in rendered.text

    afternoon = demo_task(due_at=datetime(2025, 5, 15, 17, 0, tzinfo=ZONE))
    rendered = render(notification(task=afternoon), recipient=officer(), agency_names=NAMES)
    assert "Hạn nộp: trước 17:00 ngày 15/05/2025" in rendered.text
    assert rendered.subject.endswith("hạn trước 17:00 ngày 15/05/2025")


def test_task_without_due_date() -> None:
    task = demo_task(due_at=None)
    rendered = render(
        notification(NotificationKind.RECEIPT, step=None, task=task, late=False),
        recipient=officer(),
        agency_names=NAMES,
    )
    assert "Hạn nộp: không có hạn cụ thể" in rendered.text


def test_other_deliverables_are_named() -> None:
    task = demo_task(deliverable=Deliverable.PLAN)
    request = notification(NotificationKind.RECEIPT, step=None, task=task, late=False)
    assert subject_of(request).startswith("[Accord] Đã nhận kế hoạch: ")


def test_unknown_agency_falls_back_to_code() -> None:
    rendered = render(notification(), recipient=officer(), agency_names={})
    assert " – STP – " in rendered.subject
    assert "Cơ quan thực hiện: STP" in rendered.text


def test_subject_is_one_short_line() -> None:
    title = "Báo cáo\r\nBcc: evil@x.example\n" + "rất dài " * 60
    request = notification(task=demo_task(title=title))
    subject = subject_of(request)
    assert "\r" not in subject
    assert "\n" not in subject
    assert len(subject) <= SUBJECT_MAX
    assert "  " not in subject
    # The title gives way, the agency and the date stay.
    assert subject.endswith("… – Sở Tư pháp – hạn trước 15/05/2025")


def test_html_escapes_data() -> None:
    task = demo_task(title='Báo cáo <script>alert("x")</script> & "dân vận"')
    rendered = render(
        notification(task=task),
        recipient=officer(name="<b>Hoa</b>"),
        agency_names={"STP": "Sở <i>Tư pháp</i> & Co"},
    )
    assert "<script>" not in rendered.html
    # Jinja's autoescape (markupsafe) writes a double quote as &#34;, html.escape as &quot;.
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;dân vận&#34;" in (
        rendered.html
    )
    assert "&lt;b&gt;Hoa&lt;/b&gt;" in rendered.html
    assert "Sở &lt;i&gt;Tư pháp&lt;/i&gt; &amp; Co" in rendered.html
    assert "<b>" not in rendered.html
    assert "<i>" not in rendered.html


def test_message_headers() -> None:
    request = notification()
    recipient = officer(name='Hoa, "Phòng QLVB"\r\nBcc: evil@x.example')
    message = build_message(
        request,
        recipient=recipient,
        agency_names=NAMES,
        sender="Accord <accord@accord.example>",
    )
    assert message["Bcc"] is None
    to = message["To"]
    assert len(to.addresses) == 1
    assert to.addresses[0].addr_spec == "hoa.nt@stp.quangbinh.example"
    assert to.addresses[0].display_name == 'Hoa, "Phòng QLVB" Bcc: evil@x.example'
    assert message["From"].addresses[0].addr_spec == "accord@accord.example"
    assert message["Subject"] == f"[Accord] Nhắc hạn: {TITLE} – Sở Tư pháp – hạn trước 15/05/2025"
    assert parsedate_to_datetime(message["Date"]) == request.scheduled_at
    assert message["Message-ID"] == message_id(request.business_key, recipient.email)
    assert message["Auto-Submitted"] == "auto-generated"  # RFC 3834: no vacation replies
    assert message["X-Accord-Key"] == request.business_key
    assert message["X-Accord-Kind"] == "reminder"
    assert message["X-Accord-Task"] == "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert message["X-Accord-Agency"] == "STP"
    # A reminder: the text and HTML alternatives, plus the deadline as an iCalendar event.
    assert message.get_content_type() == "multipart/mixed"
    alternative, ics = message.iter_parts()
    assert [part.get_content_type() for part in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert ics.get_content_type() == "text/calendar"
    # Every line on the wire is ASCII: nothing depends on the relay supporting 8BITMIME.
    wire = message.as_bytes().decode("ascii")
    headers = wire.split("\r\n\r\n", 1)[0].split("\r\n")
    assert all(len(line) <= 78 for line in headers)


def test_message_id_is_deterministic_per_recipient() -> None:
    key = "289-kh-ubnd-2025/III.7/STP/2025-6t/reminder/1"
    assert message_id(key, "a@x.example") == message_id(key, "A@x.example")
    assert message_id(key, "a@x.example") != message_id(key, "b@x.example")
    assert message_id(key, "a@x.example") != message_id(key + "x", "a@x.example")
    assert message_id(key, "a@x.example").endswith("@accord>")


def test_long_vietnamese_subject_survives_the_wire() -> None:
    """Folded encoded words must keep every space (CPython's own folder can lose them)."""
    title = "Báo cáo kết quả thực hiện Quy chế dân chủ ở cơ sở và phong trào thi đua Dân vận khéo"
    request = notification(task=demo_task(title=title))
    message = build_message(
        request, recipient=officer(), agency_names=NAMES, sender="Accord <accord@accord.example>"
    )
    received = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert received["Subject"] == (
        f"[Accord] Nhắc hạn: {title} – Sở Tư pháp – hạn trước 15/05/2025"
    )
    assert received["To"].addresses[0].display_name == "Nguyễn Thị Hoa"


@pytest.mark.parametrize("zone", ["Asia", "No/Such_Zone", "../etc"])
def test_a_broken_time_zone_falls_back_to_vietnam(zone: str) -> None:
    task = demo_task(due_at=datetime(2025, 5, 14, 17, 0, tzinfo=UTC), time_zone=zone)
    rendered = render(notification(task=task), recipient=officer(), agency_names=NAMES)
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in rendered.text


def test_reminder_carries_an_icalendar_event_for_the_last_day() -> None:
    moved = demo_task(
        due_at=datetime(2026, 11, 17, tzinfo=ZONE),
        covers_from=date(2025, 12, 15),
        covers_to=date(2026, 12, 14),
        due_note_vi=(
            "Hạn 14/11/2026 rơi vào thứ Bảy; theo Điều 148 Bộ luật Dân sự, "
            "hạn chuyển sang hết ngày 16/11/2026"
        ),
    )
    message = build_message(
        notification(task=moved),
        recipient=officer(),
        agency_names=NAMES,
        sender="Accord <accord@accord.example>",
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = [p for p in parsed.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    assert parts[0].get_filename() == "han-nop.ics"
    event = next(iter(Calendar.from_ical(parts[0].get_content()).walk("VEVENT")))
    assert event.decoded("dtstart") == date(2026, 11, 16)  # the last day, after art. 148
    assert event.decoded("dtend") == date(2026, 11, 17)
    assert str(event["summary"]) == f"Hạn nộp: {TITLE} – Sở Tư pháp"
    assert "hạn chuyển sang hết ngày 16/11/2026" in str(event["description"])
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Ghi chú về hạn: Hạn 14/11/2026 rơi vào thứ Bảy" in body.get_content()
    assert "Kỳ số liệu: 15/12/2025 – 14/12/2026" in body.get_content()

    escalation = build_message(
        notification(NotificationKind.ESCALATION),
        recipient=officer(),
        agency_names=NAMES,
        sender="Accord <accord@accord.example>",
    )
    assert not list(escalation.iter_attachments())


def plain_text(message: EmailMessage) -> str:
    """The text part as a mail client shows it, after the message has crossed the wire."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def received(request: NotificationRequest, recipient: Recipient | None = None) -> str:
    return plain_text(
        build_message(
            request,
            recipient=recipient or officer(),
            agency_names=NAMES,
            sender="Accord <accord@accord.example>",
        )
    )


# An approval as the workflow sends it: the task already carries the new deadline.
APPROVED = notification(
    NotificationKind.EXTENSION_DECIDED,
    step=None,
    task=demo_task(due_at=datetime(2025, 5, 25, tzinfo=ZONE)),
    approved=True,
    new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
    previous_due_at=datetime(2025, 5, 15, tzinfo=ZONE),
)


def test_an_approved_extension_shows_the_previous_and_the_new_deadline() -> None:
    text = received(APPROVED)
    assert "Hạn cũ: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text
    assert "Hạn mới: trước ngày 25/05/2025 (ngày cuối: 24/05/2025)" in text
    assert "Hạn nộp:" not in text  # the same instant as "Hạn mới" under another name

    english = received(APPROVED, officer(locale="en"))
    assert "Previous deadline: before 15/05/2025 (last day: 14/05/2025)" in english
    assert "New deadline: before 25/05/2025 (last day: 24/05/2025)" in english
    assert "Due:" not in english


def test_an_approval_without_the_previous_deadline_shows_the_new_one_once() -> None:
    """A workflow that does not pass previous_due_at yet: one line, not the same date twice."""
    text = received(APPROVED.model_copy(update={"previous_due_at": None}))
    assert "Hạn mới: trước ngày 25/05/2025 (ngày cuối: 24/05/2025)" in text
    assert text.count("25/05/2025 (ngày cuối") == 2  # the paragraph and the "Hạn mới" line
    assert "Hạn cũ" not in text
    assert "Hạn nộp:" not in text


def test_a_declined_extension_keeps_the_deadline_and_says_so() -> None:
    declined = notification(
        NotificationKind.EXTENSION_DECIDED,
        step=None,
        approved=False,
        new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
        previous_due_at=datetime(2025, 5, 15, tzinfo=ZONE),
        reason="Số liệu đã đủ",
    )
    text = received(declined)
    assert "Hạn nộp giữ nguyên: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)." in text
    assert "Hạn nộp (giữ nguyên): trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text
    # The date asked for is not presented as a new deadline.
    assert "Hạn mới" not in text
    assert "Hạn đề nghị (không được chấp thuận): trước ngày 25/05/2025" in text

    english = received(declined, officer(locale="en"))
    assert "The due date stays: before 15/05/2025 (last day: 14/05/2025)." in english
    assert "Due (unchanged): before 15/05/2025 (last day: 14/05/2025)" in english
    assert "New deadline" not in english
    assert "Requested deadline (declined): before 25/05/2025" in english


def test_a_waiver_says_why_and_who_waived() -> None:
    waived = notification(
        NotificationKind.WAIVED, step=None, reason="Đơn vị đã sáp nhập"
    ).model_copy(update={"acted_by": "quan-tri-snv", "acted_by_agency": "SNV"})
    text = received(waived)
    assert "Lý do miễn: Đơn vị đã sáp nhập" in text
    assert "Người quyết định miễn: quan-tri-snv (Sở Nội vụ (SNV))" in text
    english = received(waived, officer(locale="en"))
    assert "Reason for the waiver: Đơn vị đã sáp nhập" in english
    assert "Waived by: quan-tri-snv (Sở Nội vụ (SNV))" in english
    # Folded to one line: a reason cannot add lines of its own to the mail.
    forged = waived.model_copy(update={"reason": "x\r\nNgười quyết định miễn: giám đốc"})
    assert "\nNgười quyết định miễn: giám đốc" not in received(forged)


def test_an_extension_request_shows_the_date_asked_for_as_requested() -> None:
    request = notification(
        NotificationKind.EXTENSION_REQUESTED,
        [RecipientRole.AGGREGATOR],
        step=None,
        new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
        reason="Chờ số liệu của các phòng",
    )
    text = received(request, officer(RecipientRole.AGGREGATOR))
    assert "Hạn nộp: trước ngày 15/05/2025 (ngày cuối: 14/05/2025)" in text
    assert "Hạn đề nghị: trước ngày 25/05/2025 (ngày cuối: 24/05/2025)" in text
    assert "Hạn mới" not in text


@pytest.mark.parametrize("kind", [NotificationKind.REMINDER, NotificationKind.ESCALATION])
def test_reminders_say_whom_to_send_the_report_to_not_a_command(kind: NotificationKind) -> None:
    text = received(notification(kind))
    assert SEND_TO_SNV_VI in text
    assert "accord submit" not in text
    # What the footer says about replying still holds: no reply reaches anyone.
    assert "Vui lòng không trả lời thư này." in text
    english = received(notification(kind), officer(locale="en"))
    assert SEND_TO_SNV_EN in english
    assert "Please do not reply." in english

    head = received(notification(kind), officer(RecipientRole.HEAD_OF_AGENCY))
    assert (
        "Cách nộp: gửi báo cáo cho Sở Nội vụ (SNV), cơ quan tiếp nhận, tổng hợp (không trả lời "
        "thư này). Khi báo cáo được ghi nhận, bộ phận đầu mối sẽ nhận được thư xác nhận."
    ) in head


def test_without_a_receiving_agency_the_report_goes_to_the_issuer() -> None:
    task = demo_task(recipient=None, issuer="Ủy ban nhân dân tỉnh Quảng Bình")
    text = received(notification(task=task))
    assert (
        "Cách nộp: gửi báo cáo cho Ủy ban nhân dân tỉnh Quảng Bình, cơ quan ban hành văn bản "
        "289/KH-UBND (không trả lời thư này)."
    ) in text
    english = received(notification(task=task), officer(locale="en"))
    assert (
        "How to submit: send the report to Ủy ban nhân dân tỉnh Quảng Bình, which issued "
        "289/KH-UBND (not as a reply to this message)."
    ) in english


def test_without_a_receiving_agency_or_issuer_the_report_goes_through_the_head() -> None:
    task = demo_task(recipient=None)
    text = received(notification(task=task))
    assert (
        "Cách nộp: trình lãnh đạo Sở Tư pháp ký, gửi báo cáo theo quy định của văn bản "
        "289/KH-UBND (không trả lời thư này)."
    ) in text
    english = received(notification(task=task), officer(locale="en"))
    assert (
        "How to submit: have the head of Sở Tư pháp sign the report and send it as "
        "289/KH-UBND requires (not as a reply to this message)."
    ) in english
    head = received(notification(task=task), officer(RecipientRole.HEAD_OF_AGENCY))
    assert (
        "Cách nộp: gửi báo cáo theo quy định của văn bản 289/KH-UBND (không trả lời thư này)."
    ) in head


def calendar_event(message: EmailMessage) -> tuple[Calendar, Any]:
    """The calendar attachment as a calendar app reads it, after the wire."""
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    [part] = [p for p in parsed.iter_attachments() if p.get_content_type() == "text/calendar"]
    calendar = Calendar.from_ical(part.get_content())
    [event] = calendar.walk("VEVENT")
    return calendar, event


# A demo deadline: 16:06 Hà Nội time, given in UTC as a server clock would give it.
AFTERNOON_DUE = datetime(2026, 12, 3, 9, 6, tzinfo=UTC)


def test_a_deadline_with_a_time_of_day_is_a_timed_calendar_event() -> None:
    task = demo_task(due_at=AFTERNOON_DUE)
    request = notification(task=task, scheduled_at=datetime(2026, 12, 3, 16, 0, tzinfo=ZONE))
    calendar, event = calendar_event(
        build_message(
            request, recipient=officer(), agency_names=NAMES, sender="Accord <a@accord.example>"
        )
    )
    start = event.decoded("dtstart")
    assert isinstance(start, datetime)  # not an all-day date
    assert start == datetime(2026, 12, 3, 16, 6, tzinfo=ZONE)
    assert start.utcoffset() == timedelta(hours=7)
    assert event["dtstart"].params["TZID"] == "Asia/Ho_Chi_Minh"
    # The zone travels with the event, for apps that do not know the name.
    [zone] = calendar.walk("VTIMEZONE")
    assert str(zone["tzid"]) == "Asia/Ho_Chi_Minh"
    # The deadline is an instant: no DTEND (RFC 5545 3.6.1: it ends when it starts).
    assert "dtend" not in event
    description = str(event["description"])
    assert "Hạn nộp: trước 16:06 ngày 03/12/2026 (UTC+7)" in description
    assert "ngày cuối" not in description


def test_a_deadline_at_midnight_stays_an_all_day_event_on_the_last_day() -> None:
    task = demo_task(due_at=datetime(2026, 12, 3, tzinfo=ZONE))
    _, event = calendar_event(
        build_message(
            notification(task=task),
            recipient=officer(),
            agency_names=NAMES,
            sender="Accord <a@accord.example>",
        )
    )
    assert event.decoded("dtstart") == date(2026, 12, 2)
    assert event.decoded("dtend") == date(2026, 12, 3)
    assert "Hạn nộp: trước ngày 03/12/2026 (ngày cuối: 02/12/2026)" in str(event["description"])


def test_times_of_day_in_mail_text_are_local_and_name_the_zone() -> None:
    task = demo_task(due_at=AFTERNOON_DUE)
    late = notification(
        NotificationKind.ESCALATION,
        task=task,
        scheduled_at=datetime(2026, 12, 3, 9, 10, tzinfo=UTC),
    )
    text = received(late)
    assert "Hạn nộp: trước 16:06 ngày 03/12/2026 (UTC+7)" in text
    assert "Quá hạn: đến 16:10 ngày 03/12/2026 (UTC+7), Sở Tư pháp chưa nộp" in text
    assert "09:" not in text
    english = received(late, officer(locale="en"))
    assert "Due: before 16:06 on 03/12/2026 (UTC+7)" in english
    assert "Overdue: as of 16:10 on 03/12/2026 (UTC+7), Sở Tư pháp" in english
    # A subject stays short: the time, without the zone.
    assert subject_of(late).endswith("– hạn trước 16:06 ngày 03/12/2026")
    # A date alone names no zone: "trước ngày 15/05/2025" is a day in the agreement's calendar.
    assert "UTC" not in received(notification())


# --------------------------------------------------------------------------------------------
# Delivery-failure notice to the admins

REFUSED = RefusedDelivery(
    officer_id="stp-dau-moi",
    officer_name="Nguyễn Thị Hoa",
    reply="550 5.1.1 <hoa.nt@stp.quangbinh.example>: <script>x</script> unknown",
)
NOTICE_KEY = "289-kh-ubnd-2025/III.7/STP/2025-6t/escalation/2/delivery-failed/0123abcd"


def admin(locale: str = "vi") -> Recipient:
    return Recipient(
        officer_id="snv-quan-tri",
        name="Hoàng Thị Mai",
        email="mai.ht@snv.quangbinh.example",
        role=None,
        locale="en" if locale == "en" else "vi",
    )


def test_delivery_failure_in_vietnamese() -> None:
    request = notification(NotificationKind.ESCALATION, step=2)
    rendered = render_delivery_failure(request, admin=admin(), refused=REFUSED, agency_names=NAMES)

    assert rendered.subject == f"[Accord] Không gửi được thư: {TITLE} – Sở Tư pháp"
    text = rendered.text
    assert text.startswith("Kính gửi đồng chí Hoàng Thị Mai,\n")
    assert (
        "Máy chủ thư đã từ chối vĩnh viễn thông báo quá hạn (bậc 2) gửi đồng chí Nguyễn Thị Hoa "
        f"(mã cán bộ: stp-dau-moi) về báo cáo “{TITLE}” (kỳ 2025-6t) của Sở Tư pháp."
    ) in text
    assert "Cán bộ không nhận được thư: Nguyễn Thị Hoa (stp-dau-moi)" in text
    assert "Trả lời của máy chủ thư: 550 5.1.1" in text
    assert "Mã nhiệm vụ: 289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t" in text
    assert "cập nhật địa chỉ thư điện tử của cán bộ này trong danh bạ" in text
    assert "accord submit" not in text
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;x&lt;/script&gt;" in rendered.html
    assert '<html lang="vi">' in rendered.html


def test_delivery_failure_in_english() -> None:
    rendered = render_delivery_failure(
        notification(), admin=admin("en"), refused=REFUSED, agency_names=NAMES
    )

    assert rendered.subject == f"[Accord] Undeliverable: {TITLE} – Sở Tư pháp"
    assert rendered.text.startswith("Dear Hoàng Thị Mai,\n")
    assert (
        "The mail server permanently refused the reminder to Nguyễn Thị Hoa "
        "(officer ID: stp-dau-moi)"
    ) in rendered.text
    assert "Officer not reached: Nguyễn Thị Hoa (stp-dau-moi)" in rendered.text
    assert "Mail server reply: 550 5.1.1" in rendered.text


def test_delivery_failure_reply_is_one_short_line() -> None:
    refused = RefusedDelivery("stp-dau-moi", "Nguyễn Thị Hoa", "550 " + "x" * 5000 + "\r\nBcc: y")
    rendered = render_delivery_failure(
        notification(), admin=admin(), refused=refused, agency_names=NAMES
    )
    [line] = [ln for ln in rendered.text.splitlines() if ln.startswith("Trả lời của máy chủ")]
    assert len(line) < 600
    assert line.endswith("…")


def test_delivery_failure_headers_name_no_refused_address() -> None:
    at = datetime(2025, 5, 22, 1, 2, tzinfo=UTC)
    message = build_delivery_failure(
        notification(),
        admin=admin(),
        refused=REFUSED,
        business_key=NOTICE_KEY,
        agency_names=NAMES,
        sender="Accord <accord@accord.example>",
        at=at,
    )

    assert [a.addr_spec for a in message["To"].addresses] == ["mai.ht@snv.quangbinh.example"]
    assert message["X-Accord-Key"] == NOTICE_KEY
    assert message["X-Accord-Kind"] == "delivery_failed"
    assert message["Message-ID"] == message_id(NOTICE_KEY, "mai.ht@snv.quangbinh.example")
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]) == at
    assert message["Date"].endswith("+0700")  # the agreement's zone, though `at` is in UTC
    headers = message.as_bytes().split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert "stp.quangbinh.example" not in headers
    assert message.get_content_type() == "multipart/alternative"


def test_render_refuses_a_delivery_failure_request() -> None:
    with pytest.raises(ValueError, match="build_delivery_failure"):
        render(
            notification(NotificationKind.DELIVERY_FAILED),
            recipient=officer(),
            agency_names=NAMES,
        )


# --------------------------------------------------------------------------------------------
# A province's overrides, checked at start-up


def test_every_variable_a_template_gets_is_declared() -> None:
    # load_all() rejects names outside VARIABLES: a new variable must be added there (and to
    # the README's list) or no override could use it.
    given = template_variables(notification(), officer(), NAMES, "vi")

    assert set(given) == VARIABLES


def test_the_variables_that_differ_between_recipients_are_the_known_ones() -> None:
    # `accord plan` renders a subject once per notification unless it reads one of these
    # (MailTemplates.subject_per_recipient): a variable derived from the recipient and missing
    # from the list would give every recipient the first one's subject.
    request = notification()
    recipients = [
        officer(role, name=f"Cán bộ {index}") for index, role in enumerate([*RecipientRole, None])
    ]
    given = [
        template_variables(request, recipient, NAMES, "vi", f"https://accord.example/l/{index}")
        for index, recipient in enumerate(recipients)
    ]
    differ = {name for name in VARIABLES if len({repr(g[name]) for g in given}) > 1}

    assert differ == RECIPIENT_VARIABLES


def override(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "mail_templates"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_the_package_templates_load() -> None:
    MailTemplates().load_all()


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    folder = override(
        tmp_path,
        "vi/reminder.txt.j2",
        '{% extends "package/vi/reminder.txt.j2" %}\n{% block note %}\nNộp {{ agency }\n'
        "{% endblock %}\n",
    )

    with pytest.raises(MailTemplateError) as raised:
        MailTemplates(folder).load_all()

    assert str(raised.value) == f"{folder / 'vi/reminder.txt.j2'}:3: unexpected '}}'"


def test_an_undefined_name_in_any_branch_names_the_file_and_line(tmp_path: Path) -> None:
    # StrictUndefined alone would raise only when a mail takes the branch (an escalation at
    # step 3, months later); load_all() finds the name in every branch.
    folder = override(
        tmp_path,
        "en/escalation.txt.j2",
        '{% extends "package/en/escalation.txt.j2" %}\n{% block note %}\n'
        "{% if step == 3 %}Call {{ officer_phone }}.{% endif %}\n{% endblock %}\n",
    )

    with pytest.raises(MailTemplateError) as raised:
        MailTemplates(folder).load_all()

    assert str(raised.value) == (
        f"{folder / 'en/escalation.txt.j2'}:3: 'officer_phone' is undefined"
    )


def test_a_layout_cannot_use_the_word_macros(tmp_path: Path) -> None:
    # The HTML layout would not escape a macro's output (README, "Rewording mail").
    folder = override(tmp_path, "vi/_layout.html.j2", "<p>{{ w.greeting() }}</p>\n")

    with pytest.raises(MailTemplateError, match=r"_layout.html.j2:1: 'w' is undefined"):
        MailTemplates(folder).load_all()


def test_an_override_that_extends_itself_is_refused(tmp_path: Path) -> None:
    folder = override(
        tmp_path,
        "vi/receipt.txt.j2",
        '{% extends "vi/receipt.txt.j2" %}\n{% block note %}Cảm ơn.{% endblock %}\n',
    )

    with pytest.raises(MailTemplateError) as raised:
        MailTemplates(folder).load_all()

    assert str(raised.value) == (
        f"{folder / 'vi/receipt.txt.j2'}:1: extends itself; extend the package's file: "
        '{% extends "package/vi/receipt.txt.j2" %}'
    )


# --------------------------------------------------------------------------------------------
# The admins' no-recipient notice (issue 13, point 4)


def test_no_recipient_notice_names_the_notice_the_roles_and_the_task() -> None:
    reminder = notification(NotificationKind.REMINDER, [RecipientRole.FOCAL_POINT], step=3)
    rendered = render_no_recipient(reminder, admin=admin("vi"), agency_names=NAMES)
    assert rendered.subject == (
        f"[Accord] Không có người nhận: thư nhắc hạn (lần 3) – {TITLE} – Sở Tư pháp"
    )
    assert rendered.subject == no_recipient_subject(reminder, admin=admin("vi"), agency_names=NAMES)
    assert (
        f"Thư nhắc hạn (lần 3) về báo cáo “{TITLE}” (kỳ 2025-6t) của Sở Tư pháp không gửi "
        "được cho ai: trong danh bạ, không cán bộ nào đang giữ vai trò cán bộ đầu mối "
        "(focal_point)." in rendered.text
    )
    assert "Mã nhiệm vụ: 289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t" in rendered.text

    step = notification(
        NotificationKind.ESCALATION,
        [RecipientRole.HEAD_OF_AGENCY, RecipientRole.PROVINCIAL_LEADERSHIP],
        step=2,
    )
    english = render_no_recipient(step, admin=admin("en"), agency_names=NAMES)
    assert english.subject == (
        f"[Accord] No recipient: overdue notice (step 2) – {TITLE} – Sở Tư pháp"
    )
    assert (
        "reached nobody: no officer in the directory holds the role head of agency "
        "(head_of_agency), provincial leadership (provincial_leadership)." in english.text
    )
    assert "Task ID: 289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t" in english.text


# --------------------------------------------------------------------------------------------
# The officer's own portal link (issue 15): in both parts, instead of "how to send it"

LINK = "http://127.0.0.1:8000/l/AbC-12_x.Zz9"
NOTICE_KINDS = {"delivery_failed", "no_recipient"}


@pytest.mark.parametrize("kind", [NotificationKind.REMINDER, NotificationKind.ESCALATION])
def test_a_reminder_with_a_link_says_to_submit_on_the_task_page(kind: NotificationKind) -> None:
    rendered = render(notification(kind), recipient=officer(), agency_names=NAMES, portal_url=LINK)
    text = rendered.text
    assert (
        "Cách nộp: mở trang nhiệm vụ theo đường dẫn dưới đây, điền và nộp báo cáo ngay trên "
        "trang (không trả lời thư này). Khi báo cáo được ghi nhận, đồng chí sẽ nhận được thư "
        "xác nhận.\n\n"
        f"Mở trang nhiệm vụ: {LINK}\n\n--\n"
    ) in text
    assert SEND_TO_SNV_VI not in text
    assert text.endswith(
        "Vui lòng không trả lời thư này: mọi thao tác (nộp báo cáo, đề nghị gia hạn, xem quyết "
        "định) thực hiện trên trang Accord theo đường dẫn trong thư. Đường dẫn dành riêng cho "
        "đồng chí, có thời hạn; đề nghị không chuyển tiếp thư này. Khi đường dẫn hết hạn, đồng "
        "chí mở trang Accord và xin đường dẫn mới bằng địa chỉ thư điện tử của mình.\n"
    )
    assert f'<p><a href="{LINK}">Mở trang nhiệm vụ</a>: {LINK}</p>' in rendered.html

    english = render(
        notification(kind), recipient=officer(locale="en"), agency_names=NAMES, portal_url=LINK
    )
    assert (
        "How to submit: open the task with the link below, fill in and submit the report on "
        "that page (not as a reply to this message). You will receive a receipt once the "
        f"report is recorded.\n\nOpen the task: {LINK}\n\n--\n"
    ) in english.text
    assert f'<p><a href="{LINK}">Open the task</a>: {LINK}</p>' in english.html
    assert "please do not forward this message." in english.text


@pytest.mark.parametrize("kind", [k for k in NotificationKind if k.value not in NOTICE_KINDS])
@pytest.mark.parametrize("role", [*RecipientRole])
def test_every_notification_carries_the_link_in_both_parts(
    kind: NotificationKind, role: RecipientRole
) -> None:
    rendered = render(
        notification(kind), recipient=officer(role), agency_names=NAMES, portal_url=LINK
    )
    assert f"\nMở trang nhiệm vụ: {LINK}\n" in rendered.text
    assert f'<a href="{LINK}">Mở trang nhiệm vụ</a>' in rendered.html
    assert rendered.text.count(LINK) == 1
    assert "accord submit" not in rendered.text


def test_the_link_is_escaped_in_the_html_part() -> None:
    odd = 'http://portal.example/a?x=1&y="2"/l/t.s'
    rendered = render(notification(), recipient=officer(), agency_names=NAMES, portal_url=odd)
    assert f"Mở trang nhiệm vụ: {odd}\n" in rendered.text
    assert (
        '<a href="http://portal.example/a?x=1&amp;y=&#34;2&#34;/l/t.s">Mở trang nhiệm vụ</a>'
    ) in rendered.html
    assert odd not in rendered.html


def test_the_admins_notices_link_to_the_portal_home() -> None:
    refused = RefusedDelivery("stp-dau-moi", "Nguyễn Thị Hoa", "550 5.1.1 No such mailbox")
    admin = Recipient("qt", "Quản trị", "qt@snv.example", None)
    failure = render_delivery_failure(
        notification(), admin=admin, refused=refused, agency_names=NAMES, portal_url=LINK
    )
    assert f"\nMở trang Accord: {LINK}\n" in failure.text
    assert f'<a href="{LINK}">Mở trang Accord</a>' in failure.html
    nobody = render_no_recipient(
        notification(NotificationKind.ESCALATION),
        admin=Recipient("qt", "Quản trị", "qt@snv.example", None, "en"),
        agency_names=NAMES,
        portal_url=LINK,
    )
    assert f"\nOpen Accord: {LINK}\n" in nobody.text


def test_without_a_link_the_mail_reads_as_before() -> None:
    text = render(notification(), recipient=officer(), agency_names=NAMES).text
    assert SEND_TO_SNV_VI in text
    assert "/l/" not in text
    assert "Mở trang" not in text
    assert text.endswith("Vui lòng không trả lời thư này.\n")
