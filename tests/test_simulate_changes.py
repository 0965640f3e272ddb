"""`accord simulate FILE --amend DATE:NEW_FILE --succession DATE:CHANGE_FILE` (issue 17): the
mails a change would cause, each JSON line naming the agency that owes the task when it is sent
(`agency`) and, after a succession, the one it came from (`from`).

The agreement (2025, `as_written` dates, one reminder 3 days before and one escalation a day
after, sent at 07:30; nobody reports):

- bao-cao-a, owed by UBND huyện A, due before 15/05 (Thursday): reminder Monday 12/05,
  escalation Friday 16/05; still open (overdue) on 01/07, so it passes to UBND xã B then.
- bao-cao-c, UBND_A, due before 14/08 (Thursday): opens 60 + 3 days before (12/06), so it is
  running on 01/07 and passes then; reminder Monday 11/08 and escalation Friday 15/08 go to B.
- bao-cao-b, UBND_A, due before 18/09 (Thursday): opens 17/07, after the succession, so it
  starts owed by B: reminder Monday 15/09, escalation Friday 19/09.
- bao-cao-bo, SNV, due before 19/06: the amendment of 01/03 removes it before it opens (17/04):
  no mail at all (without the amendment, a reminder on Monday 16/06).
- bao-cao-moi, added by the amendment, STP, due before 17/04 (Thursday): reminder Monday
  14/04, escalation Friday 18/04.

The succession file abolishes UBND_A from 01/07/2025, succeeded by UBND_B (two officers: a
focal point and the head). A transfer mails B's focal point and head and A's head, at the
moment the succession applies (local midnight of 01/07).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_cli_engine import run_accord_process

AGREEMENT = "ke-hoach-thu-ke-thua"

DIRECTORY = """\
tenant: quang-binh
province: Quảng Bình
agencies:
  - code: SNV
    name: Sở Nội vụ
    kind: department
  - code: STP
    name: Sở Tư pháp
    kind: department
  - code: UBND_A
    name: UBND huyện A
    kind: district_peoples_committee
officers:
  - id: snv-dau-moi
    name: Nguyễn Văn An
    email: an.nguyen@snv.example
    agency: SNV
    roles: [focal_point]
  - id: stp-dau-moi
    name: Trần Thị Bình
    email: binh.tran@stp.example
    agency: STP
    roles: [focal_point]
  - id: a-dau-moi
    name: Phạm Văn Cường
    email: cuong.pham@a.example
    agency: UBND_A
    roles: [focal_point]
  - id: a-thu-truong
    name: Hoàng Văn Dũng
    email: dung.hoang@a.example
    agency: UBND_A
    roles: [head]
"""

SUCCESSION = """\
schema_version: 1
tenant: quang-binh
agencies:
  - code: UBND_B
    name: UBND xã B
    kind: commune
    active_from: 2025-07-01
officers:
  - id: b-dau-moi
    name: Vũ Thị Em
    email: em.vu@b.example
    agency: UBND_B
    roles: [focal_point]
  - id: b-thu-truong
    name: Đỗ Văn Phúc
    email: phuc.do@b.example
    agency: UBND_B
    roles: [head]
changes:
  - effective: 2025-07-01
    document: "Nghị quyết số 1/NQ-HĐND, ngày 16/06/2025"
    kind: abolition
    from: [UBND_A]
    to: UBND_B
"""

HEAD = f"""\
id: {AGREEMENT}
document_number: 10/KH-SNV
kind: implementation_plan
title: Kế hoạch thử kế thừa
province: Quảng Bình
parties:
  - agency: SNV
signed_on: 2025-01-02
period:
  start: 2025-01-02
  end: 2025-12-31
