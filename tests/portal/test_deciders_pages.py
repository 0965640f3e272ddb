"""Issue 15 point 4, through the portal's pages (httpx on the ASGI app, in the test's event loop
with the time-skipping server, the real worker and SQLite): an approver sees the extension
requests he may decide and decides one, the due date and the reminders move; only an admin
waives; the aggregator's matrix shows each task's state and filters; the report page says what
`consolidate` says and its XLSX opens; another tenant's officer sees nothing of it.

The agreement runs at the server clock's own time (no sleep): the portal stamps its claims with
the real clock, which is the time-skipping server's as long as nothing skips time.
"""

from __future__ import annotations

import asyncio
import io
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from harness import QUANG_BINH, ROOT, TEST_CREDENTIAL, ZONE, Harness, harness

from accord import identity
from accord.deploy import deploy_loaded
from accord.portal.app import create_app, make_templates
from accord.portal.context import PortalContext
from accord.portal.deciders import (
    NOT_STARTED,
    MatrixFilters,
    build_matrix,
    may_decide,
    may_decide_now,
)
from accord.reporting import agreement_facts
from activities.models import AgreementFacts, TaskState
from activities.reporting import report_inputs
from agreements.loader import load_agreement, load_directory
from agreements.models import OfficerRole
from infra import db, links
from infra.settings import Settings
from reports.consolidate import consolidate
from reports.export_labels import percent
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionRequest,
    SubmitReport,
    TaskStatus,
    task_workflow_id,
)

ID = "cong-thong-tin"
AGREEMENT = """\
id: {id}
document_number: 09/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm cổng thông tin
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
      notify: [focal_point, head_of_agency]
reporting:
  - id: bao-cao-dan-van
    title: Báo cáo kết quả công tác dân vận
    deliverable: report
    owners:
      agencies: [STP, BTGDV, XA_A, PHUONG_B]
    recipient: SNV
    due: {{kind: fixed, before: {due}}}
    indicators:
      - code: cong-dan-duoc-tiep
        label: Số lượt công dân được tiếp
        kind: count
  - id: bao-cao-chuyen-de
    title: Báo cáo chuyên đề
    deliverable: report
    owners:
      agencies: [STP, XA_A]
    recipient: SNV
    due: {{kind: fixed, before: {due2}}}
"""
WAIVER_REASON = "Phường mới thành lập, chưa có số liệu"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def tuesday_from(day: date) -> date:
    return day + timedelta(days=(1 - day.weekday()) % 7)


async def _settled(h: Harness, wanted: dict[str, TaskState]) -> AgreementFacts:
    async with asyncio.timeout(30):
        while True:
            facts = await agreement_facts(h.env.client, ID)
            states = {t.task_id: t.state for t in facts.tasks}
            if all(states.get(k) is v for k, v in wanted.items()):
                return facts
            await asyncio.sleep(0.1)


