"""`reports.consolidate`: the seeds' published figures fed in as agency reports come out as
the seeds publish them, and each agency's standing is the right one."""

from __future__ import annotations

from datetime import datetime

import pytest
from binh_thuan import (
    AS_OF,
    CATEGORIES,
    DOSSIERS,
    DUE,
    EXTENDED_TO,
    LATE_ARRIVAL,
    WAIVER_REASON,
    ZONE,
    inputs,
    task_id,
)

from activities.models import Ratio, TaskState
from reports.consolidate import UnknownPeriod, consolidate, late_working_days
from reports.export_labels import task_owner
from reports.markdown import render_markdown
from reports.model import ComplianceStatus as S
from reports.model import ConsolidatedIndicator, ConsolidatedReport, ReportInputs

REPORTING = ["SNV", "STP", "SKHDT", "CA_TINH"]


def indicator(report: ConsolidatedReport, code: str) -> ConsolidatedIndicator:
    return next(i for i in report.indicators if i.code == code)


def test_the_seeds_figures_add_up_to_what_the_seeds_publish() -> None:
    report = consolidate(inputs(), period="2022")

    dossiers = indicator(report, "ho-so-dung-han")
    assert (dossiers.done, dossiers.total) == (728_000, 756_000)
    assert dossiers.ratio == 728_000 / 756_000
    assert f"{dossiers.ratio:.1%}" == "96.3%"
    # Combined as done/total, never as the average of the agencies' ratios (96.44 %).
    average = sum(done / total for done, total in DOSSIERS.values()) / len(DOSSIERS)
    assert f"{average:.2%}" == "96.44%"
    assert f"{dossiers.ratio:.2%}" == "96.30%"

    models = indicator(report, "mo-hinh-dan-van-kheo")
    assert models.breakdown == dict(zip(CATEGORIES, [185, 86, 161, 96, 33], strict=True))
    assert models.count == 561
    assert models.categories == CATEGORIES

    receptions = indicator(report, "tiep-cong-dan")
    assert receptions.count == 854
    complaints = indicator(report, "khieu-nai-da-giai-quyet")
    assert (complaints.done, complaints.total) == (29, 39)
    assert complaints.ratio == 29 / 39

    for consolidated in report.indicators[:4]:
        # Per agency in the directory's order; the one that never reported and the extended
        # one are listed as missing (the waived one owes nothing), and absent from the sums.
        assert [a.agency for a in consolidated.per_agency] == REPORTING
        assert consolidated.missing == ["UBND_BAC_BINH", "UBND_LA_GI"]
    assert dossiers.per_agency[3].agency_name == "Công an tỉnh"
    assert dossiers.per_agency[3].value == Ratio(done=299_200, total=311_400)
    assert receptions.per_agency[0].value == 200

    text = indicator(report, "kho-khan")
    assert text.count is None and text.breakdown is None and text.ratio is None
    assert [(a.agency, a.value) for a in text.per_agency] == [
        ("SNV", "Thiếu cán bộ chuyên trách."),
        ("STP", "Kinh phí hạn chế."),
    ]
    assert text.missing == ["SKHDT", "CA_TINH", "UBND_BAC_BINH", "UBND_LA_GI"]


