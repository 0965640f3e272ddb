"""Record workflow histories from real runs, for the replay test.

    .venv/bin/python tests/workflows/make_histories.py [extension|programme|calendar|timed|
        digest|orders|amend|suspend|succession ...]

Run it when a workflow change is *meant* to be incompatible (and then version the workflow),
or to add scenarios. Never regenerate histories to make a failing replay test pass: that
failure is the warning that running workflows would break.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from accord.simulation import simulate
from agreements.loader import load_agreement
from agreements.models import OfficerRole
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
)

HERE = Path(__file__).resolve().parent
HISTORIES = HERE / "histories"
ROOT = HERE.parents[1]


async def _save_chain(client: Client, workflow_id: str, first_run_id: str, stem: str) -> int:
    """Save the runs of a continue-as-new chain that did something: the first run, and every
    run that started tasks or received their reports (idle yearly runs before the simulated
    period are alike and left out)."""
    run_id: str | None = first_run_id
    runs = 0
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs += 1
        busy = any(
            e.HasField("start_child_workflow_execution_initiated_event_attributes")
            or e.HasField("workflow_execution_signaled_event_attributes")
            for e in history.events
        )
        if runs == 1 or busy:
            path = HISTORIES / f"{stem}-run{runs:02d}.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
        last = history.events[-1]
        attributes = last.workflow_execution_continued_as_new_event_attributes
        run_id = attributes.new_execution_run_id or None
    return runs


async def record_obligation_with_extension() -> None:
    from harness import harness, local_now, midnight, obligation_input

    with tempfile.TemporaryDirectory() as tmp:
        async with harness(Path(tmp)) as h:
            now = await local_now(h.env)
            due = midnight(now.date() + timedelta(days=20))
            handle = await h.start_obligation(
                obligation_input(due_at=due, period_end=due.date() + timedelta(days=90))
            )
            await h.env.sleep(timedelta(days=14))
            await h.update(
                handle,
                ObligationWorkflow.request_extension,
                ExtensionRequest(
                    actor=h.actor("STP"), new_due=(due + timedelta(days=10)).date(), reason="x"
                ),
            )
            await h.update(
                handle,
                ObligationWorkflow.decide_extension,
                ExtensionDecision(actor=h.actor("SNV", OfficerRole.HEAD), approve=True),
            )
            await h.env.sleep(timedelta(days=18))  # overdue, first escalation step
            await h.update(
                handle,
                ObligationWorkflow.submit_report,
                SubmitReport(actor=h.actor("STP"), summary="Nộp sau gia hạn."),
            )
            await handle.result()
            history = await handle.fetch_history()
            path = HISTORIES / "obligation-extension-late.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def record_programme() -> None:
    """Nghệ An 2021–2026: the agreement continues-as-new at every new reporting year."""
    from accord.simulation import start_test_server

    loaded = load_agreement(ROOT / "agreements" / "nghe-an-2021-2026-chuong-trinh.yaml")
    env = await start_test_server()
    try:
        report = await simulate(loaded, env=env)
        workflow_id = f"agreement:{loaded.agreement.agreement_id}"
        first = await env.client.get_workflow_handle(workflow_id).describe()
        # describe() gives the latest run; walk back through the chain's first run id.
        first_run = first.raw_description.workflow_execution_info.first_run_id
        runs = await _save_chain(env.client, workflow_id, first_run, "agreement-nghe-an")
        task = next(t for t in loaded.occurrences if t.due_at is not None)
        history = await env.client.get_workflow_handle(f"task:{task.task_id}").fetch_history()
        (HISTORIES / "obligation-nghe-an-overdue.json").write_text(
            json.dumps(json.loads(history.to_json()), indent=1) + "\n"
        )
        print(f"Nghệ An: {runs} runs, {len(report.mails)} messages")
    finally:
        await env.shutdown()


async def record_calendar_change() -> None:
    """A task whose deadline moves when a new working calendar is published (the signed
    `change_calendar` update); payloads the task cannot use are refused by its validator and
    leave nothing in history, so the history shows only the accepted one."""
    await _record_calendar_change("obligation-calendar-change.json", timed=False)


async def record_timed_calendar_change() -> None:
    """A task due at 17:00 on a working day that a newly published calendar makes a day off:
    the deadline rule moves it to the next working day and keeps 17:00."""
    await _record_calendar_change("obligation-timed-calendar-change.json", timed=True)


async def _record_calendar_change(name: str, *, timed: bool) -> None:
    """A task whose last day, a working day 30 days ahead, a published calendar makes a day
    off; due at that day's end, or at 17:00 on it (`timed`)."""
    from harness import harness, local_now, midnight, obligation_input

    from agreements.calendar import CalendarDay, WorkingCalendar
    from agreements.expansion import cached_calendar
    from workflows.payloads import CalendarUpdate

    with tempfile.TemporaryDirectory() as tmp:
        async with harness(Path(tmp)) as h:
            now = await local_now(h.env)
            calendar = cached_calendar(range(now.year - 1, now.year + 3))
            last_day = now.date() + timedelta(days=30)
            while not calendar.is_working_day(last_day):
                last_day += timedelta(days=1)
            due = (
                midnight(last_day).replace(hour=17)
                if timed
                else midnight(last_day + timedelta(days=1))
            )
            handle = await h.start_obligation(obligation_input(due_at=due, calendar=calendar))
            await h.env.sleep(timedelta(days=25))
            extra = CalendarDay(day=last_day, name_vi="Ngày nghỉ", name_en="Day off", source="x")
            days_off = tuple(sorted((*calendar.days_off, extra), key=lambda d: d.day))
            changed = WorkingCalendar.model_validate(
                {**calendar.model_dump(), "days_off": [d.model_dump() for d in days_off]}
            )
            await h.update(
                handle,
                ObligationWorkflow.change_calendar,
                CalendarUpdate(calendar=changed, note="Nghỉ bổ sung"),
            )
            await handle.result()
            history = await handle.fetch_history()
            path = HISTORIES / name
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def record_digest() -> None:
    """An agreement deployed with digests (tests/workflows/test_digest.py): the due-date
    digest after a weekend, a weekly one while a task is overdue, the last one after New
    Year's Day, then completion."""
    from harness import harness
    from test_digest import (
        STP_TASK,
        STP_YEAR,
        SVH_TASK,
        SVH_YEAR,
        at,
        deploy,
        sleep_until,
        submit,
        y,
    )

    with tempfile.TemporaryDirectory() as tmp:
        async with harness(Path(tmp) / "run") as h:
            handle = await deploy(h, Path(tmp) / "agreements")
            await sleep_until(h, at(y("2026-12-10T09:00")))
            await submit(h, STP_TASK, "STP")
            await sleep_until(h, at(y("2026-12-22T09:00")))
            await submit(h, SVH_TASK, "SVHTTDL")
            await sleep_until(h, at(y("2026-12-23T09:00")))
            await submit(h, STP_YEAR, "STP")
            await submit(h, SVH_YEAR, "SVHTTDL")
            await sleep_until(h, at(y("2027-01-04T09:00")))
            await handle.result()
            history = await handle.fetch_history()
            path = HISTORIES / "agreement-digest.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
            # The first digest the agreement started, as its own workflow (workflows.digest).
            started = [
                e.start_child_workflow_execution_initiated_event_attributes.workflow_id
                for e in history.events
                if e.HasField("start_child_workflow_execution_initiated_event_attributes")
            ]
            first = next(
                workflow_id for workflow_id in started if workflow_id.startswith("digest:")
            )
            digest = h.env.client.get_workflow_handle(first)
            await digest.result()
            history = await digest.fetch_history()
            path = HISTORIES / "digest-due-date.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def record_orders() -> None:
    """Issue 17: tasks that receive their agreement's orders (`task_order` signal, sent here
    as the agreement sends them): one suspended, resumed with its deadline shifted, given a
    new due date, transferred to a successor that then submits; one withdrawn; one started
    suspended and resumed with its deadline kept."""
    from harness import Harness, harness, local_now, midnight
    from test_task_orders import DOCUMENT, NO_ESCALATION, child, order, sleep_until

    from workflows.payloads import Suspended

    async def save(h: Harness, workflow_id: str, name: str) -> None:
        history = await h.env.client.get_workflow_handle(workflow_id).fetch_history()
        path = HISTORIES / name
        path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        async with harness(Path(tmp)) as h:
            now = await local_now(h.env)
            today = now.date()
            due = midnight(today + timedelta(days=20))
            lived = await h.start_obligation(child("l", due))
            withdrawn = await h.start_obligation(child("w", due, escalation=NO_ESCALATION))
            born = await h.start_obligation(
                child("n", due).model_copy(
                    update={
                        "suspension": Suspended(
                            suspension_id="tam-dung-0",
                            since=now,
                            document=DOCUMENT,
                            reason="Đề án tạm dừng",
                        )
                    }
                )
            )
            await sleep_until(h, midnight(today + timedelta(days=3)) + timedelta(hours=10))
            await order(h, lived, "tam-dung-1/suspend", "suspend", suspension_id="tam-dung-1")
            await order(h, withdrawn, "sua-doi-1/withdraw", "withdraw")
            await sleep_until(h, midnight(today + timedelta(days=10)) + timedelta(hours=10))
            await order(
                h,
                lived,
                "resume:tam-dung-1/resume",
                "resume",
                suspension_id="tam-dung-1",
                shift_deadline=True,
            )
            await order(h, born, "resume:tam-dung-0/resume", "resume", suspension_id="tam-dung-0")
            await sleep_until(h, midnight(today + timedelta(days=12)) + timedelta(hours=10))
            await order(
                h,
                lived,
                "sua-doi-2/move_due",
                "move_due",
                written_due_at=midnight(today + timedelta(days=40)),
            )
            await sleep_until(h, midnight(today + timedelta(days=14)) + timedelta(hours=10))
            await order(h, lived, "sap-nhap/transfer", "transfer", agency="SVHTTDL")
            await sleep_until(h, midnight(today + timedelta(days=34)) + timedelta(hours=10))
            for handle, agency in ((lived, "SVHTTDL"), (born, "STP")):
                await h.update(
                    handle,
                    ObligationWorkflow.submit_report,
                    SubmitReport(actor=h.actor(agency), summary="Nộp báo cáo."),
                )
            await lived.result()
            await born.result()
            await withdrawn.result()
            await save(h, lived.id, "obligation-orders-suspend-transfer.json")
            await save(h, withdrawn.id, "obligation-orders-withdrawn.json")
            await save(h, born.id, "obligation-orders-started-suspended.json")


