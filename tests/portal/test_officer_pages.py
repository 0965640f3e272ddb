"""The officer's pages (issue 15, point 3): his agency's tasks in order, a task page, the submit
form with typed indicators and a PDF upload (content-addressed, once per form), an extension
request, another agency's task refused, bad uploads refused with nothing stored.

Real parts: a deployed agreement on the time-skipping Temporal server with the real worker,
SQLite and the SMTP sink (tests/workflows/harness.py); the portal app driven over ASGI by httpx
in the test's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from harness import QUANG_BINH, TEST_CREDENTIAL, ZONE, Harness, harness
from playwright.async_api import async_playwright, expect
from sqlalchemy import select
from test_browser_links import chromium, free_port

from accord.deploy import deploy_loaded
from accord.identity import Credential
from accord.portal.app import create_app, make_templates
from accord.portal.context import PortalContext, task_path
from accord.portal.officer import (
    ExtensionRules,
    parse_extension,
    parse_indicators,
)
from accord.portal.server import serve_portal
from accord.reporting import agreement_facts
from activities.models import Ratio, TaskState
from activities.templates import size_text
from agreements.loader import load_agreement
from agreements.models import Indicator, IndicatorKind
from infra import db, links
from infra.settings import PortalSettings, Settings
from workflows.obligation import ObligationWorkflow
from workflows.payloads import TaskStatus, task_workflow_id

TENANT = "quang-binh"
AGREEMENT_ID = "qb-cong-thong-tin-thu-nghiem"
MAX_UPLOAD = 4096
PDF = b"%PDF-1.4\n% Accord test\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"


def _agreement(today: date) -> str:
    start, end = today - timedelta(days=10), today + timedelta(days=90)
    return f"""\
schema_version: 1
id: {AGREEMENT_ID}
document_number: 77/KH-UBND
kind: yearly_plan
title: Kế hoạch thử nghiệm cổng thông tin
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
      before: {today + timedelta(days=30)}
    indicators:
      - code: luot-tiep
        label: Số lượt công dân được tiếp
        kind: count
        unit: lượt
        help: Tính cả tiếp định kỳ và đột xuất.
      - code: don-da-giai-quyet
        label: Đơn đã giải quyết / tổng số
        kind: ratio
      - code: theo-linh-vuc
        label: Đơn theo lĩnh vực
        kind: breakdown
        categories: [đất đai, khác]
      - code: ghi-chu
        label: Ghi chú
        kind: text
        required: false
  - id: bao-cao-nhanh
    title: Báo cáo nhanh
    deliverable: report
    owners:
      agencies: [STP]
    recipient: SNV
    due:
      kind: fixed
      before: {today + timedelta(days=15)}
  - id: bao-cao-chung
    title: Báo cáo liên ngành
    deliverable: report
    owners:
      agencies: [STP, SNV]
      jointly: true
    recipient: UBND_TINH
    due:
      kind: fixed
      before: {today + timedelta(days=45)}