def test_each_agency_has_its_standing() -> None:
    report = consolidate(inputs(), period="2022")

    rows = {t.agency: t for t in report.tasks}
    assert [t.agency for t in report.tasks] == [
        "SNV",
        "STP",
        "SKHDT",
        "CA_TINH",
        "UBND_BAC_BINH",
        "UBND_HAM_THUAN_BAC",
        "UBND_LA_GI",
    ]
    assert {code: t.status for code, t in rows.items()} == {
        "SNV": S.ON_TIME,
        "STP": S.ON_TIME,
        "SKHDT": S.ON_TIME,
        "CA_TINH": S.LATE,
        "UBND_BAC_BINH": S.OVERDUE,
        "UBND_HAM_THUAN_BAC": S.WAIVED,
        "UBND_LA_GI": S.EXTENDED,
    }
    assert rows["SNV"].submitted_at == datetime(2023, 1, 16, 10, 0, tzinfo=ZONE)
    assert rows["SNV"].late_working_days is None
    # Late across Tết: 3 working days (see binh_thuan.LATE_ARRIVAL), not 12 calendar days.
    assert rows["CA_TINH"].late_working_days == 3
    assert rows["CA_TINH"].submitted_at == LATE_ARRIVAL
    assert rows["CA_TINH"].state is TaskState.DONE_LATE
    assert rows["UBND_BAC_BINH"].escalation_level == 2
    assert rows["UBND_BAC_BINH"].submitted_at is None
    assert rows["UBND_HAM_THUAN_BAC"].waiver_reason == WAIVER_REASON
    assert rows["UBND_LA_GI"].extended_to == EXTENDED_TO
    assert rows["UBND_LA_GI"].due_at == datetime(2023, 4, 11, tzinfo=ZONE)
    assert rows["UBND_BAC_BINH"].agency_name == "Ủy ban nhân dân huyện Bắc Bình"
    assert rows["SNV"].obligation_title == "Báo cáo kết quả thực hiện công tác dân vận"
    assert rows["SNV"].item_number == "III.2"

    # Missing: past due without a report, with its escalation level; not the extended one.
    assert [(m.task_id, m.status, m.escalation_level) for m in report.missing] == [
        (task_id("UBND_BAC_BINH"), S.OVERDUE, 2)
    ]
    assert report.missing[0].due_at == DUE

    totals = report.totals
    assert totals.tasks == 7
    assert totals.counts == {
        S.ON_TIME: 3,
        S.LATE: 1,
        S.OVERDUE: 1,
        S.NOT_DONE: 0,
        S.WAIVED: 1,
        S.EXTENDED: 1,
        S.NOT_YET_DUE: 0,
        S.SUSPENDED: 0,
        S.WITHDRAWN: 0,
    }
    assert (totals.due, totals.on_time, totals.on_time_rate) == (5, 3, 3 / 5)
    assert totals.escalations == {1: 1, 2: 1}

    agencies = {a.agency: a for a in report.agencies}
    assert [a.agency for a in report.agencies] == [t.agency for t in report.tasks]
    assert (agencies["SNV"].due, agencies["SNV"].on_time_rate) == (1, 1.0)
    assert (agencies["CA_TINH"].due, agencies["CA_TINH"].on_time_rate) == (1, 0.0)
    assert agencies["CA_TINH"].highest_escalation == 1
    assert (agencies["UBND_HAM_THUAN_BAC"].due, agencies["UBND_HAM_THUAN_BAC"].on_time_rate) == (
        0,
        None,
    )
    assert agencies["UBND_LA_GI"].counts[S.EXTENDED] == 1

    # Narratives in the directory's order, each with its agency.
    assert [n.agency for n in report.narratives] == REPORTING
    assert report.narratives[0].summary == "Báo cáo kết quả công tác dân vận năm 2022 của SNV."
    assert (report.period, report.periods, report.province) == ("2022", ["2022"], "Bình Thuận")
    assert report.as_of == AS_OF


def test_the_whole_agreement_adds_the_periods_not_yet_due() -> None:
    report = consolidate(inputs())

    assert report.period is None
    assert report.periods == ["2022", "2023-6t"]
    # Directory order first, then obligation, then period.
    assert [(t.agency, t.period_label, t.status) for t in report.tasks][:2] == [
        ("SNV", "2022", S.ON_TIME),
        ("SNV", "2023-6t", S.NOT_YET_DUE),
    ]
    assert report.tasks[0].task_id == task_id("SNV")
    assert report.totals.tasks == 9
    assert report.totals.counts[S.NOT_YET_DUE] == 2
    assert report.totals.due == 5
    assert [m.agency for m in report.missing] == ["UBND_BAC_BINH"]
    # The not-yet-due half year adds no report: the sums are the same.
    assert indicator(report, "ho-so-dung-han").done == 728_000
    assert indicator(report, "mo-hinh-dan-van-kheo").count == 561
    assert indicator(report, "tiep-cong-dan").missing == ["UBND_BAC_BINH", "UBND_LA_GI"]


def test_an_unknown_period_names_the_valid_ones() -> None:
    with pytest.raises(UnknownPeriod) as unknown:
        consolidate(inputs(), period="2023")
    assert str(unknown.value) == "unknown period '2023'; the agreement's periods: 2022, 2023-6t"
    assert unknown.value.valid == ["2022", "2023-6t"]


def test_without_a_working_calendar_lateness_is_in_calendar_days() -> None:
    report = consolidate(inputs(calendar=False), period="2022")
    late = next(t for t in report.tasks if t.agency == "CA_TINH")
    # 19/01 to 30/01, both counted.
    assert late.late_working_days == 12


def test_late_days_count_from_the_first_late_day() -> None:
    calendar = inputs().facts.calendar
    # Due before Saturday 14/01/2023, received that Saturday: late, by one (no working day
    # has passed, yet it is late); received Monday 16/01: one working day.
    due = datetime(2023, 1, 14, tzinfo=ZONE)
    saturday = datetime(2023, 1, 14, 8, 0, tzinfo=ZONE)
    monday = datetime(2023, 1, 16, 8, 0, tzinfo=ZONE)
    tuesday = datetime(2023, 1, 17, 8, 0, tzinfo=ZONE)
    assert late_working_days(due, saturday, ZONE, calendar) == 1
    assert late_working_days(due, monday, ZONE, calendar) == 1
    assert late_working_days(due, tuesday, ZONE, calendar) == 2
    assert late_working_days(due, tuesday, ZONE, None) == 4


