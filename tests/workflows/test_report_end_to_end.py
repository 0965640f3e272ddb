"""Issue 16 end to end: a small agreement runs on the time-skipping server with the real worker;
officers report (one on time, one late across a weekend), one agency is waived, one gets an
extension, one never reports. The agreement's `facts` query, `report_inputs` (SQLite) and
`consolidate` then say exactly that, and `accord report`, run as a user runs it (a separate
process), prints the same report as JSON.

Expected figures are worked out by hand in the comments. The agreement runs next year (from
the server clock's start, today's real time), deployed in September so that its tasks, due in
October, open at once and the run that starts them stays open (no new reporting year on the
way, no continue-as-new): October has no public holiday in Vietnam.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import openpyxl
from harness import ROOT, ZONE, Harness, harness

from accord.deploy import deploy_loaded
from accord.reporting import agreement_facts
from activities.models import AgreementFacts, TaskState
from activities.reporting import report_inputs
from agreements.loader import load_agreement
from agreements.models import OfficerRole
from reports.consolidate import consolidate
from reports.model import ComplianceStatus as S
from reports.model import ConsolidatedReport
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    Waiver,
    task_workflow_id,
)

ACCORD = str(Path(sys.executable).parent / "accord")
ID = "bao-cao-thu"
AGREEMENT = """\
id: {id}
document_number: 07/KH-TEST
kind: yearly_plan
title: Kế hoạch thử nghiệm báo cáo tổng hợp
province: Tỉnh Mẫu
parties:
  - agency: UBND_TINH
signed_on: {year}-01-01
period:
  start: {year}-01-01
  end: {year}-12-31
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
      agencies: [SNV, STP, BTGDV, XA_A, PHUONG_B]
    recipient: SNV
    due: {{kind: fixed, before: {due}}}
    indicators:
      - code: cong-dan-duoc-tiep
        label: Số lượt công dân được tiếp
        kind: count
      - code: khieu-nai-da-giai-quyet
        label: Vụ việc khiếu nại đã giải quyết / tổng số
        kind: ratio
      - code: mo-hinh-dan-van-kheo
        label: Số mô hình “Dân vận khéo” theo lĩnh vực
        kind: breakdown
        categories: [kinh tế, văn hóa - xã hội]
