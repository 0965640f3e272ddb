"""The Temporal Web UI as an admin uses it, in a real browser: Debian's Chromium driven by
Playwright, against the parts `accord run` starts (the dev server with its UI on SQLite, the
mail sink, the worker) and an agreement whose tasks are overdue the moment it is deployed.

What it shows an admin: the overdue query for one agency lists exactly that agency's overdue
tasks, the Accord columns can be added to the list, a task's Vietnamese summary is on its
"User Metadata" tab, and no page asks anything of a host outside the machine.

Without Chromium the test skips, unless ACCORD_REQUIRE_BROWSER=1 (CI sets it), where it fails.
Screenshots go to the test's tmp folder and to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import async_playwright, expect
from ports import free_ports
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

import worker
from accord.deploy import build_input, start_agreement
from accord.embedded import DevServer, MailSink
from agreements.expansion import expand
from agreements.loader import LoadedAgreement, load_directory
from agreements.models import Agreement
from infra import db
from infra.settings import Settings, SmtpSettings
from workflows.payloads import AgreementInput, agreement_workflow_id, task_workflow_id

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
DIRECTORY = ROOT / "agreements" / "directory" / "quang-binh.yaml"
LATE_AGENCY = "UBND_LE_THUY"
ACCORD_COLUMNS = ["AccordAgency", "AccordState", "AccordEscalationLevel", "AccordDueAt"]
DUE_AT = SearchAttributeKey.for_datetime("AccordDueAt")


def chromium() -> str:
    """Path of the system Chromium. Playwright's own browser download needs the internet, so
    the test uses the distribution's browser."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    if found is None:
        reason = "Chromium is not installed (Debian: `apt-get install chromium`)"
        if os.environ.get("ACCORD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and ACCORD_REQUIRE_BROWSER=1 requires the browser test")
        pytest.skip(reason)
    return found


def overdue_agreement(now: datetime) -> Agreement:
    """Three agencies owe two reports already past due, and Lệ Thủy also a report due in
    three weeks: the agency filter must drop the others, the state filter the pending one."""
    today = now.date()

    def report(obligation: str, title: str, owners: list[str], due_in_days: int) -> object:
        due = today + timedelta(days=due_in_days)
        return {
            "id": obligation,
            "title": title,
            "deliverable": "report",
            "owners": {"agencies": owners},
            "recipient": "SNV",
            "due": {"kind": "fixed", "before": due.isoformat(), "label": str(due.year)},
        }

    return Agreement.model_validate(
        {
            "id": "kiem-thu-giao-dien",
            "document_number": "KT-01/KH-UBND",
            "kind": "implementation_plan",
            "title": "Kế hoạch kiểm thử giao diện quản trị",
            "province": "Quảng Bình",
            "parties": [{"agency": "UBND_TINH"}],
            "signed_on": (today - timedelta(days=60)).isoformat(),
            "period": {
                "start": (today - timedelta(days=60)).isoformat(),
                "end": (today + timedelta(days=30)).isoformat(),
            },
            "directory": str(DIRECTORY),
            "defaults": {
                "reminders": {"before": ["7d"], "notify": ["focal_point"]},
                "escalation": [{"after": "1d", "notify": ["focal_point", "head_of_agency"]}],
            },
            "reporting": [
                report(
                    "bao-cao-quy",
                    "Báo cáo quý về công tác dân vận chính quyền",
                    ["STP", LATE_AGENCY, "UBND_DONG_HOI"],
                    -7,
                ),
                report(
                    "bao-cao-chuyen-de",
                    "Báo cáo chuyên đề về tiếp công dân",
                    [LATE_AGENCY, "STP"],
                    -3,
                ),
                report("bao-cao-nam", "Báo cáo năm", [LATE_AGENCY], 21),
            ],
        }
    )


@dataclass(frozen=True)
class Service:
    client: Client
    ui_url: str
    deployed: AgreementInput


@asynccontextmanager
async def running_service(data_dir: Path) -> AsyncIterator[Service]:
    """What `accord run` starts, on free ports, with the overdue agreement deployed."""
    port, ui_port = free_ports(2)
    server = DevServer(data_dir / "temporal", port=port, ui_port=ui_port)
    async with server, MailSink(data_dir / "mail", port=0) as sink:
        settings = Settings(database_url=f"sqlite:///{data_dir / 'accord.db'}", data_dir=data_dir)
        client = await worker.connect(settings, server.address)
        session_factory = worker.open_database(settings, upgrade=True)
        task_queue = "web-ui"
        engine_worker = worker.build_worker(
            client,
            task_queue=task_queue,
            session_factory=session_factory,
            smtp=SmtpSettings(host="127.0.0.1", port=sink.port, embedded=False),
            share_accord_modules=False,
        )
        async with engine_worker:
            agreement = overdue_agreement(datetime.now().astimezone())
            directory = load_directory(DIRECTORY)
            with session_factory() as session:
                db.upsert_directory(session, directory=directory)
            loaded = LoadedAgreement(DIRECTORY, agreement, directory, expand(agreement, directory))
            deployed = build_input(loaded)
            await start_agreement(client, deployed, task_queue=task_queue)
            yield Service(client, server.ui_url, deployed)