def test_closed_without_a_report_is_not_done_and_missing() -> None:
    base = inputs()
    tasks = [
        t.model_copy(
            update={"state": TaskState.NOT_DONE_OVERDUE, "closed": True, "escalation_level": 3}
        )
        if t.task_id == task_id("UBND_BAC_BINH")
        else t
        for t in base.facts.tasks
    ]
    later = base.model_copy(
        update={
            "facts": base.facts.model_copy(
                update={"tasks": tasks, "as_of": datetime(2024, 2, 1, tzinfo=ZONE)}
            )
        }
    )
    report = consolidate(later, period="2022")
    # And the extension has run out meanwhile (its task not told yet): overdue.
    assert [(m.agency, m.status, m.escalation_level) for m in report.missing] == [
        ("UBND_BAC_BINH", S.NOT_DONE, 3),
        ("UBND_LA_GI", S.OVERDUE, 0),
    ]
    assert report.totals.counts[S.NOT_DONE] == 1
    assert report.totals.escalations == {1: 1, 3: 1}
    # The half year's tasks are past due by now, still unopened in these facts: overdue.
    whole = consolidate(later)
    assert [(m.agency, m.period_label, m.status) for m in whole.missing] == [
        ("SNV", "2023-6t", S.OVERDUE),
        ("UBND_BAC_BINH", "2022", S.NOT_DONE),
        ("UBND_BAC_BINH", "2023-6t", S.OVERDUE),
        ("UBND_LA_GI", "2022", S.OVERDUE),
    ]
    assert whole.missing[0].due_at == datetime(2023, 7, 15, tzinfo=ZONE)


def _living(report_inputs: ReportInputs) -> ReportInputs:
    """The seeds' 2022 report after issue 17's changes: UBND_BAC_BINH's overdue task withdrawn
    by an amendment, UBND_LA_GI's suspended, and SNV's passed by a succession to UBND_TINH
    (which owed nothing itself)."""
    changed: dict[str, dict[str, object]] = {
        task_id("UBND_BAC_BINH"): {"state": TaskState.WITHDRAWN, "closed": True},
        task_id("UBND_LA_GI"): {"state": TaskState.SUSPENDED},
        task_id("SNV"): {"agency": "UBND_TINH", "original_agency": "SNV"},
    }
    facts = report_inputs.facts
    tasks = [t.model_copy(update=changed.get(t.task_id, {})) for t in facts.tasks]
    return report_inputs.model_copy(
        update={"facts": facts.model_copy(update={"tasks": tasks}), "extensions": []}
    )


def test_withdrawn_and_suspended_tasks_have_their_own_status_and_count_for_nothing_due() -> None:
    report = consolidate(_living(inputs()), period="2022")
    rows = {t.task_id: t for t in report.tasks}
    assert rows[task_id("UBND_BAC_BINH")].status is S.WITHDRAWN
    assert rows[task_id("UBND_LA_GI")].status is S.SUSPENDED
    totals = report.totals
    # 7 tasks, one withdrawn: 6 in the report; due: SNV, STP, SKHDT on time, CA_TINH late.
    assert totals.tasks == 6
    assert totals.counts[S.WITHDRAWN] == 1 and totals.counts[S.SUSPENDED] == 1
    assert totals.counts[S.OVERDUE] == 0
    assert (totals.due, totals.on_time, totals.on_time_rate) == (4, 3, 3 / 4)
    # Neither is missing; the withdrawn one owes no indicator, the suspended one still does.
    assert report.missing == []
    dossiers = next(i for i in report.indicators if i.code == "ho-so-dung-han")
    assert dossiers.missing == ["UBND_LA_GI"]
    agencies = {a.agency: a for a in report.agencies}
    assert (agencies["UBND_BAC_BINH"].due, agencies["UBND_BAC_BINH"].on_time_rate) == (0, None)


def test_a_transferred_task_is_the_successors_naming_the_original() -> None:
    report = consolidate(_living(inputs()), period="2022")
    row = next(t for t in report.tasks if t.task_id == task_id("SNV"))
    assert (row.agency, row.agency_name) == ("UBND_TINH", "Ủy ban nhân dân tỉnh")
    assert (row.original_agency, row.original_agency_name) == ("SNV", "Sở Nội vụ")
    # The successor comes first in the directory's order and is counted as the owner.
    assert report.tasks[0].task_id == task_id("SNV")
    assert report.agencies[0].agency == "UBND_TINH"
    assert report.agencies[0].counts[S.ON_TIME] == 1
    vi = render_markdown(report, "vi")
    en = render_markdown(report, "en")
    assert "| Ủy ban nhân dân tỉnh (UBND_TINH) (trước đây: Sở Nội vụ, SNV) |" in vi
    assert "| Ủy ban nhân dân tỉnh (UBND_TINH) (formerly Sở Nội vụ, SNV) |" in en
    assert "| Tạm dừng |" in vi and "| Đã rút theo văn bản sửa đổi |" in vi
    assert "| Suspended |" in en and "| Withdrawn by an amendment |" in en
    assert task_owner(row, "vi") == "Ủy ban nhân dân tỉnh (trước đây: Sở Nội vụ)"
    assert task_owner(row, "en") == "Ủy ban nhân dân tỉnh (formerly Sở Nội vụ)"
