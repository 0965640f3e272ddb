"""`accord validate` and `accord schema`, run through `main()` as a shell would run them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from accord.cli import main
from agreements.loader import LoadError, load_agreement

ROOT = Path(__file__).resolve().parents[1]
REPO_AGREEMENTS = ROOT / "agreements"
BROKEN = ROOT / "tests" / "agreements" / "broken"

OK_LINE = re.compile(
    r"OK (?P<path>.+): (?P<id>[a-z0-9-]+) — (?P<items>\d+) items, (?P<obligations>\d+) "
    r"obligations, (?P<tasks>\d+) task occurrences \((?P<dated>\d+) dated\)"
)

DIRECTORY = """\
tenant: quang-binh
province: Quảng Bình
agencies:
  - code: SNV
    name: Sở Nội vụ
    kind: department
    groups: [so_ban_nganh]
  - code: STP
    name: Sở Tư pháp
    kind: department
    groups: [so_ban_nganh]
officers:
  - id: snv-dau-moi
    name: Nguyễn Văn An
    email: an.nguyen@snv.example
    agency: SNV
    roles: [focal_point]
"""

AGREEMENT = """\
document_number: 7/KH-SNV
kind: yearly_plan
title: Kế hoạch phối hợp năm 2025
province: Quảng Bình
parties:
  - agency: SNV
signed_on: 2025-01-06
period:
  start: 2025-01-01
  end: 2025-12-31
directory: directory/quang-binh.yaml
items:
  - number: 1
    title: Tiếp công dân
    obligations:
      - id: bao-cao-6-thang
        title: Báo cáo sáu tháng
        deliverable: report
        owners:
          groups: [so_ban_nganh]
        due:
          kind: recurring
          month: "6,12"
          day: 15
          label: "{year}-t{month}"
