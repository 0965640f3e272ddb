"""The bare baseline: a workflow that runs one trivial activity and returns. Its history is the
smallest useful one (11 events), so its events per second show what the server itself can
write on this machine; Accord's rate is compared with it on the same server in the same run."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_echo")
async def echo(text: str) -> str:
    return text


@workflow.defn(name="BenchBare")
class BareWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=30)
        )
