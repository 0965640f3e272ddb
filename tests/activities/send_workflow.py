"""A minimal workflow that runs `send_notification` the two ways the obligation workflow does:
as a local activity, or as a regular activity with a heartbeat timeout. Kept apart from the
test module so that the workflow sandbox imports nothing but this."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import NotificationRequest, NotificationResult


class SendOnce(BaseModel):
    request: NotificationRequest
    local: bool
    attempts: int = 1
    """Attempts of the activity (a second one a second after the first)."""


@workflow.defn
class SendOnceWorkflow:
    @workflow.run
    async def run(self, args: SendOnce) -> NotificationResult:
        # One attempt by default: a missed heartbeat must fail the workflow, not be retried away.
        once = RetryPolicy(maximum_attempts=args.attempts, initial_interval=timedelta(seconds=1))
        result: NotificationResult
        if args.local:
            result = await workflow.execute_local_activity(
                "send_notification",
                args.request,
                result_type=NotificationResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=once,
            )
        else:
            result = await workflow.execute_activity(
                "send_notification",
                args.request,
                result_type=NotificationResult,
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=2),
                retry_policy=once,
            )
        return result
