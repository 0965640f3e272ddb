"""The report's JSON form against its committed schema, and its Markdown in both languages."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import jsonschema
from binh_thuan import inputs

from reports.consolidate import consolidate
from reports.markdown import render_markdown
from reports.model import ConsolidatedReport
from reports.schema import SCHEMA_FILE, report_schema_text


def test_the_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == report_schema_text(), (
        "reports/report.schema.json is stale: python -m reports.schema > reports/report.schema.json"
    )


def test_a_reports_json_is_valid_against_the_schema_and_reads_back() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text("utf-8")))
    for period in ("2022", None):
        report = consolidate(inputs(), period=period)
        text = report.model_dump_json()
        document = json.loads(text)
        assert sorted(validator.iter_errors(document), key=str) == []
        assert ConsolidatedReport.model_validate_json(text) == report
    # The figures as other systems read them.
    dossiers = next(i for i in document["indicators"] if i["code"] == "ho-so-dung-han")
    assert (dossiers["done"], dossiers["total"]) == (728_000, 756_000)
    assert dossiers["missing"] == ["UBND_BAC_BINH", "UBND_LA_GI"]
    assert document["totals"]["counts"]["on_time"] == 3
    assert document["totals"]["escalations"] == {"1": 1, "2": 1}
    late = next(t for t in document["tasks"] if t["agency"] == "CA_TINH")
    assert (late["status"], late["late_working_days"]) == ("late", 3)

    # The schema does refuse what is not a report.
    document["totals"]["counts"]["on_time"] = "ba"
    document["tasks"][0]["status"] = "maybe"
    errors = sorted(e.message for e in validator.iter_errors(document))
    assert len(errors) == 2
    assert errors[0] == "'ba' is not of type 'integer'"
    assert errors[1].startswith("'maybe' is not one of ['on_time', 'late', 'overdue'")


def test_markdown_in_vietnamese() -> None:
    text = render_markdown(consolidate(inputs(), period="2022"))
    lines = text.splitlines()
    assert lines[0] == (
        "# Báo cáo tổng hợp: 05-CTr/BDVTU-BCSĐ — Chương trình phối hợp công tác dân vận"
    )
    assert "- Kỳ báo cáo: 2022" in lines
    assert "- Số liệu tính đến: 29/03/2023 05:23" in lines
    assert (
        "| **Tổng cộng** | **3** | **1** | **1** | **0** | **1** | **1** | **0** | **60,0 %** | 2 |"
        in lines
    )
    assert "5 nhiệm vụ đã đến hạn, 3 đúng hạn (60,0 %); tổng số 7 nhiệm vụ." in lines
    assert (
        "| Công an tỉnh (CA_TINH) | III.2 Báo cáo kết quả thực hiện công tác dân vận | 2022 | "
        "trước 19/01/2023 | 30/01/2023 09:00 | Trễ hạn 3 ngày làm việc |" in lines
    )
    assert any(line.endswith("| — | Quá hạn, chưa nộp (mức đôn đốc 2) |") for line in lines)
    assert any("| Được gia hạn đến trước 11/04/2023 |" in line for line in lines)
    assert any("| Được miễn: Huyện tổ chức lại bộ máy" in line for line in lines)
    assert "- Toàn tỉnh: **728.000 / 756.000 (96,3 %)**" in lines
    assert "- Toàn tỉnh: **561**" in lines
    assert "  - Văn hóa - xã hội: 185" in lines
    assert "  - 04 không: 33" in lines
    assert "- Toàn tỉnh: **854**" in lines
    assert "- Toàn tỉnh: **29 / 39 (74,4 %)**" in lines
    assert lines.count("Chưa báo cáo (không tính vào tổng): UBND_BAC_BINH, UBND_LA_GI") == 4
    assert text.index("### Sở Nội vụ (SNV) — 2022") < text.index("### Công an tỉnh (CA_TINH)")
    assert "> Báo cáo kết quả công tác dân vận năm 2022 của SNV." in lines
    assert "Mức đôn đốc cao nhất đã áp dụng: 1 nhiệm vụ ở mức 1; 1 nhiệm vụ ở mức 2." in lines


def test_markdown_in_english() -> None:
    lines = render_markdown(consolidate(inputs()), "en").splitlines()
    assert lines[0].startswith("# Consolidated report: 05-CTr/BDVTU-BCSĐ")
    assert "- Reporting period: the whole agreement" in lines
    assert "5 tasks were due, 3 on time (60.0 %); 9 tasks in all." in lines
    assert "- Province total: **728,000 / 756,000 (96.3 %)**" in lines
    assert any(line.endswith("| Late by 3 working days |") for line in lines)
    assert "Tasks by the highest escalation level reached: 1 at level 1; 1 at level 2." in lines


def test_a_deadline_with_a_time_of_day_says_the_time_and_one_at_midnight_the_day() -> None:
    report = consolidate(inputs())
    timed = report.model_copy(
        update={
            "tasks": [
                report.tasks[0].model_copy(
                    update={
                        "due_at": datetime(2026, 12, 4, 6, 42, tzinfo=ZoneInfo(report.time_zone))
                    }
                ),
                *report.tasks[1:],
            ],
            "indicators": [],
        }
    )
    vi = render_markdown(timed)
    en = render_markdown(timed, "en")
    assert "trước 06:42 ngày 04/12/2026" in vi
    assert "before 06:42 on 04/12/2026" in en
    midnight = report.tasks[1].due_at
    assert midnight is not None
    assert f"trước {midnight.astimezone(ZoneInfo(report.time_zone)):%d/%m/%Y} |" in vi
    # A section without indicators still leaves a blank line before the next heading.
    assert "Không có chỉ tiêu nào.\n\n## " in vi