reporting:
  - id: theo-doi
    title: Theo dõi thường xuyên
    deliverable: other
    owners:
      agencies: [STP]
    due:
      kind: none
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with one agreement, its directory under directory/, and a stray directory."""
    (tmp_path / "directory").mkdir()
    (tmp_path / "directory" / "quang-binh.yaml").write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "danh-ba-cu.yaml").write_text(DIRECTORY, encoding="utf-8")
    (tmp_path / "ke-hoach-7.yaml").write_text(AGREEMENT, encoding="utf-8")
    return tmp_path


def output_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


# --------------------------------------------------------------------------------------------
# validate


def test_validate_folder_prints_one_ok_line_per_agreement(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(folder)])

    # 2 departments x 2 half-year dates + STP's undated follow-up = 5 tasks, 4 of them dated.
    assert output_lines(capsys) == [
        f"OK {folder / 'ke-hoach-7.yaml'}: 7-kh-snv-2025 — 1 items, 2 obligations, "
        "5 task occurrences (4 dated)"
    ]
    assert code == 0


def test_validate_file(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(folder / "ke-hoach-7.yaml")])

    assert code == 0
    assert [line.split(":")[0] for line in output_lines(capsys)] == [
        f"OK {folder / 'ke-hoach-7.yaml'}"
    ]


def test_validate_repo_agreements(capsys: pytest.CaptureFixture[str]) -> None:
    expected = sorted(
        path
        for path in REPO_AGREEMENTS.rglob("*.yaml")
        if "directory" not in path.relative_to(REPO_AGREEMENTS).parts[:-1]
        and re.search(r"^document_number:", path.read_text(encoding="utf-8"), re.MULTILINE)
    )
    if not expected:
        pytest.skip("no agreement files in agreements/ yet")

    code = main(["validate", str(REPO_AGREEMENTS)])

    lines = output_lines(capsys)
    assert code == 0, "\n".join(lines)
    assert len(lines) == len(expected)
    for line, path in zip(lines, expected, strict=True):
        match = OK_LINE.fullmatch(line)
        assert match, line
        loaded = load_agreement(path)
        assert match["path"] == str(path)
        assert match["id"] == loaded.agreement.agreement_id
        assert int(match["items"]) == len(loaded.agreement.items)
        assert int(match["obligations"]) == len(loaded.agreement.all_obligations())
        assert int(match["tasks"]) == len(loaded.occurrences)
        assert int(match["dated"]) == sum(1 for o in loaded.occurrences if o.due_at)


def test_validate_reports_every_problem_and_still_checks_the_other_files(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = BROKEN / "unknown-owner-agency.yaml"
    missing = folder / "khong-co.yaml"
    with pytest.raises(LoadError) as caught:
        load_agreement(broken)

    code = main(["validate", str(broken), str(missing), str(folder)])

    lines = output_lines(capsys)
    assert code == 1
    assert lines[:-2] == [str(problem) for problem in caught.value.problems]
    assert lines[-2] == f"{missing}:1:1: cannot read file: No such file or directory"
    assert lines[-1].startswith(f"OK {folder / 'ke-hoach-7.yaml'}: ")


def test_validate_broken_folder_fails_for_every_broken_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["validate", str(BROKEN)])

    lines = output_lines(capsys)
    assert code == 1
    assert not [line for line in lines if line.startswith("OK ")]
    reported = {line.split(":")[0] for line in lines}
    # A broken directory is reported at the directory file, not at the agreement naming it.
    broken_directories = {
        "directory-duplicate-agency-code.yaml": "duplicate-agency-code.yaml",
        "directory-unknown-officer-agency.yaml": "unknown-officer-agency.yaml",
        "directory-without-tenant.yaml": "no-tenant.yaml",
        "directory-tenant-not-a-slug.yaml": "tenant-not-a-slug.yaml",
    }
    assert reported == {
        str(BROKEN / "directory" / broken_directories[p.name])
        if p.name in broken_directories
        else str(p)
        for p in BROKEN.glob("*.yaml")
        if p.name != "directory.yaml"
    }


def test_validate_folder_without_agreements_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(tmp_path)])

    assert code == 1
    assert output_lines(capsys) == [f"{tmp_path}: no agreement files found"]


def test_validate_directory_file_named_explicitly(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", str(folder / "directory" / "quang-binh.yaml")])

    assert code == 0
    assert output_lines(capsys) == [
        f"OK {folder / 'directory' / 'quang-binh.yaml'}: agency directory of Quảng Bình — "
        "2 agencies, 1 officers"
    ]


def test_validate_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate"])

    assert exited.value.code == 2
    assert "PATH" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# schema


def test_schema_of_agreement(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schema"])

    out = capsys.readouterr().out
    document = json.loads(out)
    assert code == 0
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["title"] == "Accord agreement"
    assert {"document_number", "period", "items", "reporting"} <= set(document["properties"])
    assert "document_number" in document["required"]
    assert "nội dung phối hợp" in out  # Vietnamese descriptions are printed as letters


def test_schema_of_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["schema", "--directory"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["title"] == "Accord agency directory"
    assert {"agencies", "officers"} <= set(document["properties"])
    assert "document_number" not in document["properties"]


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "accord"]
    assert script.value == "accord.cli:console_main"


def test_calendar_prints_the_year_with_tet_and_make_up_days(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["calendar", "2026"]) == 0
    out = capsys.readouterr().out
    # Tết 2026: Monday 16/2 – Friday 20/2; Saturday 22/8 worked in exchange for Monday 31/8.
    for day in ("16/02/2026", "17/02/2026", "18/02/2026", "19/02/2026", "20/02/2026"):
        assert f"{day}  " in out
    assert "22/08/2026  thứ Bảy" in out
    assert "Số ngày làm việc: 249" in out
    assert main(["calendar", "2026", "--lang", "en"]) == 0
    assert "Working days: 249" in capsys.readouterr().out


@pytest.mark.parametrize(
    "entry_point",
    [[str(Path(sys.executable).parent / "accord")], [sys.executable, "-m", "accord.cli"]],
)
def test_the_process_exits_with_the_command_code(entry_point: list[str]) -> None:
    """The console script ends with `os._exit`; the code must still be the command's."""
    for argv, code in (
        (["validate", str(REPO_AGREEMENTS)], 0),
        (["validate", str(BROKEN / "unknown-owner-agency.yaml")], 1),
        (["validate"], 2),
        (["--help"], 0),
    ):
        result = subprocess.run(
            [*entry_point, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == code, (argv, result.stderr)
        assert result.stdout or result.stderr
