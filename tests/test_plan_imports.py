"""`accord plan` reads and plans an agreement without loading the engine or the database.

Issue 12: `accord plan` must start fast; temporalio alone took about half a second to import.
The payload models it needs (`workflows.payloads`) import no temporalio; the search attributes
and refusals that do live in `workflows.search_attributes` and `workflows.refusals`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"

NOT_IMPORTED = ("temporalio", "sqlalchemy")

PROBE = """\
import contextlib, io, json, sys
from accord.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["plan", sys.argv[1], "--json"])
lines = out.getvalue().splitlines()
assert lines and all(json.loads(line) for line in lines)
loaded = sorted({name.partition(".")[0] for name in sys.modules})
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_plan_json_imports_neither_temporalio_nor_sqlalchemy() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(AGREEMENT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["code"] == 0
    for library in NOT_IMPORTED:
        assert library not in report["loaded"], f"`accord plan --json` imported {library}"


@pytest.mark.parametrize("module", ["workflows.payloads", "agreements.loader", "accord.plan"])
def test_the_plan_modules_import_no_temporalio(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print('temporalio' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", f"importing {module} imports temporalio"