class Reader:
    """One officer's browser: an httpx client on the app, with its cookies."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, data: dict[str, str], csrf_from: str = "/") -> httpx.Response:
        page = await self.client.get(csrf_from)
        found = CSRF.search(page.text)
        assert found, page.text
        form = {"csrf": found.group(1), "form_key": secrets.token_urlsafe(24), **data}
        return await self.client.post(path, data=form)


@asynccontextmanager
async def portal(h: Harness, tmp_path: Path) -> AsyncIterator[tuple[PortalContext, Any]]:
    ctx = PortalContext(
        settings=Settings(data_dir=tmp_path / "portal"),
        client=h.env.client,
        session_factory=h.sessions,
        credential=identity.Credential(operator=None, key=TEST_CREDENTIAL.key, channel="portal"),
        link_key=links.derive_link_key(TEST_CREDENTIAL.key.secret),
        templates=make_templates(),
    )
    app = create_app(ctx)

    @asynccontextmanager
    async def reader(tenant: str, officer_id: str) -> AsyncIterator[Reader]:
        with h.sessions() as session:
            token = links.issue_link(
                session,
                tenant=tenant,
                officer_id=officer_id,
                key=ctx.link_key,
                now=ctx.now(),
                days=30,
            )
            session.commit()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            opened = await client.get(f"/l/{token}")
            assert opened.status_code == 303, opened.text
            yield Reader(client)

    yield ctx, reader


async def test_deciders_pages(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").write_text(
        (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_text()
    )
    async with harness(tmp_path, directory_path=tmp_path / "directory.yaml") as h:
        with h.sessions() as session:  # a second tenant, Quảng Bình
            db.upsert_directory(session, directory=load_directory(QUANG_BINH))
        today = (await h.env.get_current_time()).astimezone(ZONE).date()
        due = tuesday_from(today + timedelta(days=21))  # first late day, a Tuesday
        due2 = tuesday_from(today + timedelta(days=35))
        start = today - timedelta(days=60)
        (tmp_path / "agreement.yaml").write_text(
            AGREEMENT.format(
                id=ID,
                start=start.isoformat(),
                end=(start + timedelta(days=364)).isoformat(),
                due=due.isoformat(),
                due2=due2.isoformat(),
            )
        )
        await deploy_loaded(
            h.env.client,
            load_agreement(tmp_path / "agreement.yaml"),
            session_factory=h.sessions,
            task_queue=h.task_queue,
        )
        facts = await _wait_open(h)
        task_of = {(t.obligation_id, t.agency): t.task_id for t in facts.tasks}
        stp = task_of[("bao-cao-dan-van", "STP")]
        phuong = task_of[("bao-cao-dan-van", "PHUONG_B")]
        btgdv = task_of[("bao-cao-dan-van", "BTGDV")]

        def handle(task_id: str) -> Any:
            return h.env.client.get_workflow_handle_for(
                ObligationWorkflow.run, task_workflow_id(task_id)
            )

        async def status(task_id: str) -> TaskStatus:
            result: TaskStatus = await handle(task_id).query(ObligationWorkflow.status)
            return result

        # The data side: who may decide (the validator's rule).
        assert may_decide(h.actor("SNV", OfficerRole.HEAD), facts, _fact(facts, stp))
        assert may_decide(
            h.actor("UBND_TINH", OfficerRole.PROVINCIAL_LEADERSHIP), facts, _fact(facts, stp)
        )
        assert not may_decide(h.actor("SNV"), facts, _fact(facts, stp))
        assert not may_decide(h.actor("STP", OfficerRole.HEAD), facts, _fact(facts, stp))

        # STP asks for a week more (through the workflow update, as the CLI does).
        new_due = due + timedelta(days=7)
        await h.update(
            handle(stp),
            ObligationWorkflow.request_extension,
            ExtensionRequest(actor=h.actor("STP"), new_due=new_due, reason="Chờ số liệu quý IV"),
        )
        before = await status(stp)
        stp_fact = _fact(facts, stp)
        assert may_decide_now(h.actor("SNV", OfficerRole.HEAD), facts, stp_fact, before)
        assert not may_decide_now(h.actor("STP"), facts, stp_fact, before)
        assert not may_decide_now(
            h.actor("SNV", OfficerRole.HEAD), facts, stp_fact, await status(phuong)
        )
        assert before.due_at is not None and before.next_action_at is not None
        assert before.due_at.astimezone(ZONE).date() == due

        async with portal(h, tmp_path) as (_ctx, reader):
            async with reader("tinh-mau", "dau-moi-stp") as focal:
                page = await focal.get("/decisions")
                assert page.status_code == 200
                assert "Chờ số liệu quý IV" not in page.text
                assert "Không có đề nghị gia hạn nào chờ bạn quyết định." in page.text
                # The validator refuses, in the reader's language; nothing changes.
                refused = await focal.post(
                    f"/tasks/{stp}/decide", {"decision": "approve"}, csrf_from="/decisions"
                )
                assert refused.status_code == 422
                assert (
                    'id="outcome">cán bộ dau-moi-stp đã đề nghị gia hạn nên không được tự quyết '
                    "định<" in refused.text
                )
                assert (await status(stp)).pending_extension is not None
                # Not an aggregator of the agreement.
                assert (await focal.get(f"/agreements/{ID}")).status_code == 403

            async with reader("tinh-mau", "giam-doc-snv") as head:
                page = await head.get("/decisions")
                assert page.status_code == 200
                assert "Chờ số liệu quý IV" in page.text
                last = (due - timedelta(days=1)).strftime("%d/%m/%Y")
                asked = (new_due - timedelta(days=1)).strftime("%d/%m/%Y")
                assert f'<dd class="current-due">{last}</dd>' in page.text
                assert f'<dd class="asked-due">{asked}</dd>' in page.text
                assert (
                    '<dd class="asked-by">Cán bộ đầu mối – Sở Tư pháp (Sở Tư pháp)</dd>'
                    in page.text
                )
                assert f'action="/tasks/{stp}/decide"' in page.text

                # Not an admin: the waiver is refused, nothing changes.
                refused = await head.post(
                    f"/tasks/{phuong}/waive", {"reason": WAIVER_REASON}, csrf_from="/decisions"
                )
                assert refused.status_code == 403
                assert "Chỉ quản trị viên được miễn nhiệm vụ." in refused.text
                assert (await status(phuong)).state is TaskState.PENDING

                decided = await head.post(
                    f"/tasks/{stp}/decide",
                    {"decision": "approve", "note": "Đồng ý, nộp trước hạn mới"},
                    csrf_from="/decisions",
                )
                assert decided.status_code == 200, decided.text
                after = await status(stp)
                assert after.pending_extension is None
                assert after.due_at is not None and after.due_at.astimezone(ZONE).date() == new_due
                shown = (new_due - timedelta(days=1)).strftime("%d/%m/%Y")
                assert f'<dd id="due">{shown}</dd>' in decided.text
                # The reminder (2 working days before) moved with the deadline: past the old
                # deadline, before the new one.
                assert (before.next_action, after.next_action) == ("reminder 2d", "reminder 2d")
                assert after.next_action_at is not None
                assert before.due_at < after.next_action_at < after.due_at
                assert "Chờ số liệu quý IV" not in (await head.get("/decisions")).text

            # An admin waives with a reason.
            async with reader("tinh-mau", "quan-tri") as admin:
                form = await admin.get(f"/waive/{phuong}")
                assert form.status_code == 200
                assert 'name="reason"' in form.text
                waived = await admin.post(
                    f"/tasks/{phuong}/waive",
                    {"reason": WAIVER_REASON},
                    csrf_from=f"/waive/{phuong}",
                )
                assert waived.status_code == 200, waived.text
                assert (await status(phuong)).state is TaskState.WAIVED

            await h.update(
                handle(btgdv),
                ObligationWorkflow.submit_report,
                SubmitReport(
                    actor=h.actor("BTGDV"),
                    summary="Ban đã tiếp 30 lượt công dân.",
                    indicators={"cong-dan-duoc-tiep": 30},
                ),
            )
            facts = await _settled(
                h, {phuong: TaskState.WAIVED, btgdv: TaskState.DONE_ON_TIME, stp: TaskState.PENDING}
            )

            # The aggregator (Sở Nội vụ's focal point: the reports go to his agency).
            async with reader("tinh-mau", "dau-moi-snv") as aggregator:
                listed = await aggregator.get("/agreements")
                assert f'href="/agreements/{ID}"' in listed.text
                page = await aggregator.get(f"/agreements/{ID}")
                assert page.status_code == 200
                assert _cells(page.text) == {
                    btgdv: "done_on_time",
                    stp: "pending",
                    task_of[("bao-cao-dan-van", "XA_A")]: "pending",
                    phuong: "waived",
                    task_of[("bao-cao-chuyen-de", "STP")]: "pending",
                    task_of[("bao-cao-chuyen-de", "XA_A")]: "pending",
                }
                # Colour and a label: the waived cell says so in words.
                assert "Được miễn" in page.text
                only_waived = await aggregator.get(f"/agreements/{ID}", params={"state": "waived"})
                assert _cells(only_waived.text) == {phuong: "waived"}
                one_item = await aggregator.get(
                    f"/agreements/{ID}", params={"item": "bao-cao-chuyen-de"}
                )
                assert set(_cells(one_item.text)) == {
                    task_of[("bao-cao-chuyen-de", "STP")],
                    task_of[("bao-cao-chuyen-de", "XA_A")],
                }
                period = _fact(facts, stp).period_label
                by_period = await aggregator.get(
                    f"/agreements/{ID}", params={"period": period, "state": "pending"}
                )
                assert all(s == "pending" for s in _cells(by_period.text).values())

                # The report page says what consolidate says.
                report_page = await aggregator.get(f"/agreements/{ID}/report")
                assert report_page.status_code == 200
                with h.sessions() as session:
                    report = consolidate(
                        report_inputs(session, await agreement_facts(h.env.client, ID))
                    )
                rates = _rates(report_page.text)
                assert rates == {
                    **{a.agency: percent(a.on_time_rate, "vi") for a in report.agencies},
                    "total": percent(report.totals.on_time_rate, "vi"),
                }
                assert rates["BTGDV"] == "100,0%"
                counted = {i.code: i for i in report.indicators}
                assert counted["cong-dan-duoc-tiep"].count == 30
                assert re.search(
                    r'data-indicator="cong-dan-duoc-tiep">.*?<td class="figure result">30</td>',
                    report_page.text,
                    re.S,
                )
                assert "Ban đã tiếp 30 lượt công dân." in report_page.text
                assert f'src="/agreements/{ID}/on-time.png"' in report_page.text
                chart = await aggregator.get(f"/agreements/{ID}/on-time.png")
                assert chart.headers["content-type"] == "image/png"
                assert chart.content.startswith(b"\x89PNG")

                # In English once he chooses it.
                switched = await aggregator.post(
                    "/lang", {"lang": "en", "next": f"/agreements/{ID}"}, csrf_from="/agreements"
                )
                assert switched.status_code == 303
                english = await aggregator.get(f"/agreements/{ID}", params={"state": "waived"})
                assert '<html lang="en">' in english.text
                assert "Waived" in english.text and "Được miễn" not in english.text
                english_report = await aggregator.get(f"/agreements/{ID}/report")
                assert "Compliance by agency" in english_report.text
                assert _rates(english_report.text)["BTGDV"] == "100.0%"

                workbook_file = await aggregator.get(f"/agreements/{ID}/report.xlsx")
                assert workbook_file.status_code == 200
                assert workbook_file.headers["content-disposition"].startswith("attachment;")
                workbook = openpyxl.load_workbook(io.BytesIO(workbook_file.content))
                values = [c.value for s in workbook for row in s.iter_rows() for c in row]
                assert "Ban Tuyên giáo và Dân vận Tỉnh ủy" in values
                document = await aggregator.get(f"/agreements/{ID}/report.docx")
                assert document.headers["content-disposition"].startswith("attachment;")
                assert document.content.startswith(b"PK")

            # Another tenant's officer sees nothing of this agreement.
            other = next(o for o in load_directory(QUANG_BINH).officers if o.roles)
            async with reader("quang-binh", other.id) as stranger:
                assert (await stranger.get(f"/agreements/{ID}")).status_code == 404
                assert (await stranger.get(f"/agreements/{ID}/report.xlsx")).status_code == 404
                assert ID not in (await stranger.get("/agreements")).text
                assert "Chờ" not in (await stranger.get("/decisions")).text
                tried = await stranger.post(
                    f"/tasks/{task_of[('bao-cao-dan-van', 'XA_A')]}/decide",
                    {"decision": "reject"},
                    csrf_from="/decisions",
                )
                assert tried.status_code == 404


async def _wait_open(h: Harness) -> AgreementFacts:
    async with asyncio.timeout(30):
        while True:
            try:
                facts = await agreement_facts(h.env.client, ID)
            except Exception:  # not started yet
                await asyncio.sleep(0.1)
                continue
            if len(facts.tasks) == 6 and all(t.state is TaskState.PENDING for t in facts.tasks):
                return facts
            await asyncio.sleep(0.1)


def _fact(facts: AgreementFacts, task_id: str) -> Any:
    return next(t for t in facts.tasks if t.task_id == task_id)


def _cells(html: str) -> dict[str, str]:
    """The matrix's cells: task ID → state, from each cell's class and link."""
    return {
        task_id: state
        for state, task_id in re.findall(
            r'<td class="cell st-([a-z_]+)" data-state="[a-z_]+"><a href="/tasks/([^"]+)"', html
        )
    }


def _rates(html: str) -> dict[str, str]:
    return dict(
        re.findall(
            r'<tr data-agency="([A-Za-z_]+)">.*?<td class="figure rate">([^<]*)</td>', html, re.S
        )
    )


def test_matrix_filters_and_blank_cells() -> None:
    """The matrix model alone: rows in directory order, a state filter blanks other cells and
    drops empty rows and columns, a task not opened yet is `not_started`."""
    from datetime import datetime

    from activities.models import ObligationFact, TaskFact
    from agreements.models import Deliverable

    def fact(agency: str, obligation: str, period: str, state: TaskState | None) -> TaskFact:
        return TaskFact(
            task_id=f"a/{obligation}/{agency}/{period}",
            obligation_id=obligation,
            agency=agency,
            period_label=period,
            state=state,
            due_at=datetime(2026, 7, 1 if period == "p1" else 10, tzinfo=ZONE),
        )

    facts = AgreementFacts(
        agreement_id="a",
        tenant="tinh-mau",
        document_number="1/KH",
        title="T",
        issuer=None,
        time_zone="Asia/Ho_Chi_Minh",
        period_start=date(2026, 1, 1),
        period_end=date(2026, 12, 31),
        as_of=datetime(2026, 7, 5, tzinfo=ZONE),
        obligations={
            key: ObligationFact(
                obligation_id=key,
                item_number=None,
                title=key,
                deliverable=Deliverable.REPORT,
                recipient="SNV",
            )
            for key in ("o1", "o2")
        },
        tasks=[
            fact("STP", "o1", "p1", TaskState.OVERDUE),
            fact("XA_A", "o1", "p1", TaskState.DONE_LATE),
            fact("STP", "o1", "p2", None),
            fact("STP", "o2", "p1", TaskState.WAIVED),
            fact("XA_A", "o2", "p2", TaskState.PENDING).model_copy(update={"co_owners": ["STP"]}),
        ],
    )
    agencies = [("XA_A", "Xã A"), ("STP", "Sở Tư pháp")]
    full = build_matrix(facts, agencies, MatrixFilters())
    assert [c.key for c in full.columns] == [("o1", "p1"), ("o1", "p2"), ("o2", "p1"), ("o2", "p2")]
    assert [r.agency for r in full.rows] == ["XA_A", "STP"]
    assert [c.state if c else None for c in full.rows[1].cells] == [
        "overdue",
        NOT_STARTED,
        "waived",
        "pending",
    ]
    # The joint task is in both owners' rows, led by XA_A.
    joint = [row.cells[3] for row in full.rows]
    assert [(c.task_id, c.lead) if c else None for c in joint] == [
        ("a/o2/XA_A/p2", "XA_A"),
        ("a/o2/XA_A/p2", "XA_A"),
    ]
    assert full.periods == ["p1", "p2"]
    late = build_matrix(facts, agencies, MatrixFilters(state="done_late"))
    assert [c.key for c in late.columns] == [("o1", "p1")]
    assert [(r.agency, [c.state if c else None for c in r.cells]) for r in late.rows] == [
        ("XA_A", ["done_late"])
    ]
    p2 = build_matrix(facts, agencies, MatrixFilters(period="p2"))
    assert [c.key for c in p2.columns] == [("o1", "p2"), ("o2", "p2")]
    assert p2.counts == {NOT_STARTED: 1, "pending": 2}
