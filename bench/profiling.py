"""py-spy sampling of a process while a section runs, and a plain-text summary of where the
time went (inclusive share per function, grouped the way a reader would ask: "how much was
SQLite, SMTP, the workflow sandbox, pydantic…").

py-spy runs with `--nonblocking` (it does not pause the target while sampling) at a low rate,
so the profiled figures stay close to the unprofiled ones; the profile files are kept next to
the results (`*.raw` collapsed stacks, readable by speedscope or flamegraph.pl).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a reader wants to know first: which part of the stack the samples sat in. A sample
# counts for the first category (in this order) that any of its frames matches.
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("mail: SMTP (aiosmtplib)", re.compile(r"aiosmtplib/")),
    (
        "mail: building messages (templates, email package)",
        re.compile(r"activities/templates\.py|/email/"),
    ),
    ("database: SQLAlchemy + SQLite", re.compile(r"sqlalchemy/|sqlite3")),
    (
        "workflow sandbox: module imports/restrictions",
        re.compile(r"worker/workflow_sandbox/_(importer|restrictions)"),
    ),
    ("workflow code (workflows/)", re.compile(r"/workflows/(obligation|agreement)\.py")),
    ("payload conversion (pydantic, converter)", re.compile(r"pydantic|temporalio/converter")),
    ("Temporal SDK: workflow activations", re.compile(r"temporalio/worker/_workflow")),
    ("Temporal SDK: activities", re.compile(r"temporalio/worker/_activity")),
    ("Temporal SDK: client calls", re.compile(r"temporalio/client\.py|temporalio/service\.py")),
    ("asyncio event loop / selectors (idle or I/O wait)", re.compile(r"asyncio/|selectors\.py")),
    ("threads waiting (thread pool)", re.compile(r"threading\.py|concurrent/futures")),
)


@dataclass
class ProfileSummary:
    samples: int
    categories: list[tuple[str, float]]
    top_inclusive: list[tuple[str, float]]
    top_self: list[tuple[str, float]]
    raw_file: str
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "categories_percent": {name: round(share, 1) for name, share in self.categories},
            "top_inclusive_percent": {name: round(share, 1) for name, share in self.top_inclusive},
            "top_self_percent": {name: round(share, 1) for name, share in self.top_self},
            "raw_file": self.raw_file,
            "notes": self.notes,
        }


def py_spy() -> str | None:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    return found


class Sampler:
    """`async with Sampler(pid, out)`: py-spy records `pid` for the duration of the block."""

    def __init__(
        self, pid: int, out: Path, *, rate: int = 40, gil: bool = False, enabled: bool = True
    ) -> None:
        """`gil`: keep only samples of the thread holding the GIL, i.e. where a CPU-bound
        Python process spends its CPU; otherwise every thread that is not idle (wall time,
        including threads blocked in SQLite or fsync)."""
        self._pid = pid
        self._out = out
        self._rate = rate
        self._gil = gil
        self._binary = py_spy() if enabled else None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def active(self) -> bool:
        return self._process is not None

    async def __aenter__(self) -> Sampler:
        if self._binary is None:
            return self
        self._out.parent.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            "record",
            "--pid",
            str(self._pid),
            "--rate",
            str(self._rate),
            "--nonblocking",
            *(["--gil"] if self._gil else []),
            "--format",
            "raw",
            "--output",
            str(self._out),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        # SIGINT makes py-spy write its output and exit.
        process.send_signal(2)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()

    def summary(self, *, top: int = 12) -> ProfileSummary | None:
        if not self._out.exists():
            return None
        return summarise(self._out, top=top)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    file = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({file})"


def summarise(raw: Path, *, top: int = 12) -> ProfileSummary:
    """Read py-spy's collapsed stacks (`frame;frame;… count`). Idle samples (a thread parked
    in a poll or a lock) are counted under their category too; percentages are of all samples
    of all threads, so a process using one core fully with three idle threads shows ~25 %
    busy per thread; the categories are what matter."""
    categories: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        for name, pattern in CATEGORIES:
            if any(pattern.search(f) for f in frames):
                categories[name] += count
                break
        else:
            categories["other"] += count
        for name in {_short(f) for f in frames if not f.startswith(("process ", "thread "))}:
            inclusive[name] += count
        if frames:
            own[_short(frames[-1])] += count
    share = 100.0 / total if total else 0.0
    return ProfileSummary(
        samples=total,
        categories=[(name, n * share) for name, n in categories.most_common()],
        top_inclusive=[(name, n * share) for name, n in inclusive.most_common(top)],
        top_self=[(name, n * share) for name, n in own.most_common(top)],
        raw_file=raw.name,
    )
