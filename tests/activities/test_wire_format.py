"""The bytes Accord sends (activities/templates.py writes them directly, without EmailMessage)
read as intended: every header decodes to the exact text rendered, and the body has the same
MIME tree and the same decoded text, HTML and calendar as the message the email package
builds from the same content (the builder Accord used before, kept here as the oracle for
bodies; its header folder is not one, as it can lose spaces: CPython gh-144156)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

import pytest
from activity_helpers import ZONE, demo_task, notification
from hypothesis import given, settings
from hypothesis import strategies as st

from activities.models import NotificationKind, NotificationRequest
from activities.templates import (
    Composed,
    Recipient,
    RefusedDelivery,
    compose_delivery_failure,
    compose_message,
    due_date_event,
    message_id,
    one_line,
    render,
    render_delivery_failure,
    sender_address,
)
from agreements.models import RecipientRole

NAMES = {"STP": "Sở Tư pháp", "SNV": "Sở Nội vụ"}
SENDER = "Accord Quảng Bình <accord@accord.example>"


def reference(
    request: NotificationRequest,
    recipient: Recipient,
    *,
    rendered: Any = None,
    key: str | None = None,
    kind: NotificationKind | None = None,
    at: datetime | None = None,
    sender: str = SENDER,
) -> EmailMessage:
    """The same message built with the email package (headers left to its folder), as it
    arrives: flattened for SMTP and parsed again."""
    rendered = rendered or render(request, recipient=recipient, agency_names=NAMES)
    key = key or request.business_key
    message = EmailMessage(policy=SMTP)
    message["From"] = sender_address(sender)
    message["To"] = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime((at or request.scheduled_at).astimezone(ZONE))
    message["Message-ID"] = message_id(key, recipient.email)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Accord-Key"] = key
    message["X-Accord-Kind"] = (kind or request.kind).value
    message["X-Accord-Task"] = request.task.task_id
    message["X-Accord-Agency"] = request.task.agency
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if kind is None and request.kind is NotificationKind.REMINDER and request.task.due_at:
        message.add_attachment(
            due_date_event(request, NAMES).decode("utf-8"),
            subtype="calendar",
            charset="utf-8",
            cte="base64",
            filename="han-nop.ics",
            params={"method": "PUBLISH"},
        )
    return parse(message.as_bytes())


def intended_headers(
    request: NotificationRequest,
    to: Recipient,
    subject: str,
    *,
    key: str | None = None,
    kind: NotificationKind | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    key = key or request.business_key
    return {
        "Subject": subject,
        # In the agreement's zone, whatever zone the caller's clock gave.
        "Date": format_datetime((at or request.scheduled_at).astimezone(ZONE)),
        "Message-ID": message_id(key, to.email),
        # RFC 3834: vacation and other auto-responders do not answer Accord's mail.
        "Auto-Submitted": "auto-generated",
        "X-Accord-Key": key,
        "X-Accord-Kind": (kind or request.kind).value,
        "X-Accord-Task": request.task.task_id,
        "X-Accord-Agency": request.task.agency,
        "From": [("Accord Quảng Bình", "accord@accord.example")],
        "To": [(one_line(to.name), to.email)],
    }


def reading(message: EmailMessage) -> dict[str, Any]:
    """What a mail client shows: decoded headers and each part's type, parameters, content."""

    def leaves(part: EmailMessage) -> list[Any]:
        if part.is_multipart():
            return [part.get_content_type(), [leaves(p) for p in part.iter_parts()]]  # type: ignore[arg-type]
        return [
            part.get_content_type(),
            part.get_content_charset(),
            part.get_param("method"),
            part.get_filename(),
            part.get_content_disposition(),
            part.get_content(),
        ]

    headers: dict[str, Any] = {
        name: str(message[name])
        for name in (
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "X-Accord-Key",
            "X-Accord-Kind",
            "X-Accord-Task",
            "X-Accord-Agency",
        )
    }
    for name in ("From", "To"):
        headers[name] = [(a.display_name, a.addr_spec) for a in message[name].addresses]
    return {"headers": headers, "body": leaves(message)}


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def check_wire(composed: Composed) -> None:
    """ASCII, CRLF only, body lines within 78 and header lines too, unless a line holds one
    word that cannot be broken (a long task ID), which RFC 5322 allows up to 998."""
    text = composed.data.decode("ascii")
    assert "\n" not in text.replace("\r\n", "")
    assert "\r" not in text.replace("\r\n", "")
    head, _, body = text.partition("\r\n\r\n")
    for line in head.split("\r\n"):
        assert len(line) <= 78 or len(line.split(": ", 1)[-1].strip().split(" ")) == 1, line
        assert len(line) <= 998
    assert all(len(line) <= 78 for line in body.split("\r\n"))


