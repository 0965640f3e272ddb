"""What a notification says: subject, plain text and HTML, in Vietnamese (default) or English.

Pure functions, no I/O: the caller looks up the recipient and the agency names and passes
them in. Every piece of data (titles, names, reasons) is untrusted text: it is folded onto one
line before it reaches a header, and escaped before it reaches HTML.

Due dates follow the agreement convention: `due_at` is the first late moment, so a due instant
of 15/05 00:00 reads "trước ngày 15/05/2025 (ngày cuối: 14/05/2025)". Every date and time is
shown in the agreement's time zone, and a time of day names it: "trước 16:06 ngày 03/12/2026
(UTC+7)".
"""

from __future__ import annotations

import base64
import binascii
import email
import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event

from activities.models import NotificationKind, NotificationRequest, TaskRef
from agreements.calendar import last_day_of
from agreements.models import Deliverable, RecipientRole

Locale = Literal["vi", "en"]

SUBJECT_MAX = 200
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Recipient:
    """One officer a notification goes to, and the role they receive it in (None: an admin
    told that a notification could not be delivered)."""

    officer_id: str
    name: str
    email: str
    role: RecipientRole | None
    locale: Locale = "vi"


@dataclass(frozen=True)
class RefusedDelivery:
    """A notification the SMTP server refused for good (5xx), as told to the admins."""

    officer_id: str
    officer_name: str
    reply: str
    """The server's reply, e.g. '550 5.1.1 No such mailbox here'."""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


