"""The report as a DOCX draft "Báo cáo kết quả …" laid out after Decree 30/2020/NĐ-CP
(python-docx): issuing body and national motto block, number and date line, title, sections,
tables and charts, for the aggregator to edit and sign."""

from __future__ import annotations

from reports.model import ConsolidatedReport


def document_bytes(report: ConsolidatedReport, locale: str = "vi") -> bytes:
    raise NotImplementedError
