"""Portal links in the mail activities (issue 15), through a real SMTP server and a real SQLite
database: each recipient's own link, the task's page for a notification and the portal's home
for an admin's notice or the digest, issued once per message however often it is retried."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from activity_helpers import (
    ADMIN,
    AGGREGATOR,
    FOCAL,
    HEAD,
    LEADER,
    MailServer,
    demo_task,
    notification,
)
from activity_helpers import TENANT as QUANG_BINH
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from test_digest_mail import stored_request
from test_mail import BOTH_AT_STP, TASK_ID, body, send

from activities.digest import DigestActivities
from activities.mail import MailActivities, PortalLinks, delivery_failure_key
from activities.models import NotificationKind, NotificationResult
from agreements.models import RecipientRole
from infra.db import PortalLinkRow
from infra.links import LinkGrant, check_link, derive_link_key
from infra.settings import SmtpSettings

BASE = "https://accord.quangbinh.example/"
KEY = derive_link_key(b"a-claim-key-of-at-least-32-characters!")
LINK = re.compile(r"https://accord\.quangbinh\.example/l/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture
def mail(sessions: sessionmaker[Session], smtp_settings: SmtpSettings) -> MailActivities:
    return MailActivities(sessions, smtp_settings, links=PortalLinks(BASE, KEY, days=7))


def text(message: EmailMessage) -> str:
    return body(message, "plain").replace("\r\n", "\n")


def link_in(message: EmailMessage) -> str:
    text, html = body(message, "plain"), body(message, "html")
    [link] = {str(found) for found in LINK.findall(text)}
    assert re.findall(r'<a href="([^"]*)">', html) == [link]
    return link


def granted(sessions: sessionmaker[Session], link: str) -> tuple[str, str, str | None]:
    with sessions() as session:
        grant = check_link(session, link.rsplit("/", 1)[1], key=KEY, now=datetime.now(UTC))
    assert isinstance(grant, LinkGrant), grant
    assert (grant.expires_at - datetime.now(UTC)).days == 6  # 7 days from the first attempt
    return grant.tenant, grant.officer_id, grant.task_id


def link_rows(sessions: sessionmaker[Session]) -> list[tuple[str | None, str, str | None]]:
    with sessions() as session:
        rows = session.scalars(select(PortalLinkRow).order_by(PortalLinkRow.officer_id))
        return [(r.business_key, r.officer_id, r.task_id) for r in rows]


async def test_the_refusal_notice_links_the_admin_to_the_portal_home(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(roles=BOTH_AT_STP)
    mail_server.handler.reject.add(FOCAL.email)

    await send(mail, request)

    [to_head] = mail_server.received_by(HEAD.email)
    head_link = link_in(to_head.parsed())
    assert f"\nMở trang nhiệm vụ: {head_link}\n" in text(to_head.parsed())
    assert granted(sessions, head_link) == (QUANG_BINH, HEAD.id, TASK_ID)
    [notice] = mail_server.received_by(ADMIN.email)
    admin_link = link_in(notice.parsed())
    assert f"\nMở trang Accord: {admin_link}\n" in text(notice.parsed())
    assert granted(sessions, admin_link) == (QUANG_BINH, ADMIN.id, None)
    notice_key = delivery_failure_key(request.business_key, FOCAL.email)
    # The refused officer's link was issued with his message (which never arrived).
    assert link_rows(sessions) == [
        (notice_key, ADMIN.id, None),  # snv-quan-tri
        (request.business_key, FOCAL.id, TASK_ID),  # stp-dau-moi
        (request.business_key, HEAD.id, TASK_ID),  # stp-giam-doc
    ]
    for address in (FOCAL.email, ADMIN.email, HEAD.email):
        assert address.split("@")[0] not in admin_link + head_link

    # A retry issues nothing new.
    retry = await send(mail, request)
    assert retry == NotificationResult(recipients=2, sent=0, already_sent=1, failed_permanently=1)
    assert len(link_rows(sessions)) == 3


async def test_a_deferred_message_goes_out_later_with_the_same_link_and_bytes(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    request = notification(NotificationKind.ESCALATION, roles=BOTH_AT_STP)
    mail_server.handler.defer.add(HEAD.email)
    with pytest.raises(ApplicationError, match="deferred 1"):
        await send(mail, request)
    [first] = mail_server.received
    assert first.rcpt_tos == [FOCAL.email]
    before = link_rows(sessions)

    mail_server.handler.defer.clear()
    await send(mail, request)

    [later] = mail_server.received_by(HEAD.email)
    assert link_rows(sessions) == before  # the retry issued no link: it found its own
    assert [officer for _, officer, _ in before] == [FOCAL.id, HEAD.id]
    links = {link_in(first.parsed()), link_in(later.parsed())}
    assert len(links) == 2  # one per officer
    assert granted(sessions, link_in(later.parsed())) == (QUANG_BINH, HEAD.id, TASK_ID)


async def test_the_no_recipient_notice_links_the_admin_to_the_portal_home(
    mail: MailActivities, mail_server: MailServer, sessions: sessionmaker[Session]
) -> None:
    # UBND_TINH has no focal point, and a task without a receiving agency has no aggregator.
    request = notification(
        NotificationKind.ESCALATION,
        roles=[RecipientRole.FOCAL_POINT, RecipientRole.AGGREGATOR],
        task=demo_task(agency="UBND_TINH", recipient=None),
    )
    await send(mail, request)
    [notice] = mail_server.received
    assert notice.rcpt_tos == [ADMIN.email]
    assert granted(sessions, link_in(notice.parsed())) == (QUANG_BINH, ADMIN.id, None)


async def test_the_digest_links_each_reader_to_the_portal_home(
    sessions: sessionmaker[Session], smtp_settings: SmtpSettings, mail_server: MailServer
) -> None:
    mail = MailActivities(sessions, smtp_settings, links=PortalLinks(BASE, KEY, days=7))
    digest = DigestActivities(sessions, smtp_settings, mail)
    try:
        await ActivityEnvironment().run(digest.send_digest, stored_request())
    finally:
        await mail.aclose()
    links = {m.rcpt_tos[0]: link_in(m.parsed()) for m in mail_server.received}
    assert sorted(links) == sorted([AGGREGATOR.email, LEADER.email])
    assert granted(sessions, links[AGGREGATOR.email]) == (QUANG_BINH, AGGREGATOR.id, None)
    assert granted(sessions, links[LEADER.email]) == (QUANG_BINH, LEADER.id, None)
