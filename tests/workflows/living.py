"""Shared by the issue 17 engine tests (test_amend, test_suspend, test_succession_engine): a
small agreement of the `tests/agreements/forms` directory deployed on the time-skipping
server, the server's clock moved to a day, and the mail read by kind, task and recipient."""

from __future__ import annotations

import asyncio
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from harness import ROOT, ZONE, Harness, recipients, sent_at
from temporalio.client import WorkflowHandle

from accord.deploy import build_input, start_agreement
from agreements.loader import load_agreement
from workflows.agreement import AgreementWorkflow
from workflows.obligation import ObligationWorkflow
from workflows.payloads import AgreementInput, AgreementSummary, task_workflow_id

FORMS = ROOT / "tests" / "agreements" / "forms"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def write_agreement(folder: Path, name: str, text: str) -> Path:
    """The agreement's text in `folder` with the forms directory beside it."""
    folder.mkdir(exist_ok=True)
    (folder / "directory.yaml").write_text((FORMS / "directory.yaml").read_text())
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def expand(path: Path) -> AgreementInput:
    """What `accord deploy` (and `accord amend`) expand an agreement file to."""
    return build_input(load_agreement(path))


async def deploy(h: Harness, path: Path) -> WorkflowHandle[Any, AgreementSummary]:
    deployed = await start_agreement(h.env.client, expand(path), task_queue=h.task_queue)
    return h.env.client.get_workflow_handle_for(AgreementWorkflow.run, deployed.workflow_id)


async def move_to(h: Harness, moment: datetime) -> None:
    """The server's clock moved to `moment` (it only moves forward), then a moment for the
    workers to catch up."""
    now = await h.env.get_current_time()
    if moment > now:
        await h.env.sleep(moment - now)
    await asyncio.sleep(0.5)


async def wait_for(condition: Any, seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        while not await condition():  # noqa: ASYNC110 (polling a query, no event to wait on)
            await asyncio.sleep(0.1)


def task(h: Harness, task_id: str) -> WorkflowHandle[Any, Any]:
    return h.env.client.get_workflow_handle_for(ObligationWorkflow.run, task_workflow_id(task_id))


def mails(h: Harness, kind: str | None = None, task_id: str | None = None) -> list[EmailMessage]:
    return [
        m
        for m in h.mails()
        if (kind is None or str(m["X-Accord-Kind"]) == kind)
        and (task_id is None or str(m["X-Accord-Task"]) == task_id)
    ]


def days(messages: list[EmailMessage]) -> list[str]:
    """The local days the messages were sent, each once, in order (mm-dd)."""
    return sorted({f"{sent_at(m):%m-%d}" for m in messages})


def to(messages: list[EmailMessage]) -> list[str]:
    return sorted({r for m in messages for r in recipients(m)})


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())