def recipient(name: str = "Nguyễn Thị Hoa", locale: str = "vi") -> Recipient:
    return Recipient(
        officer_id="stp-dau-moi",
        name=name,
        email="hoa.nt@stp.quangbinh.example",
        role=RecipientRole.FOCAL_POINT,
        locale="en" if locale == "en" else "vi",
    )


REQUESTS = {
    "reminder": notification(),
    "reminder-undated": notification(task=demo_task(due_at=None)),
    "reminder-timed": notification(
        task=demo_task(due_at=datetime(2026, 12, 3, 16, 6, tzinfo=ZONE))
    ),
    "escalation": notification(NotificationKind.ESCALATION, step=3),
    "receipt": notification(NotificationKind.RECEIPT, step=None, late=True),
    "ext-requested": notification(
        NotificationKind.EXTENSION_REQUESTED,
        step=None,
        new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
        reason="Chờ số liệu\r\ncủa các phòng = 100% . ",
    ),
    "ext-decided": notification(
        NotificationKind.EXTENSION_DECIDED,
        step=None,
        task=demo_task(due_at=datetime(2025, 5, 25, tzinfo=ZONE)),
        approved=True,
        new_due_at=datetime(2025, 5, 25, tzinfo=ZONE),
        previous_due_at=datetime(2025, 5, 15, tzinfo=ZONE),
    ),
    "waived": notification(NotificationKind.WAIVED, step=None, reason="Đơn vị sáp nhập"),
}


@pytest.mark.parametrize("locale", ["vi", "en"])
@pytest.mark.parametrize("case", list(REQUESTS))
def test_every_kind_reads_as_the_email_package_builds_it(case: str, locale: str) -> None:
    request = REQUESTS[case]
    to = recipient(locale=locale)
    composed = compose_message(request, recipient=to, agency_names=NAMES, sender=SENDER)

    check_wire(composed)
    read = reading(parse(composed.data))
    subject = render(request, recipient=to, agency_names=NAMES).subject
    assert read["headers"] == intended_headers(request, to, subject)
    assert read["body"] == reading(reference(request, to))["body"]
    assert composed.subject == subject
    assert composed.message_id == message_id(request.business_key, to.email)


@pytest.mark.parametrize("locale", ["vi", "en"])
def test_a_delivery_failure_notice_reads_as_the_email_package_builds_it(locale: str) -> None:
    request = notification(NotificationKind.ESCALATION, step=2)
    admin = Recipient("snv-quan-tri", "Hoàng Thị Mai", "mai.ht@snv.quangbinh.example", None)
    refused = RefusedDelivery("stp-dau-moi", "Nguyễn Thị Hoa", "550 5.1.1 <x@y.example> unknown")
    key = f"{request.business_key}/delivery-failed/0123abcd"
    at = datetime(2025, 5, 22, 1, 2, tzinfo=UTC)
    composed = compose_delivery_failure(
        request,
        admin=admin,
        refused=refused,
        business_key=key,
        agency_names=NAMES,
        sender=SENDER,
        at=at,
    )
    rendered = render_delivery_failure(request, admin=admin, refused=refused, agency_names=NAMES)
    expected = reference(
        request,
        admin,
        rendered=rendered,
        key=key,
        kind=NotificationKind.DELIVERY_FAILED,
        at=at,
    )

    check_wire(composed)
    read = reading(parse(composed.data))
    assert read["headers"] == intended_headers(
        request, admin, rendered.subject, key=key, kind=NotificationKind.DELIVERY_FAILED, at=at
    )
    assert read["body"] == reading(expected)["body"]


