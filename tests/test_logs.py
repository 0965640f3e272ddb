"""The log formats of `infra.logs`: JSON lines with the task, business key, workflow and run
taken from Temporal's logger extras; readable text without colour codes; the format chosen by
whether stderr is a terminal; every secret hidden whatever logged it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from infra.logs import JsonFormatter, TextFormatter, configure_logging


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("temporalio.activity", logging.INFO, "x.py", 1, message, (), None)
    for name, value in extra.items():
        setattr(entry, name, value)
    return entry


ACTIVITY_EXTRA = {
    "temporal_activity": {
        "activity_id": "3",
        "activity_type": "send_notification",
        "attempt": 2,
        "namespace": "default",
        "task_queue": "accord",
        "workflow_id": "task:289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t",
        "workflow_run_id": "0193-run",
        "workflow_type": "ObligationWorkflow",
    },
    "business_key": "289-kh-ubnd-2025/III.7/STP/2025-6t/reminder/1",
}


def test_json_line_carries_the_activity_context() -> None:
    line = json.loads(JsonFormatter([]).format(record("sent to officer x", **ACTIVITY_EXTRA)))
    assert line["message"] == "sent to officer x"
    assert line["level"] == "INFO"
    assert line["logger"] == "temporalio.activity"
    assert line["task_id"] == "289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert line["business_key"] == "289-kh-ubnd-2025/III.7/STP/2025-6t/reminder/1"
    assert line["workflow_id"] == "task:289-kh-ubnd-2025/bao-cao-6-thang/STP/2025-6t"
    assert line["run_id"] == "0193-run"
    assert line["workflow_type"] == "ObligationWorkflow"
    assert line["activity_type"] == "send_notification"
    assert line["attempt"] == 2


def test_json_line_of_a_workflow_logger_and_of_an_agreement() -> None:
    extra = {"temporal_workflow": {"workflow_id": "agreement:289", "run_id": "r1"}}
    line = json.loads(JsonFormatter([]).format(record("deployed", **extra)))
    assert line["workflow_id"] == "agreement:289"
    assert line["run_id"] == "r1"
    assert "task_id" not in line  # an agreement's workflow is no task


def test_text_line_is_readable_and_has_no_colour_codes() -> None:
    text = TextFormatter([]).format(record("sent to officer x", **ACTIVITY_EXTRA))
    assert "\x1b" not in text
    assert " INFO temporalio.activity: sent to officer x [task_id=289-kh-ubnd-2025/" in text
    assert "run_id=0193-run" in text
    assert "\n" not in text


def test_secrets_are_hidden_in_every_format() -> None:
    for secret in ("s3cret-Password-42", 'pa"ss\\wörd-with-quotes'):
        for formatter in (JsonFormatter([secret, ""]), TextFormatter([secret])):
            text = formatter.format(record(f"login with {secret} failed"))
            assert secret not in text
            assert json.dumps(secret) not in text
            assert "login with *** failed" in text


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    import temporalio.activity

    temporalio.activity.logger.activity_info_on_message = True


def test_auto_is_text_on_a_terminal_and_json_otherwise(restore_root: None) -> None:
    terminal = Terminal()
    assert configure_logging("auto", stream=terminal) == "text"
    logging.getLogger("accord").info("bonjour")
    assert terminal.getvalue().rstrip().endswith("INFO accord: bonjour")

    piped = io.StringIO()
    assert configure_logging("auto", stream=piped) == "json"
    logging.getLogger("accord").info("xin chào")
    assert json.loads(piped.getvalue())["message"] == "xin chào"

    forced = Terminal()
    assert configure_logging("json", stream=forced) == "json"
    assert configure_logging("text", stream=io.StringIO()) == "text"
