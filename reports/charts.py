"""Charts of a consolidated report, as PNG bytes (matplotlib's Agg canvas, no display).

Each chart is 900 px wide (9 in at 100 dpi: a DOCX page's text width at 16 cm, and a mail's
column) and as tall as its rows need. DejaVu Sans, which matplotlib ships, draws every
Vietnamese letter. The PNG carries no software name or date, so the same report gives the same
bytes. A report with nothing to draw gives a chart that says so, never an error.
"""

from __future__ import annotations

import io
import textwrap
from contextlib import AbstractContextManager
from dataclasses import dataclass

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from reports.export_labels import SEVERITY, percent, status_label, text
from reports.model import ComplianceStatus, ConsolidatedReport, TaskCompliance, shown_statuses

WIDTH_IN = 9.0
DPI = 100
FONT = "DejaVu Sans"
LABEL_WIDTH = 34
"""Characters per line of an agency name on the charts' axes."""

STATUS_COLOURS: dict[ComplianceStatus, str] = {
    ComplianceStatus.ON_TIME: "#2e7d32",
    ComplianceStatus.LATE: "#f9a825",
    ComplianceStatus.OVERDUE: "#e65100",
    ComplianceStatus.NOT_DONE: "#b71c1c",
    ComplianceStatus.WAIVED: "#90a4ae",
    ComplianceStatus.EXTENDED: "#1e88e5",
    ComplianceStatus.NOT_YET_DUE: "#e0e0e0",
    ComplianceStatus.SUSPENDED: "#b39ddb",
    ComplianceStatus.WITHDRAWN: "#d7ccc8",
}
NO_TASK_COLOUR = "#ffffff"
BAR_COLOUR = "#1565c0"


def _style() -> AbstractContextManager[None]:
    return rc_context(
        {
            "font.family": FONT,
            "font.size": 10,
            "axes.titlesize": 12,
            "axes.titleweight": "bold",
        }
    )


def _figure(height_in: float) -> Figure:
    # A Figure with its own Agg canvas, never pyplot's global state: no display is needed,
    # nothing is left open, and threads may draw at once.
    figure = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # metadata Software None: no matplotlib version in the file, so the bytes stay the same.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _wrap(name: str) -> str:
    return "\n".join(textwrap.wrap(name, LABEL_WIDTH)) or name


def _nothing(title: str, message: str) -> bytes:
    with _style():
        figure = _figure(2.0)
        figure.suptitle(title, fontweight="bold", fontsize=12)
        figure.text(0.5, 0.42, message, ha="center", va="center", fontsize=11, color="#555555")
        return _png(figure)