async def _save_agreement(handle: Any, name: str) -> None:
    """The agreement's history so far (it runs on; a partial history replays as well)."""
    history = await handle.fetch_history()
    path = HISTORIES / name
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")


async def record_amend() -> None:
    """Issue 17: an amendment applied to a running agreement (tests/workflows/test_amend.py):
    a task added and started, one withdrawn, one moved; then the same amendment again."""
    from harness import harness
    from living import deploy, local, move_to, task, write_agreement
    from test_amend import AMENDED, SIGNED, B, amendment, y

    from workflows.agreement import AgreementWorkflow

    with tempfile.TemporaryDirectory() as tmp:
        signed = write_agreement(Path(tmp) / "v1", "song.yaml", SIGNED)
        amended = write_agreement(Path(tmp) / "v2", "song.yaml", AMENDED)
        async with harness(Path(tmp), directory_path=signed.parent / "directory.yaml") as h:
            agreement = await deploy(h, signed)
            await move_to(h, local(y("2027-06-10T12:00")))
            request = amendment(amended, h.actor("SNV", OfficerRole.ADMIN))
            await h.update(agreement, AgreementWorkflow.amend, request)
            await task(h, B).result()
            await move_to(h, local(y("2027-06-12T12:00")))
            await h.update(agreement, AgreementWorkflow.amend, request)
            await move_to(h, local(y("2027-06-13T12:00")))
            await _save_agreement(agreement, "agreement-amend.json")


