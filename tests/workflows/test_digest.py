"""The digest by mail (issue 16, point 5), end to end: a deployed agreement on the time-skipping
server with the real worker, SQLite and an SMTP server on loopback.

Sở Tư pháp and Sở Văn hóa, Thể thao và Du lịch owe one report due before Saturday 12/12/2026
(last day Friday 11/12). STP reports on time; SVHTTDL does not. The digest goes out on Monday
14/12/2026 at 07:30 (the weekend skipped) to Sở Nội vụ's focal point (the aggregator) and the
provincial leadership, and to nobody else; weekly on Monday 21/12 while SVHTTDL is overdue;
not after SVHTTDL reports on 22/12. Both also owe a year-end report due before 01/01/2027 (last
day Thursday 31/12/2026), which both submit on time: its digest waits past New Year's Day and
the weekend for Monday 04/01/2027, and the agreement, its period over and every task closed,
completes only once that digest has gone.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path

import openpyxl
from clock import scenario_year, shift_years
from harness import QUANG_BINH, ZONE, Harness, harness, recipients, sent_at
from sqlalchemy import select
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from accord.deploy import deploy_loaded
from activities.digest import DigestActivities
from activities.mail import MailActivities
from activities.models import DigestRequest, DigestResult
from agreements.loader import load_agreement
from infra import db
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import AgreementSummary, SubmitReport, TaskState, task_workflow_id

# The year the scenario runs in: 2026 while its first step (10 December) is still ahead, else
# the next year with the weekdays of 2026 and 2027 (a Friday New Year's Day after it), so that
# the weekends and the holiday fall where the scenario says, whenever the tests run.
YEAR = scenario_year(2026, date(2026, 12, 10), span=2)


def y(text: str) -> str:
    """`text` written for 2026 and 2027, in the scenario's year and the next."""
    return shift_years(text, 2026, YEAR, span=2)


AGREEMENT_ID = y("qb-thu-nghiem-tong-hop-2026")
AGREEMENT = y(f"""\
schema_version: 1
id: {AGREEMENT_ID}
document_number: 98/KH-UBND
kind: yearly_plan
title: Kế hoạch thử nghiệm bản tổng hợp tháng 12/2026
province: Quảng Bình
parties:
  - agency: UBND_TINH
signed_on: 2026-11-20
period:
  start: 2026-12-01
  end: 2026-12-31
directory: directory/quang-binh.yaml
defaults:
  reminders:
    before: [1d]
    notify: [focal_point]
  escalation:
    - after: 3d
      notify: [focal_point]
reporting:
  - id: bao-cao-thang-12
    title: Báo cáo kết quả tháng 12
    deliverable: report
    owners:
      agencies: [STP, SVHTTDL]
    recipient: SNV
    due:
      kind: fixed
      before: 2026-12-12
  - id: bao-cao-nam
    title: Báo cáo tổng kết năm 2026
    deliverable: report
    owners:
      agencies: [STP, SVHTTDL]
    recipient: SNV
    due:
      kind: fixed
      before: 2027-01-01
""")
STP_TASK = y(f"{AGREEMENT_ID}/bao-cao-thang-12/STP/2026")
SVH_TASK = y(f"{AGREEMENT_ID}/bao-cao-thang-12/SVHTTDL/2026")
STP_YEAR = y(f"{AGREEMENT_ID}/bao-cao-nam/STP/2027")
SVH_YEAR = y(f"{AGREEMENT_ID}/bao-cao-nam/SVHTTDL/2027")
AGGREGATOR = "dau-moi.snv@quangbinh.example"
LEADERSHIP = "lanh-dao.ubnd-tinh@quangbinh.example"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


async def sleep_until(h: Harness, when: datetime) -> None:
    now = await h.env.get_current_time()
    await h.env.sleep(when - now)


def digests(h: Harness) -> list[EmailMessage]:
    return [m for m in h.mails() if m["X-Accord-Kind"] == "digest"]