# --------------------------------------------------------------------------------------------
# Text hygiene

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Collapse every whitespace run (CR and LF included) to one space; drop control chars."""
    return _CONTROL.sub("", " ".join(text.split()))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def _ascii_header(value: str) -> str:
    return one_line(value).encode("ascii", "replace").decode("ascii")


# --------------------------------------------------------------------------------------------
# Dates


def _zone(task: TaskRef) -> ZoneInfo:
    try:
        return ZoneInfo(task.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfo("Asia") raises IsADirectoryError; a bad zone must not stop a reminder.
        return ZoneInfo(DEFAULT_ZONE)


def _day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _zone_name(local: datetime) -> str:
    """'UTC+7': the offset a time of day is in, for a reader (or a calendar app) elsewhere."""
    offset = local.utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _moment(at: datetime, zone: ZoneInfo, locale: Locale, *, named_zone: bool = True) -> str:
    """'16:10 ngày 03/12/2026 (UTC+7)': local to the agreement, whatever zone `at` is in."""
    local = at.astimezone(zone)
    text = f"{local:%H:%M} {'on' if locale == 'en' else 'ngày'} {_day(local.date())}"
    return f"{text} ({_zone_name(local)})" if named_zone else text


def _due_long(due_at: datetime, zone: ZoneInfo, locale: Locale) -> str:
    """'trước ngày 15/05/2025 (ngày cuối: 14/05/2025)' for a due instant at local midnight,
    'trước 16:06 ngày 03/12/2026 (UTC+7)' for one later in a day."""
    local = due_at.astimezone(zone)
    if local.time() == time.min:
        last_day = local.date() - timedelta(days=1)
        if locale == "en":
            return f"before {_day(local.date())} (last day: {_day(last_day)})"
        return f"trước ngày {_day(local.date())} (ngày cuối: {_day(last_day)})"
    return f"{'before' if locale == 'en' else 'trước'} {_moment(local, zone, locale)}"


def _due_short(due_at: datetime, zone: ZoneInfo, locale: Locale) -> str:
    """The due date in a subject: 'hạn trước 15/05/2025' (a time of day without its zone:
    the subject stays short, the body names it)."""
    local = due_at.astimezone(zone)
    if local.time() == time.min:
        when = _day(local.date())
    else:
        when = _moment(local, zone, locale, named_zone=False)
    return f"due before {when}" if locale == "en" else f"hạn trước {when}"


def _days(delta: timedelta, locale: Locale) -> str:
    days = delta.days
    if locale == "en":
        return f"{days} day" if days == 1 else f"{days} days"
    return f"{days} ngày"


# --------------------------------------------------------------------------------------------
# Vocabulary

_DELIVERABLE: dict[Locale, dict[Deliverable, str]] = {
    "vi": {
        Deliverable.REPORT: "báo cáo",
        Deliverable.PLAN: "kế hoạch",
        Deliverable.INSPECTION: "kết quả kiểm tra",
        Deliverable.OTHER: "kết quả thực hiện",
    },
    "en": {
        Deliverable.REPORT: "report",
        Deliverable.PLAN: "plan",
        Deliverable.INSPECTION: "inspection results",
        Deliverable.OTHER: "deliverable",
    },
}

_LABELS: dict[Locale, dict[str, str]] = {
    "vi": {
        "agreement": "Văn bản",
        "item": "Nội dung",
        "obligation": "Nhiệm vụ",
        "period": "Kỳ báo cáo",
        "agency": "Cơ quan thực hiện",
        "recipient": "Nơi nhận",
        "due": "Hạn nộp",
        "due_note": "Ghi chú về hạn",
        "covers": "Kỳ số liệu",
        "previous_due": "Hạn cũ",
        "new_due": "Hạn mới",
        "kept_due": "Hạn nộp (giữ nguyên)",
        "asked_due": "Hạn đề nghị",
        "declined_due": "Hạn đề nghị (không được chấp thuận)",
        "task": "Mã nhiệm vụ",
        "reason": "Lý do",
        "no_due": "không có hạn cụ thể",
        "greeting": "Kính gửi đồng chí {name},",
        "footer": (
            "Thư này do hệ thống Accord gửi tự động để theo dõi việc thực hiện chương trình, "
            "kế hoạch phối hợp. Vui lòng không trả lời thư này."
        ),
    },
    "en": {
        "agreement": "Agreement",
        "item": "Item",
        "obligation": "Obligation",
        "period": "Reporting period",
        "agency": "Agency",
        "recipient": "Delivered to",
        "due": "Due",
        "due_note": "About the deadline",
        "covers": "Data period",
        "previous_due": "Previous deadline",
        "new_due": "New deadline",
        "kept_due": "Due (unchanged)",
        "asked_due": "Requested deadline",
        "declined_due": "Requested deadline (declined)",
        "task": "Task ID",
        "reason": "Reason",
        "no_due": "no fixed due date",
        "greeting": "Dear {name},",
        "footer": (
            "This message was sent automatically by Accord, which tracks coordination "
            "agreements. Please do not reply."
        ),
    },
}


@dataclass(frozen=True)
class _Context:
    """Everything a template needs, already folded to one line and localised."""

    request: NotificationRequest
    recipient: Recipient
    locale: Locale
    zone: ZoneInfo
    title: str
    agency: str
    deliverable: str
    period: str
    due: str | None
    due_short: str | None
    now: str
    reason: str | None
    names: Mapping[str, str]
    """Agency names by code (the task's agency and recipient)."""


@dataclass
class _Content:
    subject_prefix: str
    subject_suffix: list[str] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    how_to_submit: str | None = None
    """Where the owing agency sends what it owes."""


def _agency_label(code: str, names: Mapping[str, str]) -> str:
    name = names.get(code)
    return f"{one_line(name)} ({code})" if name else code


def _context(
    request: NotificationRequest, recipient: Recipient, names: Mapping[str, str]
) -> _Context:
    task = request.task
    locale: Locale = "en" if recipient.locale == "en" else "vi"
    zone = _zone(task)
    return _Context(
        request=request,
        recipient=recipient,
        locale=locale,
        zone=zone,
        title=one_line(task.title),
        agency=one_line(names.get(task.agency) or task.agency),
        deliverable=_DELIVERABLE[locale][task.deliverable],
        period=one_line(task.period_label),
        due=_due_long(task.due_at, zone, locale) if task.due_at else None,
        due_short=_due_short(task.due_at, zone, locale) if task.due_at else None,
        now=_moment(request.scheduled_at, zone, locale),
        reason=one_line(request.reason) if request.reason else None,
        names=names,
    )


def _how_to_submit(ctx: _Context) -> str:
    """Whom the owing agency sends its deliverable to, until officers can submit in Accord
    itself (`accord submit` is for the administrators who record what arrives).

    The receiving agency if the obligation names one, else the body that issued the
    agreement, else the way every official document leaves an agency: signed by its head.
    Replies to Accord's mail reach nobody (the footer says so), and this line agrees.
    """
    en = ctx.locale == "en"
    task = ctx.request.task
    what = ctx.deliverable
    focal_point = ctx.recipient.role is RecipientRole.FOCAL_POINT
    document = one_line(task.document_number)
    no_reply = " (not as a reply to this message)" if en else " (không trả lời thư này)"
    if task.recipient:
        to = _agency_label(task.recipient, ctx.names)
        if en:
            who = "You" if focal_point else "Your focal point"
            return (
                f"How to submit: send the {what} to {to}, the receiving agency{no_reply}. "
                f"{who} will receive a receipt once the {what} is recorded."
            )
        who = "đồng chí" if focal_point else "bộ phận đầu mối"
        return (
            f"Cách nộp: gửi {what} cho {to}, cơ quan tiếp nhận, tổng hợp{no_reply}. "
            f"Khi {what} được ghi nhận, {who} sẽ nhận được thư xác nhận."
        )
    if task.issuer:
        issuer = one_line(task.issuer)
        if en:
            return f"How to submit: send the {what} to {issuer}, which issued {document}{no_reply}."
        return f"Cách nộp: gửi {what} cho {issuer}, cơ quan ban hành văn bản {document}{no_reply}."
    if focal_point:
        if en:
            return (
                f"How to submit: have the head of {ctx.agency} sign the {what} and send it as "
                f"{document} requires{no_reply}."
            )
        return (
            f"Cách nộp: trình lãnh đạo {ctx.agency} ký, gửi {what} theo quy định của văn bản "
            f"{document}{no_reply}."
        )
    if en:
        return f"How to submit: send the {what} as {document} requires{no_reply}."
    return f"Cách nộp: gửi {what} theo quy định của văn bản {document}{no_reply}."


def _owing_agency(role: RecipientRole | None) -> bool:
    return role in (RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY)


def _for_information(ctx: _Context) -> str:
    role = ctx.recipient.role
    if ctx.locale == "en":
        if role is RecipientRole.AGGREGATOR:
            return "For your information as the receiving agency, to follow up and consolidate."
        return "For your information and direction."
    if role is RecipientRole.AGGREGATOR:
        return "Thông báo để đồng chí nắm, theo dõi và tổng hợp."
    return "Kính báo cáo để đồng chí nắm và chỉ đạo."


def _reminder(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    content = _Content("[Accord] Reminder: " if en else "[Accord] Nhắc hạn: ")
    if ctx.due_short:
        content.subject_suffix.append(ctx.due_short)
    due = ctx.due or _LABELS[ctx.locale]["no_due"]
    if en:
        content.paragraphs.append(
            f"Reminder: {ctx.agency} must submit the {ctx.deliverable} “{ctx.title}” "
            f"(period {ctx.period}), due {due}."
        )
    else:
        content.paragraphs.append(
            f"Nhắc hạn: {ctx.agency} cần nộp {ctx.deliverable} “{ctx.title}” "
            f"(kỳ {ctx.period}), hạn nộp {due}."
        )
    due_at = ctx.request.task.due_at
    if due_at is not None and due_at - ctx.request.scheduled_at >= timedelta(days=1):
        left = _days(due_at - ctx.request.scheduled_at, ctx.locale)
        content.paragraphs.append(f"{left} left." if en else f"Còn {left} đến hạn.")
    _owing_actions(ctx, content, urgent=False)
    return content


def _escalation(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    step = ctx.request.step
    if en:
        prefix = f"[Accord] Overdue (step {step}): " if step else "[Accord] Overdue: "
    else:
        prefix = f"[Accord] Quá hạn (bậc {step}): " if step else "[Accord] Quá hạn: "
    content = _Content(prefix)
    if ctx.due_short:
        content.subject_suffix.append(ctx.due_short)
    due = ctx.due or _LABELS[ctx.locale]["no_due"]
    if en:
        content.paragraphs.append(
            f"Overdue: as of {ctx.now}, {ctx.agency} has not submitted the {ctx.deliverable} "
            f"“{ctx.title}” (period {ctx.period}), due {due}."
        )
    else:
        content.paragraphs.append(
            f"Quá hạn: đến {ctx.now}, {ctx.agency} chưa nộp {ctx.deliverable} “{ctx.title}” "
            f"(kỳ {ctx.period}), hạn nộp {due}."
        )
    due_at = ctx.request.task.due_at
    if due_at is not None and ctx.request.scheduled_at - due_at >= timedelta(days=1):
        late = _days(ctx.request.scheduled_at - due_at, ctx.locale)
        content.paragraphs.append(f"{late} overdue." if en else f"Đã quá hạn {late}.")
    if step:
        content.paragraphs.append(
            f"This is escalation step {step}." if en else f"Đây là thông báo quá hạn bậc {step}."
        )
    _owing_actions(ctx, content, urgent=True)
    return content


def _owing_actions(ctx: _Context, content: _Content, *, urgent: bool) -> None:
    en = ctx.locale == "en"
    role = ctx.recipient.role
    if role is RecipientRole.FOCAL_POINT:
        if en:
            content.actions.append(
                f"Please {'complete it without delay' if urgent else 'complete it on time'} "
                f"and submit the {ctx.deliverable}."
            )
        else:
            content.actions.append(
                f"Đề nghị đồng chí {'khẩn trương hoàn thành' if urgent else 'hoàn thành'} "
                f"và nộp {ctx.deliverable} {'ngay' if urgent else 'đúng hạn'}."
            )
    elif role is RecipientRole.HEAD_OF_AGENCY:
        content.actions.append(
            f"Please direct your focal point to submit the {ctx.deliverable}"
            f"{' without delay' if urgent else ' on time'}."
            if en
            else f"Đề nghị đồng chí chỉ đạo bộ phận đầu mối "
            f"{'khẩn trương ' if urgent else ''}hoàn thành và nộp {ctx.deliverable}."
        )
    else:
        content.actions.append(_for_information(ctx))
    if _owing_agency(role):
        content.how_to_submit = _how_to_submit(ctx)


def _receipt(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    late = ctx.request.late
    if en:
        content = _Content(f"[Accord] {ctx.deliverable.capitalize()} received: ")
        state = None if late is None else ("late" if late else "on time")
    else:
        content = _Content(f"[Accord] Đã nhận {ctx.deliverable}: ")
        state = None if late is None else ("quá hạn" if late else "đúng hạn")
    if state:
        content.subject_suffix.append(state)
    if en:
        content.paragraphs.append(
            f"Accord received the {ctx.deliverable} “{ctx.title}” (period {ctx.period}) "
            f"from {ctx.agency} at {ctx.now}" + (f" – {state}." if state else ".")
        )
    else:
        content.paragraphs.append(
            f"Accord đã nhận {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}) "
            f"của {ctx.agency} lúc {ctx.now}" + (f" – {state}." if state else ".")
        )
    if _owing_agency(ctx.recipient.role):
        content.actions.append(
            "No further action is needed." if en else "Đơn vị không cần thao tác thêm."
        )
    else:
        content.actions.append(_for_information(ctx))
    return content


def _extension_requested(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    content = _Content("[Accord] Extension requested: " if en else "[Accord] Đề nghị gia hạn: ")
    new_due = ctx.request.new_due_at
    until = _due_long(new_due, ctx.zone, ctx.locale) if new_due else None
    if en:
        content.paragraphs.append(
            f"{ctx.agency} requests an extension for the {ctx.deliverable} “{ctx.title}” "
            f"(period {ctx.period})" + (f", proposing a new due date {until}." if until else ".")
        )
    else:
        content.paragraphs.append(
            f"{ctx.agency} đề nghị gia hạn {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period})"
            + (f", đề nghị hạn mới: {until}." if until else ".")
        )
    if _owing_agency(ctx.recipient.role):
        content.actions.append(
            "Until a decision is made, the current due date stands."
            if en
            else "Trong khi chờ quyết định, hạn nộp hiện hành vẫn giữ nguyên."
        )
    else:
        content.actions.append(
            "Please review the request and decide."
            if en
            else "Đề nghị đồng chí xem xét, quyết định."
        )
    return content


def _approved_due(request: NotificationRequest) -> datetime | None:
    """The deadline in force after an approval. The workflow has already moved the task's
    due instant (the date asked for, after the working-calendar rule, which the due note
    explains); the date asked for stands in when the task has none."""
    return request.task.due_at or request.new_due_at


def _extension_decided(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    approved = ctx.request.approved
    new_due = _approved_due(ctx.request) if approved else None
    if approved:
        content = _Content(
            "[Accord] Extension approved: " if en else "[Accord] Chấp thuận gia hạn: "
        )
        if new_due:
            content.subject_suffix.append(
                ("new " if en else "mới: ") + _due_short(new_due, ctx.zone, ctx.locale)
            )
            until = _due_long(new_due, ctx.zone, ctx.locale)
            content.paragraphs.append(
                f"The extension for the {ctx.deliverable} “{ctx.title}” (period {ctx.period}) "
                f"of {ctx.agency} was approved. New deadline: {until}."
                if en
                else f"Đề nghị gia hạn {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}) của "
                f"{ctx.agency} đã được chấp thuận. Hạn mới: {until}."
            )
        else:
            content.paragraphs.append(
                f"The extension for the {ctx.deliverable} “{ctx.title}” (period {ctx.period}) "
                f"of {ctx.agency} was approved."
                if en
                else f"Đề nghị gia hạn {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}) của "
                f"{ctx.agency} đã được chấp thuận."
            )
    else:
        declined = approved is False
        if en:
            verb = "Extension declined" if declined else "Extension decision"
        else:
            verb = "Không chấp thuận gia hạn" if declined else "Quyết định gia hạn"
        content = _Content(f"[Accord] {verb}: ")
        due = ctx.due or _LABELS[ctx.locale]["no_due"]
        if en:
            outcome = "was declined" if declined else "was decided"
            content.paragraphs.append(
                f"The extension request for the {ctx.deliverable} “{ctx.title}” "
                f"(period {ctx.period}) of {ctx.agency} {outcome}. The due date stays: {due}."
            )
        else:
            outcome = "không được chấp thuận" if declined else "đã được xem xét"
            content.paragraphs.append(
                f"Đề nghị gia hạn {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}) của "
                f"{ctx.agency} {outcome}. Hạn nộp giữ nguyên: {due}."
            )
    if _owing_agency(ctx.recipient.role):
        content.actions.append(
            f"Please submit the {ctx.deliverable} by the due date."
            if en
            else f"Đề nghị đồng chí hoàn thành và nộp {ctx.deliverable} trong hạn."
        )
        content.how_to_submit = _how_to_submit(ctx)
    else:
        content.actions.append(_for_information(ctx))
    return content


def _waived(ctx: _Context) -> _Content:
    en = ctx.locale == "en"
    content = _Content("[Accord] Waived: " if en else f"[Accord] Miễn {ctx.deliverable}: ")
    content.paragraphs.append(
        f"{ctx.agency} is exempted from the {ctx.deliverable} “{ctx.title}” "
        f"(period {ctx.period}); nothing needs to be submitted."
        if en
        else f"{ctx.agency} được miễn {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}); "
        f"không cần nộp."
    )
    if _owing_agency(ctx.recipient.role):
        content.actions.append("No action is needed." if en else "Đơn vị không cần thao tác thêm.")
    else:
        content.actions.append(_for_information(ctx))
    return content


_TEMPLATES = {
    NotificationKind.REMINDER: _reminder,
    NotificationKind.ESCALATION: _escalation,
    NotificationKind.RECEIPT: _receipt,
    NotificationKind.EXTENSION_REQUESTED: _extension_requested,
    NotificationKind.EXTENSION_DECIDED: _extension_decided,
    NotificationKind.WAIVED: _waived,
}


# --------------------------------------------------------------------------------------------
# Delivery failure: told to the admins, about a notification of any other kind

REPLY_MAX = 500
"""Characters of the SMTP reply quoted in a delivery-failure notice."""

_KIND_NAMES: dict[Locale, dict[NotificationKind, str]] = {
    "vi": {
        NotificationKind.REMINDER: "thư nhắc hạn",
        NotificationKind.ESCALATION: "thông báo quá hạn",
        NotificationKind.RECEIPT: "thư xác nhận đã nhận",
        NotificationKind.EXTENSION_REQUESTED: "thông báo đề nghị gia hạn",
        NotificationKind.EXTENSION_DECIDED: "thông báo kết quả xem xét gia hạn",
        NotificationKind.WAIVED: "thông báo miễn nộp",
        NotificationKind.DELIVERY_FAILED: "thông báo thư không gửi được",
    },
    "en": {
        NotificationKind.REMINDER: "reminder",
        NotificationKind.ESCALATION: "overdue notice",
        NotificationKind.RECEIPT: "receipt",
        NotificationKind.EXTENSION_REQUESTED: "extension request notice",
        NotificationKind.EXTENSION_DECIDED: "extension decision",
        NotificationKind.WAIVED: "waiver notice",
        NotificationKind.DELIVERY_FAILED: "delivery-failure notice",
    },
}


def _delivery_failed(ctx: _Context, refused: RefusedDelivery) -> _Content:
    en = ctx.locale == "en"
    request = ctx.request
    kind = _KIND_NAMES[ctx.locale][request.kind]
    if request.kind is NotificationKind.ESCALATION and request.step:
        kind += f" (step {request.step})" if en else f" (bậc {request.step})"
    name = one_line(refused.officer_name)
    officer_id = one_line(refused.officer_id)
    content = _Content("[Accord] Undeliverable: " if en else "[Accord] Không gửi được thư: ")
    if en:
        content.paragraphs.append(
            f"The mail server permanently refused the {kind} to {name} (officer ID: "
            f"{officer_id}) about the {ctx.deliverable} “{ctx.title}” (period {ctx.period}) "
            f"of {ctx.agency}. Accord will not send it to that address again."
        )
        content.actions.append(
            "Please check and correct this officer's e-mail address in the directory; later "
            "notices go to the address the directory holds when they are sent."
        )
    else:
        content.paragraphs.append(
            f"Máy chủ thư đã từ chối vĩnh viễn {kind} gửi đồng chí {name} (mã cán bộ: "
            f"{officer_id}) về {ctx.deliverable} “{ctx.title}” (kỳ {ctx.period}) của "
            f"{ctx.agency}. Accord sẽ không gửi lại thư này đến địa chỉ đó."
        )
        content.actions.append(
            "Đề nghị đồng chí kiểm tra, cập nhật địa chỉ thư điện tử của cán bộ này trong danh "
            "bạ; các thông báo sau sẽ được gửi theo địa chỉ có trong danh bạ lúc gửi."
        )
    return content


def _refusal_facts(ctx: _Context, refused: RefusedDelivery) -> list[tuple[str, str]]:
    en = ctx.locale == "en"
    officer = f"{one_line(refused.officer_name)} ({one_line(refused.officer_id)})"
    reply = _shorten(one_line(refused.reply), REPLY_MAX)
    return [
        ("Officer not reached" if en else "Cán bộ không nhận được thư", officer),
        ("Mail server reply" if en else "Trả lời của máy chủ thư", reply),
    ]


# --------------------------------------------------------------------------------------------
# Assembly


def _subject(ctx: _Context, content: _Content) -> str:
    prefix = one_line(content.subject_prefix) + " "
    tail = "".join(f" – {one_line(part)}" for part in [ctx.agency, *content.subject_suffix])
    # A long obligation title gives way first, so the agency and the date stay visible.
    room = SUBJECT_MAX - len(prefix) - len(tail)
    title = _shorten(ctx.title, max(room, 20))
    return _shorten(one_line(prefix + title + tail), SUBJECT_MAX)


def _facts(ctx: _Context, names: Mapping[str, str]) -> list[tuple[str, str]]:
    labels = _LABELS[ctx.locale]
    task = ctx.request.task
    facts = [
        (
            labels["agreement"],
            f"{one_line(task.document_number)} – {one_line(task.agreement_title)}",
        ),
    ]
    if task.item_number:
        facts.append((labels["item"], one_line(task.item_number)))
    facts.append((labels["obligation"], ctx.title))
    facts.append((labels["period"], ctx.period))
    facts.append((labels["agency"], _agency_label(task.agency, names)))
    if task.recipient:
        facts.append((labels["recipient"], _agency_label(task.recipient, names)))
    facts += _due_facts(ctx)
    if task.covers_from and task.covers_to:
        facts.append((labels["covers"], f"{task.covers_from:%d/%m/%Y} – {task.covers_to:%d/%m/%Y}"))
    note = task.due_note_en if ctx.locale == "en" else task.due_note_vi
    if note:
        facts.append((labels["due_note"], one_line(note)))
    if ctx.reason:
        facts.append((labels["reason"], ctx.reason))
    facts.append((labels["task"], one_line(task.task_id)))
    return facts


def _due_facts(ctx: _Context) -> list[tuple[str, str]]:
    """The deadline lines: the one in force and, around an extension, the others involved."""
    labels = _LABELS[ctx.locale]
    request = ctx.request
    due = ctx.due or labels["no_due"]
    asked = _due_long(request.new_due_at, ctx.zone, ctx.locale) if request.new_due_at else None
    if request.kind is NotificationKind.EXTENSION_DECIDED:
        if request.approved:
            facts = []
            if request.previous_due_at is not None:
                previous = _due_long(request.previous_due_at, ctx.zone, ctx.locale)
                facts.append((labels["previous_due"], previous))
            new_due = _approved_due(request)
            new = _due_long(new_due, ctx.zone, ctx.locale) if new_due else labels["no_due"]
            return [*facts, (labels["new_due"], new)]
        if request.approved is False:
            facts = [(labels["kept_due"], due)]
            return facts + ([(labels["declined_due"], asked)] if asked else [])
    facts = [(labels["due"], due)]
    return facts + ([(labels["asked_due"], asked)] if asked else [])


def _text(greeting: str, content: _Content, facts: list[tuple[str, str]], footer: str) -> str:
    lines = [greeting, ""]
    for paragraph in content.paragraphs:
        lines += [paragraph, ""]
    lines += [f"{label}: {value}" for label, value in facts]
    lines.append("")
    for action in content.actions:
        lines += [action, ""]
    if content.how_to_submit:
        lines += [content.how_to_submit, ""]
    lines += ["--", footer, ""]
    return "\n".join(lines)


def _html(
    ctx: _Context,
    subject: str,
    greeting: str,
    content: _Content,
    facts: list[tuple[str, str]],
    footer: str,
) -> str:
    e = html.escape
    rows = "\n".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top">{e(label)}'
        f"</th><td>{e(value)}</td></tr>"
        for label, value in facts
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{ctx.locale}">',
        f'<head><meta charset="utf-8"><title>{e(subject)}</title></head>',
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px">',
        f"<p>{e(greeting)}</p>",
        *(f"<p>{e(paragraph)}</p>" for paragraph in content.paragraphs),
        f"<table>\n{rows}\n</table>",
        *(f"<p><strong>{e(action)}</strong></p>" for action in content.actions),
    ]
    if content.how_to_submit:
        parts.append(f"<p>{e(content.how_to_submit)}</p>")
    parts += [f'<p style="color:#666;font-size:12px">{e(footer)}</p>', "</body>", "</html>", ""]
    return "\n".join(parts)


def render(
    request: NotificationRequest, *, recipient: Recipient, agency_names: Mapping[str, str]
) -> RenderedMessage:
    """Subject, plain text and HTML of `request` for one recipient, in their language.

    `agency_names` maps agency codes (the task's agency and recipient) to their names; a
    missing code is shown as the code itself.
    """
    template = _TEMPLATES.get(request.kind)
    if template is None:
        raise ValueError(f"{request.kind.value} notices are built by build_delivery_failure")
    ctx = _context(request, recipient, agency_names)
    content = template(ctx)
    labels = _LABELS[ctx.locale]
    greeting = labels["greeting"].format(name=one_line(recipient.name))
    subject = _subject(ctx, content)
    facts = _facts(ctx, agency_names)
    return RenderedMessage(
        subject=subject,
        text=_text(greeting, content, facts, labels["footer"]),
        html=_html(ctx, subject, greeting, content, facts, labels["footer"]),
    )


def render_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    agency_names: Mapping[str, str],
) -> RenderedMessage:
    """The notice telling an admin that `request` could not be delivered to one officer.

    It names the officer (name and ID) and quotes the server's reply, never the address:
    the admin finds it in the directory by the officer ID.
    """
    ctx = _context(request, admin, agency_names)
    content = _delivery_failed(ctx, refused)
    labels = _LABELS[ctx.locale]
    greeting = labels["greeting"].format(name=one_line(admin.name))
    subject = _subject(ctx, content)
    facts = [*_refusal_facts(ctx, refused), *_facts(ctx, agency_names)]
    return RenderedMessage(
        subject=subject,
        text=_text(greeting, content, facts, labels["footer"]),
        html=_html(ctx, subject, greeting, content, facts, labels["footer"]),
    )


def message_id(business_key: str, email: str) -> str:
    """The same notification to the same address always has the same Message-ID, so a
    message sent twice after a crash is recognisable as a duplicate by mail clients."""
    digest = hashlib.sha256(f"{business_key}\n{email.lower()}".encode()).hexdigest()
    # 128 bits are unique enough and keep the header on one line (no folded Message-ID).
    return f"<{digest[:32]}@accord>"


def sender_address(sender: str) -> Address:
    """The `From` address of a setting such as 'Accord <accord@accord.example>'."""
    name, addr_spec = parseaddr(one_line(sender))
    if not addr_spec:
        raise ValueError(f"sender {sender!r} has no e-mail address")
    return Address(display_name=one_line(name), addr_spec=addr_spec)


# The message on the wire. Messages are written here as bytes, not with the email package's
# EmailMessage: building and flattening one cost about 2 ms of CPU per message (most of the
# mail activity's own time when a province's reminders fall due at once), writing it directly
# about a tenth of that. Every line is ASCII and ends with CRLF (nothing depends on the relay
# supporting 8BITMIME); bodies are quoted-printable, the calendar attachment base64.
#
# Non-ASCII header text is written as RFC 2047 encoded words, every space inside an encoded
# word, one word per folded line (CPython's own folder, up to 3.14, gh-144156, can drop the
# space between two encoded words, "kết quảcông tác", or add one). ASCII text is folded at
# spaces to 78 characters.

_WORD_BYTES = 42
"""UTF-8 bytes per encoded word: 56 base64 characters, 68 with the `=?utf-8?b?...?=` frame,
so that even `Subject: ` plus one word stays within the 78-character line limit."""

_LINE = 78
_CRLF = "\r\n"
_TOKENS = re.compile(r"\S+\s*|\s+")


def _chunks(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut after a space where possible: decoders that
    wrongly keep the fold between two encoded words then show a double space, not a split word.
    """
    chunks: list[str] = []
    chunk = ""
    for token in _TOKENS.findall(text):
        if len((chunk + token).encode()) <= limit:
            chunk += token
            continue
        if chunk:
            chunks.append(chunk)
            chunk = ""
        for char in token:  # a single token longer than a word: cut between characters
            if chunk and len((chunk + char).encode()) > limit:
                chunks.append(chunk)
                chunk = ""
            chunk += char
    if chunk:
        chunks.append(chunk)
    return chunks


def encoded_words(text: str) -> str:
    """`text` as RFC 2047 base64 encoded words, one per folded line."""
    return f"{_CRLF} ".join(
        f"=?utf-8?b?{base64.b64encode(chunk.encode()).decode('ascii')}?="
        for chunk in _chunks(text, _WORD_BYTES)
    )


def _folded_ascii(name: str, text: str) -> str:
    """`name: text` folded at spaces into lines of at most 78 characters; a word longer than
    a line (a long task ID) stays whole on a line of its own, as RFC 5322 allows up to 998."""
    lines: list[str] = []
    line = f"{name}:"
    for word in text.split(" "):
        if len(line) + 1 + len(word) > _LINE and not line.endswith(":"):
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return _CRLF.join(lines)


def _readable_as_is(text: str) -> bool:
    """ASCII that a reader will not take for encoded words (`=?...?=`)."""
    return text.isascii() and "=?" not in text


def _text_header(name: str, value: str) -> str:
    """An unstructured header (Subject, X-…), `value` already on one line."""
    if _readable_as_is(value):
        return _folded_ascii(name, value)
    return f"{name}: {encoded_words(value)}"


def _address_header(name: str, address: Address) -> str:
    # `Address` has validated the address and quotes an ASCII display name itself.
    if not address.addr_spec.isascii():
        raise ValueError(f"{name} address {address.addr_spec!r} is not ASCII")
    if not address.display_name:
        return f"{name}: {address.addr_spec}"
    if _readable_as_is(address.display_name):
        # Folded at spaces (inside a quoted name too: unfolding gives the same text back).
        return _folded_ascii(name, str(address))
    return f"{name}: {encoded_words(address.display_name)}{_CRLF} <{address.addr_spec}>"


def _quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable lines (76 characters at most) ending with CRLF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _boundary(message_id: str, part: str) -> str:
    """`=_` cannot occur in quoted-printable or base64 text, so no body line can be mistaken
    for the boundary. Derived from the Message-ID: the same message is the same bytes."""
    digest = hashlib.sha256(f"{message_id}/{part}".encode()).hexdigest()[:24]
    return f"=_accord_{part}_{digest}"


@dataclass(frozen=True)
class Composed:
    """A message ready for the SMTP DATA command."""

    subject: str
    """The subject as the recipient reads it (decoded)."""
    message_id: str
    data: bytes
    """The whole message: ASCII, CRLF line ends."""

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=SMTP)
        assert isinstance(message, EmailMessage)
        return message


def _compose(
    rendered: RenderedMessage,
    *,
    sender: str,
    recipient: Recipient,
    date: datetime,
    business_key: str,
    kind: NotificationKind,
    task: TaskRef,
    calendar: bytes | None = None,
) -> Composed:
    mid = message_id(business_key, recipient.email)
    # The display name is folded to one line first: no name can smuggle in a header of its own.
    to = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    alternative = _boundary(mid, "alt")
    headers = [
        _address_header("From", sender_address(sender)),
        _address_header("To", to),
        _text_header("Subject", rendered.subject),
        # In the agreement's zone, as the body's times are (a notice stamped in UTC showed
        # "+0000" to a reader whose client prints the header as written).
        f"Date: {format_datetime(date.astimezone(_zone(task)))}",
        f"Message-ID: {mid}",
        # RFC 3834: vacation replies and other auto-responders do not answer Accord's mail.
        "Auto-Submitted: auto-generated",
        _text_header("X-Accord-Key", _ascii_header(business_key)),
        f"X-Accord-Kind: {kind.value}",
        _text_header("X-Accord-Task", _ascii_header(task.task_id)),
        _text_header("X-Accord-Agency", _ascii_header(task.agency)),
        "MIME-Version: 1.0",
    ]
    qp = "Content-Transfer-Encoding: quoted-printable"
    body: list[str | bytes] = [
        f"--{alternative}",
        'Content-Type: text/plain; charset="utf-8"',
        qp,
        "",
        _quoted_printable(rendered.text),
        f"--{alternative}",
        'Content-Type: text/html; charset="utf-8"',
        qp,
        "",
        _quoted_printable(rendered.html),
        f"--{alternative}--",
        "",
    ]
    if calendar is None:
        headers.append(f'Content-Type: multipart/alternative;{_CRLF} boundary="{alternative}"')
    else:
        mixed = _boundary(mid, "mixed")
        headers.append(f'Content-Type: multipart/mixed;{_CRLF} boundary="{mixed}"')
        body = [
            f"--{mixed}",
            f'Content-Type: multipart/alternative;{_CRLF} boundary="{alternative}"',
            "",
            *body,
            f"--{mixed}",
            'Content-Type: text/calendar; charset="utf-8"; method="PUBLISH"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="han-nop.ics"',
            "",
            base64.encodebytes(calendar).replace(b"\n", b"\r\n"),
            f"--{mixed}--",
            "",
        ]
    # A body's own last line break stays part of it: the CRLF before a boundary belongs to the
    # boundary (RFC 2046), so every piece, a body too, is followed by one more.
    lines: list[str | bytes] = [*headers, "", *body]
    data = b"\r\n".join(line if isinstance(line, bytes) else line.encode("ascii") for line in lines)
    return Composed(subject=rendered.subject, message_id=mid, data=data)


def compose_message(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    sender: str,
) -> Composed:
    """A multipart/alternative (text + HTML) UTF-8 message to exactly one recipient; a
    reminder of a dated task also carries the deadline as an iCalendar event."""
    rendered = render(request, recipient=recipient, agency_names=agency_names)
    calendar = None
    if request.kind is NotificationKind.REMINDER and request.task.due_at is not None:
        calendar = due_date_event(request, agency_names)
    return _compose(
        rendered,
        sender=sender,
        recipient=recipient,
        date=request.scheduled_at,
        business_key=request.business_key,
        kind=request.kind,
        task=request.task,
        calendar=calendar,
    )


def build_message(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    sender: str,
) -> EmailMessage:
    """`compose_message`, parsed (for reading, as a mail client would)."""
    return compose_message(
        request, recipient=recipient, agency_names=agency_names, sender=sender
    ).parsed()


def compose_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    business_key: str,
    agency_names: Mapping[str, str],
    sender: str,
    at: datetime,
) -> Composed:
    """The delivery-failure notice about `request` to one admin, under its own business key.

    The refused address appears in no header (nor in the key, which the caller derives from
    a hash of it): headers travel further than bodies, into logs and relays.
    """
    rendered = render_delivery_failure(
        request, admin=admin, refused=refused, agency_names=agency_names
    )
    return _compose(
        rendered,
        sender=sender,
        recipient=admin,
        date=at,
        business_key=business_key,
        kind=NotificationKind.DELIVERY_FAILED,
        task=request.task,
    )


def build_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    business_key: str,
    agency_names: Mapping[str, str],
    sender: str,
    at: datetime,
) -> EmailMessage:
    """`compose_delivery_failure`, parsed."""
    return compose_delivery_failure(
        request,
        admin=admin,
        refused=refused,
        business_key=business_key,
        agency_names=agency_names,
        sender=sender,
        at=at,
    ).parsed()


def due_date_event(request: NotificationRequest, agency_names: Mapping[str, str]) -> bytes:
    """The deadline as an iCalendar event, so an officer can add it to any calendar app: an
    all-day event on the task's last day for a deadline at local midnight, a timed one at the
    due instant (in the agreement's zone, which the calendar carries) for a deadline later in
    a day. The UID is the task's, so a moved deadline updates the same event."""
    task = request.task
    assert task.due_at is not None
    zone = _zone(task)
    due = task.due_at.astimezone(zone)
    agency = one_line(agency_names.get(task.agency) or task.agency)
    calendar = Calendar()
    calendar.add("prodid", "-//Accord//Hạn nộp báo cáo//VI")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{hashlib.sha256(task.task_id.encode()).hexdigest()[:32]}@accord")
    event.add("dtstamp", request.scheduled_at.astimezone(UTC))
    # Later notices of the same task carry a higher sequence, so calendar apps take the update.
    event.add("sequence", int(request.scheduled_at.timestamp() // 60) % 2**31)
    if due.time() == time.min:
        last_day = last_day_of(due, zone)
        event.add("dtstart", last_day)
        event.add("dtend", last_day + timedelta(days=1))
    else:
        # No DTEND: the event is the instant itself (RFC 5545, 3.6.1).
        event.add("dtstart", due)
    event.add("summary", one_line(f"Hạn nộp: {task.title} – {agency}"))
    description = [
        f"{one_line(task.document_number)} – {one_line(task.agreement_title)}",
        f"Kỳ báo cáo: {one_line(task.period_label)}",
        f"Hạn nộp: {_due_long(due, zone, 'vi')}",
        f"Mã nhiệm vụ: {task.task_id}",
    ]
    if task.due_note_vi:
        description.append(one_line(task.due_note_vi))
    event.add("description", "\n".join(description))
    calendar.add_component(event)
    # A timed event names its zone (TZID); the definition goes along for apps that lack it.
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