async def record_suspend() -> None:
    """Issue 17: a whole agreement suspended (one task running, one started suspended) and
    resumed with its deadlines moved (tests/workflows/test_suspend.py)."""
    from harness import harness
    from living import deploy, local, move_to, write_agreement
    from test_suspend import PROGRAMME, RESUMED_BY, SUSPENDED_BY, y

    from workflows.agreement import AgreementWorkflow
    from workflows.payloads import ResumptionRequest, SuspensionRequest

    with tempfile.TemporaryDirectory() as tmp:
        path = write_agreement(Path(tmp) / "ctr", "tam-dung.yaml", PROGRAMME)
        async with harness(Path(tmp), directory_path=path.parent / "directory.yaml") as h:
            agreement = await deploy(h, path)
            admin = h.actor("SNV", OfficerRole.ADMIN)
            await move_to(h, local(y("2027-06-01T09:00")))
            await h.update(
                agreement,
                AgreementWorkflow.suspend,
                SuspensionRequest(
                    actor=admin, suspension_id="tam-dung", document=SUSPENDED_BY, reason="x"
                ),
            )
            await move_to(h, local(y("2027-09-01T09:00")))
            await h.update(
                agreement,
                AgreementWorkflow.resume,
                ResumptionRequest(
                    actor=admin,
                    suspension_id="tam-dung",
                    document=RESUMED_BY,
                    reason="y",
                    shift_deadlines=True,
                ),
            )
            await move_to(h, local(y("2027-09-02T09:00")))
            await _save_agreement(agreement, "agreement-suspend-resume.json")


