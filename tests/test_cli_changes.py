"""`accord amend`, `accord suspend`, `accord resume` (issue 17), run as an admin runs them against
real components: the Temporal dev server, a worker with the real workflows and activities, the
SMTP sink keeping `.eml` files and a SQLite database (the engine of tests/test_cli_engine.py).

The dev server keeps real time, so the agreements here are written around today: they started
five days ago, and every due date is a number of days from today, written `as_written` (no
weekend or holiday moves it: the due instant is local midnight of the written day, which the
tests work out by hand from today's date).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from test_cli_engine import (
    VIETNAM,
    Engine,
    EngineThread,
    accord,
    eventually,
    point_cli_at,
    status_json,
)
from test_cli_engine import operator_credential as operator_credential  # autouse fixture

TODAY = datetime.now(VIETNAM).date()
ADMIN = "quan-tri"

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
  - id: quan-tri
    name: Lê Văn Quản
    email: quan.le@snv.example
    agency: SNV
    roles: [admin]
"""


def obligation(oid: str, owner: str, due: date, label: str) -> str:
    return f"""\
      - id: {oid}
        title: Báo cáo {oid}
        deliverable: report
        owners:
          agencies: [{owner}]
        due:
          kind: fixed
          before: {due}
          label: {label}
"""


def agreement_text(agreement_id: str, obligations: list[str], *, item_2: list[str]) -> str:
    text = f"""\
id: {agreement_id}
document_number: 9/KH-SNV
kind: implementation_plan
title: Kế hoạch thử sửa đổi
province: Quảng Bình
parties:
  - agency: SNV
signed_on: {TODAY - timedelta(days=5)}
period:
  start: {TODAY - timedelta(days=5)}
  end: {TODAY + timedelta(days=200)}
directory: directory/quang-binh.yaml
deadline_rule: as_written
defaults:
  reminders:
    before: [3d]
    notify: [focal_point]
  escalation:
    - after: 1d
      notify: [focal_point]
items:
  - number: "1"
    title: Báo cáo định kỳ
    lead:
      agencies: [SNV]
    obligations:
{"".join(obligations)}"""
    if item_2:
        text += f"""\
  - number: "2"
    title: Nội dung bổ sung
    lead:
      agencies: [STP]
    obligations:
{"".join(item_2)}"""
    return text


def day(n: int) -> date:
    return TODAY + timedelta(days=n)


def before(n: int) -> str:
    """How the CLI prints a due instant at local midnight of today + n days."""
    return f"trước {day(n):%d/%m/%Y}"


def signed_version(agreement_id: str) -> str:
    """Three obligations of item 1: two started at once (due in 30 and 40 days: their windows
    are open), one waiting (due in 170 days, it opens 63 days before)."""
    return agreement_text(
        agreement_id,
        [
            obligation("bao-cao-dot-1", "SNV", day(30), "dot-1"),
            obligation("bao-cao-cu", "STP", day(40), "dot-1"),
            obligation("bao-cao-cuoi", "SNV", day(170), "cuoi"),
        ],
        item_2=[],
    )


