"""The JSON Schema of a consolidated report's JSON form (`accord report --format json`), for
other systems. `reports/report.schema.json` is this schema, committed; a test keeps it current.
Regenerate it with `python -m reports.schema > reports/report.schema.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.model import ConsolidatedReport

SCHEMA_FILE = Path(__file__).with_name("report.schema.json")
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def report_schema() -> dict[str, Any]:
    """The schema of `ConsolidatedReport.model_dump_json()` (serialization mode)."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        **ConsolidatedReport.model_json_schema(mode="serialization"),
        "title": "Accord consolidated report",
    }


def report_schema_text() -> str:
    return json.dumps(report_schema(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    print(report_schema_text(), end="")
