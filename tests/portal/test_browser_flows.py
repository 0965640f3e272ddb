"""Issue 15's flows in a real browser (Debian's Chromium, driven by Playwright, offline): a
reminder's link from the delivered .eml to a submitted report with a PDF, its receipt page and
receipt mail; an extension asked for in one browser and approved in another; another agency's
and another tenant's task refused; the task page at 360 px, saved under tests/artifacts/.

Real parts: the portal served by uvicorn on loopback (`serve_portal`), the time-skipping
Temporal server with the real worker (its mail carrying portal links to the served portal),
SQLite and the SMTP sink. After the server's clock is slept ahead, the portal's clock
(`PortalContext.clock`) follows it, so that the claims it signs are on the workflow's time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio
from harness import QUANG_BINH, ROOT, TEST_CREDENTIAL, ZONE, Harness, harness, recipients
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright, expect
from sqlalchemy import select
from test_browser_links import chromium, free_port

from accord.deploy import deploy_loaded
from accord.identity import Credential
from accord.portal.app import make_templates
from accord.portal.context import PortalContext
from accord.portal.server import serve_portal
from accord.reporting import agreement_facts
from activities.mail import PortalLinks
from activities.models import TaskState
from agreements.loader import load_agreement
from infra import db, links
from infra.settings import PortalSettings, Settings
from workflows.obligation import ObligationWorkflow
from workflows.payloads import TaskStatus, task_workflow_id

TENANT = "quang-binh"
AGREEMENT_ID = "qb-trinh-duyet-thu-nghiem"
OTHER_TENANT_AGREEMENT = "tm-trinh-duyet-thu-nghiem"
FOCAL_STP = ("dau-moi-stp", "dau-moi.stp@quangbinh.example")
APPROVER = "thu-truong-snv"
ARTIFACTS = ROOT / "tests" / "artifacts"


def _agreement(today: date) -> str:
    start, end = today - timedelta(days=10), today + timedelta(days=120)
    return f"""\
schema_version: 1
id: {AGREEMENT_ID}
document_number: 88/KH-UBND
kind: yearly_plan
title: Kế hoạch thử nghiệm trên trình duyệt
province: Quảng Bình
parties:
  - agency: UBND_TINH
signed_on: {start - timedelta(days=5)}
period:
  start: {start}
  end: {end}
directory: directory/quang-binh.yaml
defaults:
  reminders:
    before: [1d]
    notify: [focal_point]
  escalation:
    - after: 3d
      notify: [head_of_agency]
reporting:
  - id: bao-cao-tiep-dan
    title: Báo cáo công tác tiếp công dân
    deliverable: report
    owners:
      agencies: [STP, SVHTTDL]
    recipient: SNV
    due:
      kind: fixed
      before: {today + timedelta(days=10)}
    indicators:
      - code: luot-tiep
        label: Số lượt công dân được tiếp
        kind: count
        unit: lượt
      - code: don-da-giai-quyet
        label: Đơn đã giải quyết / tổng số
        kind: ratio
  - id: bao-cao-chuyen-de
    title: Báo cáo chuyên đề cải cách hành chính
    deliverable: report
    owners:
      agencies: [STP]
    recipient: SNV
    extension_approver: [recipient_head]
    due:
      kind: fixed
      before: {today + timedelta(days=40)}
"""


def _other_tenant_agreement(today: date) -> str:
    start, end = today - timedelta(days=10), today + timedelta(days=120)
    return f"""\
id: {OTHER_TENANT_AGREEMENT}
document_number: 12/KH-TEST
kind: yearly_plan
title: Kế hoạch của tỉnh khác
province: Tỉnh Mẫu
parties:
  - agency: UBND_TINH
signed_on: {start}
period:
  start: {start}
  end: {end}