@pytest.mark.parametrize("case", list(REQUESTS))
def test_every_message_is_marked_auto_generated_once(case: str) -> None:
    """RFC 3834, section 5: the exact header line, once, in the message's own header (not in
    a part's), so that auto-responders do not answer."""
    composed = compose_message(
        REQUESTS[case], recipient=recipient(), agency_names=NAMES, sender=SENDER
    )
    head = composed.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert head.count(b"Auto-Submitted: auto-generated") == 1
    assert composed.data.count(b"Auto-Submitted") == 1


def test_the_same_message_is_the_same_bytes() -> None:
    """A resend after a crash is byte-identical (boundaries come from the Message-ID)."""
    first = compose_message(
        notification(), recipient=recipient(), agency_names=NAMES, sender=SENDER
    )
    again = compose_message(
        notification(), recipient=recipient(), agency_names=NAMES, sender=SENDER
    )
    assert first.data == again.data
    boundaries = set(re.findall(rb'boundary="([^"]+)"', first.data))
    assert len(boundaries) == 2
    for boundary in boundaries:
        assert boundary.startswith(b"=_")  # "=_" never occurs in quoted-printable or base64


# Names and titles as the directory and agreements may hold them: any script, quotes,
# angle brackets, commas, header-looking text, long words, stray line breaks.
CHARACTERS = list(
    "aăâbcdđeêghiklmnoôơpqrstuưvxyAĐẠỆỮ áàảãạ0123456789\"'<>(),;:@.=-_\\/\r\n\t–“”…Ω한😀"
)
PIECES = st.sampled_from([*CHARACTERS, "Bcc: x@evil.example", "=?utf-8?b?QQ==?=", " " * 5])
TEXT = st.lists(PIECES, min_size=1, max_size=40).map("".join).filter(lambda t: one_line(t) != "")
# A title may hold a word longer than a header line (an ASCII one stays whole; a non-ASCII
# one is cut into encoded words, which unstructured headers join back without a space).
# A name's words stay under 40 bytes: Python's reader puts a space between the encoded words
# of one long word in a display name (RFC 2047 says to join them; mail clients do).
LONG_WORD = st.sampled_from(["x" * 80, "Đ" + "x" * 90, "a" * 30])
TITLE = (
    st.lists(st.one_of(PIECES, LONG_WORD), min_size=1, max_size=40)
    .map("".join)
    .filter(lambda t: one_line(t) != "")
)


NAME = TEXT.filter(lambda t: all(len(word.encode()) <= 40 for word in one_line(t).split()))


@settings(max_examples=150, deadline=None)
@given(name=NAME, title=TITLE, locale=st.sampled_from(["vi", "en"]))
def test_any_name_and_title_read_back_unchanged(name: str, title: str, locale: str) -> None:
    request = notification(task=demo_task(title=title))
    to = recipient(name=name, locale=locale)
    composed = compose_message(request, recipient=to, agency_names=NAMES, sender=SENDER)

    check_wire(composed)
    read = parse(composed.data)
    assert read["Subject"] == render(request, recipient=to, agency_names=NAMES).subject
    [address] = read["To"].addresses
    assert address.addr_spec == to.email
    # Python's reader of display names keeps the space that ends one encoded word and adds
    # one for the fold after it (RFC 2047 joins them): compare the words.
    assert address.display_name.split() == one_line(name).split()
    assert read["Bcc"] is None and read["Cc"] is None
    assert reading(read)["body"] == reading(reference(request, to))["body"]
