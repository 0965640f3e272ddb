"""Computes a `ConsolidatedReport` from `ReportInputs`: pure, no I/O, no clock."""

from __future__ import annotations

from reports.model import ConsolidatedReport, ReportInputs


class UnknownPeriod(ValueError):
    """The period asked for is not one of the agreement's (the message lists them)."""


def consolidate(inputs: ReportInputs, *, period: str | None = None) -> ConsolidatedReport:
    """The report of `period` (a period label, e.g. `2025-h1`), or of the whole agreement."""
    raise NotImplementedError("reports.consolidate: issue 16, helper 'core'")
