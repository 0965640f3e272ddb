"""Demo directory, tasks and a real SMTP server for the activity tests."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

from activities.models import NotificationKind, NotificationRequest, TaskRef
from agreements.models import (
    Agency,
    AgencyKind,
    Deliverable,
    Directory,
    Officer,
    OfficerRole,
    RecipientRole,
)

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
PROVINCE = "Quảng Bình"
TENANT = "quang-binh"

FOCAL = Officer(
    id="stp-dau-moi",
    name="Nguyễn Thị Hoa",
    email="hoa.nt@stp.quangbinh.example",
    agency="STP",
    roles=[OfficerRole.FOCAL_POINT],
)
HEAD = Officer(
    id="stp-giam-doc",
    name="Trần Văn Bình",
    email="binh.tv@stp.quangbinh.example",
    agency="STP",
    roles=[OfficerRole.HEAD],
)
AGGREGATOR = Officer(
    id="snv-dau-moi",
    name="Lê Minh Châu",
    email="chau.lm@snv.quangbinh.example",
    agency="SNV",
    roles=[OfficerRole.FOCAL_POINT],
)
LEADER = Officer(
    id="ubnd-pho-chu-tich",
    name="Phạm Quốc Dũng",
    email="dung.pq@ubnd.quangbinh.example",
    agency="UBND_TINH",
    roles=[OfficerRole.PROVINCIAL_LEADERSHIP],
)
ADMIN = Officer(
    id="snv-quan-tri",
    name="Hoàng Thị Mai",
    email="mai.ht@snv.quangbinh.example",
    agency="SNV",
    roles=[OfficerRole.ADMIN],
)


def demo_directory(
    officers: list[Officer] | None = None, *, stp_name: str = "Sở Tư pháp"
) -> Directory:
    return Directory(
        tenant=TENANT,
        province=PROVINCE,
        agencies=[
            Agency(
                code="UBND_TINH",
                name="Ủy ban nhân dân tỉnh Quảng Bình",
                kind=AgencyKind.PEOPLES_COMMITTEE,
            ),
            Agency(
                code="SNV",
                name="Sở Nội vụ",
                kind=AgencyKind.DEPARTMENT,
                groups=["so_ban_nganh"],
            ),
            Agency(code="STP", name=stp_name, kind=AgencyKind.DEPARTMENT, groups=["so_ban_nganh"]),
        ],
        officers=[FOCAL, HEAD, AGGREGATOR, LEADER, ADMIN] if officers is None else officers,
    )


def other_province_directory() -> Directory:
    """A second province in the same database, with an admin of its own."""
    return Directory(
        tenant="nghe-an",
        province="Nghệ An",
        agencies=[
            Agency(code="NA_SNV", name="Sở Nội vụ Nghệ An", kind=AgencyKind.DEPARTMENT),
        ],
        officers=[
            Officer(
                id="na-quan-tri",
                name="Lê Văn Nam",
                email="nam.lv@snv.nghean.example",
                agency="NA_SNV",
                roles=[OfficerRole.ADMIN],
            ),
            Officer(
                id="na-lanh-dao",
                name="Trần Thị Thu",
                email="thu.tt@ubnd.nghean.example",
                agency="NA_SNV",
                roles=[OfficerRole.PROVINCIAL_LEADERSHIP],
            ),
        ],
    )


def demo_task(**changes: Any) -> TaskRef:
    task = TaskRef(
        task_id="289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t",
        agreement_id="289-kh-ubnd-2025",
        tenant=TENANT,
        document_number="289/KH-UBND",
        agreement_title="Kế hoạch thực hiện công tác dân vận năm 2025",
        item_number="III.7",
        obligation_id="bao-cao-6-thang",
        deliverable=Deliverable.REPORT,
        title="Báo cáo kết quả công tác dân vận 6 tháng",
        agency="STP",
        recipient="SNV",
        period_label="2025-6t",
        due_at=datetime(2025, 5, 15, tzinfo=ZONE),
    )
    return task.model_copy(update=changes)


def notification(
    kind: NotificationKind = NotificationKind.REMINDER,
    roles: list[RecipientRole] | None = None,
    *,
    step: int | None = 1,
    task: TaskRef | None = None,
    scheduled_at: datetime | None = None,
    **fields: Any,
) -> NotificationRequest:
    task = task or demo_task()
    return NotificationRequest(
        business_key=f"{task.agreement_id}/III.7/{task.agency}/{task.period_label}/{kind}/{step}",
        kind=kind,
        task=task,
        roles=roles or [RecipientRole.FOCAL_POINT],
        step=step,
        scheduled_at=scheduled_at or datetime(2025, 5, 8, 8, 0, tzinfo=ZONE),
        **fields,
    )


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int] = ("", 0)
    """The client's address and port: one per SMTP session."""

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class RecordingHandler:
    """An aiosmtpd handler that keeps every accepted message, and can be told to refuse
    recipients with a temporary (451) or permanent (550) reply, or to be slow."""

    received: list[ReceivedMail] = field(default_factory=list)
    defer: set[str] = field(default_factory=set)
    reject: set[str] = field(default_factory=set)
    reject_reply: str = "550 5.1.1 No such mailbox here"
    defer_everyone: bool = False
    data_delay: float = 0.0
    """Seconds the server takes to accept each message."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if self.defer_everyone or address in self.defer:
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if address in self.reject:
            return self.reject_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self._lock:
            self.received.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=bytes(envelope.original_content),
                    peer=tuple(session.peer),
                )
            )
        return "250 Message accepted for delivery"


class MailServer:
    """A real SMTP server on 127.0.0.1 that can be stopped (connections refused) and restarted
    on the same port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.handler = RecordingHandler()
        self._controller: Any = None

    def start(self) -> None:
        assert self._controller is None
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[ReceivedMail]:
        return list(self.handler.received)

    def received_by(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.received if address in mail.rcpt_tos]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