"""


@dataclass
class World:
    h: Harness
    ctx: PortalContext
    quick: str
    """The STP task due first (no indicators)."""
    main: str
    """The STP task with indicators, due later."""
    svh: str
    """SVHTTDL's task of the same obligation."""
    joint: str
    """The task STP and SNV owe jointly, due last."""

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(self.ctx), client=("192.0.2.7", 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")

    @asynccontextmanager
    async def signed_in(self, officer_id: str) -> AsyncIterator[httpx.AsyncClient]:
        with self.h.sessions() as session:
            token = links.issue_link(
                session,
                tenant=TENANT,
                officer_id=officer_id,
                key=self.ctx.link_key,
                now=self.ctx.now(),
                days=30,
            )
            session.commit()
        async with self.client() as client:
            opened = await client.get(f"/l/{token}")
            assert opened.status_code == 303
            yield client

    async def status(self, task_id: str) -> TaskStatus:
        handle = self.h.env.client.get_workflow_handle_for(
            ObligationWorkflow.run, task_workflow_id(task_id)
        )
        return await handle.query(ObligationWorkflow.status)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp_path = tmp_path_factory.mktemp("officer")
    async with harness(tmp_path) as h:
        folder = tmp_path / "agreements"
        (folder / "directory").mkdir(parents=True)
        (folder / "directory" / "quang-binh.yaml").write_bytes(QUANG_BINH.read_bytes())
        today = (await h.env.get_current_time()).astimezone(ZONE).date()
        (folder / "plan.yaml").write_text(_agreement(today), encoding="utf-8")
        await deploy_loaded(
            h.env.client,
            load_agreement(folder / "plan.yaml"),
            session_factory=h.sessions,
            task_queue=h.task_queue,
        )
        facts = await agreement_facts(h.env.client, AGREEMENT_ID)
        ids = {(f.obligation_id, f.agency): f.task_id for f in facts.tasks}
        port = free_port()
        settings = Settings(
            data_dir=tmp_path,
            portal=PortalSettings(
                max_upload_bytes=MAX_UPLOAD, port=port, base_url=f"http://127.0.0.1:{port}"
            ),
        )
        ctx = PortalContext(
            settings=settings,
            client=h.env.client,
            session_factory=h.sessions,
            credential=Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal"),
            link_key=links.derive_link_key(TEST_CREDENTIAL.key.secret),
            templates=make_templates(),
            smtp=h.smtp,
        )
        yield World(
            h,
            ctx,
            quick=ids[("bao-cao-nhanh", "STP")],
            main=ids[("bao-cao-tiep-dan", "STP")],
            svh=ids[("bao-cao-tiep-dan", "SVHTTDL")],
            joint=next(f.task_id for f in facts.tasks if f.obligation_id == "bao-cao-chung"),
        )


def _hidden(page: str, name: str, form_action: str) -> str:
    form = re.search(
        rf'<form method="post" action="{re.escape(form_action)}".*?</form>', page, re.S
    )
    assert form is not None, page
    found = re.search(rf'name="{name}" value="([^"]+)"', form.group(0))
    assert found is not None
    return found.group(1)


def _main(page: str) -> str:
    found = re.search(r"<main.*?</main>", page, re.S)
    assert found is not None
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0)))


def _uploads(world: World) -> list[db.UploadRow]:
    with world.h.sessions() as session:
        return list(session.scalars(select(db.UploadRow).order_by(db.UploadRow.id)).all())


def _stored_files(world: World) -> list[Path]:
    folder = Path(world.ctx.settings.data_dir) / "uploads"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# The pure parts


def test_indicators_are_parsed_by_kind_and_problems_named() -> None:
    indicators = [
        Indicator(code="luot", label="Số lượt", kind=IndicatorKind.COUNT, unit="lượt"),
        Indicator(code="ty-le", label="Tỷ lệ", kind=IndicatorKind.RATIO),
        Indicator(
            code="linh-vuc", label="Lĩnh vực", kind=IndicatorKind.BREAKDOWN, categories=["a", "b"]
        ),
        Indicator(code="ghi-chu", label="Ghi chú", kind=IndicatorKind.TEXT, required=False),
    ]
    values, problems = parse_indicators(
        {
            "ind.luot": "1.250",
            "ind.ty-le.done": "3",
            "ind.ty-le.total": "4",
            "ind.linh-vuc.0": "2",
            "ind.ghi-chu": "  ",
        },
        indicators,
    )
    assert problems == []
    assert values == {"luot": 1250, "ty-le": Ratio(done=3, total=4), "linh-vuc": {"a": 2, "b": 0}}
    _, problems = parse_indicators(
        {"ind.luot": "-1", "ind.ty-le.done": "5", "ind.ty-le.total": "4"}, indicators
    )
    assert [(p.field, p.en) for p in problems] == [
        ("ind.luot", "“Số lượt”: enter a whole number, zero or more."),
        ("ind.ty-le.done", "“Tỷ lệ”: done (5) is more than the total (4)."),
        ("ind.linh-vuc.0", "“Lĩnh vực”: this figure is required."),
    ]


def test_extension_dates_follow_the_rules_shown() -> None:
    rules = ExtensionRules(earliest=date(2026, 6, 11), latest=date(2027, 1, 1))
    assert parse_extension({"new_due": "2026-06-20", "reason": " Chờ số liệu "}, rules) == (
        (date(2026, 6, 20), "Chờ số liệu"),
        [],
    )
    parsed, problems = parse_extension({"new_due": "2026-06-10", "reason": ""}, rules)
    assert parsed is None
    assert [p.vi for p in problems] == [
        "Hãy nêu lý do.",
        "Ngày mới phải từ 11/06/2026 trở đi (sau hạn hiện tại).",
    ]
    _, problems = parse_extension({"new_due": "2027-01-02", "reason": "x"}, rules)
    assert [p.en for p in problems] == [
        "The new date may not be after 01/01/2027 (the agreement's period ends)."
    ]


