"""The report as Markdown text (`accord report --format md`, the default)."""

from __future__ import annotations

from reports.model import ConsolidatedReport


def render_markdown(report: ConsolidatedReport, locale: str = "vi") -> str:
    raise NotImplementedError
