"""Succession files (issue 17, point 3): the format, its errors (file, line and field), the check
against a tenant's directory, and the shipped 2025 reorganisation of plan 289's agencies.

Every broken file in `succession/` must fail with exactly the problems its header lists, one
`# expect: ` comment line each (`{file}` is the file's own path), when checked against
`succession/directory.yaml`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from agreements.loader import load_agreement, load_directory
from agreements.succession import (
    SuccessionChange,
    Transfer,
    apply_to_directory,
    load_succession_file,
    succession_groups,
    unknown_obligations,
)
from agreements.yaml_files import LoadError

HERE = Path(__file__).parent.resolve()
BROKEN = HERE / "succession"
TEST_DIRECTORY = BROKEN / "directory.yaml"
BROKEN_FILES = sorted(p for p in BROKEN.glob("*.yaml") if p != TEST_DIRECTORY)
AGREEMENTS = HERE.parents[1] / "agreements"
REORGANISATION = AGREEMENTS / "directory" / "quang-binh-2025-reorganisation.yaml"
QB_DIRECTORY = AGREEMENTS / "directory" / "quang-binh.yaml"
PLAN_289 = AGREEMENTS / "quang-binh-2025-289-kh-ubnd.yaml"
EXPECT = "# expect: "


def expected_problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        line.removeprefix(EXPECT).replace("{file}", str(path))
        for line in lines
        if line.startswith(EXPECT)
    ]


@pytest.mark.parametrize("path", BROKEN_FILES, ids=lambda p: p.stem)
def test_broken_succession_file(path: Path) -> None:
    directory = load_directory(TEST_DIRECTORY)
    expected = expected_problems(path)
    assert expected, f"{path.name} lists no '# expect:' line"

    with pytest.raises(LoadError) as caught:
        load_succession_file(path, directory)

    assert [str(problem) for problem in caught.value.problems] == expected


def test_broken_files_cover_the_rules() -> None:
    assert {p.stem for p in BROKEN_FILES} >= {
        "unknown-from-agency",
        "successor-unknown",
        "successor-not-yet",
        "from-agency-ceased-earlier",
        "merger-without-successor",
        "split-obligation-twice",
        "agency-ceases-twice",
        "officer-unknown-agency",
        "new-agency-code-taken",
        "other-tenant",
        "misspelled-field",
        "invalid-effective-date",
    }


def test_rules_of_the_file_alone_hold_without_a_directory() -> None:
    """Without a directory only the file's own rules apply: an unknown agency is not noticed,
    an agency ceasing twice is."""
    assert load_succession_file(BROKEN / "unknown-from-agency.yaml").changes[0].from_ == ["SLDTBX"]
    with pytest.raises(LoadError, match="an agency ceases once"):
        load_succession_file(BROKEN / "agency-ceases-twice.yaml")


def change(**fields: object) -> SuccessionChange:
    return SuccessionChange.model_validate({"effective": "2025-07-01", "document": LAW, **fields})


LAW = "Luật số 72/2025/QH15"


def test_a_merger_passes_every_agency_to_its_successor() -> None:
    merger = change(kind="merger", **{"from": ["DAI_PTTH", "BAO_QB"]}, to="QT_BAO_PTTH")

    assert merger.transfers() == [
        Transfer(from_agency="DAI_PTTH", to_agency="QT_BAO_PTTH", document=LAW),
        Transfer(from_agency="BAO_QB", to_agency="QT_BAO_PTTH", document=LAW),
    ]


def test_a_split_passes_named_obligations_to_each_part() -> None:
    split = change(
        kind="split",
        **{"from": ["UBND_LE_THUY"]},
        split=[
            {"to": "UBND_XA_LE_THUY", "obligations": ["ke-hoach", "bao-cao-nam"]},
            {"to": "UBND_XA_KIEN_GIANG", "obligations": ["bao-cao-6-thang"]},
        ],
    )

    assert split.transfers() == [
        Transfer(
            from_agency="UBND_LE_THUY",
            to_agency="UBND_XA_LE_THUY",
            obligations=["ke-hoach", "bao-cao-nam"],
            document=LAW,
        ),
        Transfer(
            from_agency="UBND_LE_THUY",
            to_agency="UBND_XA_KIEN_GIANG",
            obligations=["bao-cao-6-thang"],
            document=LAW,
        ),
    ]


def test_a_split_names_no_single_successor() -> None:
    with pytest.raises(ValueError, match="a split names its successors under split:"):
        change(
            kind="split",
            **{"from": ["UBND_LE_THUY"]},
            to="UBND_XA_LE_THUY",
            split=[{"to": "UBND_XA_LE_THUY", "obligations": ["ke-hoach"]}],
        )


# --------------------------------------------------------------------------------------------
# The shipped 2025 reorganisation


def test_shipped_reorganisation_checks_against_the_quang_binh_directory() -> None:
    file = load_succession_file(REORGANISATION, load_directory(QB_DIRECTORY))

    assert file.tenant == "quang-binh"
    assert {c.effective for c in file.changes} == {date(2025, 7, 1)}
    transfers = {t.from_agency: t.to_agency for c in file.changes for t in c.transfers()}
    # The aggregator, the issuer, a department and two district committees (written out).
    assert transfers["SNV"] == "QT_SNV"
    assert transfers["UBND_TINH"] == "QT_UBND_TINH"
    assert transfers["STP"] == "QT_STP"
    assert transfers["UBND_DONG_HOI"] == "UBND_PHUONG_DONG_HOI"
    assert transfers["UBND_LE_THUY"] == "UBND_XA_LE_THUY"
    assert transfers["DAI_PTTH"] == transfers["BAO_QB"] == "QT_BAO_PTTH"


def test_every_agency_plan_289_tasks_has_a_successor() -> None:
    """Every agency owing or receiving a task of plan 289 passes to someone on 01/07/2025:
    the district committees, the seven bodies under UBND tỉnh, the press, the armed forces,
    the Party and Front bodies and the issuer."""
    loaded = load_agreement(PLAN_289)
    owing = {o.agency for o in loaded.occurrences} | {
        code for o in loaded.occurrences for code in o.co_owners
    }
    recipients = {o.recipient for _, o in loaded.agreement.all_obligations() if o.recipient}
    file = load_succession_file(REORGANISATION, loaded.directory)
    succeeded = {code for c in file.changes for code in c.from_}

    assert owing | recipients <= succeeded
    assert "SNV" in recipients


def test_successors_have_one_focal_point_and_one_head() -> None:
    file = load_succession_file(REORGANISATION)
    for agency in file.agencies:
        roles = sorted(r.value for o in file.officers if o.agency == agency.code for r in o.roles)
        assert {"focal_point", "head"} <= set(roles), agency.code
        assert agency.active_from == date(2025, 7, 1)
    assert all(o.email.endswith("@quangtri.example") for o in file.officers)


def test_applying_to_the_directory_ends_the_old_agencies_the_day_before() -> None:
    directory = load_directory(QB_DIRECTORY)
    file = load_succession_file(REORGANISATION, directory)

    after = apply_to_directory(file, directory)

    snv = after.agency("SNV")
    assert snv is not None and snv.active_until == date(2025, 6, 30)
    assert snv.successor == "QT_SNV"
    assert after.agency("QT_SNV") is not None
    assert after.agency("BCSD_UBND") == directory.agency("BCSD_UBND")  # not in the file
    assert len(after.agencies) == len(directory.agencies) + len(file.agencies)
    # Checking the file against the directory it produced finds nothing: applying it again
    # is allowed (and changes nothing).
    assert load_succession_file(REORGANISATION, after) == file
    assert apply_to_directory(file, after) == after


def test_groups_have_stable_ids_one_per_effective_day() -> None:
    file = load_succession_file(REORGANISATION)

    groups = succession_groups(file)
    again = succession_groups(load_succession_file(REORGANISATION))

    # Both acts take effect on 01/07/2025: one request, each transfer naming its act.
    resolution = "Nghị quyết số 202/2025/QH15 ngày 12/6/2025 của Quốc hội"
    law = "Luật Tổ chức chính quyền địa phương số 72/2025/QH15"
    assert [g.document for g in groups] == [f"{resolution}; {law}"]
    assert [t.document for t in groups[0].transfers] == [resolution] * 14 + [law] * 8
    assert [g.succession_id for g in groups] == [g.succession_id for g in again]
    assert all(len(g.succession_id) <= 100 for g in groups)
    changed = file.model_copy(update={"tenant": "quang-tri"})
    assert {g.succession_id for g in succession_groups(changed)}.isdisjoint(
        g.succession_id for g in groups
    )


def test_split_obligations_must_exist_in_some_agreement() -> None:
    file = load_succession_file(BROKEN / "successor-unknown.yaml")

    assert unknown_obligations(file, {"bao-cao-nam"}) == ["ke-hoach"]
    assert unknown_obligations(file, {"bao-cao-nam", "ke-hoach"}) == []