directory: directory/quang-binh.yaml
deadline_rule: as_written
defaults:
  reminders:
    before: [3d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [focal_point]
reporting:
"""


def obligation(oid: str, owner: str, due: str) -> str:
    return f"""\
  - id: {oid}
    title: Báo cáo {oid}
    deliverable: report
    owners:
      agencies: [{owner}]
    due:
      kind: fixed
      before: {due}
      label: dot-1
"""


KEPT = [
    obligation("bao-cao-a", "UBND_A", "2025-05-15"),
    obligation("bao-cao-c", "UBND_A", "2025-08-14"),
    obligation("bao-cao-b", "UBND_A", "2025-09-18"),
]


def files(folder: Path) -> tuple[Path, Path, Path]:
    (folder / "directory").mkdir()
    (folder / "directory" / "quang-binh.yaml").write_text(DIRECTORY, encoding="utf-8")
    signed = folder / "ke-hoach.yaml"
    signed.write_text(
        HEAD + "".join([*KEPT, obligation("bao-cao-bo", "SNV", "2025-06-19")]), encoding="utf-8"
    )
    amended = folder / "ke-hoach-sua-doi.yaml"
    amended.write_text(
        HEAD + "".join([*KEPT, obligation("bao-cao-moi", "STP", "2025-04-17")]), encoding="utf-8"
    )
    succession = folder / "ke-thua.yaml"
    succession.write_text(SUCCESSION, encoding="utf-8")
    return signed, amended, succession


def task(obligation_id: str, agency: str) -> str:
    return f"{AGREEMENT}/{obligation_id}/{agency}/dot-1"


A_FOCAL, A_HEAD = "cuong.pham@a.example", "dung.hoang@a.example"
B_FOCAL, B_HEAD = "em.vu@b.example", "phuc.do@b.example"
STP_FOCAL = "binh.tran@stp.example"


def test_simulate_an_amendment_and_a_succession(tmp_path: Path) -> None:
    signed, amended, succession = files(tmp_path)

    result = run_accord_process(
        "simulate",
        str(signed),
        "--json",
        "--amend",
        f"2025-03-01:{amended}",
        "--succession",
        f"2025-07-01:{succession}",
        timeout=180,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, last = [json.loads(line) for line in result.stdout.splitlines()]
    got = [(m["at"][:16], m["kind"], m["task"], m["agency"], m.get("from"), m["to"]) for m in mails]
    a, b, c = task("bao-cao-a", "UBND_A"), task("bao-cao-b", "UBND_A"), task("bao-cao-c", "UBND_A")
    moi = task("bao-cao-moi", "STP")
    moved: list[tuple[str, str, str, str, Any, list[str]]] = [
        ("2025-07-01T00:00", "transferred", t, "UBND_B", "UBND_A", [to])
        for t in (a, c)
        for to in sorted([A_HEAD, B_FOCAL, B_HEAD])
    ]
    assert got == [
        ("2025-04-14T07:30", "reminder", moi, "STP", None, [STP_FOCAL]),
        ("2025-04-18T07:30", "escalation", moi, "STP", None, [STP_FOCAL]),
        ("2025-05-12T07:30", "reminder", a, "UBND_A", None, [A_FOCAL]),
        ("2025-05-16T07:30", "escalation", a, "UBND_A", None, [A_FOCAL]),
        *moved,
        ("2025-08-11T07:30", "reminder", c, "UBND_B", "UBND_A", [B_FOCAL]),
        ("2025-08-15T07:30", "escalation", c, "UBND_B", "UBND_A", [B_FOCAL]),
        ("2025-09-15T07:30", "reminder", b, "UBND_B", "UBND_A", [B_FOCAL]),
        ("2025-09-19T07:30", "escalation", b, "UBND_B", "UBND_A", [B_FOCAL]),
    ]
    # Without a succession, no line names a `from`.
    assert all("from" not in m for m in mails if m["at"] < "2025-07-01")
    summary = last["summary"]
    assert summary["tasks"] == 4  # bao-cao-bo never started
    assert summary["task_states"]["not_done_overdue"] == 4
    assert summary["warnings"] == []


def test_simulate_refuses_another_agreements_amendment_and_a_bad_succession(
    tmp_path: Path,
) -> None:
    signed, _, succession = files(tmp_path)
    other = tmp_path / "khac.yaml"
    other.write_text(HEAD.replace(AGREEMENT, "van-ban-khac") + KEPT[0], encoding="utf-8")
    bad = tmp_path / "ke-thua-sai.yaml"
    bad.write_text(SUCCESSION.replace("from: [UBND_A]", "from: [UBND_X]"), encoding="utf-8")

    wrong = run_accord_process(
        "simulate", str(signed), "--amend", f"2025-03-01:{other}", timeout=60
    )
    unknown = run_accord_process(
        "simulate", str(signed), "--succession", f"2025-07-01:{bad}", timeout=60
    )
    undated = run_accord_process(
        "simulate", str(signed), "--succession", str(succession), timeout=60
    )

    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip() == (
        f"accord simulate: --amend 2025-03-01:{other}: this file is agreement 'van-ban-khac', "
        f"not '{AGREEMENT}'"
    )
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert f"--succession 2025-07-01:{bad}: invalid:" in unknown.stderr
    assert "UBND_X" in unknown.stderr and str(bad) in unknown.stderr
    assert undated.returncode == 2
    assert "expected YYYY-MM-DD:FILE" in undated.stderr


def test_simulate_an_amendment_moving_a_running_tasks_date(tmp_path: Path) -> None:
    """bao-cao-c (running since 12/06) moved from before 14/08 to before 21/08 (Thursday) on
    01/07: its owner is told then, and it is chased towards the new date, reminder Monday
    18/08 and escalation Friday 22/08. (The simulation once kept the written due instant 28
    years early: the moved task was never reminded.)"""
    signed, _, _ = files(tmp_path)
    moved = tmp_path / "ke-hoach-doi-han.yaml"
    moved.write_text(
        HEAD
        + "".join(
            [
                KEPT[0],
                obligation("bao-cao-c", "UBND_A", "2025-08-21"),
                KEPT[2],
                obligation("bao-cao-bo", "SNV", "2025-06-19"),
            ]
        ),
        encoding="utf-8",
    )

    result = run_accord_process(
        "simulate", str(signed), "--json", "--amend", f"2025-07-01:{moved}", timeout=180
    )

    assert result.returncode == 0, result.stderr[-2000:]
    *mails, _ = [json.loads(line) for line in result.stdout.splitlines()]
    c = task("bao-cao-c", "UBND_A")
    assert [(m["at"][:16], m["kind"], m["to"]) for m in mails if m["task"] == c] == [
        ("2025-07-01T00:00", "due_changed", [A_FOCAL]),
        ("2025-07-01T00:00", "due_changed", [A_HEAD]),
        ("2025-08-18T07:30", "reminder", [A_FOCAL]),
        ("2025-08-22T07:30", "escalation", [A_FOCAL]),
    ]