# --------------------------------------------------------------------------------------------
# The pages


async def test_a_report_with_a_pdf_in_a_real_browser_at_360_px(
    world: World, tmp_path: Path
) -> None:
    """SVHTTDL's focal point, keyboard-reachable fields found by their labels, a PDF attached;
    the pages fit 360 px (no horizontal scroll of the page) and load nothing from elsewhere."""
    ctx = world.ctx
    base = ctx.settings.portal.base_url
    with world.h.sessions() as session:
        token = links.issue_link(
            session,
            tenant=TENANT,
            officer_id="dau-moi-svhttdl",
            key=ctx.link_key,
            now=ctx.now(),
            days=30,
            task_id=world.svh,
        )
        session.commit()
    pdf = tmp_path / "bao-cao.pdf"
    pdf.write_bytes(PDF)
    stop, listening = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(serve_portal(ctx, stop, listening))
    await asyncio.wait_for(listening.wait(), 30)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium())
            context = await browser.new_context(viewport={"width": 360, "height": 780})
            page = await context.new_page()
            outside: list[str] = []
            page.on(
                "request",
                lambda r: None if r.url.startswith(base) else outside.append(r.url),
            )
            await page.goto(ctx.link_url(token))
            await expect(page.get_by_role("heading", level=1)).to_contain_text(
                "Báo cáo công tác tiếp công dân"
            )
            await page.screenshot(path=str(tmp_path / "task-360.png"), full_page=True)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360
            await page.get_by_label("Nội dung báo cáo").fill("Báo cáo của Sở Văn hóa.")
            await page.get_by_label("Số lượng (lượt)").fill("40")
            await page.get_by_label("Đã thực hiện").fill("2")
            await page.get_by_label("Tổng số").fill("3")
            await page.get_by_label("đất đai").fill("1")
            await page.get_by_label("khác").fill("2")
            await page.get_by_label("Tệp đính kèm").set_input_files(str(pdf))
            await page.get_by_role("button", name="Nộp báo cáo").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Biên nhận báo cáo")
            await expect(page.locator("main")).to_contain_text(hashlib.sha256(PDF).hexdigest())
            assert await page.evaluate("document.documentElement.scrollWidth") <= 360
            await page.screenshot(path=str(tmp_path / "receipt-360.png"), full_page=True)
            await browser.close()
    finally:
        stop.set()
        await serving
    assert outside == []
    assert (await world.status(world.svh)).state is TaskState.DONE_ON_TIME
    # The receipt mail lists the file: its name, size and full SHA-256, in both parts.
    async with asyncio.timeout(30):
        while True:
            receipts = [
                m
                for m in world.h.mails()
                if m["X-Accord-Kind"] == "receipt" and m["X-Accord-Task"] == world.svh
            ]
            if receipts:
                break
            await asyncio.sleep(0.1)
    line = (
        f"Tệp đính kèm: bao-cao.pdf ({size_text(len(PDF), 'vi')}, "
        f"SHA-256 {hashlib.sha256(PDF).hexdigest()})"
    )
    for part in ("plain", "html"):
        body = receipts[0].get_body(preferencelist=(part,))
        assert body is not None
        assert line in body.get_content()


