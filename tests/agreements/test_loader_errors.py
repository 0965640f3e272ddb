"""Every broken agreement in `broken/` must fail with exactly the problems its header lists.

Each file breaks one rule and lists the problems the loader must report, in the loader's order,
one `# expect: ` comment line each. `{file}` stands for the broken file's own path and
`{folder}` for the `broken/` folder (the directories under `broken/directory/` are reported by
their own paths). The comparison is exact: a changed line number, a reworded message or an
extra problem fails the test, so a regression in what an officer reads cannot slip through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agreements.loader import LoadError, load_agreement, load_directory
from agreements.models import OfficerRole

BROKEN = (Path(__file__).parent / "broken").resolve()
SHARED_DIRECTORY = BROKEN / "directory.yaml"
EXPECT = "# expect: "

BROKEN_FILES = sorted(p for p in BROKEN.glob("*.yaml") if p != SHARED_DIRECTORY)

# The rules the folder must keep covering; a file may be renamed, but not silently dropped.
REQUIRED_CASES = {
    "yaml-syntax-error",
    "yaml-unclosed-quote",
    "yaml-unclosed-quote-closed-later",
    "yaml-unclosed-flow-sequence-deep",
    "yaml-unclosed-flow-mapping",
    "yaml-key-without-colon",
    "duplicate-yaml-key",
    "unknown-top-level-key",
    "unknown-nested-key",
    "misspelled-nested-field",
    "misspelled-due-field",
    "unknown-field-no-suggestion",
    "string-instead-of-date",
    "invalid-date",
    "missing-required-field",
    "unknown-owner-agency",
    "unknown-group",
    "unknown-recipient",
    "unknown-party",
    "duplicate-item-number",
    "duplicate-obligation-id",
    "fixed-due-outside-period",
    "recurring-no-date",
    "invalid-cron",
    "escalation-order-defaults",
    "escalation-order-override",
    "role-held-by-nobody",
    "aggregator-without-recipient",
    "bad-offset",
    "unknown-due-kind",
    "directory-missing",
    "directory-unknown-officer-agency",
    "directory-duplicate-agency-code",
    "copy-to-unknown-agency",
    "leadership-of-unknown-agency",
    "notify-misspelled",
    # Messages that name the fix (issue 13, point 15).
    "unknown-recipient-notified",
    "recurring-day-does-not-exist",
    "recurring-leap-day-without-leap-year",
    "cron-day-not-a-number",
    "cron-month-zero",
    "duplicate-task-id",
    "sending-time-format",
    # Who decides extensions (issue 14, point 3).
    "approver-recipient-owes-it",
    "approver-without-recipient",
    # Hostile text and paths (issue 14, point 6).
    "invisible-format-character",
    "directory-outside-folder",
    "directory-absolute-path",
}


def expected_problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        line.removeprefix(EXPECT).replace("{file}", str(path)).replace("{folder}", str(BROKEN))
        for line in lines
        if line.startswith(EXPECT)
    ]


def test_every_required_rule_has_a_broken_file() -> None:
    assert {p.stem for p in BROKEN_FILES} >= REQUIRED_CASES


@pytest.mark.parametrize("path", BROKEN_FILES, ids=lambda p: p.stem)
def test_broken_agreement_reports_exactly_the_expected_problems(path: Path) -> None:
    expected = expected_problems(path)
    assert expected, f"{path.name} lists no '{EXPECT}' lines"

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    assert [str(problem) for problem in caught.value.problems] == expected
    assert str(caught.value) == "\n".join(expected)


def test_shared_directory_is_valid() -> None:
    directory = load_directory(SHARED_DIRECTORY)
    codes = {agency.code for agency in directory.agencies}
    assert {"SNV", "STP", "UBND_TINH", "UBND_LE_THUY"} <= codes
    assert {"so_ban_nganh", "ubnd_cap_huyen"} <= directory.groups
    roles = {role for officer in directory.officers for role in officer.roles}
    assert {OfficerRole.FOCAL_POINT, OfficerRole.HEAD, OfficerRole.PROVINCIAL_LEADERSHIP} <= roles
    assert all(officer.email.endswith(".example") for officer in directory.officers)


def test_directory_without_leadership_is_valid_on_its_own() -> None:
    # The role rule is about the agreement: the directory itself is fine.
    directory = load_directory(BROKEN / "directory" / "no-leadership.yaml")
    roles = {role for officer in directory.officers for role in officer.roles}
    assert OfficerRole.PROVINCIAL_LEADERSHIP not in roles


# --------------------------------------------------------------------------------------------
# A mistyped agency code in a 300-line file points at its line and says which codes exist.


def write_large_agreement(folder: Path, *, typo_in_item: int | None) -> tuple[Path, int, int]:
    """A valid ~300-line agreement; optionally item `II.<typo_in_item>` names owner 'SPT'.

    Returns the file, and the line and column (1-based) of the mistyped code.
    """
    lines = [
        "document_number: 289/KH-UBND",
        "kind: implementation_plan",
        "title: Kế hoạch thực hiện công tác dân vận chính quyền giai đoạn 2025-2026",
        "province: Quảng Bình",
        "parties:",
        "  - agency: UBND_TINH",
        "    signatory_title: Chủ tịch UBND tỉnh",
        "signed_on: 2025-01-10",
        "period:",
        "  start: 2025-01-01",
        "  end: 2026-12-31",
        "directory: directory.yaml",
        "defaults:",
        "  reminders:",
        "    before: [7d, 3d, 1d]",
        "  escalation:",
        "    - after: 1d",
        "      notify: [focal_point, head_of_agency]",
        "    - after: 5wd",
        "      notify: [provincial_leadership]",
        "items:",
    ]
    owners = ["SNV", "STP", "UBND_LE_THUY"]
    typo_line, typo_col = 0, 0
    for n in range(1, 21):
        owner = owners[n % len(owners)]
        written = "SPT" if n == typo_in_item else owner  # STP with two letters swapped
        owners_line = f"          agencies: [{written}]"
        if n == typo_in_item:
            typo_line = len(lines) + 10  # the owners line is the 10th of the block below
            typo_col = owners_line.index(written) + 1
        lines += [
            f"  - number: II.{n}",
            f"    title: Nhiệm vụ số {n} về tiếp công dân và đối thoại với Nhân dân",
            "    lead:",
            "      agencies: [SNV]",
            "    obligations:",
            f"      - id: bao-cao-nhiem-vu-{n}",
            f"        title: Báo cáo kết quả thực hiện nhiệm vụ {n}",
            "        deliverable: report",
            "        owners:",
            owners_line,
            "        recipient: SNV",
            "        due:",
            "          kind: fixed",
            f"          before: 2025-{n % 12 + 1:02d}-15",
        ]
    lines += [
        "reporting:",
        "  - id: bao-cao-nam",
        "    title: Báo cáo tổng kết năm",
        "    deliverable: report",
        "    owners:",
        "      groups: [so_ban_nganh, ubnd_cap_huyen]",
        "    recipient: SNV",
        "    due:",
        "      kind: recurring",
        "      month: 12",
        "      day: 15",
        '      label: "{year}"',
    ]
    (folder / "directory.yaml").write_text(SHARED_DIRECTORY.read_text(encoding="utf-8"))
    path = folder / "ke-hoach-289.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, typo_line, typo_col


def test_large_valid_agreement_loads(tmp_path: Path) -> None:
    path, _, _ = write_large_agreement(tmp_path, typo_in_item=None)
    assert len(path.read_text(encoding="utf-8").splitlines()) >= 300

    loaded = load_agreement(path)

    assert len(loaded.agreement.items) == 20


def test_mistyped_agency_deep_in_a_large_file_points_at_its_line(tmp_path: Path) -> None:
    path, line, col = write_large_agreement(tmp_path, typo_in_item=16)
    text_line = path.read_text(encoding="utf-8").splitlines()[line - 1]
    assert text_line == "          agencies: [SPT]"  # the generator put the typo where it says
    assert line > 200

    with pytest.raises(LoadError) as caught:
        load_agreement(path)

    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.col) == (str(path), line, col)
    assert problem.path == "items[15].obligations[0].owners.agencies[0]"
    assert problem.message == (
        "unknown agency 'SPT' (did you mean 'STP'?); "
        "known agencies: SNV, STP, UBND_LE_THUY, UBND_TINH"
    )
