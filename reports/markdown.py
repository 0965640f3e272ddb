"""The report as Markdown text (`accord report --format md`, the default).

Vietnamese by default (numbers as 728.000 and 96,3 %), English with locale "en" (728,000 and
96.3 %). Dates are local to the agreement's zone; a deadline is shown as "before" its first
late day, as in the mail.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from activities.models import IndicatorValue, Ratio
from agreements.models import IndicatorKind
from reports.model import (
    STATUS_LABELS_EN,
    STATUS_LABELS_VI,
    ComplianceStatus,
    ConsolidatedIndicator,
    ConsolidatedReport,
    TaskCompliance,
    shown_statuses,
)

_TEXT = {
    "vi": {
        "title": "Báo cáo tổng hợp",
        "province": "Tỉnh, thành phố",
        "issuer": "Cơ quan ban hành",
        "period": "Kỳ báo cáo",
        "all_periods": "toàn bộ thời gian thực hiện",
        "as_of": "Số liệu tính đến",
        "compliance": "1. Tình hình thực hiện chế độ báo cáo",
        "agency": "Cơ quan",
        "rate": "Tỷ lệ đúng hạn",
        "level": "Mức đôn đốc cao nhất",
        "total": "Tổng cộng",
        "summary": "{due} nhiệm vụ đã đến hạn, {on_time} đúng hạn ({rate}); tổng số {tasks} "
        "nhiệm vụ.",
        "escalations": "Mức đôn đốc cao nhất đã áp dụng: {levels}.",
        "level_n": "{count} nhiệm vụ ở mức {level}",
        "tasks": "Chi tiết từng nhiệm vụ",
        "obligation": "Nội dung",
        "period_col": "Kỳ",
        "due": "Hạn",
        "submitted": "Ngày nhận báo cáo",
        "status": "Tình trạng",
        "indicators": "2. Kết quả các chỉ tiêu",
        "no_indicators": "Không có chỉ tiêu nào.",
        "value": "Số liệu",
        "province_total": "Toàn tỉnh",
        "not_reported": "Chưa báo cáo (không tính vào tổng)",
        "nobody": "Chưa có cơ quan nào báo cáo.",
        "missing": "3. Cơ quan, nhiệm vụ chưa có báo cáo",
        "no_missing": "Không có nhiệm vụ nào quá hạn mà chưa có báo cáo.",
        "narratives": "4. Tóm tắt báo cáo của các cơ quan",
        "no_narratives": "Chưa có báo cáo nào.",
        "before": "trước",
        "late_by": "{label} {days} ngày làm việc",
        "at_level": "{label} (mức đôn đốc {level})",
        "waived_for": "{label}: {reason}",
        "extended_to": "{label} đến trước {day}",
        "joint": "cùng",
        "formerly": "trước đây: {name}",
        "received": "nhận ngày",
    },
    "en": {
        "title": "Consolidated report",
        "province": "Province",
        "issuer": "Issued by",
        "period": "Reporting period",
        "all_periods": "the whole agreement",
        "as_of": "Figures as of",
        "compliance": "1. Compliance with the reporting duties",
        "agency": "Agency",
        "rate": "On-time rate",
        "level": "Highest escalation",
        "total": "Total",
        "summary": "{due} tasks were due, {on_time} on time ({rate}); {tasks} tasks in all.",
        "escalations": "Tasks by the highest escalation level reached: {levels}.",
        "level_n": "{count} at level {level}",
        "tasks": "Every task",
        "obligation": "Obligation",
        "period_col": "Period",
        "due": "Due",
        "submitted": "Report received",
        "status": "Status",
        "indicators": "2. Indicators",
        "no_indicators": "No indicators.",
        "value": "Figure",
        "province_total": "Province total",
        "not_reported": "Not reported (not counted in the total)",
        "nobody": "No agency has reported yet.",
        "missing": "3. Agencies and tasks without a report",
        "no_missing": "No task is past due without a report.",
        "narratives": "4. The agencies' summaries",
        "no_narratives": "No report yet.",
        "before": "before",
        "late_by": "{label} by {days} working days",
        "at_level": "{label} (escalation level {level})",
        "waived_for": "{label}: {reason}",
        "extended_to": "{label} to before {day}",
        "joint": "with",
        "formerly": "formerly {name}",
        "received": "received",
    },
}


def render_markdown(report: ConsolidatedReport, locale: str = "vi") -> str:
    lang = "en" if locale == "en" else "vi"
    text = _TEXT[lang]
    labels = STATUS_LABELS_EN if lang == "en" else STATUS_LABELS_VI
    zone = ZoneInfo(report.time_zone)
    fmt = _Format(lang, zone)
    lines: list[str] = [
        f"# {text['title']}: {report.document_number} — {_inline(report.title)}",
        "",
    ]
    if report.province:
        lines.append(f"- {text['province']}: {report.province}")
    if report.issuer:
        lines.append(f"- {text['issuer']}: {_inline(report.issuer)}")
    lines += [
        f"- {text['period']}: {report.period or text['all_periods']}",
        f"- {text['as_of']}: {fmt.moment(report.as_of)}",
        "",
        f"## {text['compliance']}",
        "",
    ]

    statuses = shown_statuses(report.tasks)
    header = [text["agency"], *(labels[s] for s in statuses), text["rate"], text["level"]]
    rows = [
        [
            f"{_inline(a.agency_name)} ({a.agency})",
            *(fmt.number(a.counts.get(s, 0)) for s in statuses),
            fmt.rate(a.on_time_rate),
            str(a.highest_escalation),
        ]
        for a in report.agencies
    ]
    totals = report.totals
    rows.append(
        [
            f"**{text['total']}**",
            *(f"**{fmt.number(totals.counts.get(s, 0))}**" for s in statuses),
            f"**{fmt.rate(totals.on_time_rate)}**",
            str(max(totals.escalations, default=0)),
        ]
    )
    lines += _table(header, rows, numeric_from=1)
    lines += [
        "",
        text["summary"].format(
            due=fmt.number(totals.due),
            on_time=fmt.number(totals.on_time),
            rate=fmt.rate(totals.on_time_rate),
            tasks=fmt.number(totals.tasks),
        ),
    ]
    if totals.escalations:
        levels = "; ".join(
            text["level_n"].format(level=level, count=count)
            for level, count in sorted(totals.escalations.items())
        )
        lines.append(text["escalations"].format(levels=levels))
    lines += ["", f"### {text['tasks']}", ""]
    lines += _table(
        [
            text["agency"],
            text["obligation"],
            text["period_col"],
            text["due"],
            text["submitted"],
            text["status"],
        ],
        [
            [
                _agency_cell(t, text["joint"], text["formerly"]),
                _inline(
                    f"{t.item_number} {t.obligation_title}" if t.item_number else t.obligation_title
                ),
                t.period_label,
                fmt.due(t.due_at, text["before"]),
                fmt.moment(t.submitted_at),
                _status_text(t, labels, text, fmt),
            ]
            for t in report.tasks
        ],
    )

    lines += ["", f"## {text['indicators']}", ""]
    if not report.indicators:
        lines += [text["no_indicators"], ""]
    current = None
    for indicator in report.indicators:
        if indicator.obligation_id != current:
            current = indicator.obligation_id
            lines += [f"### {_inline(indicator.obligation_title)}", ""]
        lines += _indicator(indicator, text, fmt)

    lines += [f"## {text['missing']}", ""]
    if report.missing:
        lines += _table(
            [text["agency"], text["obligation"], text["period_col"], text["due"], text["status"]],
            [
                [
                    f"{_inline(m.agency_name)} ({m.agency})",
                    _inline(m.obligation_title),
                    m.period_label,
                    fmt.due(m.due_at, text["before"]),
                    text["at_level"].format(label=labels[m.status], level=m.escalation_level),
                ]
                for m in report.missing
            ],
        )
    else:
        lines.append(text["no_missing"])

    lines += ["", f"## {text['narratives']}", ""]
    if not report.narratives:
        lines.append(text["no_narratives"])
    for narrative in report.narratives:
        lines += [
            f"### {_inline(narrative.agency_name)} ({narrative.agency}) — {narrative.period_label}",
            "",
            f"*{_inline(narrative.obligation_title)}; {text['received']} "
            f"{fmt.moment(narrative.submitted_at)}*",
            "",
            *(f"> {line}".rstrip() for line in narrative.summary.splitlines()),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


class _Format:
    def __init__(self, lang: str, zone: ZoneInfo) -> None:
        self.lang = lang
        self.zone = zone

    def number(self, value: int) -> str:
        text = f"{value:,}"
        return text.replace(",", ".") if self.lang == "vi" else text

    def rate(self, value: float | None) -> str:
        if value is None:
            return "—"
        text = f"{value * 100:.1f} %"
        return text.replace(".", ",") if self.lang == "vi" else text

    def moment(self, at: datetime | None) -> str:
        return at.astimezone(self.zone).strftime("%d/%m/%Y %H:%M") if at else "—"

    def due(self, at: datetime | None, before: str) -> str:
        if at is None:
            return "—"
        there = at.astimezone(self.zone)
        # A deadline at midnight is "before that day"; one with a time of day says the time.
        if there.time() == time(0, 0):
            return f"{before} {there:%d/%m/%Y}"
        on = "ngày" if self.lang == "vi" else "on"
        return f"{before} {there:%H:%M} {on} {there:%d/%m/%Y}"

    def value(self, kind: IndicatorKind, value: IndicatorValue) -> str:
        if isinstance(value, Ratio) or (
            kind is IndicatorKind.RATIO and isinstance(value, dict) and "total" in value
        ):
            done, total = (
                (value.done, value.total)
                if isinstance(value, Ratio)
                else (value["done"], value["total"])
            )
            return self.fraction(done, total)
        if isinstance(value, dict):
            return "; ".join(f"{k}: {self.number(n)}" for k, n in value.items())
        if isinstance(value, int):
            return self.number(value)
        return _inline(value)

    def fraction(self, done: int, total: int) -> str:
        rate = self.rate(done / total) if total else "—"
        return f"{self.number(done)} / {self.number(total)} ({rate})"


def _indicator(indicator: ConsolidatedIndicator, text: dict[str, str], fmt: _Format) -> list[str]:
    lines = [f"**{_inline(indicator.label)}**", ""]
    kind = indicator.kind
    if indicator.per_agency:
        if kind is IndicatorKind.COUNT and indicator.count is not None:
            lines.append(f"- {text['province_total']}: **{fmt.number(indicator.count)}**")
        elif (
            kind is IndicatorKind.RATIO
            and indicator.done is not None
            and indicator.total is not None
        ):
            lines.append(
                f"- {text['province_total']}: **{fmt.fraction(indicator.done, indicator.total)}**"
            )
        elif kind is IndicatorKind.BREAKDOWN and indicator.breakdown is not None:
            total = fmt.number(indicator.count or 0)
            lines.append(f"- {text['province_total']}: **{total}**")
            lines += [f"  - {_inline(k)}: {fmt.number(n)}" for k, n in indicator.breakdown.items()]
        if kind is not IndicatorKind.TEXT:
            lines.append("")
        if kind is IndicatorKind.BREAKDOWN and indicator.categories:
            header = [text["agency"], *(_inline(c) for c in indicator.categories)]
            rows = [
                [
                    f"{_inline(a.agency_name)} ({a.agency})",
                    *(
                        fmt.number(a.value.get(c, 0)) if isinstance(a.value, dict) else "—"
                        for c in indicator.categories
                    ),
                ]
                for a in indicator.per_agency
            ]
            lines += _table(header, rows, numeric_from=1)
        else:
            lines += _table(
                [text["agency"], text["value"]],
                [
                    [f"{_inline(a.agency_name)} ({a.agency})", fmt.value(kind, a.value)]
                    for a in indicator.per_agency
                ],
                numeric_from=None if kind is IndicatorKind.TEXT else 1,
            )
    else:
        lines.append(text["nobody"])
    if indicator.missing:
        lines += ["", f"{text['not_reported']}: " + ", ".join(indicator.missing)]
    lines.append("")
    return lines


def _status_text(
    task: TaskCompliance,
    labels: dict[ComplianceStatus, str],
    text: dict[str, str],
    fmt: _Format,
) -> str:
    label = labels[task.status]
    match task.status:
        case ComplianceStatus.LATE if task.late_working_days is not None:
            return text["late_by"].format(label=label, days=task.late_working_days)
        case ComplianceStatus.OVERDUE | ComplianceStatus.NOT_DONE if task.escalation_level:
            return text["at_level"].format(label=label, level=task.escalation_level)
        case ComplianceStatus.WAIVED if task.waiver_reason:
            return _inline(text["waived_for"].format(label=label, reason=task.waiver_reason))
        case ComplianceStatus.EXTENDED if task.extended_to is not None:
            return text["extended_to"].format(label=label, day=f"{task.extended_to:%d/%m/%Y}")
    return label


def _agency_cell(task: TaskCompliance, joint: str, formerly: str) -> str:
    cell = f"{_inline(task.agency_name)} ({task.agency})"
    if task.original_agency:
        former = f"{_inline(task.original_agency_name or task.original_agency)}"
        cell += f" ({formerly.format(name=f'{former}, {task.original_agency}')})"
    if task.co_owners:
        cell += f" {joint} {', '.join(task.co_owners)}"
    return cell


def _inline(text: str) -> str:
    """Text safe in a table cell or a heading: one line, no table separator."""
    return " ".join(text.split()).replace("|", "\\|")


def _table(
    header: list[str], rows: list[list[str]], *, numeric_from: int | None = None
) -> list[str]:
    aligns = [
        "---:" if numeric_from is not None and i >= numeric_from else "---"
        for i in range(len(header))
    ]
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(aligns) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
