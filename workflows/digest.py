"""The digest workflow: one compliance digest by mail, retried until the mail is out.

The agreement workflow starts one per digest instant (its ID is the digest's business key) and
goes on at once: a mail relay that is down for a day delays the digest, never the agreement's
task starts, and no digest is dropped. Like the tasks, a digest outlives the agreement run
that started it (continue-as-new) and, started twice, runs once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import DigestRequest, DigestResult


def digest_workflow_id(business_key: str) -> str:
    return f"digest:{business_key}"


@workflow.defn(name="Digest")
class DigestWorkflow:
    @workflow.run
    async def run(self, request: DigestRequest) -> DigestResult:
        result: DigestResult = await workflow.execute_activity(
            "send_digest",
            request,
            result_type=DigestResult,
            start_to_close_timeout=timedelta(minutes=10),
            # Unlimited attempts, as for every notification: the outbox sends each
            # (business key, recipient) once whatever the retries.
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
            summary="gửi bản tổng hợp",
        )
        return result