def amended_version(agreement_id: str) -> str:
    """bao-cao-dot-1 moves from +30 to +45 days; bao-cao-cu is removed; item 2 is added with
    bao-cao-moi (STP, +60 days: its window is open, it starts at once); bao-cao-cuoi (waiting)
    moves from +170 to +180 days."""
    return agreement_text(
        agreement_id,
        [
            obligation("bao-cao-dot-1", "SNV", day(45), "dot-1"),
            obligation("bao-cao-cuoi", "SNV", day(180), "cuoi"),
        ],
        item_2=[obligation("bao-cao-moi", "STP", day(60), "dot-1")],
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    thread = EngineThread(tmp_path_factory.mktemp("engine"))
    thread.start()
    thread.ready.wait(timeout=120)
    if thread.engine is None:
        thread.stop()
        raise RuntimeError(f"the engine did not start: {thread.error!r}")
    yield thread.engine
    thread.stop()


def write(folder: Path, name: str, text: str) -> Path:
    (folder / "directory").mkdir(parents=True, exist_ok=True)
    (folder / "directory" / "quang-binh.yaml").write_text(DIRECTORY, encoding="utf-8")
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def deployed(
    engine: Engine, folder: Path, agreement_id: str, capsys: pytest.CaptureFixture[str]
) -> Path:
    path = write(folder, "ke-hoach.yaml", signed_version(agreement_id))
    run = accord(capsys, "deploy", str(path))
    assert run.code == 0, run.out + run.err
    assert run.lines == [f"deployed agreement:{agreement_id}: 3 tasks (started)"]

    def started() -> None:
        tasks = status_json(capsys, "--agreement", agreement_id)
        assert sorted(tasks) == [
            f"{agreement_id}/bao-cao-cu/STP/dot-1",
            f"{agreement_id}/bao-cao-dot-1/SNV/dot-1",
        ]

    eventually(started)
    return path


def task(agreement_id: str, obligation_id: str, agency: str, label: str) -> str:
    return f"{agreement_id}/{obligation_id}/{agency}/{label}"


def test_amend_previews_applies_once_and_refuses_another_agreement(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_cli_at(monkeypatch, engine)
    aid = "thu-sua-doi"
    original = deployed(engine, tmp_path / "v1", aid, capsys)
    new_file = write(tmp_path / "v2", "ke-hoach.yaml", amended_version(aid))
    document = "Quyết định số 12/QĐ-UBND, ngày 01/03/2027"
    dot_1, cu = task(aid, "bao-cao-dot-1", "SNV", "dot-1"), task(aid, "bao-cao-cu", "STP", "dot-1")
    cuoi, moi = task(aid, "bao-cao-cuoi", "SNV", "cuoi"), task(aid, "bao-cao-moi", "STP", "dot-1")

    # Deploying the changed file changes nothing and says to amend.
    redeploy = accord(capsys, "deploy", str(new_file))
    assert redeploy.code == 0, redeploy.err
    assert redeploy.lines[0] == f"unchanged agreement:{aid}: 3 tasks (already running)"
    assert redeploy.lines[1].startswith(f"  {new_file} differs from the version in force")
    assert f"`accord amend {aid} {new_file} " in redeploy.lines[1]
    assert len(redeploy.lines) == 2

    # No terminal and no --yes: the preview, then a refusal; nothing applied.
    preview = accord(capsys, "amend", aid, str(new_file), "--document", document, "--as", ADMIN)
    assert preview.code == 2
    assert "no terminal to confirm on; add --yes" in preview.err
    lines = preview.lines
    assert lines[0] == f"Sửa đổi {aid} theo {document}:"
    changes = lines[lines.index("Nhiệm vụ:") + 1 :]
    assert changes == [
        f"  + thêm: {moi}  {before(60)}",
        f"  - rút (đang thực hiện): {cu}",
        f"  ~ đổi hạn: {dot_1}  {before(30)} → {before(45)}",
        f"  ~ đổi hạn: {cuoi}  {before(170)} → {before(180)}",
    ]
    plan_lines = lines[2 : lines.index("Nhiệm vụ:")]
    assert "  item 2 added" in plan_lines
    assert any(line.startswith("  obligation removed: bao-cao-cu") for line in plan_lines)
    assert any(line.startswith("  obligation added: bao-cao-moi") for line in plan_lines)
    assert lines[1] == f"Nội dung thay đổi ({len(plan_lines)}):"
    assert sorted(status_json(capsys, "--agreement", aid)) == sorted([cu, dot_1])

    applied = accord(
        capsys, "amend", aid, str(new_file), "--document", document, "--yes", "--as", ADMIN
    )
    assert applied.code == 0, applied.err
    assert f"Đã áp dụng {document} (phiên bản 2): thêm 1, rút 1, đổi hạn 2 nhiệm vụ" in (
        applied.lines
    )

    def amended() -> None:
        tasks = status_json(capsys, "--agreement", aid)
        assert sorted(tasks) == sorted([cu, dot_1, moi])
        assert tasks[cu]["state"] == "withdrawn"
        assert tasks[cu]["state_label"] == "Đã rút theo văn bản sửa đổi"
        assert tasks[dot_1]["due_at"][:10] == f"{day(45)}"
        assert tasks[moi]["state"] == "pending"
        assert tasks[moi]["due_at"][:10] == f"{day(60)}"

    eventually(amended)
    withdrawn = eventually(lambda: _one(engine.mails(cu, "withdrawn")))
    body = withdrawn.get_body(("plain",))
    assert body is not None and document in body.get_content()
    assert {a.addr_spec for a in withdrawn["To"].addresses} == {"binh.tran@stp.example"}
    moved = eventually(lambda: _one(engine.mails(dot_1, "due_changed")))
    assert {a.addr_spec for a in moved["To"].addresses} == {"an.nguyen@snv.example"}

    overview = accord(capsys, "status", "--agreement", aid)
    version = [line for line in overview.lines if line.startswith("Phiên bản 2, ")]
    assert len(version) == 1 and version[0].endswith(f" theo {document}")

    # The same file and document again: nothing changes.
    again = accord(
        capsys, "amend", aid, str(new_file), "--document", document, "--yes", "--as", ADMIN
    )
    assert again.code == 0, again.err
    assert again.lines == ["Không có gì thay đổi: tệp trùng với phiên bản đang có hiệu lực."]
    assert len(engine.mails(cu, "withdrawn")) == 1
    # Deployed again, the amended file is the version in force; the signed one is not.
    assert accord(capsys, "deploy", str(new_file)).lines == [
        f"unchanged agreement:{aid}: 3 tasks (already running)"
    ]
    assert len(accord(capsys, "deploy", str(original)).lines) == 2

    # Another agreement's file: one line, nothing sent.
    other = write(tmp_path / "other", "khac.yaml", signed_version("van-ban-khac"))
    refused = accord(
        capsys, "amend", aid, str(other), "--document", document, "--yes", "--as", ADMIN
    )
    assert refused.code == 2
    assert refused.out == ""
    assert refused.err.strip().splitlines() == [
        f"accord amend: {other}: this file is agreement 'van-ban-khac', not '{aid}'; an "
        "amendment keeps the agreement's `id:`"
    ]

    # An officer who is not an admin: the workflow refuses.
    not_admin = accord(
        capsys, "amend", aid, str(original), "--document", "x", "--yes", "--as", "snv-dau-moi"
    )
    assert not_admin.code == 1
    assert "bị từ chối: chỉ quản trị viên được sửa đổi" in not_admin.err

    # In English when the settings say so.
    monkeypatch.setenv("ACCORD_LOCALE", "en")
    english = accord(
        capsys, "amend", aid, str(new_file), "--document", document, "--yes", "--as", ADMIN
    )
    assert english.lines == ["Nothing changes: the file is the version in force."]
    refused_en = accord(
        capsys, "amend", aid, str(original), "--document", "x", "--yes", "--as", "snv-dau-moi"
    )
    assert "refused: only an admin may amend" in refused_en.err
    assert refused_en.out.startswith(f"Amendment of {aid} by x:")


def _one(found: list[EmailMessage]) -> EmailMessage:
    assert len(found) == 1, found
    return found[0]


def test_suspend_and_resume_an_obligation(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_cli_at(monkeypatch, engine)
    aid = "thu-tam-dung"
    deployed(engine, tmp_path / "v1", aid, capsys)
    dot_1, cu = task(aid, "bao-cao-dot-1", "SNV", "dot-1"), task(aid, "bao-cao-cu", "STP", "dot-1")
    document = "Quyết định số 20/QĐ-UBND, ngày 02/03/2027"

    suspended = accord(
        capsys,
        "suspend",
        aid,
        "--obligation",
        "bao-cao-dot-1",
        "--document",
        document,
        "--reason",
        "Chờ hướng dẫn của Bộ Nội vụ",
        "--as",
        ADMIN,
    )
    assert suspended.code == 0, suspended.err
    assert suspended.lines[0] == (
        f"Đã tạm dừng nghĩa vụ bao-cao-dot-1 theo {document}: 1 nhiệm vụ đang thực hiện"
    )
    assert suspended.lines[1] == f"  {dot_1}"
    id_line = suspended.lines[2]
    assert id_line.startswith("Mã tạm dừng: td-")
    # A stable short hash of the scope and the document, so that resume can name it.
    scope_and_document = f"obligation:bao-cao-dot-1\n{document}".encode()
    suspension = "td-" + hashlib.sha256(scope_and_document).hexdigest()[:10]
    assert id_line == f"Mã tạm dừng: {suspension} (accord resume {aid} --id {suspension} …)"

    def in_force() -> None:
        tasks = status_json(capsys, "--agreement", aid)
        assert tasks[dot_1]["state"] == "suspended"
        assert tasks[dot_1]["state_label"] == "Tạm dừng"
        assert tasks[cu]["state"] == "pending"

    eventually(in_force)
    overview = accord(capsys, "status", "--agreement", aid)
    held = [
        line
        for line in overview.lines
        if line.startswith(f"Tạm dừng {suspension} (nghĩa vụ bao-cao-dot-1) từ ")
    ]
    assert len(held) == 1
    assert held[0].endswith(f" theo {document}: Chờ hướng dẫn của Bộ Nội vụ")
    row = next(line for line in overview.lines if line.startswith(dot_1))
    assert "Tạm dừng" in row

    # The same suspension again (same scope and document: same ID) changes nothing.
    again = accord(
        capsys,
        "suspend",
        aid,
        "--obligation",
        "bao-cao-dot-1",
        "--document",
        document,
        "--reason",
        "x",
        "--as",
        ADMIN,
    )
    assert again.code == 0, again.err
    assert (
        again.lines[0].startswith("Thay đổi tạm dừng ") and "không thay đổi gì" in (again.lines[0])
    )

    unknown = accord(
        capsys,
        "resume",
        aid,
        "--id",
        "td-khong-co",
        "--document",
        document,
        "--reason",
        "r",
        "--keep-deadlines",
        "--as",
        ADMIN,
    )
    assert unknown.code == 1
    assert "không có quyết định tạm dừng 'td-khong-co'" in unknown.err
    assert suspension in unknown.err

    resumed = accord(
        capsys,
        "resume",
        aid,
        "--id",
        suspension,
        "--document",
        "Quyết định số 21/QĐ-UBND, ngày 03/03/2027",
        "--reason",
        "Đã có hướng dẫn",
        "--keep-deadlines",
        "--as",
        ADMIN,
    )
    assert resumed.code == 0, resumed.err
    assert resumed.lines[0].startswith("Đã tiếp tục nghĩa vụ bao-cao-dot-1 ")
    assert "(giữ nguyên hạn)" in resumed.lines[0]

    def lifted() -> None:
        tasks = status_json(capsys, "--agreement", aid)
        assert tasks[dot_1]["state"] == "pending"
        assert tasks[dot_1]["due_at"][:10] == f"{day(30)}"

    eventually(lifted)
    overview = accord(capsys, "status", "--agreement", aid)
    assert not [line for line in overview.lines if line.startswith("Tạm dừng ")]


def test_suspend_and_resume_need_their_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as both:
        accord(capsys, "suspend", "a", "--item", "1", "--obligation", "x", "--document", "d")
    assert both.value.code == 2
    with pytest.raises(SystemExit) as neither:
        accord(capsys, "resume", "a", "--id", "x", "--document", "d", "--reason", "r", "--as", "o")
    assert neither.value.code == 2
    assert "--shift-deadlines" in capsys.readouterr().err
