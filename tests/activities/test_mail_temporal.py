"""The mail activity under a real worker and the Temporal dev server: heartbeats keep a slow
regular activity alive past its heartbeat timeout, and a local activity never heartbeats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from activity_helpers import FOCAL, HEAD, MailServer, notification
from send_workflow import SendOnce, SendOnceWorkflow
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    Interceptor,
    Worker,
)

from accord.embedded import find_binary
from activities.mail import MailActivities
from agreements.models import RecipientRole
from infra.settings import SmtpSettings


class HeartbeatCounter(Interceptor):
    """Counts the heartbeats activities send, apart for local and regular attempts."""

    def __init__(self) -> None:
        self.beats = {"local": 0, "regular": 0}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountingInbound(next, self)


class _CountingInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, counter: HeartbeatCounter) -> None:
        super().__init__(next)
        self._counter = counter

    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_CountingOutbound(outbound, self._counter))


class _CountingOutbound(ActivityOutboundInterceptor):
    def __init__(self, next: ActivityOutboundInterceptor, counter: HeartbeatCounter) -> None:
        super().__init__(next)
        self._counter = counter

    def heartbeat(self, *details: Any) -> None:
        self._counter.beats["local" if self.info().is_local else "regular"] += 1
        super().heartbeat(*details)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        ui=False,
    ) as environment:
        yield environment


async def run(
    env: WorkflowEnvironment,
    mail: MailActivities,
    counter: HeartbeatCounter,
    args: SendOnce,
) -> Any:
    task_queue = f"test-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[SendOnceWorkflow],
        activities=[mail.send_notification],
        interceptors=[counter],
    ):
        return await env.client.execute_workflow(
            SendOnceWorkflow.run, args, id=f"send-{uuid.uuid4()}", task_queue=task_queue
        )


BOTH_AT_STP = [RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY]


async def test_heartbeats_keep_a_slow_regular_activity_alive(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    smtp_settings: SmtpSettings,
    mail_server: MailServer,
) -> None:
    # Two messages of 1.5 s each: 3 s of work under a 2 s heartbeat timeout.
    mail_server.handler.data_delay = 1.5
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=0.4))
    counter = HeartbeatCounter()

    result = await run(
        env, mail, counter, SendOnce(request=notification(roles=BOTH_AT_STP), local=False)
    )

    assert result.sent == 2
    assert counter.beats["regular"] >= 5
    assert len(mail_server.received_by(FOCAL.email)) == 1
    assert len(mail_server.received_by(HEAD.email)) == 1


async def test_without_heartbeats_the_same_activity_times_out(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    smtp_settings: SmtpSettings,
    mail_server: MailServer,
) -> None:
    # The control: one beat at the start, the next far too late.
    mail_server.handler.data_delay = 1.5
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=60))

    with pytest.raises(WorkflowFailureError) as raised:
        await run(
            env,
            mail,
            HeartbeatCounter(),
            SendOnce(request=notification(roles=BOTH_AT_STP), local=False),
        )

    activity_error = raised.value.cause
    assert isinstance(activity_error, ActivityError)
    timeout = activity_error.cause
    assert isinstance(timeout, TimeoutError)
    assert timeout.type == TimeoutType.HEARTBEAT


async def test_local_activity_sends_without_heartbeats(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    smtp_settings: SmtpSettings,
    mail_server: MailServer,
) -> None:
    mail_server.handler.data_delay = 0.5
    mail = MailActivities(sessions, smtp_settings, heartbeat_interval=timedelta(seconds=0.1))
    counter = HeartbeatCounter()

    result = await run(
        env, mail, counter, SendOnce(request=notification(roles=BOTH_AT_STP), local=True)
    )

    assert result.sent == 2
    assert counter.beats == {"local": 0, "regular": 0}
