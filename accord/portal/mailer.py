"""The new-link mail: sent when an officer whose link expired asks for a new one.

Sent directly (one short message per active officer with that address), not through the task
outbox: it belongs to no task, and the page answers the same whatever happens here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING

import aiosmtplib
from sqlalchemy import func, select

from infra import links
from infra.db import OfficerRow, add_audit_rows

if TYPE_CHECKING:
    from accord.portal.context import PortalContext

log = logging.getLogger(__name__)


async def send_new_link(ctx: PortalContext, address: str, *, now: datetime) -> int:
    """Mail a new link to every active officer with this address; how many were sent."""
    outgoing: list[tuple[OfficerRow, str]] = []
    with ctx.session_factory() as session:
        officers = session.scalars(
            select(OfficerRow).where(
                func.lower(OfficerRow.email) == address.lower(), OfficerRow.active.is_(True)
            )
        ).all()
        for officer in officers:
            token = links.issue_link(
                session,
                tenant=officer.tenant,
                officer_id=officer.id,
                key=ctx.link_key,
                now=now,
                days=ctx.settings.portal.link_days,
            )
            outgoing.append((officer, token))
            add_audit_rows(
                session,
                rows=[
                    {
                        "event_key": f"portal-link/{token.split('.', 1)[0]}",
                        "at": now,
                        "agreement_id": "",
                        "tenant": officer.tenant,
                        "task_id": None,
                        "actor": officer.id,
                        "channel": "portal",
                        "action": "portal_link_requested",
                        "detail": {},
                    }
                ],
            )
        session.commit()
    smtp = ctx.smtp or ctx.settings.smtp
    for officer, token in outgoing:
        message = new_link_message(ctx, officer, ctx.link_url(token), now=now)
        await aiosmtplib.send(
            message,
            hostname=smtp.host,
            port=smtp.port,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            timeout=smtp.timeout_seconds,
        )
    return len(outgoing)


def new_link_message(
    ctx: PortalContext, officer: OfficerRow, url: str, *, now: datetime
) -> EmailMessage:
    days = ctx.settings.portal.link_days
    message = EmailMessage()
    sender = ctx.settings.smtp.sender
    message["From"] = sender
    message["To"] = officer.email
    message["Date"] = formatdate(now.timestamp(), localtime=False)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "accord.example"
    message["Message-ID"] = make_msgid("portal-link", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    if officer.locale == "en":
        message["Subject"] = "Accord: your new link to the portal"
        body = (
            f"Dear {officer.name},\n\n"
            f"You asked for a new link to Accord's portal. Open it to see your agency's tasks:\n"
            f"{url}\n\n"
            f"The link is personal: do not forward it. It works for {days} days.\n"
            "If you did not ask for it, ignore this message.\n"
        )
    else:
        message["Subject"] = "Accord: đường dẫn mới vào cổng thông tin"
        body = (
            f"Kính gửi {officer.name},\n\n"
            "Ông/bà vừa xin đường dẫn mới vào cổng thông tin Accord. Mở đường dẫn sau để xem "
            f"các nhiệm vụ của cơ quan:\n{url}\n\n"
            f"Đường dẫn dành riêng cho ông/bà: không chuyển tiếp. Đường dẫn có hiệu lực {days} "
            "ngày.\nNếu ông/bà không xin, hãy bỏ qua thư này.\n"
        )
    message.set_content(body)
    return message
