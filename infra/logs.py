"""Logging for the long-running processes (`accord run`, `accord portal`, `python worker.py`).

One handler on the root logger, writing to stderr, in one of two formats:

- `json`: one JSON object per line (`ts`, `level`, `logger`, `message`, and where known
  `task_id`, `business_key`, `workflow_id`, `run_id`, `workflow_type`, `activity_type`,
  `attempt`, `exception`), for journald and a log collector;
- `text`: one readable line, the same fields appended as `key=value`, never colours.

`ACCORD_LOG_FORMAT` (settings `log_format`) chooses; `auto` (the default) is `text` when
stderr is a terminal and `json` otherwise. Temporal's workflow and activity loggers put their
context in the `temporal_workflow` / `temporal_activity` extras (no longer on the message):
they become the fields above, and a task's workflow ID (`task:<id>`) gives its task ID. Every
secret of the settings is replaced by `***` in every line, whatever logged it (a belt to the
braces of `SecretStr`).

Infrastructure: the standard library (and Temporal's two logger adapters).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import temporalio.activity
import temporalio.workflow

LogFormat = Literal["auto", "json", "text"]

TASK_WORKFLOW_PREFIX = "task:"

FIELDS = (
    "task_id",
    "business_key",
    "workflow_id",
    "run_id",
    "workflow_type",
    "activity_type",
    "attempt",
)
"""Context fields of a line, in the order the text format shows them."""

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The task, business key, workflow and run of a record, where known."""
    fields: dict[str, Any] = {}
    details = getattr(record, "temporal_activity", None)
    if isinstance(details, dict):
        fields["workflow_id"] = details.get("workflow_id")
        fields["run_id"] = details.get("workflow_run_id")
        fields["workflow_type"] = details.get("workflow_type")
        fields["activity_type"] = details.get("activity_type")
        fields["attempt"] = details.get("attempt")
    details = getattr(record, "temporal_workflow", None)
    if isinstance(details, dict):
        fields["workflow_id"] = details.get("workflow_id")
        fields["run_id"] = details.get("run_id")
        fields["workflow_type"] = details.get("workflow_type")
    for name in ("task_id", "business_key", "workflow_id", "run_id"):
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = value
    workflow_id = fields.get("workflow_id")
    if (
        "task_id" not in fields
        and isinstance(workflow_id, str)
        and workflow_id.startswith(TASK_WORKFLOW_PREFIX)
    ):
        fields["task_id"] = workflow_id.removeprefix(TASK_WORKFLOW_PREFIX)
    return {name: fields[name] for name in FIELDS if fields.get(name) is not None}


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a secret containing another is hidden whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class JsonFormatter(_Redacting):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        line.update(context_fields(record))
        if record.exc_info:
            exception = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            line["exception"] = self.redact(exception)
        # Again on the line: a secret in a field, or one JSON does not escape.
        return self.redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(_Redacting):
    """`2026-12-04 04:31:08,123 INFO accord.mail: message task_id=… workflow_id=…`."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        text = f"{when} {record.levelname} {record.name}: {record.getMessage()}"
        extra = " ".join(f"{k}={v}" for k, v in context_fields(record).items())
        if extra:
            text = f"{text} [{extra}]"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return self.redact(text)


def resolved_format(wanted: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    if wanted != "auto":
        return wanted
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(
    wanted: LogFormat = "auto",
    *,
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Literal["json", "text"]:
    """Replace the root logger's handlers with one writing `wanted` lines to `stream`
    (stderr); returns the format chosen."""
    stream = stream or sys.stderr
    chosen = resolved_format(wanted, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets) if chosen == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The context is in the fields: Temporal's loggers no longer append it to the message.
    temporalio.activity.logger.activity_info_on_message = False
    temporalio.workflow.logger.workflow_info_on_message = False
    # uvicorn's own loggers would otherwise print through their coloured handlers.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    return chosen
