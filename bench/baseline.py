"""The bare baselines: the smallest workflows that do what Accord's do, run on the same server
in the same run, so that Accord's figures can be read against what the server and one Python
worker manage with nothing of Accord's in the way.

- `BareWorkflow` runs one trivial activity and returns (11 history events): its events per
  second show what the server itself can write on this machine (section 1).
- `BareReminderWorkflow` sleeps until an instant, then sends one small plain-text message over
  a new SMTP session from a local activity and returns: the least a reminder can cost (no
  database, no templates, no outbox). With many of them due at the same instant, its lateness
  is the floor for Accord's reminder lateness on this machine (section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosmtplib
from temporalio import activity, workflow

BARE_KIND = "bare-reminder"


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


@dataclass(frozen=True)
class BareReminder:
    key: str
    at: datetime


class BareMail:
    """Sends a few lines of ASCII to the benchmark's SMTP sink, one session per message."""

    def __init__(self, port: int) -> None:
        self._port = port

    @activity.defn(name="bench_bare_mail")
    async def send(self, key: str) -> None:
        message = (
            "From: bench@bench.example\r\n"
            "To: officer@bench.example\r\n"
            "Subject: bare reminder\r\n"
            f"X-Accord-Key: {key}\r\n"
            f"X-Accord-Kind: {BARE_KIND}\r\n"
            "\r\n"
            "A reminder with nothing of Accord's: no database, no template.\r\n"
        )
        await aiosmtplib.send(
            message,
            sender="bench@bench.example",
            recipients=["officer@bench.example"],
            hostname="127.0.0.1",
            port=self._port,
        )


@workflow.defn(name="BenchBareReminder")
class BareReminderWorkflow:
    @workflow.run
    async def run(self, reminder: BareReminder) -> None:
        await workflow.sleep(reminder.at - workflow.now())
        await workflow.execute_local_activity(
            "bench_bare_mail", reminder.key, start_to_close_timeout=timedelta(seconds=75)
        )
