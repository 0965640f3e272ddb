"""The report as an XLSX workbook (openpyxl): one sheet per table, frozen header row, numbers
as numbers, Vietnamese headers (English with locale="en")."""

from __future__ import annotations

from reports.model import ConsolidatedReport


def workbook_bytes(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    raise NotImplementedError
