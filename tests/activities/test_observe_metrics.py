"""The worker's metrics server (`infra.observe`, `worker.monitor_server`) scraped over HTTP
while a real worker on the Temporal dev server sends mail to a real SMTP server: each counter,
the reminder-lateness histogram and the gauges move by exactly what the test made happen, and
the activity's log line carries the task, business key, workflow and run.

The expectations are worked out here from what the test does (one reminder to Sở Tư pháp's one
focal point, planned 90 s ago, deferred once by the server; one escalation whose recipient
the server refuses; ...), never read back from the code under test."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from activity_helpers import (
    FOCAL,
    HEAD,
    MailServer,
    RecordingHandler,
    demo_task,
    free_port,
    notification,
)
from prometheus_client.parser import text_string_to_metric_families
from send_workflow import SendOnce, SendOnceWorkflow
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

import worker
from accord.embedded import find_binary
from activities.models import NotificationKind, RecordSubmission
from activities.store import StoreActivities
from agreements.models import RecipientRole
from infra.db import OutboxRow, OutboxStatus
from infra.logs import JsonFormatter
from infra.settings import MetricsSettings, Settings, SmtpSettings
from workflows.search_attributes import SA_ESCALATION_LEVEL, SA_KIND, SA_STATE

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=20) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class DeferFirst(RecordingHandler):
    """Defers the first RCPT of `once` with a 451, then accepts it."""

    def __init__(self, once: str) -> None:
        super().__init__()
        self.once: str | None = once

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address == self.once:
            self.once = None
            return "451 4.3.0 Try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def deferring_server() -> Iterator[MailServer]:
    server = MailServer(free_port())
    server.handler = DeferFirst(FOCAL.email)
    server.handler.reject = {HEAD.email}
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sdk_port() -> int:
    return free_port()


@pytest.fixture
async def env(sdk_port: int) -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        runtime=worker.build_runtime(f"127.0.0.1:{sdk_port}"),
        search_attributes=[SA_KIND, SA_STATE, SA_ESCALATION_LEVEL],
        ui=False,
    ) as environment:
        yield environment


@pytest.fixture
def activity_lines() -> Iterator[io.StringIO]:
    """JSON lines of the activity logger, as `infra.logs` writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter([]))
    logger = logging.getLogger("temporalio.activity")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    activity.logger.activity_info_on_message = False
    yield stream
    activity.logger.activity_info_on_message = True
    logger.setLevel(previous_level)
    logger.removeHandler(handler)


async def send(client: Client, task_queue: str, workflow_id: str, args: SendOnce) -> str:
    handle = await client.start_workflow(
        SendOnceWorkflow.run, args, id=workflow_id, task_queue=task_queue
    )
    await handle.result()
    assert handle.result_run_id is not None
    return handle.result_run_id


