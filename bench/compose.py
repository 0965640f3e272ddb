"""CPU per message: one reminder built with the hand-written writer or with the email package.

    .venv/bin/python bench/compose.py

Prints the best of 3 × 1,000 builds of the same reminder (with its calendar) in one process:
rendering and the calendar alone; the whole message as Accord builds it
(`activities.templates.compose_message`); the whole message with `EmailMessage` and policy
SMTP. These are the figures behind the choice in the opening comment of
`activities/templates.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from activities import templates
from activities.models import NotificationKind, NotificationRequest, TaskRef
from agreements.models import Deliverable, RecipientRole

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NAMES = {"STP": "Sở Tư pháp", "SNV": "Sở Nội vụ"}
SENDER = "Accord Quảng Bình <accord@accord.example>"
TO = templates.Recipient(
    "dau-moi-stp", "Nguyễn Thị Hoa", "hoa.nt@stp.quangbinh.example", RecipientRole.FOCAL_POINT
)
TASK = TaskRef(
    task_id="289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t",
    agreement_id="289-kh-ubnd-2025",
    tenant="quang-binh",
    document_number="289/KH-UBND",
    agreement_title="Kế hoạch thực hiện công tác dân vận chính quyền năm 2025",
    item_number="III.7",
    obligation_id="bao-cao-6-thang",
    deliverable=Deliverable.REPORT,
    title="Báo cáo kết quả công tác dân vận 6 tháng",
    agency="STP",
    recipient="SNV",
    period_label="2025-6t",
    due_at=datetime(2025, 5, 15, tzinfo=ZONE),
)
REQUEST = NotificationRequest(
    business_key=f"{TASK.task_id}/reminder/1/202505150000",
    kind=NotificationKind.REMINDER,
    task=TASK,
    roles=[RecipientRole.FOCAL_POINT],
    step=1,
    offset="7d",
    scheduled_at=datetime(2025, 5, 8, 7, 30, tzinfo=ZONE),
)


def render_only() -> object:
    rendered = templates.render(REQUEST, recipient=TO, agency_names=NAMES)
    return rendered, templates.due_date_event(REQUEST, NAMES)


def hand_written() -> bytes:
    return templates.compose_message(REQUEST, recipient=TO, agency_names=NAMES, sender=SENDER).data


def email_package() -> bytes:
    rendered = templates.render(REQUEST, recipient=TO, agency_names=NAMES)
    calendar = templates.due_date_event(REQUEST, NAMES)
    message = EmailMessage(policy=SMTP)
    message["From"] = templates.sender_address(SENDER)
    message["To"] = Address(display_name=TO.name, addr_spec=TO.email)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(REQUEST.scheduled_at)
    message["Message-ID"] = templates.message_id(REQUEST.business_key, TO.email)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Accord-Key"] = REQUEST.business_key
    message["X-Accord-Kind"] = REQUEST.kind.value
    message["X-Accord-Task"] = TASK.task_id
    message["X-Accord-Agency"] = TASK.agency
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    message.add_attachment(
        calendar.decode(),
        subtype="calendar",
        charset="utf-8",
        cte="base64",
        filename="han-nop.ics",
        params={"method": "PUBLISH"},
    )
    return message.as_bytes()


def best_ms(build: Callable[[], object], runs: int = 1000) -> float:
    for _ in range(50):
        build()
    best = []
    for _ in range(3):
        began = time.process_time()
        for _ in range(runs):
            build()
        best.append((time.process_time() - began) / runs * 1000)
    return min(best)


if __name__ == "__main__":
    for name, build in (
        ("rendering and calendar only", render_only),
        ("whole message, hand-written writer", hand_written),
        ("whole message, email package", email_package),
    ):
        print(f"{name:36} {best_ms(build):6.2f} ms CPU a message (best of 3 × 1,000)")