directory: directory.yaml
defaults:
  reminders:
    before: [2d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [head_of_agency]
reporting:
  - id: bao-cao-tinh-khac
    title: Báo cáo bí mật của tỉnh khác
    deliverable: report
    owners:
      agencies: [STP]
    recipient: SNV
    due: {{kind: fixed, before: {today + timedelta(days=50)}}}
"""


def small_pdf() -> bytes:
    """A real one-page PDF (header, catalog, pages, page, xref with true offsets, trailer)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@dataclass
class World:
    h: Harness
    ctx: PortalContext
    main: str
    """STP's task of the obligation with indicators (due in 10 days)."""
    svh: str
    """SVHTTDL's task of the same obligation."""
    later: str
    """STP's task due in 40 days, its extensions decided by SNV's head."""
    foreign: str
    """A task of another tenant (tinh-mau), also owed by an agency coded STP."""

    async def status(self, task_id: str) -> TaskStatus:
        handle = self.h.env.client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(task_id)
        )
        return await handle.query(ObligationWorkflow.status)

    async def sleep_to(self, instant: datetime) -> None:
        """Skip the server's clock to `instant`, then let the portal's clock follow it."""
        await self.h.env.sleep(instant - await self.h.env.get_current_time())
        offset = await self.h.env.get_current_time() - datetime.now(UTC)
        self.ctx.clock = lambda: datetime.now(UTC) + offset

    def issue(self, officer_id: str, task_id: str | None = None) -> str:
        with self.h.sessions() as session:
            token = links.issue_link(
                session,
                tenant=TENANT,
                officer_id=officer_id,
                key=self.ctx.link_key,
                now=self.ctx.now(),
                days=30,
                task_id=task_id,
            )
            session.commit()
        return self.ctx.link_url(token)

    async def mails(self, kind: str, address: str, count: int = 1) -> list[EmailMessage]:
        """The sink's messages of `kind` to `address`, once there are `count` of them."""
        async with asyncio.timeout(20):
            while True:
                found = [
                    m
                    for m in self.h.mails()
                    if str(m["X-Accord-Kind"]) == kind and address in recipients(m)
                ]
                if len(found) >= count:
                    return found
                await asyncio.sleep(0.1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp_path = tmp_path_factory.mktemp("portal-flows")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    link_key = links.derive_link_key(TEST_CREDENTIAL.key.secret)
    portal_links = PortalLinks(base_url=base, key=link_key, days=30)
    async with harness(tmp_path, portal_links=portal_links) as h:
        today = (await h.env.get_current_time()).astimezone(ZONE).date()
        folder = tmp_path / "agreements"
        (folder / "directory").mkdir(parents=True)
        (folder / "directory" / "quang-binh.yaml").write_bytes(QUANG_BINH.read_bytes())
        (folder / "plan.yaml").write_text(_agreement(today), encoding="utf-8")
        other = tmp_path / "other"
        other.mkdir()
        (other / "directory.yaml").write_bytes(
            (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_bytes()
        )
        (other / "plan.yaml").write_text(_other_tenant_agreement(today), encoding="utf-8")
        for path in (folder / "plan.yaml", other / "plan.yaml"):
            await deploy_loaded(
                h.env.client,
                load_agreement(path),
                session_factory=h.sessions,
                task_queue=h.task_queue,
            )
        facts = await agreement_facts(h.env.client, AGREEMENT_ID)
        ids = {(f.obligation_id, f.agency): f.task_id for f in facts.tasks}
        foreign = (await agreement_facts(h.env.client, OTHER_TENANT_AGREEMENT)).tasks[0].task_id
        settings = Settings(data_dir=tmp_path, portal=PortalSettings(port=port, base_url=base))
        ctx = PortalContext(
            settings=settings,
            client=h.env.client,
            session_factory=h.sessions,
            credential=Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal"),
            link_key=link_key,
            templates=make_templates(),
            smtp=h.smtp,
        )
        stop, listening = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(serve_portal(ctx, stop, listening))
        await asyncio.wait_for(listening.wait(), 30)
        try:
            yield World(
                h,
                ctx,
                main=ids[("bao-cao-tiep-dan", "STP")],
                svh=ids[("bao-cao-tiep-dan", "SVHTTDL")],
                later=ids[("bao-cao-chuyen-de", "STP")],
                foreign=foreign,
            )
        finally:
            stop.set()
            await serving


async def _browser(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=chromium())


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def _text_link(message: EmailMessage, base: str) -> str:
    found: set[str] = set(
        re.findall(re.escape(base) + r"/l/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", _text(message))
    )
    assert len(found) == 1, found
    return found.pop()


def _last_day(due_at: datetime) -> str:
    return f"{due_at.astimezone(ZONE).date() - timedelta(days=1):%d/%m/%Y}"


async def test_a_reminders_link_to_a_submitted_report_with_a_pdf(
    world: World, tmp_path: Path
) -> None:
    base = world.ctx.settings.portal.base_url
    before = await world.status(world.main)
    assert before.state is TaskState.PENDING and before.next_action == "reminder 1d"
    assert before.next_action_at is not None and before.due_at is not None
    await world.sleep_to(before.next_action_at + timedelta(hours=1))
    reminder = (await world.mails("reminder", FOCAL_STP[1]))[0]
    url = _text_link(reminder, base)

    pdf = small_pdf()
    digest = hashlib.sha256(pdf).hexdigest()
    path = tmp_path / "bao-cao-tiep-dan.pdf"
    path.write_bytes(pdf)
    async with async_playwright() as playwright:
        browser = await _browser(playwright)
        page = await (await browser.new_context()).new_page()
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
        await page.goto(url)
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            "Báo cáo công tác tiếp công dân"
        )
        assert page.url.endswith(f"/tasks/{world.main}")
        await page.get_by_label("Nội dung báo cáo").fill("Quý này Sở tiếp 125 lượt công dân.")
        await page.get_by_label("Số lượng (lượt)").fill("125")
        await page.get_by_label("Đã thực hiện").fill("8")
        await page.get_by_label("Tổng số").fill("10")
        await page.get_by_label("Tệp đính kèm").set_input_files(str(path))
        await page.get_by_role("button", name="Nộp báo cáo").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Biên nhận báo cáo")
        row = page.locator("main table tbody tr")
        await expect(row).to_have_count(1)
        assert [await c.inner_text() for c in await row.locator("td").all()] == [
            "bao-cao-tiep-dan.pdf",
            str(len(pdf)),
            digest,
        ]
        await expect(page.locator("main")).to_contain_text("Hoàn thành đúng hạn")
        await browser.close()
    assert outside == []

    receipt = (await world.mails("receipt", FOCAL_STP[1]))[0]
    assert str(receipt["Subject"]) == (
        "[Accord] Đã nhận báo cáo: Báo cáo công tác tiếp công dân – Sở Tư pháp – đúng hạn"
    )
    assert f"Mã nhiệm vụ: {world.main}" in _text(receipt)
    assert _text_link(receipt, base) != url  # a link of its own, to the same officer
    status = await world.status(world.main)
    assert status.state is TaskState.DONE_ON_TIME  # submitted before the due instant
    with world.h.sessions() as session:
        rows = session.scalars(
            select(db.SubmissionRow).where(db.SubmissionRow.task_id == world.main)
        ).all()
    assert [(r.attachments, r.indicators, r.summary) for r in rows] == [
        (
            [f"sha256:{digest}"],
            {"luot-tiep": 125, "don-da-giai-quyet": {"done": 8, "total": 10}},
            "Quý này Sở tiếp 125 lượt công dân.",
        )
    ]


async def test_an_extension_asked_in_one_browser_and_approved_in_another(world: World) -> None:
    base = world.ctx.settings.portal.base_url
    before = await world.status(world.later)
    assert before.due_at is not None and before.next_action_at is not None
    assert before.next_action_at < before.due_at
    old_due = before.due_at.astimezone(ZONE).date()
    new_due = old_due + timedelta(days=7)
    reason = "Chờ số liệu của các huyện."
    async with async_playwright() as playwright:
        browser = await _browser(playwright)
        focal: BrowserContext = await browser.new_context()
        approver: BrowserContext = await browser.new_context()
        asking = await focal.new_page()
        await asking.goto(world.issue(FOCAL_STP[0], world.later))
        await expect(asking.get_by_role("heading", level=1)).to_contain_text(
            "Báo cáo chuyên đề cải cách hành chính"
        )
        await expect(asking.locator("main")).to_contain_text(f"Hết ngày {_last_day(before.due_at)}")
        await asking.get_by_label("Ngày mới").fill(new_due.isoformat())
        await asking.get_by_label("Lý do").fill(reason)
        await asking.get_by_role("button", name="Gửi đề nghị gia hạn").click()
        await expect(asking.locator("main")).to_contain_text("Đề nghị gia hạn đang chờ quyết định")
        pending = (await world.status(world.later)).pending_extension
        assert pending is not None and pending.new_due == new_due

        # The approver (SNV's head: the obligation's `recipient_head`), by his own link.
        deciding = await approver.new_page()
        await deciding.goto(world.issue(APPROVER))
        await deciding.goto(f"{base}/decisions")
        section = deciding.locator("section.decision").filter(has_text=reason)
        await expect(section).to_have_count(1)
        await expect(section.locator("dd.asked-due")).to_have_text(
            f"{new_due - timedelta(days=1):%d/%m/%Y}"
        )
        await section.get_by_label("Ghi chú (không bắt buộc)").fill("Đồng ý.")
        await section.get_by_role("button", name="Đồng ý gia hạn").click()
        await expect(deciding.locator("#due")).to_have_text(
            f"{new_due - timedelta(days=1):%d/%m/%Y}"
        )

        await asking.reload()
        main = asking.locator("main")
        await expect(main).to_contain_text(
            f"Hết ngày {new_due - timedelta(days=1):%d/%m/%Y} (trước 00:00 ngày {new_due:%d/%m/%Y})"
        )
        await expect(main).not_to_contain_text("Đề nghị gia hạn đang chờ quyết định")
        await browser.close()
    # The decision reaches the focal point by mail, with his own link to the portal.
    decided = (await world.mails("extension_decided", FOCAL_STP[1]))[0]
    assert _text_link(decided, base).startswith(f"{base}/l/")

    after = await world.status(world.later)
    assert after.pending_extension is None
    assert after.due_at is not None and after.due_at.astimezone(ZONE).date() == new_due
    assert after.next_action == before.next_action == "reminder 1d"
    assert after.next_action_at is not None
    assert before.due_at < after.next_action_at < after.due_at


async def test_another_agencys_and_another_tenants_task_are_refused_pages(world: World) -> None:
    base = world.ctx.settings.portal.base_url
    before = {t: await world.status(t) for t in (world.svh, world.foreign)}
    async with async_playwright() as playwright:
        browser = await _browser(playwright)
        page = await (await browser.new_context()).new_page()
        await page.goto(world.issue(FOCAL_STP[0]))
        response = await page.goto(f"{base}/tasks/{world.svh}")
        assert response is not None and response.status == 403
        await expect(page.locator("main")).to_contain_text(
            "Nhiệm vụ này không thuộc cơ quan của bạn."
        )
        await expect(page.locator("main")).not_to_contain_text("Báo cáo công tác tiếp công dân")
        await expect(page.locator("form[action*='/submit']")).to_have_count(0)
        response = await page.goto(f"{base}/tasks/{world.foreign}")
        assert response is not None and response.status == 404
        await expect(page.locator("main")).to_contain_text("Không tìm thấy nhiệm vụ này.")
        await expect(page.locator("main")).not_to_contain_text("Báo cáo bí mật của tỉnh khác")
        await browser.close()
    for task_id, status in before.items():
        now = await world.status(task_id)
        assert (now.state, now.due_at, now.pending_extension, now.decisions) == (
            status.state,
            status.due_at,
            status.pending_extension,
            status.decisions,
        )
        assert now.state is TaskState.PENDING


async def test_the_task_page_at_360_px(world: World) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "portal-task-360.png"
    shot.unlink(missing_ok=True)
    async with async_playwright() as playwright:
        browser = await _browser(playwright)
        context = await browser.new_context(viewport={"width": 360, "height": 780})
        page = await context.new_page()
        await page.goto(world.issue("dau-moi-svhttdl", world.svh))
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            "Báo cáo công tác tiếp công dân"
        )
        await expect(page.get_by_role("button", name="Nộp báo cáo")).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        await page.screenshot(path=str(shot), full_page=True)
        await browser.close()
    assert shot.read_bytes().startswith(b"\x89PNG")
