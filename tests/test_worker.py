"""The worker's start-up: a province's broken mail template stops it with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.templates import MailTemplateError
from infra.settings import Settings
from worker import load_mail_templates

WORKER = Path(__file__).parent.parent / "worker.py"


def broken_reminder(data: Path) -> Path:
    path = data / "mail_templates" / "vi" / "reminder.txt.j2"
    path.parent.mkdir(parents=True)
    path.write_text(
        '{% extends "package/vi/reminder.txt.j2" %}\n{% block note %}\n{% if owing %}\n'
        "Nộp trước {{ due.day }\n{% endif %}{% endblock %}\n",
        encoding="utf-8",
    )
    return path


def test_load_mail_templates_refuses_a_broken_override(tmp_path: Path) -> None:
    path = broken_reminder(tmp_path)

    with pytest.raises(MailTemplateError) as raised:
        load_mail_templates(Settings(data_dir=tmp_path))

    assert str(raised.value) == f"{path}:4: unexpected '}}'"


def test_the_worker_process_stops_with_the_file_and_line(tmp_path: Path) -> None:
    path = broken_reminder(tmp_path / "data")
    # Nothing listens at this address: the templates are checked before any connection.
    env = dict(
        os.environ,
        ACCORD_DATA_DIR=str(tmp_path / "data"),
        ACCORD_TEMPORAL__ADDRESS="127.0.0.1:9",
    )

    done = subprocess.run(
        [sys.executable, str(WORKER)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr == f"worker: mail template: {path}:4: unexpected '}}'\n"
    assert not (tmp_path / "data" / "accord.db").exists()