async def test_a_focal_point_sees_his_tasks_open_first_by_due_date(world: World) -> None:
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get("/")
        assert page.status_code == 200
        links_in_order = re.findall(r'<a href="(/tasks/[^"]+)"', page.text)
        assert links_in_order == [
            f"/tasks/{world.quick}",
            f"/tasks/{world.main}",
            task_path(world.joint),
        ]
        text = _main(page.text)
        assert "Nhiệm vụ của Sở Tư pháp" in text
        assert text.count("Chưa hoàn thành, còn trong hạn") == 3
        assert "Phối hợp: SNV + STP" in text
        notes = [(await world.status(i)).due_note for i in (world.quick, world.main, world.joint)]
        for note in notes:  # the working-day moves, where the calendar moved a deadline
            assert note is None or note in text
        assert world.svh not in page.text  # SVHTTDL's own task is not STP's
        status = await world.status(world.quick)
        assert status.due_at is not None
        first_late = status.due_at.astimezone(ZONE)
        assert first_late.hour == 0 and first_late.minute == 0
        last_day = first_late.date() - timedelta(days=1)
        assert f"Hết ngày {last_day:%d/%m/%Y} (trước 00:00 ngày {first_late:%d/%m/%Y})" in text

    async with world.signed_in("dau-moi-snv") as other_owner:  # a joint task counts for each
        snv = await other_owner.get("/")
        assert re.findall(r'<a href="(/tasks/[^"]+)"', snv.text) == [task_path(world.joint)]
        assert (await other_owner.get(task_path(world.joint))).status_code == 200
        # SNV receives the report: it sees STP's task, without STP's forms.
        seen = await other_owner.get(f"/tasks/{world.quick}")
        assert seen.status_code == 200
        assert "Báo cáo nhanh" in _main(seen.text)
        assert f'action="/tasks/{world.quick}/submit"' not in seen.text
        assert f'action="/tasks/{world.quick}/extension"' not in seen.text
    async with world.signed_in("dau-moi-stp") as client:
        task = await client.get(f"/tasks/{world.main}")
        assert task.status_code == 200
        body = task.text
        for label in (
            'for="ind.luot-tiep"',
            'for="ind.don-da-giai-quyet.done"',
            'for="ind.don-da-giai-quyet.total"',
            'for="ind.theo-linh-vuc.0"',
            'for="ind.theo-linh-vuc.1"',
            'for="ind.ghi-chu"',
            'for="files"',
            'for="summary"',
            'for="new_due"',
            'for="reason"',
        ):
            assert label in body, label
        assert "Tính cả tiếp định kỳ và đột xuất." in body
        assert "Số lượt công dân được tiếp (lượt)" in _main(body)
        assert "<script" not in body and "style=" not in body


async def test_another_agencys_task_is_a_403_page_and_nothing_changes(world: World) -> None:
    async with world.signed_in("dau-moi-svhttdl") as client:
        page = await client.get(f"/tasks/{world.quick}")
        assert page.status_code == 403
        assert "Nhiệm vụ này không thuộc cơ quan của bạn." in page.text
        assert "Báo cáo nhanh" not in page.text
        own = await client.get(f"/tasks/{world.svh}")
        csrf = _hidden(own.text, "csrf", "/lang")
        posted = await client.post(
            f"/tasks/{world.quick}/extension",
            data={
                "csrf": csrf,
                "form_key": "k" * 32,
                "new_due": "2099-01-01",
                "reason": "Không phải việc của tôi.",
            },
        )
        assert posted.status_code == 403
        missing = await client.get(f"/tasks/{AGREEMENT_ID}-khong-co/x/STP/2026")
        assert missing.status_code == 404
    status = await world.status(world.quick)
    assert status.pending_extension is None and status.decisions == []


async def test_a_too_large_or_wrong_type_upload_is_refused_and_nothing_stored(
    world: World,
) -> None:
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get(f"/tasks/{world.main}")
        action = f"/tasks/{world.main}/submit"
        data = {
            "csrf": _hidden(page.text, "csrf", action),
            "summary": "Báo cáo.",
            "ind.luot-tiep": "12",
            "ind.don-da-giai-quyet.done": "3",
            "ind.don-da-giai-quyet.total": "5",
            "ind.theo-linh-vuc.0": "2",
            "ind.theo-linh-vuc.1": "1",
        }
        big = PDF + b"0" * MAX_UPLOAD
        before = [p.name for p in _stored_files(world)]  # the browser test's file, if it ran
        data["form_key"] = _hidden(page.text, "form_key", action)
        refused = await client.post(
            action, data=data, files={"files": ("lon.pdf", big, "application/pdf")}
        )
        assert refused.status_code == 400
        assert "Tệp “lon.pdf” lớn hơn giới hạn 4 KB; không có gì được lưu." in refused.text
        data["form_key"] = _hidden(page.text, "form_key", action)
        html = await client.post(
            action, data=data, files={"files": ("trang.html", b"<html></html>", "text/html")}
        )
        assert html.status_code == 400
        assert "Tệp “trang.html” không thuộc loại được nhận" in html.text
        fake = await client.post(
            action, data=data, files={"files": ("gia.pdf", b"<html>", "application/pdf")}
        )
        assert fake.status_code == 400
        assert "Tệp “gia.pdf” không thuộc loại được nhận" in fake.text
    assert [u for u in _uploads(world) if u.task_id == world.main] == []
    assert [p.name for p in _stored_files(world)] == before
    assert (await world.status(world.main)).state is TaskState.PENDING