def part(message: EmailMessage, content_type: str) -> EmailMessage:
    found = [p for p in message.walk() if p.get_content_type() == content_type]
    assert len(found) == 1, content_type
    assert isinstance(found[0], EmailMessage)
    return found[0]


async def submit(h: Harness, task_id: str, agency: str) -> None:
    handle = h.env.client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))
    await h.update(
        handle,
        ObligationWorkflow.submit_report,
        SubmitReport(actor=h.actor(agency), summary=f"Báo cáo tháng 12 của {agency}."),
    )


async def deploy(h: Harness, folder: Path) -> WorkflowHandle[AgreementWorkflow, AgreementSummary]:
    """The agreement, deployed as `accord deploy` does (digests on)."""
    (folder / "directory").mkdir(parents=True)
    (folder / "directory" / "quang-binh.yaml").write_bytes(QUANG_BINH.read_bytes())
    (folder / "thu-nghiem.yaml").write_text(AGREEMENT, encoding="utf-8")
    loaded = load_agreement(folder / "thu-nghiem.yaml")
    assert (await h.env.get_current_time()) < at(y("2026-12-10T00:00"))
    deployed = await deploy_loaded(
        h.env.client, loaded, session_factory=h.sessions, task_queue=h.task_queue
    )
    return h.env.client.get_workflow_handle_for(AgreementWorkflow.run, deployed.workflow_id)


