"""Agreements that load but will not work as written: each warns with exactly the lines its
header lists.

Each file in `warnings/` is valid and lists the warnings the loader must give, in order, one
`# warn: ` comment line each (`{file}` stands for the file's own path). The comparison is
exact, as for `broken/`. Validation still passes: a warning is printed, not an error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agreements.loader import load_agreement, warning_line

WARNINGS = (Path(__file__).parent / "warnings").resolve()
SEEDS = Path(__file__).resolve().parents[2] / "agreements"
WARN = "# warn: "

WARNING_FILES = sorted(p for p in WARNINGS.glob("*.yaml") if p.name != "directory.yaml")

REQUIRED_CASES = {
    "head-of-agency-held-by-nobody",  # issue 13, point 4
    "owners-all-ceased",  # point 5: a 2026 plan naming committees that ceased in 2025
    "review-across-merger",  # point 5: a yearly review that loses its last two years
}


def expected_warnings(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        line.removeprefix(WARN).replace("{file}", str(path))
        for line in lines
        if line.startswith(WARN)
    ]


def test_every_required_case_has_a_file() -> None:
    assert {p.stem for p in WARNING_FILES} >= REQUIRED_CASES


@pytest.mark.parametrize("path", WARNING_FILES, ids=lambda p: p.stem)
def test_agreement_loads_with_exactly_the_expected_warnings(path: Path) -> None:
    expected = expected_warnings(path)
    assert expected, f"{path.name} lists no '{WARN}' lines"

    loaded = load_agreement(path)

    assert [warning_line(warning) for warning in loaded.warnings] == expected


def test_head_of_agency_warning_names_only_the_agency_without_a_head() -> None:
    # Sở Nội vụ has a head and Ban Dân tộc ceased before 2026: only Sở Xây dựng is named.
    loaded = load_agreement(WARNINGS / "head-of-agency-held-by-nobody.yaml")
    assert {o.agency for o in loaded.occurrences} == {"SNV", "SXD"}
    assert [w.message.split(":")[0] for w in loaded.warnings] == [
        "role 'head_of_agency' reaches nobody in SXD (Sở Xây dựng)"
    ]


def test_review_across_merger_keeps_the_years_before_it() -> None:
    loaded = load_agreement(WARNINGS / "review-across-merger.yaml")
    # Due before 15/12 of 2022, 2023 and 2024; Ban Dân tộc existed until 31/12/2024.
    assert [o.period_label for o in loaded.occurrences] == ["2022", "2023", "2024"]


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_agreements_have_no_warnings(path: Path) -> None:
    assert load_agreement(path).warnings == []


def test_accord_validate_prints_the_warnings_and_passes() -> None:
    path = WARNINGS / "review-across-merger.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "accord.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"OK {path}: 03-ctr-ph-2022 — 1 items, 1 obligations, 3 task occurrences (3 dated), "
        "2 warnings"
    )
    assert lines[1:] == expected_warnings(path)
    assert lines[1].startswith(f"{path}:24:11: warning: items[0].obligations[0].owners: ")
    assert "period 2025 (due 2025-12-15)" in lines[1]
    assert "BDT (Ban Dân tộc) ceased on 2024-12-31" in lines[1]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "agreement-format.md"


def test_the_docs_examples_are_the_warning_files() -> None:
    """Each YAML example of 'What validate warns about' is part of a file tested above, so the
    examples load and warn as the page says."""
    section = DOCS.read_text(encoding="utf-8").split("## What validate warns about", 1)[1]
    blocks = [block.split("```", 1)[0] for block in section.split("```yaml\n")[1:]]
    assert len(blocks) == 2
    texts = [path.read_text(encoding="utf-8") for path in WARNING_FILES]
    for block in blocks:
        assert any(block in text for text in texts), block
    # The warning lines shown ("…:LINE:COL: warning: …") are the ones the files expect.
    shown = [line for line in section.splitlines() if line.startswith("…:")]
    assert len(shown) == 2
    expected = {
        "…:" + warning.removeprefix(f"{path}:")
        for path in WARNING_FILES
        for warning in expected_warnings(path)
    }
    assert set(shown) <= expected