async def test_submit_with_indicators_and_a_pdf_once_per_form(world: World) -> None:
    digest = hashlib.sha256(PDF).hexdigest()
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get(f"/tasks/{world.main}")
        action = f"/tasks/{world.main}/submit"
        data = {
            "csrf": _hidden(page.text, "csrf", action),
            "form_key": _hidden(page.text, "form_key", action),
            "summary": "Báo cáo công tác tiếp công dân quý này.",
            "ind.luot-tiep": "125",
            "ind.don-da-giai-quyet.done": "8",
            "ind.don-da-giai-quyet.total": "10",
            "ind.theo-linh-vuc.0": "6",
            "ind.theo-linh-vuc.1": "4",
            "ind.ghi-chu": "",
        }
        files = {"files": ("bao-cao quy.pdf", PDF, "application/pdf")}
        first = await client.post(action, data=data, files=files)
        again = await client.post(action, data=data, files=files)  # a double click
        for receipt in (first, again):
            assert receipt.status_code == 200, receipt.text
            text = _main(receipt.text)
            assert "Biên nhận báo cáo" in text
            assert "Hoàn thành đúng hạn" in text
            assert f"bao-cao quy.pdf {len(PDF)} {digest}" in text
    status = await world.status(world.main)
    assert status.state is TaskState.DONE_ON_TIME
    with world.h.sessions() as session:
        rows = session.scalars(
            select(db.SubmissionRow).where(db.SubmissionRow.task_id == world.main)
        ).all()
    assert len(rows) == 1
    assert rows[0].attachments == [f"sha256:{digest}"]
    assert rows[0].indicators == {
        "luot-tiep": 125,
        "don-da-giai-quyet": {"done": 8, "total": 10},
        "theo-linh-vuc": {"đất đai": 6, "khác": 4},
    }
    uploads = [u for u in _uploads(world) if u.task_id == world.main]
    assert [(u.sha256, u.name, u.size, u.content_type, u.officer_id) for u in uploads] == [
        (digest, "bao-cao quy.pdf", len(PDF), "application/pdf", "dau-moi-stp")
    ]
    stored = _stored_files(world)
    assert [p.name for p in stored] == [digest]  # the same content is kept once
    assert stored[0].read_bytes() == PDF
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get(f"/tasks/{world.main}")
        assert (
            f'href="/tasks/{world.main}/files/{digest}" download>bao-cao quy.pdf</a>' in page.text
        )
        served = await client.get(f"/tasks/{world.main}/files/{digest}")
        assert served.status_code == 200
        assert served.content == PDF
        assert served.headers["content-type"] == "application/pdf"
        assert served.headers["content-disposition"] == (
            "attachment; filename*=UTF-8''bao-cao%20quy.pdf"
        )
        assert served.headers["x-content-type-options"] == "nosniff"
    async with world.signed_in("dau-moi-svhttdl") as client:
        other = await client.get(f"/tasks/{world.main}/files/{digest}")
        assert other.status_code == 403
        assert PDF not in other.content


async def test_an_extension_request_shows_as_pending(world: World) -> None:
    status = await world.status(world.quick)
    assert status.due_at is not None
    due = status.due_at.astimezone(ZONE).date()
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get(f"/tasks/{world.quick}")
        action = f"/tasks/{world.quick}/extension"
        assert f'min="{due + timedelta(days=1)}"' in page.text
        assert f"từ {(due + timedelta(days=1)):%d/%m/%Y} đến" in _main(page.text)
        data = {
            "csrf": _hidden(page.text, "csrf", action),
            "form_key": _hidden(page.text, "form_key", action),
            "new_due": str(due),
            "reason": "Chờ số liệu của cấp huyện.",
        }
        early = await client.post(action, data=data)
        assert early.status_code == 400
        assert "sau hạn hiện tại" in _main(early.text)
        assert (await world.status(world.quick)).pending_extension is None
        data["new_due"] = str(due + timedelta(days=7))
        sent = await client.post(action, data=data)
        assert sent.status_code == 200, sent.text
        text = _main(sent.text)
        assert "Đề nghị gia hạn đang chờ quyết định" in text
        assert f"Ngày mới đề nghị: {(due + timedelta(days=7)):%d/%m/%Y}" in text
    pending = (await world.status(world.quick)).pending_extension
    assert pending is not None
    assert (pending.new_due, pending.reason, pending.actor.officer_id) == (
        due + timedelta(days=7),
        "Chờ số liệu của cấp huyện.",
        "dau-moi-stp",
    )


