"""Render a consolidated report's exports to PNG pages, to look at them as a person would.

    .venv/bin/python scripts/render_report_images.py [REPORT.json] [--out DIR] [--locale vi|en]

REPORT.json is a `ConsolidatedReport` as JSON (`accord report … --format json`); without it,
the hand-built sample of tests/reports/sample_report.py is used. Writes into DIR (default
tests/artifacts/reports, which git ignores): report.docx, report.xlsx, the three charts, and
report-docx-N.png / report-xlsx-N.png, the pages as LibreOffice prints them (soffice --headless
--convert-to pdf, then pdftoppm -png -r 60). Needs Debian's libreoffice-writer,
libreoffice-calc and poppler-utils:

    apt-get install -y --no-install-recommends libreoffice-writer libreoffice-calc poppler-utils
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "reports")]

from reports.charts import escalation_chart, on_time_chart, state_heatmap  # noqa: E402
from reports.docx import document_bytes  # noqa: E402
from reports.model import ConsolidatedReport  # noqa: E402
from reports.xlsx import workbook_bytes  # noqa: E402


def _load(path: Path | None) -> ConsolidatedReport:
    if path is None:
        from sample_report import sample_report

        return sample_report()
    return ConsolidatedReport.model_validate_json(path.read_text(encoding="utf-8"))


def _pages(document: Path, out: Path, resolution: int) -> list[Path]:
    """document → PDF (LibreOffice, its own throwaway profile) → one PNG per page."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None or shutil.which("pdftoppm") is None:
        sys.exit("needs soffice and pdftoppm: apt-get install libreoffice-writer "
                 "libreoffice-calc poppler-utils")  # fmt: skip
    with tempfile.TemporaryDirectory() as work:
        profile = Path(work, "profile").as_uri()
        subprocess.run(
            [soffice, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
             "--outdir", work, str(document)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        pdf = Path(work, document.with_suffix(".pdf").name)
        prefix = out / f"{document.stem}-{document.suffix.lstrip('.')}"
        for old in out.glob(f"{prefix.name}-*.png"):
            old.unlink()
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(resolution), str(pdf), str(prefix)],
            check=True, timeout=300,
        )  # fmt: skip
    return sorted(out.glob(f"{prefix.name}-*.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", nargs="?", type=Path, help="ConsolidatedReport JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "artifacts" / "reports")
    parser.add_argument("--locale", default="vi")
    parser.add_argument("--resolution", type=int, default=60, help="pdftoppm -r (dpi)")
    arguments = parser.parse_args()
    report = _load(arguments.report)
    out: Path = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    locale = arguments.locale
    written = []
    for name, chart in (
        ("on-time", on_time_chart),
        ("heatmap", state_heatmap),
        ("escalation", escalation_chart),
    ):
        path = out / f"chart-{name}.png"
        path.write_bytes(chart(report, locale))
        written.append(path)
    docx = out / "report.docx"
    docx.write_bytes(document_bytes(report, locale))
    xlsx = out / "report.xlsx"
    xlsx.write_bytes(workbook_bytes(report, locale))
    written += [docx, xlsx]
    written += _pages(docx, out, arguments.resolution)
    written += _pages(xlsx, out, arguments.resolution)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
