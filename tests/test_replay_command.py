"""`accord replay`: the runbook's check before upgrading workers, on the committed histories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCORD = str(Path(sys.executable).parent / "accord")
HISTORIES = sorted((ROOT / "tests" / "workflows" / "histories").glob("*.json"))


def accord_replay(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACCORD, "replay", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_committed_history_replays() -> None:
    done = accord_replay(*HISTORIES)

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[:-1] == [f"{path}: replays" for path in HISTORIES]
    assert lines[-1] == f"{len(HISTORIES)} of {len(HISTORIES)} histories replay"


def test_a_history_this_code_cannot_replay_is_named_and_exits_1(tmp_path: Path) -> None:
    # A workflow type this code does not have: what an unguarded rename would leave running.
    source = ROOT / "tests" / "workflows" / "histories" / "digest-due-date.json"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(source.read_text().replace('"Digest"', '"DigestV0"'))
    good = HISTORIES[0]

    done = accord_replay(good, renamed)

    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{good}: replays",
        f"{renamed}: does NOT replay: Workflow class DigestV0 is not registered on this worker, "
        "available workflows: Agreement, Digest, Obligation",
        "1 of 2 histories replay",
    ]
    assert done.stderr == ""


def test_a_file_that_is_not_a_history_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"events": "nope"}))

    done = accord_replay(broken)

    assert done.returncode == 2
    assert done.stderr.startswith(f"accord replay: {broken}: not a workflow history in JSON")
    assert done.stderr.count("\n") == 1
