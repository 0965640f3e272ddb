"""deploy/: the systemd units verify, and the example environment lists every setting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def setting_names(model: type[BaseModel], prefix: str = "ACCORD_") -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names |= setting_names(kind, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_the_example_environment_names_every_setting_and_no_secret() -> None:
    text = (DEPLOY / "accord.env.example").read_text("utf-8")
    listed = set(re.findall(r"^#?(ACCORD_[A-Z_]+)=", text, re.MULTILINE))

    assert setting_names(Settings) - listed == set()
    assert listed - setting_names(Settings) - {"ACCORD_ENV_FILE"} == set()
    for secret in ("DATABASE_URL", "SMTP__PASSWORD", "CLAIMS__KEY", "TEMPORAL__API_KEY"):
        line = re.search(rf"^#?ACCORD_{secret}=(.*)$", text, re.MULTILINE)
        assert line is not None and "<" in line[1], secret


def test_there_are_units_for_the_worker_and_the_portal() -> None:
    assert [unit.name for unit in UNITS] == ["accord-portal.service", "accord-worker@.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_analyze_verifies_the_unit(unit: Path, tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    # The unit as installed from a checkout at ROOT: verify checks that ExecStart exists.
    text = unit.read_text("utf-8").replace("/opt/accord", str(ROOT))
    installed = tmp_path / unit.name.replace("@.", "@1.")
    installed.write_text(text)

    done = subprocess.run(
        [tool, "verify", str(installed)], capture_output=True, text=True, timeout=60, check=False
    )

    problems = [
        line
        for line in done.stderr.splitlines()
        # This machine (a container) may lack the accord user and a running systemd.
        if not re.search(r"Failed to .*bus|System has not been booted", line)
    ]
    assert done.returncode == 0 and not problems, done.stderr