async def test_a_refusal_is_shown_in_the_readers_language_and_changes_nothing(
    world: World,
) -> None:
    """After the report and the extension request above, in English: a second report on the
    closed task, a second extension request while one waits (the validator's refusal)."""
    pending_before = (await world.status(world.quick)).pending_extension
    assert pending_before is not None
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get(f"/tasks/{world.quick}")
        csrf = _hidden(page.text, "csrf", f"/tasks/{world.quick}/submit")
        switched = await client.post(
            "/lang", data={"csrf": csrf, "lang": "en", "next": f"/tasks/{world.main}"}
        )
        assert switched.status_code == 303
        done = await client.get(f"/tasks/{world.main}")
        text = _main(done.text)
        assert "State Done on time" in text
        assert "Report submitted dau-moi-stp" in text
        assert 'action="/tasks/' not in done.text  # no form on a closed task
        refused = await client.post(
            f"/tasks/{world.main}/submit",
            data={
                "csrf": csrf,
                "form_key": "second-report-" + "x" * 20,
                "summary": "Another report.",
                "ind.luot-tiep": "1",
                "ind.don-da-giai-quyet.done": "1",
                "ind.don-da-giai-quyet.total": "1",
                "ind.theo-linh-vuc.0": "1",
            },
        )
        assert refused.status_code == 409
        assert "The task is closed or does not exist; it takes no more requests." in _main(
            refused.text
        )
        second = await client.post(
            f"/tasks/{world.quick}/extension",
            data={
                "csrf": csrf,
                "form_key": "second-extension-" + "y" * 20,
                "new_due": str(pending_before.new_due + timedelta(days=1)),
                "reason": "Once more.",
            },
        )
        assert second.status_code == 409
        assert "an extension request is already waiting for a decision" in _main(second.text)
        assert "Extension request waiting for a decision" in _main(second.text)
    assert (await world.status(world.quick)).pending_extension == pending_before
    with world.h.sessions() as session:
        summaries = session.scalars(
            select(db.SubmissionRow.summary).where(db.SubmissionRow.task_id == world.main)
        ).all()
    assert summaries == ["Báo cáo công tác tiếp công dân quý này."]


async def test_a_head_sees_his_agencys_escalations(world: World) -> None:
    """Last in the module: it moves the clock past the quick task's escalation (due + 3d)."""
    async with world.signed_in("thu-truong-stp") as client:
        page = await client.get("/")
        assert "Không có nhiệm vụ nào bị nhắc cấp trên." in _main(page.text)
    status = await world.status(world.quick)
    assert status.due_at is not None
    await world.h.env.sleep(
        status.due_at + timedelta(days=5) - await world.h.env.get_current_time()
    )
    status = await world.status(world.quick)
    assert status.escalation_level == 1
    sent = [n.at for n in status.notices if n.kind == "escalation"]
    assert len(sent) == 1
    async with world.signed_in("thu-truong-stp") as client:
        page = await client.get("/")
        section = re.search(
            r'<section aria-labelledby="escalations">.*?</section>', page.text, re.S
        )
        assert section is not None
        assert f'href="/tasks/{world.quick}"' in section.group(0)
        assert f"{sent[0].astimezone(ZONE):%d/%m/%Y %H:%M}" in section.group(0)
        assert world.main not in section.group(0)
        rows = _main(page.text)
        assert "Chưa hoàn thành, quá hạn" in rows
    async with world.signed_in("dau-moi-stp") as client:
        page = await client.get("/")
        assert "Nhiệm vụ đã bị nhắc cấp trên" not in _main(page.text)
