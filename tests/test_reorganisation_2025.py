"""Plan 289/KH-UBND through its real 2025, with the reorganisation of 1 July 2025 (issue 17).

`accord simulate` runs the agreement's real workflows on the time-skipping server (28 years
later, printed back in 2025) as a subprocess, with the shipped succession file applied on
01/07/2025: the district People's Committees are abolished (their tasks pass to the commune
or ward that continues the district's name) and Quảng Bình's bodies merge into merged Quảng
Trị's (Sở Nội vụ, the aggregator, into QT_SNV). Every expectation below is read off the plan
and the succession file by hand:

- 6-month report, due "trước 15/5": reminders 7, 3 and 1 days before (Thursday 08/05, Monday
  12/05, Wednesday 14/05) at 07:30, to the old agencies' focal points (@quangbinh.example).
- On 01/07/2025 every open task of a ceased agency passes: the successor's focal point and head
  are told, and so is the former head; no other mail reaches an address of a ceased agency
  from that day.
- The annual report, due "trước 15/11": reminders on Friday 07/11, Wednesday 12/11 and Friday
  14/11 to the successor's focal point; the ladder's second step (Thursday 20/11) goes to the
  successor aggregator QT_SNV, its third (Tuesday 25/11) to merged Quảng Trị's leadership.
- UBND xã Lệ Thủy submits Lệ Thủy's annual report on 10/11: on time, under the successor,
  "formerly UBND_LE_THUY"; STP's 6-month report, submitted on 10/05 and closed before the
  reorganisation, stays STP's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACCORD = str(Path(sys.executable).parent / "accord")
PLAN = ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"
REORGANISATION = ROOT / "agreements" / "directory" / "quang-binh-2025-reorganisation.yaml"
ID = "289-kh-ubnd-2025"


def test_plan_289_through_the_2025_reorganisation(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    result = subprocess.run(
        [
            ACCORD,
            "simulate",
            str(PLAN),
            "--json",
            "--succession",
            f"2025-07-01:{REORGANISATION}",
            "--submit",
            f"{ID}/bao-cao-6-thang/STP/2025-6t@2025-05-10",
            "--submit",
            f"{ID}/bao-cao-nam/UBND_LE_THUY/2025@2025-11-10",
            "--report",
            str(report_file),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    *mails, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["warnings"] == []

    def sent(task: str, kind: str) -> list[tuple[str, list[str], str, str | None]]:
        return [
            (m["at"], m["to"], m["agency"], m.get("from"))
            for m in mails
            if m["task"] == f"{ID}/{task}" and m["kind"] == kind
        ]

    # May, under the old agencies.
    assert sent("bao-cao-6-thang/UBND_DONG_HOI/2025-6t", "reminder") == [
        (f"2025-05-{day}T07:30:00+07:00", ["dau-moi.ubnd-dong-hoi@quangbinh.example"], a, None)
        for day, a in (("08", "UBND_DONG_HOI"), ("12", "UBND_DONG_HOI"), ("14", "UBND_DONG_HOI"))
    ]
    assert all(
        all(address.endswith("@quangbinh.example") for address in m["to"])
        for m in mails
        if m["at"] < "2025-07-01"
    )

    # 01/07: Đồng Hới's 6-month task, still owed, passes to UBND phường Đồng Hới, and its
    # recipient to QT_SNV, in one notice (never a re-addressing to the ceased agency): the
    # successor's focal point and head, and the former head, are told. (The annual task opens
    # later: it simply starts under the successor.)
    transfer = sent("bao-cao-6-thang/UBND_DONG_HOI/2025-6t", "transferred")
    assert sorted(address for _, to, _, _ in transfer for address in to) == [
        "dau-moi.ubnd-phuong-dong-hoi@quangtri.example",
        "thu-truong.ubnd-dong-hoi@quangbinh.example",
        "thu-truong.ubnd-phuong-dong-hoi@quangtri.example",
    ]
    assert {(at[:10], agency, origin) for at, _, agency, origin in transfer} == {
        ("2025-07-01", "UBND_PHUONG_DONG_HOI", "UBND_DONG_HOI")
    }
    # From then on, only former heads' transfer notices reach a ceased agency's address.
    assert [
        (m["at"], m["kind"], m["to"])
        for m in mails
        if m["at"] >= "2025-07-01"
        and any(address.endswith("@quangbinh.example") for address in m["to"])
        and not (m["kind"] == "transferred" and m["to"][0].startswith("thu-truong."))
    ] == []
    assert {m["at"][:10] for m in mails if m["kind"] == "transferred"} == {"2025-07-01"}

    # November, under the successors.
    focal = ["dau-moi.ubnd-phuong-dong-hoi@quangtri.example"]
    assert sent("bao-cao-nam/UBND_DONG_HOI/2025", "reminder") == [
        (f"2025-11-{day}T07:30:00+07:00", focal, "UBND_PHUONG_DONG_HOI", "UBND_DONG_HOI")
        for day in ("07", "12", "14")
    ]
    ladder = sent("bao-cao-nam/UBND_DONG_HOI/2025", "escalation")
    assert ("2025-11-20T07:30:00+07:00", ["dau-moi.snv@quangtri.example"]) in [
        (at, to) for at, to, _, _ in ladder
    ]
    assert ("2025-11-25T07:30:00+07:00", ["lanh-dao.ubnd-tinh@quangtri.example"]) in [
        (at, to) for at, to, _, _ in ladder
    ]
    assert sent("bao-cao-nam/UBND_LE_THUY/2025", "reminder") == [
        (
            "2025-11-07T07:30:00+07:00",
            ["dau-moi.ubnd-xa-le-thuy@quangtri.example"],
            "UBND_XA_LE_THUY",
            "UBND_LE_THUY",
        )
    ]

    # The report: the May history under the old agency, the annual under the successors.
    report = json.loads(report_file.read_text(encoding="utf-8"))
    tasks: dict[str, dict[str, Any]] = {t["task_id"]: t for t in report["tasks"]}
    stp = tasks[f"{ID}/bao-cao-6-thang/STP/2025-6t"]
    assert (stp["agency"], stp["original_agency"], stp["status"]) == ("STP", None, "on_time")
    le_thuy = tasks[f"{ID}/bao-cao-nam/UBND_LE_THUY/2025"]
    assert (le_thuy["agency"], le_thuy["original_agency"], le_thuy["status"]) == (
        "UBND_XA_LE_THUY",
        "UBND_LE_THUY",
        "on_time",
    )
    dong_hoi = tasks[f"{ID}/bao-cao-nam/UBND_DONG_HOI/2025"]
    assert (dong_hoi["agency"], dong_hoi["original_agency"]) == (
        "UBND_PHUONG_DONG_HOI",
        "UBND_DONG_HOI",
    )
    assert dong_hoi["state"] == "not_done_overdue"
