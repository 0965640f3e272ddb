"""Every mail to an officer carries his own portal link (issue 15): on the time-skipping server,
with the real worker, a real SQLite database and a real SMTP server, the link is parsed out of
the delivered message, checked with `infra.links.check_link`, and compared across retries and
recipients."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

from harness import TEST_CREDENTIAL, harness, local_now, midnight, obligation_input, recipients
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.mail import PortalLinks
from infra import db
from infra.db import PortalLinkRow
from infra.links import LinkGrant, LinkRefusal, check_link, derive_link_key

BASE = "http://127.0.0.1:8000"
KEY = derive_link_key(TEST_CREDENTIAL.key.secret)
LINKS = PortalLinks(base_url=BASE, key=KEY, days=30)
LINK = re.compile(r"http://127\.0\.0\.1:8000/l/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
TENANT = "quang-binh"
FOCAL_STP = ("dau-moi-stp", "dau-moi.stp@quangbinh.example")
HEAD_STP = ("thu-truong-stp", "thu-truong.stp@quangbinh.example")
TASK_ID = "bao-cao-6-thang"


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body(preferencelist=(kind,))
    assert body is not None
    content: str = body.get_content()
    return content


def link_of(message: EmailMessage) -> str:
    """The one link of the message: the same in the text part and in the HTML part's href."""
    text_links = [str(found) for found in LINK.findall(part(message, "plain"))]
    html = part(message, "html")
    hrefs = re.findall(r'<a href="([^"]*)">', html)
    assert len(set(text_links)) == 1, text_links
    assert hrefs == text_links
    # Shown once more as text beside the anchor, for a reader that does not follow anchors.
    assert LINK.findall(html) == text_links * 2
    return text_links[0]


def token_of(url: str) -> str:
    return url.removeprefix(f"{BASE}/l/")


def grant(sessions: sessionmaker[Session], url: str) -> LinkGrant | LinkRefusal:
    with sessions() as session:
        return check_link(session, token_of(url), key=KEY, now=datetime.now(UTC))


def assert_no_personal_data(url: str, officer_id: str, address: str, name: str) -> None:
    shown = unquote(url).lower()
    parts = (officer_id, address, address.split("@")[0], name, TENANT, TASK_ID, "test-2025")
    for secret in parts:
        assert secret.lower() not in shown, (secret, url)


async def test_a_reminder_carries_the_officers_own_link_the_same_after_a_retry(
    tmp_path: Path,
) -> None:
    async with harness(tmp_path, relay_down=True, portal_links=LINKS) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=20))
        task = obligation_input(due_at=due, reminders=("7d",), escalation=())
        await h.start_obligation(task)
        # The reminder falls due (due - 7 days) while the relay is down: attempts fail after
        # writing the outbox row and the link, and are retried.
        await h.env.sleep(due - timedelta(days=7) + timedelta(hours=2) - now)
        assert h.mails() == []
        await h.relay_up()
        await h.env.sleep(timedelta(hours=2))
        mails = h.mails()
        assert [(str(m["X-Accord-Kind"]), recipients(m)) for m in mails] == [
            ("reminder", [FOCAL_STP[1]])
        ]
        url = link_of(mails[0])
        key = str(mails[0]["X-Accord-Key"])
        with h.sessions() as session:
            outbox = session.scalars(select(db.OutboxRow)).one()
            links = session.scalars(select(PortalLinkRow)).all()
        assert outbox.status == db.OutboxStatus.SENT
        assert outbox.attempts > 1  # the activity was retried
        # One link for the notification and officer, issued by the first attempt, carried by
        # the attempt that got through.
        assert [(r.business_key, r.officer_id, r.task_id) for r in links] == [
            (key, FOCAL_STP[0], task.task.task_id)
        ]
        assert token_of(url).split(".")[0] == links[0].id
        assert links[0].expires_at - links[0].created_at == timedelta(days=30)

        granted = grant(h.sessions, url)
        assert granted == LinkGrant(
            links[0].id, TENANT, FOCAL_STP[0], task.task.task_id, links[0].expires_at
        )
        assert_no_personal_data(url, FOCAL_STP[0], FOCAL_STP[1], "Sở Tư pháp")
        officer = next(o for o in h.directory.officers if o.id == FOCAL_STP[0])
        assert_no_personal_data(url, officer.id, officer.email, officer.name)
        # A changed character is refused, not granted to anyone.
        tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
        assert grant(h.sessions, tampered) == LinkRefusal("tampered")


async def test_two_officers_of_one_escalation_get_links_of_their_own(tmp_path: Path) -> None:
    async with harness(tmp_path, portal_links=LINKS) as h:
        now = await local_now(h.env)
        due = midnight(now.date() + timedelta(days=3))
        task = obligation_input(
            due_at=due, reminders=(), escalation=(("1d", ("focal_point", "head_of_agency")),)
        )
        await h.start_obligation(task)
        await h.env.sleep(due + timedelta(days=1, hours=2) - now)
        mails = h.mails()
        assert sorted((str(m["X-Accord-Kind"]), *recipients(m)) for m in mails) == [
            ("escalation", FOCAL_STP[1]),
            ("escalation", HEAD_STP[1]),
        ]
        by_address = {recipients(m)[0]: link_of(m) for m in mails}
        assert by_address[FOCAL_STP[1]] != by_address[HEAD_STP[1]]
        for officer_id, address in (FOCAL_STP, HEAD_STP):
            granted = grant(h.sessions, by_address[address])
            assert isinstance(granted, LinkGrant)
            assert (granted.tenant, granted.officer_id, granted.task_id) == (
                TENANT,
                officer_id,
                task.task.task_id,
            )
            assert_no_personal_data(by_address[address], officer_id, address, "Sở Tư pháp")
        with h.sessions() as session:
            assert len(session.scalars(select(PortalLinkRow)).all()) == 2