async def test_scraped_metrics_move_by_what_the_worker_did(
    env: WorkflowEnvironment,
    sdk_port: int,
    sessions: sessionmaker[Session],
    deferring_server: MailServer,
    activity_lines: io.StringIO,
    tmp_path: Path,
) -> None:
    port = free_port()
    smtp = SmtpSettings(
        host="127.0.0.1", port=deferring_server.port, timeout_seconds=5, embedded=False
    )
    settings = Settings(
        data_dir=tmp_path,
        metrics=MetricsSettings(address=f"127.0.0.1:{port}", tasks_refresh_seconds=0.001),
    )
    monitor = worker.monitor_server(
        settings, env.client, sessions, smtp, sdk_address=f"127.0.0.1:{sdk_port}"
    )
    assert monitor is not None
    task_queue = f"observe-{uuid.uuid4()}"
    async with (
        monitor,
        Worker(
            env.client,
            task_queue=task_queue,
            workflows=[SendOnceWorkflow],
            activities=worker.build_activities(sessions, smtp),
        ),
    ):
        url = monitor.url
        before = await asyncio.to_thread(scrape, url)

        # A reminder planned 90 s ago; the server defers it once, the second attempt sends it.
        task = demo_task()
        reminder = notification(
            NotificationKind.REMINDER,
            [RecipientRole.FOCAL_POINT],
            scheduled_at=datetime.now(UTC) - timedelta(seconds=90),
        )
        run_id = await send(
            env.client,
            task_queue,
            f"task:{task.task_id}",
            SendOnce(request=reminder, local=False, attempts=2),
        )
        # An escalation to the head of agency, whose address the server refuses for good.
        escalation = notification(NotificationKind.ESCALATION, [RecipientRole.HEAD_OF_AGENCY])
        await send(
            env.client,
            task_queue,
            f"send-{uuid.uuid4()}",
            SendOnce(request=escalation, local=False),
        )
        # Two reports stored, one late, and the retried write of the first (not counted again).
        store = StoreActivities(sessions)
        on_time = RecordSubmission(
            task=task,
            officer_id=FOCAL.id,
            submitted_at=datetime(2025, 5, 14, 16, 30, tzinfo=UTC),
            late=False,
            summary="Đúng hạn.",
        )
        late = on_time.model_copy(
            update={"task": demo_task(task_id="289-kh-ubnd-2025/x/STP/2025-6t"), "late": True}
        )
        for request in (on_time, late, on_time):
            await ActivityEnvironment().run(store.record_submission, request)
        # A pending outbox row written ten minutes ago.
        with sessions() as session:
            session.add(
                OutboxRow(
                    business_key="observe/pending",
                    recipient_email=FOCAL.email,
                    recipient_officer_id=FOCAL.id,
                    kind="reminder",
                    task_id=task.task_id,
                    agreement_id=task.agreement_id,
                    tenant=task.tenant,
                    subject="—",
                    status=OutboxStatus.PENDING.value,
                    attempts=0,
                    created_at=datetime.now(UTC) - timedelta(minutes=10),
                )
            )
            session.commit()
        # An open overdue task at escalation level 2 (no worker polls its queue: it stays open).
        await env.client.start_workflow(
            "NoSuchWorkflow",
            id=f"task:observe/{uuid.uuid4()}",
            task_queue=f"nobody-{uuid.uuid4()}",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_KIND, "task"),
                    SearchAttributePair(SA_STATE, "overdue"),
                    SearchAttributePair(SA_ESCALATION_LEVEL, 2),
                ]
            ),
        )

        after = await asyncio.to_thread(scrape, url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    sent = "accord_notification_messages_sent_total"
    assert delta(sent, kind="reminder") == 1
    assert delta("accord_notification_retries_total", kind="reminder") == 1
    assert delta("accord_notification_messages_failed_total", kind="reminder") == 0
    assert delta(sent, kind="escalation") == 0
    assert delta("accord_notification_messages_failed_total", kind="escalation") == 1
    assert delta("accord_notification_retries_total", kind="escalation") == 0
    # The refusal is told to the tenant's one admin.
    assert delta(sent, kind="delivery_failed") == 1
    assert len(deferring_server.received_by(FOCAL.email)) == 1
    assert deferring_server.received_by(HEAD.email) == []

    lateness = "accord_reminder_lateness_seconds"
    assert delta(f"{lateness}_count") == 1
    assert delta(f"{lateness}_bucket", le="60.0") == 0
    assert delta(f"{lateness}_bucket", le="120.0") == 1
    assert 90 <= delta(f"{lateness}_sum") < 120

    assert delta("accord_reports_total", timing="on_time") == 1
    assert delta("accord_reports_total", timing="late") == 1

    assert 600 <= value(after, "accord_outbox_oldest_pending_age_seconds") < 700
    assert value(after, "accord_tasks", state="overdue") == 1
    assert value(after, "accord_tasks", state="pending") == 0
    assert value(after, "accord_tasks_overdue", escalation_level="2") == 1
    # The SDK's own metrics are served in the same scrape.
    assert any(name.startswith("temporal_") for name, _ in after)

    # The activity's log line names the task, the business key, the workflow and the run.
    lines = [json.loads(line) for line in activity_lines.getvalue().splitlines()]
    [line] = [entry for entry in lines if "sent to officer" in entry["message"]]
    assert line["task_id"] == "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert line["business_key"] == reminder.business_key
    assert line["workflow_id"] == "task:289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert line["run_id"] == run_id
    assert line["activity_type"] == "send_notification"
    assert line["attempt"] == 2
    assert line["level"] == "INFO"