async def wait_for_count(client: Client, query: str, expected: int, within: float = 60) -> None:
    """Until the search index holds `expected` workflows for `query` (visibility lags)."""
    deadline = time.monotonic() + within
    while True:
        count = (await client.count_workflows(query)).count
        if count == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} workflows match {query!r}, expected {expected}")
        await asyncio.sleep(0.25)


def keep(screenshot: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy2(screenshot, ARTIFACTS / screenshot.name)


async def test_an_admin_sees_one_agencys_overdue_tasks_and_a_tasks_vietnamese_summary(
    tmp_path: Path,
) -> None:
    """Slow (25-45 s on 2 busy cores): a real dev server, worker and browser."""
    executable = chromium()
    async with running_service(tmp_path / "service") as service:
        now = datetime.now().astimezone()
        late = sorted(
            (t for t in service.deployed.waiting if t.agency == LATE_AGENCY),
            key=lambda t: t.task_id,
        )
        overdue = [t for t in late if t.due_at is not None and t.due_at < now]
        assert len(overdue) == 2 and len(late) == 3  # the agreement is built that way
        query = (
            f"AccordKind = 'task' AND AccordAgency = '{LATE_AGENCY}' AND AccordState = 'overdue'"
        )
        await wait_for_count(service.client, "AccordKind = 'task' AND AccordState = 'overdue'", 5)
        await wait_for_count(service.client, query, len(overdue))

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=executable)
            # As an admin in Vietnam sees dates; English, the UI's only language.
            context = await browser.new_context(
                viewport={"width": 1920, "height": 900},
                locale="en-US",
                timezone_id="Asia/Ho_Chi_Minh",
            )
            page = await context.new_page()
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith(service.ui_url) else outside.append(request.url)
                ),
            )

            # The list, filtered by the URL's query parameter, as a saved view is.
            await page.goto(
                f"{service.ui_url}/namespaces/default/workflows?query={urllib.parse.quote(query)}"
            )
            task_links = page.get_by_role("link", name="task:", exact=False)
            await expect(task_links).to_have_count(len(overdue), timeout=30_000)
            assert sorted(await task_links.all_inner_texts()) == [
                task_workflow_id(t.task_id) for t in overdue
            ]

            # The Accord columns, added as the README tells an admin to.
            await page.get_by_role("button", name="Configure Columns").click()
            for column in ["Run ID", "Type", "Start", "End"]:
                await page.get_by_role("button", name=f"Remove {column} column").click()
            for column in ACCORD_COLUMNS:
                await page.get_by_role("button", name=f"Add {column} column").click()
            await page.get_by_role("button", name="Close Workflows Table configuration").click()
            header = page.get_by_role("columnheader")
            await expect(header.filter(has_text="AccordEscalationLevel")).to_be_visible()
            for task in overdue:
                workflow_id = task_workflow_id(task.task_id)
                described = await service.client.get_workflow_handle(workflow_id).describe()
                due = described.typed_search_attributes.get(DUE_AT)
                assert due is not None
                # Shown in the browser's zone: "before 26/11" is 26/11 00:00 in Vietnam.
                due = due.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
                cells = page.get_by_role("row").filter(has_text=workflow_id).get_by_role("cell")
                await expect(cells).to_contain_text(
                    [
                        workflow_id,
                        LATE_AGENCY,
                        "overdue",
                        f"{due:%b} {due.day}, {due.year}, {due:%-I:%M}:00.00 {due:%p} GMT+7",
                    ]
                )
            listed = tmp_path / "web-ui-overdue-list.png"
            await page.screenshot(path=str(listed))
            keep(listed)

            # One task: its Vietnamese summary and details are on the "User Metadata" tab.
            first = overdue[0]
            description = await service.client.get_workflow_handle(
                task_workflow_id(first.task_id)
            ).describe()
            summary = await description.static_summary()
            assert summary is not None and first.agency in summary
            await task_links.filter(has_text=task_workflow_id(first.task_id)).click()
            await page.get_by_role("tab", name="User Metadata").click()
            # Each of Summary, Details and Current Details is rendered in a frame of its own.
            summary_frame, _, current_frame = (
                page.frame_locator("iframe").nth(i) for i in range(3)
            )
            await expect(summary_frame.get_by_text(summary, exact=True)).to_be_visible()
            await expect(current_frame.get_by_text("Chưa hoàn thành, quá hạn")).to_be_visible()
            opened = tmp_path / "web-ui-task-summary.png"
            await page.screenshot(path=str(opened))
            keep(opened)

            # The agreement names who is late on what, without opening each task.
            agreement_id = agreement_workflow_id(service.deployed.plan.agreement_id)
            await page.goto(
                f"{service.ui_url}/namespaces/default/workflows/"
                f"{urllib.parse.quote(agreement_id, safe='')}"
            )
            await page.get_by_role("tab", name="User Metadata").click()
            current = page.frame_locator("iframe").nth(2)
            await expect(current.get_by_text("Quá hạn, chưa nộp (5):")).to_be_visible(
                timeout=30_000
            )
            listed_late = current.get_by_role("listitem").filter(has_text="mức đôn đốc")
            await expect(listed_late).to_have_count(5)
            await expect(listed_late.filter(has_text=LATE_AGENCY)).to_have_count(len(overdue))
            whole = tmp_path / "web-ui-agreement-overdue.png"
            await page.screenshot(path=str(whole), full_page=True)
            keep(whole)

            assert outside == [], "the UI asked hosts outside the machine (news feed?)"
            await browser.close()