async def test_digest_after_the_due_date_and_weekly_while_overdue(tmp_path: Path) -> None:
    async with harness(tmp_path / "run") as h:
        agreement = await deploy(h, tmp_path / "agreements")
        await sleep_until(h, at(y("2026-12-10T09:00")))
        await submit(h, STP_TASK, "STP")

        # Friday 11/12 is the last day; the weekend passes: nothing until Monday 07:30.
        await sleep_until(h, at(y("2026-12-14T07:00")))
        assert digests(h) == []
        await sleep_until(h, at(y("2026-12-14T09:00")))
        first = digests(h)
        assert sorted(recipient for m in first for recipient in recipients(m)) == [
            AGGREGATOR,
            LEADERSHIP,
        ]
        assert {sent_at(m) for m in first} == {at(y("2026-12-14T07:30"))}
        assert {m["X-Accord-Key"] for m in first} == {y(f"{AGREEMENT_ID}/digest/2026/2026-12-14")}
        assert all(m["Auto-Submitted"] == "auto-generated" for m in first)

        message = next(m for m in first if recipients(m) == [AGGREGATOR])
        assert message["Subject"] == (
            y("[Accord] Tổng hợp tình hình nộp báo cáo kỳ 2026 – 98/KH-UBND")
        )
        text = part(message, "text/plain").get_content().replace("\r\n", "\n")
        assert "Kính gửi đồng chí Cán bộ đầu mối – Sở Nội vụ," in text
        assert y("sau hạn nộp ngày 11/12/2026") in text
        assert "Tổng số nhiệm vụ: 2; đến hạn: 2; đúng hạn: 1; tỷ lệ đúng hạn: 50,0%." in text
        assert (
            y("- Sở Tư pháp – Báo cáo kết quả tháng 12 (kỳ 2026, trước ngày 12/12/2026): ")
            + y("Đúng hạn; nộp ngày 10/12/2026")
        ) in text
        assert (
            y("- Sở Văn hóa, Thể thao và Du lịch – Báo cáo kết quả tháng 12 (kỳ 2026, trước ngày ")
            + y("12/12/2026): Quá hạn, chưa nộp\n")
        ) in text
        assert (
            y("Chưa nộp: Sở Văn hóa, Thể thao và Du lịch (Báo cáo kết quả tháng 12, 2026).") in text
        )
        assert "Thông báo để đồng chí nắm, theo dõi và tổng hợp." in text
        leader = next(m for m in first if recipients(m) == [LEADERSHIP])
        leader_text = part(leader, "text/plain").get_content()
        assert "Kính gửi đồng chí Lãnh đạo UBND tỉnh," in leader_text
        assert "Kính báo cáo để đồng chí nắm và chỉ đạo." in leader_text

        # The HTML shows the table and the chart by cid; the chart is the related PNG part.
        html = part(message, "text/html").get_content()
        assert '<td style="border:1px solid #ccc">Sở Tư pháp</td>' in html
        assert "Quá hạn, chưa nộp</td>" in html
        related = part(message, "multipart/related")
        png = part(related, "image/png")
        cid = str(png["Content-ID"]).strip("<>")
        assert f'src="cid:{cid}"' in html
        data = png.get_payload(decode=True)
        assert isinstance(data, bytes) and data.startswith(b"\x89PNG\r\n\x1a\n")

        # The workbook, attached, opens and lists both agencies.
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == y("tong-hop-sau-han-nop-2026-12-14.xlsx")
        workbook_data = attachment.get_payload(decode=True)
        assert isinstance(workbook_data, bytes)
        book = openpyxl.load_workbook(io.BytesIO(workbook_data))
        cells = {
            str(cell)
            for sheet in book.worksheets
            for row in sheet.iter_rows(values_only=True)
            for cell in row
            if cell is not None
        }
        assert {"Sở Tư pháp", "Sở Văn hóa, Thể thao và Du lịch"} <= cells

        # Retried (the same request again, as the workflow's retry would): nothing resent.
        request = await _digest_request(agreement, 0)
        mail = MailActivities(h.sessions, h.smtp)
        try:
            again: DigestResult = await ActivityEnvironment().run(
                DigestActivities(h.sessions, h.smtp, mail).send_digest, request
            )
        finally:
            await mail.aclose()
        assert (again.recipients, again.sent, again.already_sent) == (2, 0, 2)
        assert len(digests(h)) == 2

        # Weekly while SVHTTDL is overdue: Monday 21/12 at 07:30, the same two officers.
        await sleep_until(h, at(y("2026-12-22T09:00")))
        weekly = digests(h)[2:]
        assert sorted(r for m in weekly for r in recipients(m)) == [AGGREGATOR, LEADERSHIP]
        assert {sent_at(m) for m in weekly} == {at(y("2026-12-21T07:30"))}
        assert {m["X-Accord-Key"] for m in weekly} == {
            y(f"{AGREEMENT_ID}/digest/weekly/2026-12-21")
        }
        weekly_text = part(weekly[0], "text/plain").get_content().replace("\r\n", "\n")

        assert weekly[0]["Subject"] == (
            "[Accord] Tổng hợp hằng tuần: còn 1 nhiệm vụ quá hạn – 98/KH-UBND"
        )
        assert "còn 1 nhiệm vụ quá hạn chưa nộp" in weekly_text
        # Escalated on Tuesday 15/12 (3 days after the due instant, at the sending time).
        assert "Quá hạn, chưa nộp – mức đôn đốc 1\n" in weekly_text

        # SVHTTDL reports (late): nothing overdue, no more weekly digests. Both send the
        # year-end report on time.
        await submit(h, SVH_TASK, "SVHTTDL")
        await sleep_until(h, at(y("2026-12-23T09:00")))
        await submit(h, STP_YEAR, "STP")
        await submit(h, SVH_YEAR, "SVHTTDL")
        await sleep_until(h, at(y("2027-01-04T07:00")))
        assert len(digests(h)) == 4  # none on 28/12, none on New Year's Day
        assert not (await agreement.query(AgreementWorkflow.overview)).finished
        await sleep_until(h, at(y("2027-01-04T09:00")))
        summary = await agreement.result()
        assert summary.counts[TaskState.DONE_LATE.value] == 1
        assert summary.counts[TaskState.DONE_ON_TIME.value] == 3
        assert at(y("2027-01-04T07:30")) <= summary.finished_at < at(y("2027-01-04T07:31"))
        last = digests(h)[4:]
        assert sorted(r for m in last for r in recipients(m)) == [AGGREGATOR, LEADERSHIP]
        assert {sent_at(m) for m in last} == {at(y("2027-01-04T07:30"))}
        year_text = part(last[0], "text/plain").get_content().replace("\r\n", "\n")
        # Only the year-end report's tasks: the monthly one is another obligation's period.
        assert y("sau hạn nộp ngày 31/12/2026") in year_text
        assert "Tổng số nhiệm vụ: 2; đến hạn: 2; đúng hạn: 2; tỷ lệ đúng hạn: 100,0%." in year_text
        assert "Báo cáo kết quả tháng 12" not in year_text
        with h.sessions() as session:
            rows = session.execute(
                select(db.OutboxRow.business_key, db.OutboxRow.task_id, db.OutboxRow.status)
                .where(db.OutboxRow.kind == "digest")
                .order_by(db.OutboxRow.id)
            ).all()
        keys = [y("2026/2026-12-14"), y("weekly/2026-12-21"), y("2027/2027-01-04")]
        assert [tuple(r) for r in rows] == [
            (f"{AGREEMENT_ID}/digest/{key}", f"{AGREEMENT_ID}/digest", "sent")
            for key in keys
            for _ in range(2)
        ]