def on_time_chart(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """On-time rate per agency (horizontal bars, directory order, top to bottom); an agency
    with nothing due has no bar and says so."""
    title = text(locale, "Tỷ lệ nộp báo cáo đúng hạn theo cơ quan", "On-time rate per agency")
    agencies = report.agencies
    if not agencies or all(agency.on_time_rate is None for agency in agencies):
        return _nothing(
            title, text(locale, "Chưa có báo cáo nào đến hạn.", "No report was due yet.")
        )
    with _style():
        figure = _figure(1.3 + 0.42 * len(agencies))
        axes = figure.add_subplot()
        positions = list(range(len(agencies)))
        rates = [(agency.on_time_rate or 0.0) * 100 for agency in agencies]
        axes.barh(positions, rates, color=BAR_COLOUR, height=0.6)
        axes.set_yticks(positions, [_wrap(agency.agency_name) for agency in agencies])
        axes.set_ylim(len(agencies) - 0.5, -0.5)  # directory order, top to bottom
        axes.set_xlim(0, 124)  # room for "100,0% (12/12)" right of a full bar
        axes.set_xticks([0, 25, 50, 75, 100], ["0%", "25%", "50%", "75%", "100%"])
        axes.set_title(title)
        for position, agency in zip(positions, agencies, strict=True):
            if agency.on_time_rate is None:
                label = text(locale, "không có báo cáo đến hạn", "nothing due")
                axes.text(1, position, label, va="center", color="#666666", style="italic")
            else:
                on_time = agency.counts[ComplianceStatus.ON_TIME]
                label = f"{percent(agency.on_time_rate, locale)} ({on_time}/{agency.due})"
                axes.text(agency.on_time_rate * 100 + 1, position, label, va="center")
        axes.spines[["top", "right"]].set_visible(False)
        axes.grid(axis="x", color="#dddddd")
        axes.set_axisbelow(True)
        figure.tight_layout()
        return _png(figure)


@dataclass(frozen=True)
class HeatmapRow:
    """One agency's row of the heat map: its tasks in each period of the report."""

    agency: str
    agency_name: str
    cells: list[list[TaskCompliance]]


def heatmap_periods(report: ConsolidatedReport) -> list[str]:
    return report.periods or sorted({task.period_label for task in report.tasks})


def heatmap_rows(report: ConsolidatedReport) -> list[HeatmapRow]:
    """Agencies in directory order (then any agency that only the tasks name), each with its
    tasks per period."""
    names = {agency.agency: agency.agency_name for agency in report.agencies}
    for task in report.tasks:
        names.setdefault(task.agency, task.agency_name)
    periods = heatmap_periods(report)
    return [
        HeatmapRow(
            agency=code,
            agency_name=name,
            cells=[
                [t for t in report.tasks if t.agency == code and t.period_label == period]
                for period in periods
            ],
        )
        for code, name in names.items()
    ]


def worst_status(tasks: list[TaskCompliance]) -> ComplianceStatus | None:
    """The status a cell shows: the worst of its tasks (None: no task)."""
    return min((task.status for task in tasks), key=SEVERITY.index, default=None)


def _cell_note(tasks: list[TaskCompliance], locale: str) -> str:
    """What a cell says besides its colour: late by N days or the escalation level of its worst
    task, and how many tasks it holds when several."""
    status = worst_status(tasks)
    worst = [task for task in tasks if task.status is status]
    if not worst:
        return ""
    task = max(worst, key=lambda t: (t.late_working_days or 0, t.escalation_level))
    parts = []
    if status is ComplianceStatus.LATE and task.late_working_days is not None:
        days = task.late_working_days
        parts.append(text(locale, f"trễ {days} ngày", f"{days} d late"))
    missing = (ComplianceStatus.OVERDUE, ComplianceStatus.NOT_DONE)
    if status in missing and task.escalation_level:
        level = task.escalation_level
        parts.append(text(locale, f"mức {level}", f"level {level}"))
    if len(tasks) > 1:
        parts.append(text(locale, f"{len(tasks)} nhiệm vụ", f"{len(tasks)} tasks"))
    return " · ".join(parts)


def state_heatmap(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """Every task's status across periods: agencies × periods, coloured by status. A cell with
    several tasks (several obligations) shows the agency's worst status of that period."""
    title = text(
        locale, "Tình hình nộp báo cáo theo cơ quan và kỳ báo cáo", "Reports by agency and period"
    )
    rows = heatmap_rows(report)
    periods = heatmap_periods(report)
    if not rows or not periods or not report.tasks:
        return _nothing(
            title, text(locale, "Chưa có nhiệm vụ nào trong kỳ.", "No task in the period.")
        )
    height = 2.4 + 0.42 * len(rows)
    with _style():
        figure = _figure(height)
        axes = figure.add_subplot()
        for row_index, row in enumerate(rows):
            for column, tasks in enumerate(row.cells):
                status = worst_status(tasks)
                colour = NO_TASK_COLOUR if status is None else STATUS_COLOURS[status]
                axes.add_patch(
                    Rectangle(
                        (column, row_index),
                        1,
                        1,
                        facecolor=colour,
                        edgecolor="#9e9e9e",
                        linewidth=0.8,
                        clip_on=False,
                    )
                )
                # Narrow cells (many periods) keep only their colour.
                note = _cell_note(tasks, locale) if len(periods) <= 6 else ""
                if note:
                    dark = status in (ComplianceStatus.NOT_DONE, ComplianceStatus.ON_TIME)
                    axes.text(
                        column + 0.5,
                        row_index + 0.5,
                        note,
                        ha="center",
                        va="center",
                        fontsize=9,
                        color="white" if dark else "black",
                    )
        axes.set_xlim(0, len(periods))
        axes.set_ylim(len(rows), 0)
        axes.set_yticks(
            [index + 0.5 for index in range(len(rows))], [_wrap(row.agency_name) for row in rows]
        )
        many = len(periods) > 8
        axes.set_xticks([column + 0.5 for column in range(len(periods))])
        axes.set_xticklabels(periods, rotation=90 if many else 0)
        axes.xaxis.tick_top()
        axes.tick_params(length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.set_title(title, pad=60 if many else 24)
        handles = [
            Patch(
                facecolor=STATUS_COLOURS[status],
                edgecolor="#9e9e9e",
                label=status_label(status, locale),
            )
            for status in shown_statuses(report.tasks)
        ]
        handles.append(
            Patch(
                facecolor=NO_TASK_COLOUR,
                edgecolor="#9e9e9e",
                label=text(locale, "Không có nhiệm vụ", "No task"),
            )
        )
        figure.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
        figure.tight_layout(rect=(0, 0.9 / height, 1, 1))
        return _png(figure)


def escalation_chart(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """Escalation levels reached: tasks per highest level (1, 2, …)."""
    title = text(
        locale,
        "Số nhiệm vụ theo mức đôn đốc cao nhất đã áp dụng",
        "Tasks by the highest escalation level reached",
    )
    levels = {level: count for level, count in report.totals.escalations.items() if count > 0}
    if not levels:
        return _nothing(
            title,
            text(locale, "Chưa có nhiệm vụ nào phải đôn đốc.", "No task was escalated."),
        )
    with _style():
        figure = _figure(3.6)
        axes = figure.add_subplot()
        shown = list(range(1, max(levels) + 1))
        counts = [levels.get(level, 0) for level in shown]
        axes.bar(
            [str(level) for level in shown],
            counts,
            color=[STATUS_COLOURS[ComplianceStatus.OVERDUE]] * len(shown),
            width=0.55,
        )
        axes.set_xticks(
            range(len(shown)), [text(locale, f"Mức {level}", f"Level {level}") for level in shown]
        )
        for index, count in enumerate(counts):
            axes.text(index, count, str(count), ha="center", va="bottom", fontweight="bold")
        axes.set_ylim(0, max(counts) * 1.2 + 0.5)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(text(locale, "Số nhiệm vụ", "Tasks"))
        axes.set_title(title)
        axes.spines[["top", "right"]].set_visible(False)
        figure.tight_layout()
        return _png(figure)
