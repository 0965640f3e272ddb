"""Charts of a consolidated report, as PNG bytes (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from reports.model import ConsolidatedReport


def on_time_chart(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """On-time rate per agency (horizontal bars, directory order)."""
    raise NotImplementedError


def state_heatmap(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """Every task's status across periods: agencies × periods, coloured by status."""
    raise NotImplementedError


def escalation_chart(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    """Escalation levels reached: tasks per highest level."""
    raise NotImplementedError