async def _digest_request(
    agreement: WorkflowHandle[AgreementWorkflow, AgreementSummary], index: int
) -> DigestRequest:
    """The input of the agreement's `index`-th digest: the agreement starts each as a child
    workflow (workflows.digest) whose one activity is send_digest."""
    history = await agreement.fetch_history()
    children = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        and e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name
        == "Digest"
    ]
    digest = agreement._client.get_workflow_handle(children[index])
    inputs = [
        e.activity_task_scheduled_event_attributes.input.payloads[0].data
        for e in (await digest.fetch_history()).events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "send_digest"
    ]
    assert len(inputs) == 1
    return DigestRequest.model_validate(json.loads(inputs[0]))


async def test_a_digest_waits_for_a_relay_down_for_hours_and_goes_out_once(tmp_path: Path) -> None:
    """The relay is down from Monday 07:00 to 10:45, past the digest's instant (07:30) by more
    than the two hours after which an earlier version gave up: the digest workflow keeps
    retrying, nothing is dropped, and it goes out once to each officer when the relay is back;
    the agreement waits for nothing."""
    async with harness(tmp_path / "run", keep_connections=False) as h:
        agreement = await deploy(h, tmp_path / "agreements")
        await sleep_until(h, at(y("2026-12-10T09:00")))
        await submit(h, STP_TASK, "STP")
        await sleep_until(h, at(y("2026-12-14T07:00")))
        await h.sink.stop()
        await sleep_until(h, at(y("2026-12-14T10:45")))
        assert digests(h) == []
        overview = await agreement.query(AgreementWorkflow.overview)
        assert not overview.finished
        await h.relay_up()
        await sleep_until(h, at(y("2026-12-14T11:30")))
        first = digests(h)
        assert sorted(r for m in first for r in recipients(m)) == [AGGREGATOR, LEADERSHIP]
        assert {m["X-Accord-Key"] for m in first} == {y(f"{AGREEMENT_ID}/digest/2026/2026-12-14")}
        # The Date header is the digest's instant, not the hour the relay came back.
        assert {sent_at(m) for m in first} == {at(y("2026-12-14T07:30"))}
        with h.sessions() as session:
            attempts = session.execute(
                select(db.OutboxRow.status, db.OutboxRow.attempts).where(
                    db.OutboxRow.kind == "digest"
                )
            ).all()
        assert [status for status, _ in attempts] == ["sent", "sent"]
        assert all(n > 1 for _, n in attempts), attempts