async def record_succession() -> None:
    """Issue 17: a succession accepted before its effective day and applied by the
    agreement's timer at its local midnight: open and waiting tasks passed, one task
    re-addressed (tests/workflows/test_succession_engine.py)."""
    from harness import harness
    from living import deploy, local, move_to, write_agreement
    from test_succession_engine import PLAN, succeed_on_1_july, y

    from agreements.succession import Transfer

    with tempfile.TemporaryDirectory() as tmp:
        path = write_agreement(Path(tmp) / "kh", "ke-thua.yaml", PLAN)
        async with harness(Path(tmp), directory_path=path.parent / "directory.yaml") as h:
            agreement = await deploy(h, path)
            await move_to(h, local(y("2027-06-20T10:00")))
            await succeed_on_1_july(
                h, agreement, "sap-nhap-stp", Transfer(from_agency="STP", to_agency="XA_A")
            )
            await move_to(h, local(y("2027-08-10T12:00")))
            await _save_agreement(agreement, "agreement-succession.json")


SCENARIOS = {
    "extension": record_obligation_with_extension,
    "programme": record_programme,
    "calendar": record_calendar_change,
    "timed": record_timed_calendar_change,
    "digest": record_digest,
    "orders": record_orders,
    "amend": record_amend,
    "suspend": record_suspend,
    "succession": record_succession,
}


async def main(names: list[str]) -> None:
    """Record the named scenarios (all when none is named)."""
    HISTORIES.mkdir(exist_ok=True)
    for name in names or list(SCENARIOS):
        await SCENARIOS[name]()
    for path in sorted(HISTORIES.glob("*.json")):
        print(path.relative_to(ROOT), path.stat().st_size)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    asyncio.run(main(sys.argv[1:]))
