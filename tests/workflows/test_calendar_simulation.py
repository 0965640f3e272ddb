"""`accord simulate` on a 2026 agreement: deadlines moved by the working calendar, and no mail
at night, on a weekend or on a holiday. Expected times are worked out by hand from the 2026
calendar (Tết: Monday 16/2 – Friday 20/2) and the rules, not read off the engine."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import QUANG_BINH

from accord.simulation import simulate
from agreements.loader import load_agreement

AGREEMENT = """\
document_number: 99/KH-UBND
kind: implementation_plan
title: Kế hoạch thử lịch làm việc năm 2026
province: Quảng Bình
parties: [{agency: UBND_TINH}]
signed_on: 2026-01-05
period: {start: 2026-01-01, end: 2026-12-31}
directory: DIRECTORY
defaults:
  reminders: {before: [7d, 3d, 1d], notify: [focal_point]}
  escalation:
    - {after: 1d, notify: [focal_point]}
    - {after: 5d, notify: [head_of_agency]}
    - {after: 10d, notify: [provincial_leadership]}
reporting:
  - id: bao-cao-sau-tet
    title: Báo cáo tình hình sau Tết
    deliverable: report
    owners: {agencies: [STP]}
    recipient: SNV
    due: {kind: fixed, before: 2026-02-23, label: "2026-tet"}
  - id: bao-cao-nam
    title: Báo cáo năm
    deliverable: report
    owners: {agencies: [STP]}
    recipient: SNV
    due: {kind: fixed, before: 2026-11-15, label: "2026"}
"""


async def test_simulation_shows_moved_deadlines_and_only_working_day_mail(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ke-hoach-2026.yaml"
    path.write_text(AGREEMENT.replace("DIRECTORY", "directory.yaml"), encoding="utf-8")
    # Beside the agreement: a directory outside its folder is refused.
    shutil.copyfile(QUANG_BINH, tmp_path / "directory.yaml")
    loaded = load_agreement(path)
    tet = next(t for t in loaded.occurrences if t.obligation_id == "bao-cao-sau-tet")
    annual = next(t for t in loaded.occurrences if t.obligation_id == "bao-cao-nam")
    # "Before 23/2": last day Sunday 22/2 → Monday 23/2, due at the end of it.
    assert tet.due_at is not None and tet.due_at.isoformat() == "2026-02-24T00:00:00+07:00"
    assert tet.due_note_vi == (
        "Hạn 22/02/2026 rơi vào Chủ nhật; theo Điều 148 Bộ luật Dân sự, "
        "hạn chuyển sang hết ngày 23/02/2026"
    )
    # "Before 15/11": last day Saturday 14/11 → Monday 16/11.
    assert annual.due_at is not None and annual.due_at.isoformat() == "2026-11-17T00:00:00+07:00"

    report = await simulate(loaded, workdir=tmp_path / "sim")
    sent = [(m.at.isoformat(), m.kind, m.task.split("/")[1]) for m in report.mails]
    assert sent == [
        # 7 days before the new due date is Tuesday 17/2 (Tết): the Friday before. 3 days
        # before is Saturday 21/2, whose previous working day is the same Friday: merged.
        ("2026-02-13T07:30:00+07:00", "reminder", "bao-cao-sau-tet"),
        ("2026-02-23T07:30:00+07:00", "reminder", "bao-cao-sau-tet"),
        ("2026-02-25T07:30:00+07:00", "escalation", "bao-cao-sau-tet"),
        # +5 days is Sunday 1/3: the next working day, Monday 2/3.
        ("2026-03-02T07:30:00+07:00", "escalation", "bao-cao-sau-tet"),
        ("2026-03-06T07:30:00+07:00", "escalation", "bao-cao-sau-tet"),
        ("2026-11-10T07:30:00+07:00", "reminder", "bao-cao-nam"),
        # 3 days before is Saturday 14/11: Friday 13/11.
        ("2026-11-13T07:30:00+07:00", "reminder", "bao-cao-nam"),
        ("2026-11-16T07:30:00+07:00", "reminder", "bao-cao-nam"),
        ("2026-11-18T07:30:00+07:00", "escalation", "bao-cao-nam"),
        # +5 days is Sunday 22/11: Monday 23/11.
        ("2026-11-23T07:30:00+07:00", "escalation", "bao-cao-nam"),
        ("2026-11-27T07:30:00+07:00", "escalation", "bao-cao-nam"),
    ]
    first = report.mails[0]
    assert first.subject.endswith("hạn trước 24/02/2026")
    body = first.message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Ghi chú về hạn: Hạn 22/02/2026 rơi vào Chủ nhật" in body.get_content()
