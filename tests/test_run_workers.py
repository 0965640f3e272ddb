"""`accord run --workers N`: one service, N worker processes on its task queue, all stopped
with it. (That several workers share the work: tests/faults/test_several_workers.py.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ports import free_ports

ROOT = Path(__file__).resolve().parents[1]
ACCORD = str(Path(sys.executable).parent / "accord")


def test_workers_out_of_range_is_one_line() -> None:
    done = subprocess.run(
        [ACCORD, "run", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ACCORD_ENV_FILE": os.devnull},
    )
    assert done.returncode == 2
    assert done.stderr == "accord run: --workers: give a number from 1 to 32\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_run_with_two_workers_starts_a_worker_process_and_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port, ui_port, smtp_port = free_ports(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")},
        "ACCORD_ENV_FILE": os.devnull,
        "ACCORD_DATA_DIR": str(data),
        "ACCORD_TEMPORAL__DEV_PORT": str(port),
        "ACCORD_TEMPORAL__UI_PORT": str(ui_port),
        "ACCORD_SMTP__PORT": str(smtp_port),
        "ACCORD_PORTAL__ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    service = subprocess.Popen(
        [ACCORD, "run", "--workers", "2", "--no-deploy"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert service.stdout is not None
        lines: list[str] = []
        for line in service.stdout:
            lines.append(line)
            if line.startswith("Accord is running"):
                break
        text = "".join(lines)
        found = re.search(r"^Workers:  2 \(this process and pids (\d+)\)$", text, re.MULTILINE)
        assert found, text
        pid = int(found[1])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:3] == [b"-m", b"worker"]
        environ = dict(
            item.split(b"=", 1)
            for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"=" in item
        )
        assert environ[b"ACCORD_TEMPORAL__ADDRESS"] == f"127.0.0.1:{port}".encode()
        assert environ[b"ACCORD_TEMPORAL__TASK_QUEUE"] == b"accord"
        assert environ[b"ACCORD_SMTP__PORT"] == str(smtp_port).encode()

        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=90) == 0
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid)
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