"""
WAIVER_REASON = "Phường mới thành lập, chưa có số liệu"


def task(agency: str, year: int) -> str:
    return f"{ID}/bao-cao-dan-van/{agency}/{year}"


def at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)


def within_a_minute(instant: datetime | None, expected: datetime) -> bool:
    return instant is not None and abs(instant - expected) < timedelta(minutes=1)


async def _started(h: Harness) -> None:
    async with asyncio.timeout(30):
        while True:
            facts = await agreement_facts(h.env.client, ID)
            if all(t.state is TaskState.PENDING for t in facts.tasks) and len(facts.tasks) == 5:
                return
            await asyncio.sleep(0.1)


async def _settled(h: Harness, year: int) -> AgreementFacts:
    """The facts once every task's change has reached the agreement's ledger."""
    wanted = {
        task("SNV", year): TaskState.DONE_ON_TIME,
        task("BTGDV", year): TaskState.DONE_LATE,
        task("PHUONG_B", year): TaskState.WAIVED,
        task("XA_A", year): TaskState.OVERDUE,
        task("STP", year): TaskState.PENDING,
    }
    async with asyncio.timeout(30):
        while True:
            facts = await agreement_facts(h.env.client, ID)
            states = {t.task_id: t.state for t in facts.tasks}
            xa_a = next(t for t in facts.tasks if t.task_id == task("XA_A", year))
            if states == wanted and xa_a.escalation_level >= 1:
                return facts
            await asyncio.sleep(0.1)


async def test_the_report_says_what_happened(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").write_text(
        (ROOT / "tests" / "agreements" / "forms" / "directory.yaml").read_text()
    )
    async with harness(tmp_path, directory_path=tmp_path / "directory.yaml") as h:
        year = (await h.env.get_current_time()).astimezone(ZONE).year + 1
        # Due before the first Friday from 10 October (the last day a Thursday).
        october = date(year, 10, 10)
        due = october + timedelta(days=(4 - october.weekday()) % 7)
        monday = due + timedelta(days=3)
        (tmp_path / "agreement.yaml").write_text(
            AGREEMENT.format(id=ID, year=year, due=due.isoformat())
        )
        loaded = load_agreement(tmp_path / "agreement.yaml")
        await h.env.sleep(at(date(year, 9, 1)) - await h.env.get_current_time())
        await deploy_loaded(
            h.env.client, loaded, session_factory=h.sessions, task_queue=h.task_queue
        )

        def handle(agency: str) -> Any:
            return h.env.client.get_workflow_handle_for(
                ObligationWorkflow.run, task_workflow_id(task(agency, year))
            )

        # The Tuesday before: every task is open (from two months before its deadline).
        await _started(h)
        await h.env.sleep(at(due - timedelta(days=3), 9) - await h.env.get_current_time())
        await h.update(
            handle("SNV"),
            ObligationWorkflow.submit_report,
            SubmitReport(
                actor=h.actor("SNV"),
                summary="Sở Nội vụ đã tiếp 120 lượt công dân.",
                indicators={
                    "cong-dan-duoc-tiep": 120,
                    "khieu-nai-da-giai-quyet": {"done": 9, "total": 12},
                    "mo-hinh-dan-van-kheo": {"kinh tế": 3, "văn hóa - xã hội": 4},
                },
            ),
        )
        await h.update(
            handle("STP"),
            ObligationWorkflow.request_extension,
            ExtensionRequest(
                actor=h.actor("STP"), new_due=due + timedelta(days=14), reason="Chờ số liệu quý IV"
            ),
        )
        await h.update(
            handle("STP"),
            ObligationWorkflow.decide_extension,
            ExtensionDecision(actor=h.actor("SNV", OfficerRole.HEAD), approve=True),
        )
        await h.update(
            handle("PHUONG_B"),
            ObligationWorkflow.waive,
            Waiver(actor=h.actor("SNV", OfficerRole.ADMIN), reason=WAIVER_REASON),
        )
        # Ban Tuyên giáo và Dân vận reports on the Monday after, at 10:00: late by the Friday
        # and the Monday = 2 working days (4 calendar days).
        await h.env.sleep(at(monday, 10) - await h.env.get_current_time())
        await h.update(
            handle("BTGDV"),
            ObligationWorkflow.submit_report,
            SubmitReport(
                actor=h.actor("BTGDV"),
                summary="Ban đã tiếp 30 lượt công dân.",
                indicators={
                    "cong-dan-duoc-tiep": 30,
                    "khieu-nai-da-giai-quyet": {"done": 1, "total": 3},
                    "mo-hinh-dan-van-kheo": {"kinh tế": 2, "văn hóa - xã hội": 0},
                },
            ),
        )
        facts = await _settled(h, year)
        stp = next(t for t in facts.tasks if t.task_id == task("STP", year))
        assert stp.due_at == at(due + timedelta(days=14))
        with h.sessions() as session:
            inputs = report_inputs(session, facts)
        report = consolidate(inputs, period=str(year))

        # Directory order: BTGDV, SNV, STP, XA_A, PHUONG_B (not the owners' order).
        assert [(t.agency, t.status) for t in report.tasks] == [
            ("BTGDV", S.LATE),
            ("SNV", S.ON_TIME),
            ("STP", S.EXTENDED),
            ("XA_A", S.OVERDUE),
            ("PHUONG_B", S.WAIVED),
        ]
        rows = {t.agency: t for t in report.tasks}
        assert rows["BTGDV"].late_working_days == 2
        # Received when the server's clock said (a few milliseconds after the sleep).
        assert within_a_minute(rows["BTGDV"].submitted_at, at(monday, 10))
        assert within_a_minute(rows["SNV"].submitted_at, at(due - timedelta(days=3), 9))
        assert rows["STP"].extended_to == due + timedelta(days=14)
        assert rows["PHUONG_B"].waiver_reason == WAIVER_REASON
        assert rows["XA_A"].escalation_level >= 1
        assert [(m.agency, m.status) for m in report.missing] == [("XA_A", S.OVERDUE)]
        assert report.missing[0].escalation_level == rows["XA_A"].escalation_level
        assert (report.totals.due, report.totals.on_time) == (3, 1)
        assert report.province == "Tỉnh Mẫu"

        # 120 + 30 citizens; 9 + 1 of 12 + 3 complaints; models 3 + 2 and 4 + 0. STP (extended)
        # and XA_A (never reported) are listed, not counted; the waived ward owes nothing.
        counted = {i.code: i for i in report.indicators}
        assert counted["cong-dan-duoc-tiep"].count == 150
        ratio = counted["khieu-nai-da-giai-quyet"]
        assert (ratio.done, ratio.total, ratio.ratio) == (10, 15, 10 / 15)
        assert counted["mo-hinh-dan-van-kheo"].breakdown == {"kinh tế": 5, "văn hóa - xã hội": 4}
        assert counted["mo-hinh-dan-van-kheo"].count == 9
        for indicator in report.indicators:
            assert [a.agency for a in indicator.per_agency] == ["BTGDV", "SNV"]
            assert indicator.missing == ["STP", "XA_A"]
        assert [n.summary for n in report.narratives] == [
            "Ban đã tiếp 30 lượt công dân.",
            "Sở Nội vụ đã tiếp 120 lượt công dân.",
        ]

        # `accord report` as a user runs it: the same report, as JSON.
        env = {
            **os.environ,
            "ACCORD_TEMPORAL__ADDRESS": h.env.client.service_client.config.target_host,
            "ACCORD_DATABASE_URL": f"sqlite:///{tmp_path / 'accord.db'}",
            "ACCORD_DATA_DIR": str(tmp_path / "cli"),
        }
        for name in [n for n in env if n.startswith("ACCORD_CLAIMS")]:
            del env[name]  # read-only: no operator credential
        code, out, err = await _accord(env, "report", ID, "--period", str(year), "--format", "json")
        assert (code, err) == (0, ""), err
        printed = ConsolidatedReport.model_validate_json(out)
        assert printed.as_of >= report.as_of
        assert printed.model_copy(update={"as_of": report.as_of}) == report

        code, out, err = await _accord(env, "report", ID)
        assert code == 0, err
        assert out.startswith("# Báo cáo tổng hợp: 07/KH-TEST — Kế hoạch thử nghiệm báo cáo")
        assert "- Kỳ báo cáo: toàn bộ thời gian thực hiện" in out.splitlines()
        assert "- Toàn tỉnh: **10 / 15 (66,7 %)**" in out.splitlines()

        # The office formats, written by the exports (read back, not parsed by eye).
        workbook_path, document_path = tmp_path / "bao-cao.xlsx", tmp_path / "bao-cao.docx"
        for fmt, path in (("xlsx", workbook_path), ("docx", document_path)):
            code, out, err = await _accord(
                env, "report", ID, "--period", str(year), "--format", fmt, "--out", str(path)
            )
            assert (code, err, out) == (0, "", f"Đã ghi báo cáo vào {path}\n")
        workbook = openpyxl.load_workbook(workbook_path)
        sheet_rows = [
            tuple(cell.value for cell in row) for sheet in workbook for row in sheet.iter_rows()
        ]
        # The province's total of citizens received, as a number.
        assert any("cong-dan-duoc-tiep" in row and 150 in row for row in sheet_rows)
        cells = {
            cell.text
            for table in docx.Document(str(document_path)).tables
            for row in table.rows
            for cell in row.cells
        }
        assert "Ủy ban nhân dân xã A" in cells

        code, out, err = await _accord(env, "report", ID, "--period", "2020")
        assert (code, out) == (2, "")
        assert err == f"accord report: không có kỳ báo cáo '2020'; các kỳ của văn bản: {year}\n"
        code, out, err = await _accord(env, "report", "khong-co", "--format", "json")
        assert (code, out) == (1, "")
        assert err.startswith("accord report: không có văn bản 'khong-co' nào đã triển khai")
        assert err.count("\n") == 1
        code, out, err = await _accord(env, "report", ID, "--format", "xlsx")
        assert (code, out) == (2, "")
        assert err == ("accord report: --format xlsx ghi ra tệp: hãy chỉ định tệp bằng --out TỆP\n")
        code, out, err = await _accord(
            {**env, "ACCORD_LOCALE": "en"}, "report", ID, "--format", "docx"
        )
        assert err == "accord report: --format docx writes a file: give it with --out FILE\n"


async def _accord(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """Run `accord` in its own process; this loop keeps the worker answering meanwhile."""
    process = await asyncio.create_subprocess_exec(
        ACCORD,
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
